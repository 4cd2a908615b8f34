package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/controlplane"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/scheduler"
)

// operatorCRD is a minimal CRD of an operator's kind: its spec and status
// are kept as written (muster reads the spec; nothing here validates it).
func operatorCRD(r schema.GroupVersionResource, kind string) *apiextensionsv1.CustomResourceDefinition {
	open := apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptrTo(true)}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: r.Resource + "." + r.Group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: r.Group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: r.Resource, Singular: strings.ToLower(kind), Kind: kind, ListKind: kind + "List"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: r.Version, Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": open, "status": open},
				}},
			}},
		},
	}
}

func ptrTo[T any](v T) *T { return &v }

// installCRD installs a CRD for the test and removes it, with its objects,
// when the test ends (after the schedulers started later stop).
func installCRD(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) {
	t.Helper()
	removeCRDAtEnd(t, crd)
	require.NoError(t, controlplane.InstallCRD(context.Background(), env.cp.Config, crd))
}

// removeCRDAtEnd removes the CRD, if it is there, when the test ends: the
// cluster is left as the test found it.
func removeCRDAtEnd(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) {
	t.Helper()
	t.Cleanup(func() {
		assert.NoError(t, controlplane.RemoveCRD(context.Background(), env.cp.Config, crd.Name))
	})
}

// createObject creates an operator's object, written in YAML, in ns.
func createObject(t *testing.T, r schema.GroupVersionResource, ns, doc string) {
	t.Helper()
	u := &unstructured.Unstructured{}
	require.NoError(t, yaml.Unmarshal([]byte(doc), &u.Object))
	client, err := dynamic.NewForConfig(env.cp.Config)
	require.NoError(t, err)
	_, err = client.Resource(r).Namespace(ns).Create(context.Background(), u, metav1.CreateOptions{})
	require.NoError(t, err)
}

// operatorPods are muster pods of cpu each with the labels an operator puts
// on them, named name-i, one set of labels each.
func operatorPods(ns, name, cpu string, labels ...map[string]string) []cluster.Pod {
	pods := make([]cluster.Pod, len(labels))
	for i, l := range labels {
		pods[i] = cluster.Pod{Namespace: ns, Name: fmt.Sprintf("%s-%d", name, i), SchedulerName: scheduler.SchedulerName,
			Requests: map[v1.ResourceName]string{v1.ResourceCPU: cpu}, Labels: l}
	}
	return pods
}

// rayClusterPods are the head and workers of a RayCluster as KubeRay labels them.
func rayClusterPods(ns, cluster string, workers int) []cluster.Pod {
	labels := []map[string]string{{gang.LabelRayCluster: cluster, gang.LabelRayNodeType: "head", "ray.io/group": "headgroup"}}
	for range workers {
		labels = append(labels, map[string]string{gang.LabelRayCluster: cluster, gang.LabelRayNodeType: "worker", "ray.io/group": "workers"})
	}
	return operatorPods(ns, cluster, "2", labels...)
}

// allOrNothing creates the gang's pods on a cluster with room for all but
// one of them and checks that none is bound, then adds a node and waits
// for all of them.
func allOrNothing(t *testing.T, ns, gangName, nodePrefix string, pods []cluster.Pod) {
	t.Helper()
	require.NoError(t, cluster.CreatePods(testContext(t), env.cp.Client, pods))
	for _, p := range pods {
		waitUnschedulable(t, ns, p.Name, 30*time.Second, gangName, "does not fit on this cluster")
	}
	assert.Equal(t, 0, countBound(t, ns), "no member bound while the gang does not fit")
	nodes4(t, nodePrefix, 2, 1)
	waitFor(t, 30*time.Second, "all members bound", func(context.Context) (bool, error) { return countBound(t, ns) == len(pods), nil })
}

// TestRayClusterGang: a RayCluster's head and workers, labelled as KubeRay
// labels them, are one gang of the head plus minReplicas x numOfHosts per
// worker group: with room for all but one none is bound; one more node and
// all are. The Event is on the RayCluster.
func TestRayClusterGang(t *testing.T) {
	installCRD(t, operatorCRD(gang.ResourceRayCluster, "RayCluster"))
	ns := newNamespace(t)
	nodes4(t, "ray", 0, 2) // 8 CPU: room for 4 of the 5 members of 2 CPU
	startMuster(t)
	createObject(t, gang.ResourceRayCluster, ns, `
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: ray}
spec:
  headGroupSpec: {rayStartParams: {}, template: {spec: {schedulerName: muster}}}
  workerGroupSpecs:
  - {groupName: tpu, replicas: 1, minReplicas: 1, maxReplicas: 1, numOfHosts: 2}
  - {groupName: cpu, replicas: 2, minReplicas: 2, maxReplicas: 5}
`)
	allOrNothing(t, ns, "RayCluster "+ns+"/ray", "ray", rayClusterPods(ns, "ray", 4))
	waitFor(t, 15*time.Second, "the admission Event on the RayCluster", func(context.Context) (bool, error) {
		return len(eventsFor(t, ns, "ray", "GangAdmitted")) > 0, nil
	})
}

// TestJobSetGang: a JobSet's pods are one gang of replicas x parallelism
// over its replicated jobs: with room for all but one none is bound; one
// more node and all are.
func TestJobSetGang(t *testing.T) {
	installCRD(t, operatorCRD(gang.ResourceJobSet, "JobSet"))
	ns := newNamespace(t)
	nodes4(t, "jobset", 0, 2) // 8 CPU: room for 4 of the 5 members of 2 CPU
	startMuster(t)
	createObject(t, gang.ResourceJobSet, ns, `
apiVersion: jobset.x-k8s.io/v1alpha2
kind: JobSet
metadata: {name: train}
spec:
  replicatedJobs:
  - name: workers
    replicas: 2
    template: {spec: {parallelism: 2, completions: 2, template: {spec: {schedulerName: muster}}}}
  - name: driver
    template: {spec: {template: {spec: {schedulerName: muster}}}}
`)
	member := map[string]string{gang.LabelJobSet: "train"}
	pods := operatorPods(ns, "train", "2", member, member, member, member, member)
	allOrNothing(t, ns, "JobSet "+ns+"/train", "jobset", pods)
}

// TestGangSourceInstalledLater: the RayCluster CRD installed after muster
// started is picked up without a restart. Before, a pod labelled as a Ray
// head is a plain pod; after, it is retried at once and waits for its
// RayCluster; with the RayCluster and its workers, the gang is all or
// nothing.
func TestGangSourceInstalledLater(t *testing.T) {
	crd := operatorCRD(gang.ResourceRayCluster, "RayCluster")
	removeCRDAtEnd(t, crd) // after muster stops
	ns := newNamespace(t)
	nodes4(t, "later", 0, 2)
	startMuster(t)

	// A pod no node can take: as a plain pod the node filters refuse it.
	probe := operatorPods(ns, "probe", "64", map[string]string{gang.LabelRayCluster: "probe", gang.LabelRayNodeType: "head"})
	require.NoError(t, cluster.CreatePods(testContext(t), env.cp.Client, probe))
	msg := waitUnschedulable(t, ns, "probe-0", 30*time.Second)
	assert.NotContains(t, msg, "RayCluster", "a plain pod while the CRD is not served")

	require.NoError(t, controlplane.InstallCRD(context.Background(), env.cp.Config, crd))
	waitUnschedulable(t, ns, "probe-0", 30*time.Second, "RayCluster "+ns+"/probe (label ray.io/cluster) does not exist yet")

	createObject(t, gang.ResourceRayCluster, ns, `
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: ray}
spec:
  workerGroupSpecs:
  - {groupName: workers, replicas: 4, minReplicas: 4, maxReplicas: 4}
`)
	allOrNothing(t, ns, "RayCluster "+ns+"/ray", "later", rayClusterPods(ns, "ray", 4))
	assert.Empty(t, mustGet(t, ns, "probe-0").Spec.NodeName)
}

func mustGet(t *testing.T, ns, name string) *v1.Pod {
	t.Helper()
	p, err := env.cp.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return p
}

// TestRayClusterGangUnlikeMembers: a gang of unlike members is planned
// member by member. The Ray head (prefer-on-demand, its role's default)
// lands on on-demand and the workers (prefer-spot, constrained to their
// pool by a node selector) on spot, whichever member admits the gang, in
// one admission: no member is planned with another's constraints and
// released for not fitting its slot.
func TestRayClusterGangUnlikeMembers(t *testing.T) {
	installCRD(t, operatorCRD(gang.ResourceRayCluster, "RayCluster"))
	ns := newNamespace(t)
	spot := func(zone string) map[string]string {
		return map[string]string{capacity.LabelKarpenter: "spot", cluster.LabelZone: zone, cluster.LabelInstanceType: "m5.2xlarge", "pool": "ray-workers"}
	}
	createNodes(t, capNode("unlike-od", "4", map[string]string{capacity.LabelKarpenter: "on-demand"}),
		capNode("unlike-spot-a", "8", spot("a")), capNode("unlike-spot-b", "8", spot("b")))
	startMuster(t)
	createObject(t, gang.ResourceRayCluster, ns, `
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: ray}
spec:
  headGroupSpec: {rayStartParams: {}, template: {spec: {schedulerName: muster}}}
  workerGroupSpecs:
  - {groupName: workers, replicas: 3, minReplicas: 3, maxReplicas: 3}
`)
	pods := operatorPods(ns, "ray", "4",
		map[string]string{gang.LabelRayCluster: "ray", gang.LabelRayNodeType: "worker"},
		map[string]string{gang.LabelRayCluster: "ray", gang.LabelRayNodeType: "worker"},
		map[string]string{gang.LabelRayCluster: "ray", gang.LabelRayNodeType: "worker"},
		map[string]string{gang.LabelRayCluster: "ray", gang.LabelRayNodeType: "head"})
	pods[3].Requests = cpu("2")
	for i, p := range pods { // the head last
		obj, err := p.Object()
		require.NoError(t, err)
		if i < 3 {
			obj.Spec.NodeSelector = map[string]string{"pool": "ray-workers"}
		}
		_, err = env.cp.Client.CoreV1().Pods(ns).Create(testContext(t), obj, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	waitFor(t, 30*time.Second, "all members bound", func(context.Context) (bool, error) { return countBound(t, ns) == len(pods), nil })

	assert.Equal(t, "unlike-od", mustGet(t, ns, "ray-3").Spec.NodeName, "the head on on-demand")
	perNode := map[string]int{}
	for i := range 3 {
		n := mustGet(t, ns, pods[i].Name).Spec.NodeName
		assert.Contains(t, n, "unlike-spot-", "worker %s on spot", pods[i].Name)
		perNode[n]++
	}
	assert.Len(t, perNode, 2, "the workers spread over both spot pools: %v", perNode)
	assert.Equal(t, 1, eventCount(t, ns, "ray", "GangAdmitted"), "admitted once, never released and admitted again")
}

// eventCount is how many times the Event of reason was recorded about
// name, repeats included.
func eventCount(t *testing.T, ns, name, reason string) int {
	t.Helper()
	list, err := env.cp.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + name + ",reason=" + reason})
	require.NoError(t, err)
	n := 0
	for _, e := range list.Items {
		n += max(int(e.Count), 1)
		if e.Series != nil {
			n = max(n, int(e.Series.Count))
		}
	}
	return n
}
