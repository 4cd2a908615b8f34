package gang

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

func podGroup(name string, minMember int32, mutate ...func(*schedv1alpha1.PodGroup)) *schedv1alpha1.PodGroup {
	pg := &schedv1alpha1.PodGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: name},
		Spec: schedv1alpha1.PodGroupSpec{MinMember: minMember}}
	for _, m := range mutate {
		m(pg)
	}
	return pg
}

// withKind is pg as Events need it: a copy with its kind set.
func withKind(pg *schedv1alpha1.PodGroup) *schedv1alpha1.PodGroup {
	pg = pg.DeepCopy()
	pg.SetGroupVersionKind(schedv1alpha1.SchemeGroupVersion.WithKind("PodGroup"))
	return pg
}

func TestPodGroupSpec(t *testing.T) {
	inGroup := map[string]string{LabelPodGroup: "train"}
	queued := map[string]string{LabelPodGroup: "train", queue.LabelQueue: "pods-queue"}
	full := podGroup("train", 4, func(pg *schedv1alpha1.PodGroup) {
		pg.Labels = map[string]string{queue.LabelQueue: "group-queue"}
		pg.Spec.ScheduleTimeoutSeconds = ptr.To[int32](90)
		pg.Spec.MinResources = v1.ResourceList{v1.ResourceCPU: resource.MustParse("8")}
	})
	bare := podGroup("train", 0)
	gvk := schedv1alpha1.SchemeGroupVersion.WithKind("PodGroup")

	runSpecCases(t, KindPodGroup, map[string]specCase{
		"the PodGroup's spec and queue label": {
			pods:    []testPod{{name: "a", labels: queued}},
			objects: objectsOf(ResourcePodGroup, full),
			want: Definition{
				Spec:       Spec{MinMember: 4, Timeout: 90 * time.Second, MinResources: resources.Vector{v1.ResourceCPU: 8000}},
				QueueLabel: "group-queue", Object: withKind(full),
			},
		},
		"as a dynamic client reads it": {
			pods:    []testPod{{name: "a", labels: queued}},
			objects: objectsOf(ResourcePodGroup, unstructuredOf(t, full, gvk)),
			want: Definition{
				Spec:       Spec{MinMember: 4, Timeout: 90 * time.Second, MinResources: resources.Vector{v1.ResourceCPU: 8000}},
				QueueLabel: "group-queue", Object: withKind(full),
			},
		},
		"minMember 0 is 1, no timeout, the pod's queue label": {
			pods:    []testPod{{name: "a", labels: queued}},
			objects: objectsOf(ResourcePodGroup, bare),
			want:    Definition{Spec: Spec{MinMember: 1}, QueueLabel: "pods-queue", Object: withKind(bare)},
		},
		"a PodGroup not created yet": {
			pods: []testPod{{name: "a", labels: queued}},
			want: Definition{QueueLabel: "pods-queue", Wait: &Wait{
				Reason: "PodGroup ml/train (label scheduling.x-k8s.io/pod-group) does not exist yet",
				Detail: "the pod names PodGroup ml/train (label scheduling.x-k8s.io/pod-group), which does not exist; muster waits for it",
			}},
		},
		"another namespace's PodGroup of the name is not it": {
			pods:    []testPod{{name: "a", labels: inGroup}},
			objects: objectsOf(ResourcePodGroup, podGroup("train", 4, func(pg *schedv1alpha1.PodGroup) { pg.Namespace = "other" })),
			want: Definition{Wait: &Wait{
				Reason: "PodGroup ml/train (label scheduling.x-k8s.io/pod-group) does not exist yet",
				Detail: "the pod names PodGroup ml/train (label scheduling.x-k8s.io/pod-group), which does not exist; muster waits for it",
			}},
		},
		"a PodGroup that cannot be read": {
			pods:    []testPod{{name: "a", labels: inGroup}},
			readErr: errors.New("forbidden"),
			wantErr: "reading PodGroup ml/train: forbidden",
		},
	})
}

func TestPodGroupSpecLeavesTheInformersObject(t *testing.T) {
	pg := podGroup("train", 2)
	objs := &fakeObjects{objects: objectsOf(ResourcePodGroup, pg)}
	def, err := SourceOf(KindPodGroup).Spec(t.Context(), Ref{KindPodGroup, "ml", "train"}, testPod{labels: map[string]string{LabelPodGroup: "train"}}.pod(), objs)
	require.NoError(t, err)
	assert.Empty(t, pg.Kind, "the informer's object was written to")
	assert.Equal(t, "PodGroup", def.Object.GetObjectKind().GroupVersionKind().Kind)
}

func TestPodGroupMembers(t *testing.T) {
	pods := []testPod{
		{name: "a", labels: map[string]string{LabelPodGroup: "train"}},
		{name: "b", labels: map[string]string{LabelPodGroup: "train", LabelGang: "g"}, phase: v1.PodSucceeded},
		{name: "c", labels: map[string]string{LabelPodGroup: "other"}},
		{name: "d", labels: map[string]string{LabelGang: "train"}},
		{name: "e", workload: "train"},
	}
	assert.Equal(t, []string{"a", "b"}, gangPods(t, Ref{KindPodGroup, "ml", "train"}, pods))
	assert.Empty(t, gangPods(t, Ref{KindPodGroup, "other-ns", "train"}, pods))
}
