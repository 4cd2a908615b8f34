package gang

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	schedv1beta1 "k8s.io/api/scheduling/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/queue"
)

func workloadGroup(name string, policy schedv1beta1.PodGroupSchedulingPolicy, labels map[string]string) *schedv1beta1.PodGroup {
	return &schedv1beta1.PodGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: name, Labels: labels},
		Spec: schedv1beta1.PodGroupSpec{SchedulingPolicy: policy}}
}

func TestWorkloadSpec(t *testing.T) {
	gangOf := func(n int32) schedv1beta1.PodGroupSchedulingPolicy {
		return schedv1beta1.PodGroupSchedulingPolicy{Gang: &schedv1beta1.GangSchedulingPolicy{MinCount: n}}
	}
	pod := testPod{name: "w-0", workload: "wl", labels: map[string]string{queue.LabelQueue: "pods-queue"}}
	queued := workloadGroup("wl", gangOf(4), map[string]string{queue.LabelQueue: "group-queue"})
	gvk := schedv1beta1.SchemeGroupVersion.WithKind("PodGroup")

	runSpecCases(t, KindWorkload, map[string]specCase{
		"the gang policy's minCount and the group's queue label": {
			pods:    []testPod{pod},
			objects: objectsOf(ResourceWorkloadPodGroup, queued),
			want:    Definition{Spec: Spec{MinMember: 4}, QueueLabel: "group-queue"},
		},
		"as a dynamic client reads it": {
			pods:    []testPod{pod},
			objects: objectsOf(ResourceWorkloadPodGroup, unstructuredOf(t, queued, gvk)),
			want:    Definition{Spec: Spec{MinMember: 4}, QueueLabel: "group-queue"},
		},
		"a basic policy is a gang of one": {
			pods:    []testPod{pod},
			objects: objectsOf(ResourceWorkloadPodGroup, workloadGroup("wl", schedv1beta1.PodGroupSchedulingPolicy{Basic: &schedv1beta1.BasicSchedulingPolicy{}}, nil)),
			want:    Definition{Spec: Spec{MinMember: 1}, QueueLabel: "pods-queue"},
		},
		"minCount 0 is 1": {
			pods:    []testPod{pod},
			objects: objectsOf(ResourceWorkloadPodGroup, workloadGroup("wl", gangOf(0), nil)),
			want:    Definition{Spec: Spec{MinMember: 1}, QueueLabel: "pods-queue"},
		},
		"the topology constraint, required": {
			pods: []testPod{pod},
			objects: objectsOf(ResourceWorkloadPodGroup, func() *schedv1beta1.PodGroup {
				g := workloadGroup("wl", gangOf(4), nil)
				g.Spec.SchedulingConstraints = &schedv1beta1.PodGroupSchedulingConstraints{Topology: []schedv1beta1.TopologyConstraint{{Key: "example.com/rack"}}}
				return g
			}()),
			want: Definition{Spec: Spec{MinMember: 4, Topology: Topology{Keys: []string{"example.com/rack"}, Required: true}}, QueueLabel: "pods-queue"},
		},
		"muster's annotation over the constraint": {
			pods: []testPod{pod},
			objects: objectsOf(ResourceWorkloadPodGroup, func() *schedv1beta1.PodGroup {
				g := workloadGroup("wl", gangOf(4), nil)
				g.Spec.SchedulingConstraints = &schedv1beta1.PodGroupSchedulingConstraints{Topology: []schedv1beta1.TopologyConstraint{{Key: "example.com/rack"}}}
				g.Annotations = map[string]string{AnnotationTopologyPreferred: "example.com/block,example.com/rack"}
				return g
			}()),
			want: Definition{Spec: Spec{MinMember: 4, Topology: Topology{Keys: []string{"example.com/block", "example.com/rack"}}}, QueueLabel: "pods-queue"},
		},
		"a bad topology annotation": {
			pods: []testPod{pod},
			objects: objectsOf(ResourceWorkloadPodGroup, func() *schedv1beta1.PodGroup {
				g := workloadGroup("wl", gangOf(4), nil)
				g.Annotations = map[string]string{AnnotationTopologyRequired: "rack/"}
				return g
			}()),
			want:    Definition{Spec: Spec{MinMember: 4}, QueueLabel: "pods-queue"},
			wantErr: `PodGroup ml/wl: annotation muster.dev/topology-required="rack/": "rack/" is not a node label key: name part must be non-empty; name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
		},
		"a pod group not created yet": {
			pods: []testPod{pod},
			want: Definition{QueueLabel: "pods-queue", Wait: &Wait{
				Reason: "PodGroup ml/wl (scheduling.k8s.io/v1beta1, spec.schedulingGroup) does not exist yet",
				Detail: "the pod names PodGroup ml/wl (scheduling.k8s.io/v1beta1, spec.schedulingGroup), which does not exist; muster waits for it",
			}},
		},
		"a pod group that cannot be read": {
			pods:    []testPod{pod},
			readErr: errors.New("forbidden"),
			want:    Definition{QueueLabel: "pods-queue"},
			wantErr: "reading PodGroup ml/wl: forbidden",
		},
	})
}

func TestWorkloadMembers(t *testing.T) {
	pods := []testPod{
		{name: "w-0", workload: "wl"},
		{name: "w-1", workload: "wl", phase: "Succeeded"},
		{name: "other", workload: "wl-2"},
		{name: "labelled", labels: map[string]string{LabelPodGroup: "wl"}},
		{name: "none"},
	}
	assert.Equal(t, []string{"w-0", "w-1"}, gangPods(t, Ref{KindWorkload, "ml", "wl"}, pods))
}
