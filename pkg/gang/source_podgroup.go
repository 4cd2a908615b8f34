package gang

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// LabelPodGroup names a pod's scheduler-plugins PodGroup.
const LabelPodGroup = "scheduling.x-k8s.io/pod-group"

// KindPodGroup: a scheduler-plugins PodGroup, by LabelPodGroup.
const KindPodGroup Kind = "PodGroup"

// ResourcePodGroup is the scheduler-plugins PodGroup CRD.
var ResourcePodGroup = schedv1alpha1.SchemeGroupVersion.WithResource("podgroups")

// podGroups are the gangs of scheduler-plugins PodGroups: the pods labelled
// with a PodGroup's name, sized and timed by its spec (minMember,
// scheduleTimeoutSeconds, minResources) and queued by its muster.dev/queue
// label.
type podGroups struct{}

func (podGroups) Kind() Kind   { return KindPodGroup }
func (podGroups) Noun() string { return "PodGroup" }

func (podGroups) Resource() (schema.GroupVersionResource, bool) { return ResourcePodGroup, true }

// Identify: a pod of a Spark application (a driver or an executor) that
// names a PodGroup, as the Spark operator's labels make it, is not a
// PodGroup member: its gang is its application, which reads the PodGroup
// (sparkApps.Spec, composing the two).
func (podGroups) Identify(pod *v1.Pod) (string, Role) {
	if _, role := (sparkApps{}).Identify(pod); role != NoRole {
		return "", NoRole
	}
	return pod.Labels[LabelPodGroup], NoRole
}

func (podGroups) Spec(ctx context.Context, ref Ref, pod *v1.Pod, objs Objects) (Definition, error) {
	def := Definition{QueueLabel: pod.Labels[queue.LabelQueue]}
	pg, wait, err := readPodGroup(ctx, ref.Namespace, ref.Name, objs)
	if err != nil || wait != nil {
		def.Wait = wait
		return def, err
	}
	def.Spec.MinMember = max(pg.Spec.MinMember, 1)
	def.Spec.Timeout = podGroupTimeout(pg)
	if len(pg.Spec.MinResources) > 0 {
		def.Spec.MinResources = resources.FromList(pg.Spec.MinResources)
	}
	if q := pg.Labels[queue.LabelQueue]; q != "" {
		def.QueueLabel = q
	}
	def.Object = podGroupEventObject(pg)
	if def.Spec.Topology, err = ParseTopology(pg.Annotations); err != nil {
		return def, fmt.Errorf("PodGroup %s/%s: %w", pg.Namespace, pg.Name, err)
	}
	return def, mpiLaunchLater(ctx, &def, ref.Namespace, metav1.GetControllerOf(pg), objs)
}

// readPodGroup reads a PodGroup a pod names: a reason to wait when it does
// not exist, a *ReadError when it cannot be read.
func readPodGroup(ctx context.Context, namespace, name string, objs Objects) (*schedv1alpha1.PodGroup, *Wait, error) {
	obj, err := objs.Object(ctx, ResourcePodGroup, namespace, name)
	if apierrors.IsNotFound(err) {
		return nil, &Wait{
			Reason: fmt.Sprintf("PodGroup %s/%s (label %s) does not exist yet", namespace, name, LabelPodGroup),
			Detail: fmt.Sprintf("the pod names PodGroup %s/%s (label %s), which does not exist; muster waits for it", namespace, name, LabelPodGroup),
		}, nil
	}
	if err != nil {
		return nil, nil, &ReadError{Object: fmt.Sprintf("PodGroup %s/%s", namespace, name), Err: err}
	}
	pg, err := as[schedv1alpha1.PodGroup](obj)
	if err != nil {
		return nil, nil, &ReadError{Object: fmt.Sprintf("PodGroup %s/%s", namespace, name), Err: err}
	}
	return pg, nil, nil
}

// podGroupTimeout is a PodGroup's scheduleTimeoutSeconds, 0 when unset (or
// 0, as the MPI operator writes it): the caller's default applies.
func podGroupTimeout(pg *schedv1alpha1.PodGroup) time.Duration {
	if t := pg.Spec.ScheduleTimeoutSeconds; t != nil && *t > 0 {
		return time.Duration(*t) * time.Second
	}
	return 0
}

// podGroupEventObject is a PodGroup for Events: informers' objects carry
// no kind, and Events need it for their reference.
func podGroupEventObject(pg *schedv1alpha1.PodGroup) *schedv1alpha1.PodGroup {
	event := pg.DeepCopy()
	event.SetGroupVersionKind(schedv1alpha1.SchemeGroupVersion.WithKind("PodGroup"))
	return event
}

// PodGroupOf returns the PodGroup a pod names, "" for none, whether or not
// it is the pod's gang: a Spark application's pods compose with the one
// the Spark operator makes, whose status muster writes all the same.
func PodGroupOf(pod *v1.Pod) string { return pod.Labels[LabelPodGroup] }

func (podGroups) Members(ctx context.Context, ref Ref, objs Objects) ([]*v1.Pod, error) {
	return objs.Pods(ctx, ref.Namespace, labels.SelectorFromSet(labels.Set{LabelPodGroup: ref.Name}))
}
