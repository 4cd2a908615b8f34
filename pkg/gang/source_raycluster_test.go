package gang

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"muster.dev/muster/pkg/queue"
)

// decodeObject is an object written in YAML as a dynamic client returns it
// (whole numbers as int64).
func decodeObject(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(doc))
	require.NoError(t, err)
	obj, err := runtime.Decode(unstructured.UnstructuredJSONScheme, js)
	require.NoError(t, err)
	return obj.(*unstructured.Unstructured)
}

// rayClusterObject is RayCluster ml/NAME with the given spec (YAML).
func rayClusterObject(t *testing.T, name, metadata, spec string) *unstructured.Unstructured {
	t.Helper()
	return decodeObject(t, "apiVersion: ray.io/v1\nkind: RayCluster\nmetadata:\n  namespace: ml\n  name: "+name+"\n"+metadata+"spec:\n"+spec)
}

// eventRef is the reference Events about an operator's object carry.
func eventRef(gvk schema.GroupVersionKind, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace("ml")
	u.SetName(name)
	return u
}

func TestRayClusterSpec(t *testing.T) {
	head := map[string]string{LabelRayCluster: "ray", LabelRayNodeType: "head", queue.LabelQueue: "pods-queue"}
	worker := map[string]string{LabelRayCluster: "ray", LabelRayNodeType: "worker"}
	gvk := schema.GroupVersionKind{Group: "ray.io", Version: "v1", Kind: "RayCluster"}
	ray := func(metadata, spec string) map[schema.GroupVersionResource]map[string]runtime.Object {
		return objectsOf(ResourceRayCluster, rayClusterObject(t, "ray", metadata, spec))
	}
	headOnly := Definition{Spec: Spec{MinMember: 1}, QueueLabel: "pods-queue", Object: eventRef(gvk, "ray")}
	const queued = "  labels: {muster.dev/queue: cluster-queue}\n  annotations: {muster.dev/gang-timeout: 10m}\n"

	runSpecCases(t, KindRayCluster, map[string]specCase{
		"the head and each group's minReplicas times numOfHosts; the cluster's queue and timeout": {
			pods: []testPod{{name: "head", labels: head}},
			objects: ray(queued, `
  headGroupSpec: {}
  workerGroupSpecs:
  - {groupName: tpu, replicas: 2, minReplicas: 2, maxReplicas: 4, numOfHosts: 4}
  - {groupName: cpu, replicas: 3, minReplicas: 1, maxReplicas: 10}
  - {groupName: idle, minReplicas: 5, maxReplicas: 5, suspend: true}
`),
			want: Definition{Spec: Spec{MinMember: 1 + 8 + 1, Timeout: 10 * time.Minute}, QueueLabel: "cluster-queue", Object: eventRef(gvk, "ray")},
		},
		"a worker reads the same": {
			pods:    []testPod{{name: "w", labels: worker}},
			objects: ray(queued, "  workerGroupSpecs:\n  - {groupName: a, minReplicas: 3, maxReplicas: 3}\n"),
			want:    Definition{Spec: Spec{MinMember: 4, Timeout: 10 * time.Minute}, QueueLabel: "cluster-queue", Object: eventRef(gvk, "ray")},
		},
		"minReplicas defaults to 0 (workers are elastic), the pod's queue label": {
			pods:    []testPod{{name: "head", labels: head}},
			objects: ray("", "  workerGroupSpecs:\n  - {groupName: a, replicas: 8, maxReplicas: 8}\n"),
			want:    headOnly,
		},
		"no worker groups": {
			pods:    []testPod{{name: "head", labels: head}},
			objects: ray("", "  headGroupSpec: {}\n"),
			want:    headOnly,
		},
		"no spec": {
			pods:    []testPod{{name: "head", labels: head}},
			objects: objectsOf(ResourceRayCluster, decodeObject(t, "apiVersion: ray.io/v1\nkind: RayCluster\nmetadata: {namespace: ml, name: ray}\n")),
			want:    headOnly,
		},
		"minReplicas above maxReplicas: KubeRay starts maxReplicas": {
			pods:    []testPod{{name: "head", labels: head}},
			objects: ray("", "  workerGroupSpecs:\n  - {groupName: a, minReplicas: 6, maxReplicas: 2, numOfHosts: 2}\n"),
			want:    Definition{Spec: Spec{MinMember: 5}, QueueLabel: "pods-queue", Object: eventRef(gvk, "ray")},
		},
		"numOfHosts 0 and negative counts start no workers": {
			pods:    []testPod{{name: "head", labels: head}},
			objects: ray("", "  workerGroupSpecs:\n  - {groupName: a, minReplicas: 2, numOfHosts: 0}\n  - {groupName: b, minReplicas: -3}\n"),
			want:    headOnly,
		},
		"suspend false counts": {
			pods:    []testPod{{name: "head", labels: head}},
			objects: ray("", "  workerGroupSpecs:\n  - {groupName: a, minReplicas: 2, suspend: false}\n"),
			want:    Definition{Spec: Spec{MinMember: 3}, QueueLabel: "pods-queue", Object: eventRef(gvk, "ray")},
		},
		"a RayCluster not created yet": {
			pods: []testPod{{name: "head", labels: head}},
			want: Definition{QueueLabel: "pods-queue", Wait: &Wait{
				Reason: "RayCluster ml/ray (label ray.io/cluster) does not exist yet",
				Detail: "the pod names RayCluster ml/ray (label ray.io/cluster), which does not exist; muster waits for it",
			}},
		},
		"a RayCluster that cannot be read": {
			pods:    []testPod{{name: "head", labels: head}},
			readErr: errors.New("forbidden"),
			want:    Definition{QueueLabel: "pods-queue"},
			wantErr: "reading RayCluster ml/ray: forbidden",
		},
		"a typed object is not read": {
			pods:    []testPod{{name: "head", labels: head}},
			objects: objectsOf(ResourceRayCluster, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: "ray"}}),
			want:    Definition{QueueLabel: "pods-queue"},
			wantErr: "reading RayCluster ml/ray: unexpected object *v1.ConfigMap",
		},
		"a bad timeout": {
			pods:    []testPod{{name: "head", labels: head}},
			objects: ray("  annotations: {muster.dev/gang-timeout: soon}\n", "  headGroupSpec: {}\n"),
			want:    Definition{QueueLabel: "pods-queue"},
			wantErr: `muster.dev/gang-timeout: "soon" is not a duration such as "10m", "90s" or "600" (seconds)`,
		},
		"minReplicas that is not a number": {
			pods:    []testPod{{name: "head", labels: head}},
			objects: ray("", "  workerGroupSpecs:\n  - {groupName: a, minReplicas: 1}\n  - {groupName: b, minReplicas: two}\n"),
			want:    Definition{QueueLabel: "pods-queue"},
			wantErr: `spec.workerGroupSpecs[1].minReplicas: must be a whole number, not the string "two"`,
		},
		"a fraction": {
			pods:    []testPod{{name: "head", labels: head}},
			objects: ray("", "  workerGroupSpecs:\n  - {groupName: a, numOfHosts: 1.5}\n"),
			want:    Definition{QueueLabel: "pods-queue"},
			wantErr: `spec.workerGroupSpecs[0].numOfHosts: must be a whole number, not the number 1.5`,
		},
		"suspend that is not a boolean": {
			pods:    []testPod{{name: "head", labels: head}},
			objects: ray("", "  workerGroupSpecs:\n  - {groupName: a, suspend: \"yes\"}\n"),
			want:    Definition{QueueLabel: "pods-queue"},
			wantErr: `spec.workerGroupSpecs[0].suspend: must be a boolean, not the string "yes"`,
		},
		"worker groups that are not a list": {
			pods:    []testPod{{name: "head", labels: head}},
			objects: ray("", "  workerGroupSpecs: {groupName: a}\n"),
			want:    Definition{QueueLabel: "pods-queue"},
			wantErr: `spec.workerGroupSpecs: must be a list, not an object`,
		},
		"a worker group that is not an object": {
			pods:    []testPod{{name: "head", labels: head}},
			objects: ray("", "  workerGroupSpecs: [3]\n"),
			want:    Definition{QueueLabel: "pods-queue"},
			wantErr: `spec.workerGroupSpecs[0]: must be an object, not the number 3`,
		},
		"more members than muster takes": {
			pods:    []testPod{{name: "head", labels: head}},
			objects: ray("", "  workerGroupSpecs:\n  - {groupName: a, minReplicas: 2147483647, numOfHosts: 2147483647}\n"),
			want:    Definition{QueueLabel: "pods-queue"},
			wantErr: "RayCluster adds up to 100001 members, more than muster's limit of 100000",
		},
	})
}

// TestRayClusterSpecFromJSONNumbers: a decoder that reads every number as
// a float64 (sigs.k8s.io/yaml) gives the same quorum.
func TestRayClusterSpecFromJSONNumbers(t *testing.T) {
	var content map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(`
apiVersion: ray.io/v1
kind: RayCluster
metadata: {namespace: ml, name: ray}
spec:
  workerGroupSpecs:
  - {groupName: a, minReplicas: 2, numOfHosts: 3}
`), &content))
	objs := &fakeObjects{objects: objectsOf(ResourceRayCluster, &unstructured.Unstructured{Object: content})}
	pod := testPod{labels: map[string]string{LabelRayCluster: "ray", LabelRayNodeType: "head"}}.pod()
	def, err := SourceOf(KindRayCluster).Spec(t.Context(), Ref{KindRayCluster, "ml", "ray"}, pod, objs)
	require.NoError(t, err)
	assert.Equal(t, int32(7), def.Spec.MinMember)
}

func TestRayClusterIdentify(t *testing.T) {
	cases := map[string]struct {
		labels map[string]string
		name   string
		role   Role
	}{
		"head":   {map[string]string{LabelRayCluster: "ray", LabelRayNodeType: "head"}, "ray", RayHead},
		"worker": {map[string]string{LabelRayCluster: "ray", LabelRayNodeType: "worker"}, "ray", RayWorker},
		"the Redis clean-up Job's pod is no member": {
			map[string]string{LabelRayCluster: "ray", LabelRayNodeType: "redis-cleanup"}, "", NoRole},
		"no node type":               {map[string]string{LabelRayCluster: "ray"}, "", NoRole},
		"node types are exact":       {map[string]string{LabelRayCluster: "ray", LabelRayNodeType: "Head"}, "", NoRole},
		"a node type without a name": {map[string]string{LabelRayNodeType: "head"}, "", NoRole},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, role := rayClusters{}.Identify(podOf("ml", tc.labels, ""))
			assert.Equal(t, tc.name, got)
			assert.Equal(t, tc.role, role)
		})
	}
}

func TestRayClusterMembers(t *testing.T) {
	pods := []testPod{
		{name: "head", labels: map[string]string{LabelRayCluster: "ray", LabelRayNodeType: "head"}},
		{name: "w-0", labels: map[string]string{LabelRayCluster: "ray", LabelRayNodeType: "worker"}},
		{name: "w-1", labels: map[string]string{LabelRayCluster: "ray", LabelRayNodeType: "worker"}, phase: v1.PodSucceeded},
		{name: "cleanup", labels: map[string]string{LabelRayCluster: "ray", LabelRayNodeType: "redis-cleanup"}},
		{name: "other", labels: map[string]string{LabelRayCluster: "ray-2", LabelRayNodeType: "worker"}},
		{name: "untyped", labels: map[string]string{LabelRayCluster: "ray"}},
	}
	assert.Equal(t, []string{"head", "w-0", "w-1"}, gangPods(t, Ref{KindRayCluster, "ml", "ray"}, pods))
	assert.Empty(t, gangPods(t, Ref{KindRayCluster, "other-ns", "ray"}, pods))
}

// TestRayClusterEventObject: Events go to the RayCluster, named by a bare
// reference, not a copy of its spec.
func TestRayClusterEventObject(t *testing.T) {
	obj := rayClusterObject(t, "ray", "  uid: u-1\n  resourceVersion: \"7\"\n", "  workerGroupSpecs:\n  - {groupName: a, minReplicas: 1}\n")
	objs := &fakeObjects{objects: objectsOf(ResourceRayCluster, obj)}
	pod := testPod{labels: map[string]string{LabelRayCluster: "ray", LabelRayNodeType: "head"}}.pod()
	def, err := SourceOf(KindRayCluster).Spec(t.Context(), Ref{KindRayCluster, "ml", "ray"}, pod, objs)
	require.NoError(t, err)
	ref := def.Object.(*unstructured.Unstructured)
	assert.Equal(t, "RayCluster", ref.GetKind())
	assert.Equal(t, "ray.io/v1", ref.GetAPIVersion())
	assert.Equal(t, "u-1", string(ref.GetUID()))
	assert.Equal(t, "7", ref.GetResourceVersion())
	assert.NotContains(t, ref.Object, "spec")
}
