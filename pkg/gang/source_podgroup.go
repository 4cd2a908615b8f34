package gang

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

func (podGroups) Identify(pod *v1.Pod) (string, Role) { return pod.Labels[LabelPodGroup], NoRole }

func (podGroups) Spec(ctx context.Context, ref Ref, pod *v1.Pod, objs Objects) (Definition, error) {
	def := Definition{QueueLabel: pod.Labels[queue.LabelQueue]}
	obj, err := objs.Object(ctx, ResourcePodGroup, ref.Namespace, ref.Name)
	if apierrors.IsNotFound(err) {
		def.Wait = &Wait{
			Reason: fmt.Sprintf("PodGroup %s/%s (label %s) does not exist yet", ref.Namespace, ref.Name, LabelPodGroup),
			Detail: fmt.Sprintf("the pod names PodGroup %s/%s (label %s), which does not exist; muster waits for it", ref.Namespace, ref.Name, LabelPodGroup),
		}
		return def, nil
	}
	if err != nil {
		return def, &ReadError{Object: fmt.Sprintf("PodGroup %s/%s", ref.Namespace, ref.Name), Err: err}
	}
	pg, err := as[schedv1alpha1.PodGroup](obj)
	if err != nil {
		return def, &ReadError{Object: fmt.Sprintf("PodGroup %s/%s", ref.Namespace, ref.Name), Err: err}
	}
	def.Spec.MinMember = max(pg.Spec.MinMember, 1)
	if t := pg.Spec.ScheduleTimeoutSeconds; t != nil && *t > 0 {
		def.Spec.Timeout = time.Duration(*t) * time.Second
	}
	if len(pg.Spec.MinResources) > 0 {
		def.Spec.MinResources = resources.FromList(pg.Spec.MinResources)
	}
	if q := pg.Labels[queue.LabelQueue]; q != "" {
		def.QueueLabel = q
	}
	// Informers' objects carry no kind; Events need it for their reference.
	event := pg.DeepCopy()
	event.SetGroupVersionKind(schedv1alpha1.SchemeGroupVersion.WithKind("PodGroup"))
	def.Object = event
	return def, nil
}

func (podGroups) Members(ctx context.Context, ref Ref, objs Objects) ([]*v1.Pod, error) {
	return objs.Pods(ctx, ref.Namespace, labels.SelectorFromSet(labels.Set{LabelPodGroup: ref.Name}))
}
