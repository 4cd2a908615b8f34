package cli

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	schedv1beta1 "k8s.io/api/scheduling/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/explain"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/status"
)

var explainNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

const explainQueues = `
queues:
  - name: ml
    namespaces: ["ml"]
  - name: gpu
    namespaces: ["ml"]
namespaceQueues:
  ml: root.ml
`

// explainPod is a pending muster pod of namespace ml.
func explainPod(name string, mutate ...func(*v1.Pod)) *v1.Pod {
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{}},
		Spec:       v1.PodSpec{SchedulerName: "muster", Containers: []v1.Container{{Name: "c"}}},
		Status:     v1.PodStatus{Phase: v1.PodPending},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func inWorkload(group string) func(*v1.Pod) {
	return func(p *v1.Pod) { p.Spec.SchedulingGroup = &v1.PodSchedulingGroup{PodGroupName: ptr.To(group)} }
}

func labelled(key, value string) func(*v1.Pod) {
	return func(p *v1.Pod) { p.Labels[key] = value }
}

// unstructuredOf is obj as the apiserver serves it to a dynamic client.
func unstructuredOf(t *testing.T, obj runtime.Object, apiVersion, kind string) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	require.NoError(t, err)
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	return u
}

// fakeGatherer is muster explain's gatherer over fake clients: pods, the
// queue and status ConfigMaps, the objects gangs are defined by (read
// dynamically), and the resources discovery serves.
func fakeGatherer(t *testing.T, served []string, pods []*v1.Pod, objects ...runtime.Object) *gatherer {
	t.Helper()
	report := status.Report{UpdatedAt: explainNow.Add(-2 * time.Second).Format(time.RFC3339), Config: status.Config{Valid: true}}
	st, err := status.Encode(report)
	require.NoError(t, err)
	core := []runtime.Object{
		&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: configv1.DefaultNamespace, Name: configv1.DefaultQueuesConfigMap},
			Data: map[string]string{queue.ConfigKey: explainQueues}},
		&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: configv1.DefaultNamespace, Name: configv1.DefaultStatusConfigMap},
			Data: map[string]string{status.Key: string(st)}},
	}
	for _, p := range pods {
		core = append(core, p)
	}
	client := fake.NewClientset(core...)
	// What each served group version serves: PodGroups unless named here.
	resources := map[string]metav1.APIResource{
		"ray.io/v1":                {Name: "rayclusters", Namespaced: true, Kind: "RayCluster"},
		"jobset.x-k8s.io/v1alpha2": {Name: "jobsets", Namespaced: true, Kind: "JobSet"},
	}
	for _, gv := range served {
		r, ok := resources[gv]
		if !ok {
			r = metav1.APIResource{Name: "podgroups", Namespaced: true, Kind: "PodGroup"}
		}
		client.Discovery().(*fakediscovery.FakeDiscovery).Resources = append(client.Discovery().(*fakediscovery.FakeDiscovery).Resources,
			&metav1.APIResourceList{GroupVersion: gv, APIResources: []metav1.APIResource{r}})
	}
	o := &explainOptions{musterNamespace: configv1.DefaultNamespace, schedulerName: "muster"}
	return &gatherer{client: client, dynamic: dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), objects...), o: o,
		clock: clocktesting.NewFakePassiveClock(explainNow)}
}

func TestExplainGangs(t *testing.T) {
	const workloadAPI, podGroupAPI = "scheduling.k8s.io/v1beta1", "scheduling.x-k8s.io/v1alpha1"
	workload := func(t *testing.T, minCount int32, labels map[string]string) runtime.Object {
		return unstructuredOf(t, &schedv1beta1.PodGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: "wl", Labels: labels},
			Spec: schedv1beta1.PodGroupSpec{SchedulingPolicy: schedv1beta1.PodGroupSchedulingPolicy{
				Gang: &schedv1beta1.GangSchedulingPolicy{MinCount: minCount}}},
		}, workloadAPI, "PodGroup")
	}
	workers := func(n int, mutate ...func(*v1.Pod)) []*v1.Pod {
		var out []*v1.Pod
		for i := range n {
			out = append(out, explainPod(fmt.Sprintf("w-%d", i), append([]func(*v1.Pod){inWorkload("wl")}, mutate...)...))
		}
		return out
	}
	cases := map[string]struct {
		served   []string
		pods     []*v1.Pod
		objects  func(t *testing.T) []runtime.Object
		gang     string // the Ref; empty for no gang
		verdict  explain.Verdict
		reason   string
		queueVia string
	}{
		"a Workload gang short of members": {
			served:  []string{workloadAPI},
			pods:    workers(2),
			objects: func(t *testing.T) []runtime.Object { return []runtime.Object{workload(t, 4, nil)} },
			gang:    "Workload ml/wl", verdict: explain.GangIncomplete,
			reason: "Workload ml/wl needs 4 members to start together and 2 exist (2 missing); none is bound until all 4 can be placed at once",
		},
		"a Workload gang queued by its pod group": {
			served: []string{workloadAPI},
			pods:   workers(1),
			objects: func(t *testing.T) []runtime.Object {
				return []runtime.Object{workload(t, 2, map[string]string{queue.LabelQueue: "gpu"})}
			},
			gang: "Workload ml/wl", verdict: explain.GangIncomplete, queueVia: "label muster.dev/queue=gpu on the gang's PodGroup",
			reason: "Workload ml/wl needs 2 members to start together and 1 exist (1 missing); none is bound until all 2 can be placed at once",
		},
		"a Workload pod group not created yet": {
			served: []string{workloadAPI},
			pods:   workers(2),
			gang:   "Workload ml/wl", verdict: explain.GangSource,
			reason: "the pod names PodGroup ml/wl (scheduling.k8s.io/v1beta1, spec.schedulingGroup), which does not exist; muster waits for it",
		},
		"Workload pod groups not served: no gang, as for the scheduler": {
			pods:    workers(2),
			objects: func(t *testing.T) []runtime.Object { return []runtime.Object{workload(t, 4, nil)} },
			verdict: explain.NotTriedYet,
		},
		"a PodGroup gang short of members": {
			served: []string{podGroupAPI},
			pods:   []*v1.Pod{explainPod("a", labelled(gang.LabelPodGroup, "train"))},
			objects: func(t *testing.T) []runtime.Object {
				return []runtime.Object{unstructuredOf(t, &schedv1alpha1.PodGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: "train"},
					Spec: schedv1alpha1.PodGroupSpec{MinMember: 3}}, podGroupAPI, "PodGroup")}
			},
			gang: "PodGroup ml/train", verdict: explain.GangIncomplete,
			reason: "PodGroup ml/train needs 3 members to start together and 1 exist (2 missing); none is bound until all 3 can be placed at once",
		},
		"a RayCluster short of workers": {
			served: []string{"ray.io/v1"},
			pods:   []*v1.Pod{explainPod("ray-head", labelled(gang.LabelRayCluster, "ray"), labelled(gang.LabelRayNodeType, "head"))},
			objects: func(t *testing.T) []runtime.Object {
				u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"workerGroupSpecs": []any{
					map[string]any{"groupName": "gpu", "minReplicas": int64(2)}}}}}
				u.SetAPIVersion("ray.io/v1")
				u.SetKind("RayCluster")
				u.SetNamespace("ml")
				u.SetName("ray")
				return []runtime.Object{u}
			},
			gang: "RayCluster ml/ray", verdict: explain.GangIncomplete,
			reason: "RayCluster ml/ray needs 3 members to start together and 1 exist (2 missing); none is bound until all 3 can be placed at once",
		},
		"a JobSet not created yet": {
			served: []string{"jobset.x-k8s.io/v1alpha2"},
			pods:   []*v1.Pod{explainPod("train-0", labelled(gang.LabelJobSet, "train"))},
			gang:   "JobSet ml/train", verdict: explain.GangSource,
			reason: "the pod names JobSet ml/train (label jobset.sigs.k8s.io/jobset-name), which does not exist; muster waits for it",
		},
		"the RayCluster CRD not served: no gang, as for the scheduler": {
			pods:    []*v1.Pod{explainPod("ray-head", labelled(gang.LabelRayCluster, "ray"), labelled(gang.LabelRayNodeType, "head"))},
			verdict: explain.NotTriedYet,
		},
		"an executor without its Spark driver": {
			pods: []*v1.Pod{explainPod("exec-1", labelled(gang.LabelSparkApp, "app-1"), labelled(gang.LabelSparkRole, "executor"))},
			gang: "Spark ml/app-1", verdict: explain.GangSource,
			reason: "the driver of Spark application app-1 is not running, so its executors are not scheduled",
		},
		"a bad gang annotation": {
			pods: []*v1.Pod{explainPod("a", labelled(gang.LabelGang, "g"))},
			gang: "Annotation ml/g", verdict: explain.BadAnnotation,
			reason: "label muster.dev/gang=g needs the annotation muster.dev/gang-min-member (how many members must run together)",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var objects []runtime.Object
			if tc.objects != nil {
				objects = tc.objects(t)
			}
			g := fakeGatherer(t, tc.served, tc.pods, objects...)
			e := explain.Explain(g.input(t.Context(), tc.pods[0]))
			assert.Equal(t, tc.gang, e.Gang)
			assert.Equal(t, tc.verdict, e.Verdict, "reason: %s", e.Reason)
			if tc.reason != "" {
				assert.Equal(t, tc.reason, e.Reason)
			}
			if tc.queueVia != "" {
				assert.Equal(t, tc.queueVia, e.QueueVia)
			}
		})
	}
}

func TestExplainFindsAGangByName(t *testing.T) {
	pods := []*v1.Pod{
		explainPod("w-1", inWorkload("train")), explainPod("w-0", inWorkload("train")),
		explainPod("other", inWorkload("eval")),
	}
	g := fakeGatherer(t, nil, pods)
	got, err := g.gangPods(t.Context(), "ml", "train")
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, "w-0", got[0].Name, "sorted by name")

	_, err = g.gangPods(t.Context(), "ml", "missing")
	assert.EqualError(t, err, "no pods of a gang named missing in namespace ml (looked for labels scheduling.x-k8s.io/pod-group, muster.dev/gang, spark-app-selector, the Workload API's schedulingGroup, and labels ray.io/cluster, jobset.sigs.k8s.io/jobset-name)")
}
