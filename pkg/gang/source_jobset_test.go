package gang

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"muster.dev/muster/pkg/queue"
)

// jobSetObject is JobSet ml/NAME with the given spec (YAML).
func jobSetObject(t *testing.T, name, metadata, spec string) *unstructured.Unstructured {
	t.Helper()
	return decodeObject(t, "apiVersion: jobset.x-k8s.io/v1alpha2\nkind: JobSet\nmetadata:\n  namespace: ml\n  name: "+name+"\n"+metadata+"spec:\n"+spec)
}

func TestJobSetSpec(t *testing.T) {
	pod := testPod{name: "p", labels: map[string]string{LabelJobSet: "train", queue.LabelQueue: "pods-queue"}}
	gvk := schema.GroupVersionKind{Group: "jobset.x-k8s.io", Version: "v1alpha2", Kind: "JobSet"}
	js := func(metadata, spec string) map[schema.GroupVersionResource]map[string]runtime.Object {
		return objectsOf(ResourceJobSet, jobSetObject(t, "train", metadata, spec))
	}
	quorum := func(n int32) Definition {
		return Definition{Spec: Spec{MinMember: n}, QueueLabel: "pods-queue", Object: eventRef(gvk, "train")}
	}

	runSpecCases(t, KindJobSet, map[string]specCase{
		"replicas times parallelism over the replicated jobs; the JobSet's queue and timeout": {
			pods: []testPod{pod},
			objects: js("  labels: {muster.dev/queue: set-queue}\n  annotations: {muster.dev/gang-timeout: \"600\"}\n", `
  replicatedJobs:
  - name: workers
    replicas: 2
    template: {spec: {parallelism: 4, completions: 4, template: {spec: {}}}}
  - name: driver
    template: {spec: {template: {spec: {}}}}
`),
			want: Definition{Spec: Spec{MinMember: 2*4 + 1, Timeout: 10 * time.Minute}, QueueLabel: "set-queue", Object: eventRef(gvk, "train")},
		},
		"no more pods than completions": {
			pods:    []testPod{pod},
			objects: js("", "  replicatedJobs:\n  - {name: a, replicas: 3, template: {spec: {parallelism: 8, completions: 2}}}\n"),
			want:    quorum(6),
		},
		"completions above parallelism": {
			pods:    []testPod{pod},
			objects: js("", "  replicatedJobs:\n  - {name: a, replicas: 3, template: {spec: {parallelism: 2, completions: 10}}}\n"),
			want:    quorum(6),
		},
		"replicas 0 and parallelism 0 run nothing": {
			pods: []testPod{pod},
			objects: js("", "  replicatedJobs:\n  - {name: a, replicas: 0, template: {spec: {parallelism: 4}}}\n"+
				"  - {name: b, replicas: 2, template: {spec: {parallelism: 0}}}\n  - {name: c, template: {}}\n"),
			want: quorum(1),
		},
		"dependsOn: a later replicated job is not in the quorum": {
			pods: []testPod{pod},
			objects: js("", `
  replicatedJobs:
  - {name: init, template: {spec: {parallelism: 1}}}
  - {name: trainer, replicas: 4, template: {spec: {parallelism: 2}}}
  - {name: eval, replicas: 2, dependsOn: [{name: init, status: Complete}], template: {spec: {parallelism: 8}}}
`),
			want: quorum(1 + 8),
		},
		"startupPolicyOrder InOrder: the first replicated job alone": {
			pods: []testPod{pod},
			objects: js("", `
  startupPolicy: {startupPolicyOrder: InOrder}
  replicatedJobs:
  - {name: leader, template: {spec: {parallelism: 2}}}
  - {name: workers, replicas: 4, template: {spec: {parallelism: 2}}}
`),
			want: quorum(2),
		},
		"startupPolicyOrder AnyOrder: all together": {
			pods: []testPod{pod},
			objects: js("", `
  startupPolicy: {startupPolicyOrder: AnyOrder}
  replicatedJobs:
  - {name: leader, template: {spec: {parallelism: 2}}}
  - {name: workers, replicas: 4, template: {spec: {parallelism: 2}}}
`),
			want: quorum(10),
		},
		"no replicated jobs: the plugin takes it as 1": {
			pods:    []testPod{pod},
			objects: js("", "  suspend: true\n"),
			want:    quorum(0),
		},
		"a JobSet not created yet": {
			pods: []testPod{pod},
			want: Definition{QueueLabel: "pods-queue", Wait: &Wait{
				Reason: "JobSet ml/train (label jobset.sigs.k8s.io/jobset-name) does not exist yet",
				Detail: "the pod names JobSet ml/train (label jobset.sigs.k8s.io/jobset-name), which does not exist; muster waits for it",
			}},
		},
		"a JobSet that cannot be read": {
			pods:    []testPod{pod},
			readErr: errors.New("forbidden"),
			want:    Definition{QueueLabel: "pods-queue"},
			wantErr: "reading JobSet ml/train: forbidden",
		},
		"a bad timeout": {
			pods:    []testPod{pod},
			objects: js("  annotations: {muster.dev/gang-timeout: \"0\"}\n", "  replicatedJobs: []\n"),
			want:    Definition{QueueLabel: "pods-queue"},
			wantErr: `muster.dev/gang-timeout: must be more than 0, got "0"`,
		},
		"parallelism that is not a number": {
			pods:    []testPod{pod},
			objects: js("", "  replicatedJobs:\n  - {name: a}\n  - {name: b, template: {spec: {parallelism: many}}}\n"),
			want:    Definition{QueueLabel: "pods-queue"},
			wantErr: `spec.replicatedJobs[1].template.spec.parallelism: must be a whole number, not the string "many"`,
		},
		"completions that are not a number": {
			pods:    []testPod{pod},
			objects: js("", "  replicatedJobs:\n  - {name: a, template: {spec: {completions: [1]}}}\n"),
			want:    Definition{QueueLabel: "pods-queue"},
			wantErr: `spec.replicatedJobs[0].template.spec.completions: must be a whole number, not a list`,
		},
		"a template that is not an object": {
			pods:    []testPod{pod},
			objects: js("", "  replicatedJobs:\n  - {name: a, template: x}\n"),
			want:    Definition{QueueLabel: "pods-queue"},
			wantErr: `spec.replicatedJobs[0].template: must be an object, not the string "x"`,
		},
		"a startup policy order that is not a string": {
			pods:    []testPod{pod},
			objects: js("", "  startupPolicy: {startupPolicyOrder: 1}\n"),
			want:    Definition{QueueLabel: "pods-queue"},
			wantErr: `spec.startupPolicy.startupPolicyOrder: must be a string, not the number 1`,
		},
		"a spec that is not an object": {
			pods:    []testPod{pod},
			objects: objectsOf(ResourceJobSet, decodeObject(t, "apiVersion: jobset.x-k8s.io/v1alpha2\nkind: JobSet\nmetadata: {namespace: ml, name: train}\nspec: true\n")),
			want:    Definition{QueueLabel: "pods-queue"},
			wantErr: `spec: must be an object, not the boolean true`,
		},
	})
}

func TestJobSetMembers(t *testing.T) {
	pods := []testPod{
		{name: "a", labels: map[string]string{LabelJobSet: "train"}},
		{name: "b", labels: map[string]string{LabelJobSet: "train"}, phase: "Failed"},
		{name: "c", labels: map[string]string{LabelJobSet: "train-2"}},
		{name: "d", labels: map[string]string{LabelGang: "train"}},
	}
	assert.Equal(t, []string{"a", "b"}, gangPods(t, Ref{KindJobSet, "ml", "train"}, pods))
}
