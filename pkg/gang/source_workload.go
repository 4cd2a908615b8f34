package gang

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	schedv1beta1 "k8s.io/api/scheduling/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"muster.dev/muster/pkg/queue"
)

// KindWorkload: a pod group of the upstream Workload API, by the pod's
// spec.schedulingGroup.
const KindWorkload Kind = "Workload"

// ResourceWorkloadPodGroup is the Workload API's pod groups
// (scheduling.k8s.io/v1beta1).
var ResourceWorkloadPodGroup = schedv1beta1.SchemeGroupVersion.WithResource("podgroups")

// workloadGroups are the gangs of the Workload API: the pods whose
// spec.schedulingGroup names a pod group, with the quorum of its gang
// policy (minCount) and its muster.dev/queue label.
type workloadGroups struct{}

func (workloadGroups) Kind() Kind   { return KindWorkload }
func (workloadGroups) Noun() string { return "PodGroup" }

func (workloadGroups) Resource() (schema.GroupVersionResource, bool) {
	return ResourceWorkloadPodGroup, true
}

func (workloadGroups) Identify(pod *v1.Pod) (string, Role) {
	return schedulingGroup(pod), NoRole
}

// schedulingGroup is the pod group the pod's spec.schedulingGroup names, or "".
func schedulingGroup(pod *v1.Pod) string {
	if g := pod.Spec.SchedulingGroup; g != nil && g.PodGroupName != nil {
		return *g.PodGroupName
	}
	return ""
}

func (workloadGroups) Spec(ctx context.Context, ref Ref, pod *v1.Pod, objs Objects) (Definition, error) {
	def := Definition{QueueLabel: pod.Labels[queue.LabelQueue]}
	obj, err := objs.Object(ctx, ResourceWorkloadPodGroup, ref.Namespace, ref.Name)
	if apierrors.IsNotFound(err) {
		def.Wait = &Wait{
			Reason: fmt.Sprintf("PodGroup %s/%s (%s, spec.schedulingGroup) does not exist yet", ref.Namespace, ref.Name, schedv1beta1.SchemeGroupVersion),
			Detail: fmt.Sprintf("the pod names PodGroup %s/%s (%s, spec.schedulingGroup), which does not exist; muster waits for it",
				ref.Namespace, ref.Name, schedv1beta1.SchemeGroupVersion),
		}
		return def, nil
	}
	if err != nil {
		return def, &ReadError{Object: fmt.Sprintf("PodGroup %s/%s", ref.Namespace, ref.Name), Err: err}
	}
	pg, err := as[schedv1beta1.PodGroup](obj)
	if err != nil {
		return def, &ReadError{Object: fmt.Sprintf("PodGroup %s/%s", ref.Namespace, ref.Name), Err: err}
	}
	def.Spec.MinMember = 1
	if g := pg.Spec.SchedulingPolicy.Gang; g != nil {
		def.Spec.MinMember = max(g.MinCount, 1)
	}
	if q := pg.Labels[queue.LabelQueue]; q != "" {
		def.QueueLabel = q
	}
	if c := pg.Spec.SchedulingConstraints; c != nil && len(c.Topology) > 0 {
		// The Workload API's constraint is required; muster's annotations
		// on the PodGroup may say more (several levels, or preferred).
		def.Spec.Topology = Topology{Keys: []string{c.Topology[0].Key}, Required: true}
	}
	if t, err := ParseTopology(pg.Annotations); err != nil {
		return def, fmt.Errorf("PodGroup %s/%s: %w", pg.Namespace, pg.Name, err)
	} else if !t.IsZero() {
		def.Spec.Topology = t
	}
	return def, nil
}

// Members lists the namespace's pods and keeps those of the group: no label
// names it.
func (workloadGroups) Members(ctx context.Context, ref Ref, objs Objects) ([]*v1.Pod, error) {
	pods, err := objs.Pods(ctx, ref.Namespace, labels.Everything())
	if err != nil {
		return nil, err
	}
	var out []*v1.Pod
	for _, p := range pods {
		if schedulingGroup(p) == ref.Name {
			out = append(out, p)
		}
	}
	return out, nil
}
