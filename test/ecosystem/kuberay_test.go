package ecosystem

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/test/framework"
)

// TestEcosystemKubeRay runs KubeRay's ray-operator v1.5.0 as a process,
// muster in-process, and RayClusters and a RayJob as KubeRay's samples
// write them plus schedulerName: muster (testdata/raycluster.yaml,
// rayjob.yaml; docs/integrations/kuberay.md shows them). KubeRay creates
// the pods; muster must bind each RayCluster's head and minimum workers all
// together or not at all.
func TestEcosystemKubeRay(t *testing.T) {
	b := operatorBuild(t, "kuberay")
	installCRDs(t, b.crds)
	startMuster(t)
	health := freeAddr(t)
	op := startOperator(t, "ray-operator", b.bin, nil,
		"--kubeconfig="+framework.CP.Kubeconfig,
		"--enable-leader-election=false",
		"--metrics-addr=127.0.0.1:0",
		"--health-probe-bind-address="+health,
		"--log-stdout-encoder=console")
	t.Logf("ray-operator ready (/readyz) %s after start", op.waitReady(t, health, 2*time.Minute).Round(time.Millisecond))
	d := newDyn(t)

	t.Run("RayCluster", func(t *testing.T) { testRayClusterAllOrNothing(t, op, d) })
	t.Run("Elastic", func(t *testing.T) { testRayClusterElastic(t, op, d) })
	t.Run("RayJob", func(t *testing.T) { testRayJob(t, op, d) })
}

// rayCluster is testdata/raycluster.yaml, with replicas workers when > 0.
func rayCluster(t *testing.T, replicas int64) *unstructured.Unstructured {
	t.Helper()
	objs := testdata(t, "raycluster.yaml")
	require.Len(t, objs, 1)
	rc := objs[0]
	if replicas > 0 {
		groups, _, err := unstructured.NestedSlice(rc.Object, "spec", "workerGroupSpecs")
		require.NoError(t, err)
		groups[0].(map[string]any)["replicas"] = replicas
		require.NoError(t, unstructured.SetNestedSlice(rc.Object, groups, "spec", "workerGroupSpecs"))
	}
	return rc
}

// testRayClusterAllOrNothing: the sample's head (4 CPU) and 3 workers (10
// CPU, minReplicas 3) on nodes with room for all but one worker: none is
// bound, and muster says the RayCluster does not fit; one more spot node and
// all four are bound, each once, in the namespace's queue, the head on
// on-demand and the workers on spot, spread over the spot pools.
func testRayClusterAllOrNothing(t *testing.T, op *operator, d *dyn) {
	ns := framework.NewNamespace(t)
	mapQueue(t, ns, "root.ray")
	pods := watchPods(t, ns)
	// The head fits on od-1 or beside a worker on a spot node (6 CPU
	// left); only two workers fit, one per spot node.
	nodes := []cluster.Node{onDemandNode("rc-od-1", "8", "zone-a"), spotNode("rc-spot-1", "16", "zone-a"), spotNode("rc-spot-2", "16", "zone-b")}
	framework.CreateNodes(t, nodes...)

	rc := rayCluster(t, 0)
	created := time.Now()
	d.create(t, ns, rc)
	d.deleteAtEnd(t, ns, rc)
	members := pods.waitPods(t, 4, time.Minute)
	t.Logf("KubeRay created %d pods %s after the RayCluster: %s", len(members), time.Since(created).Round(time.Millisecond), names(members))

	ref := "RayCluster " + ns + "/raycluster-kuberay"
	msg := unschedulable(t, ns, members, time.Minute, ref, "does not fit on this cluster")
	t.Logf("held back: %s", msg)
	assert.Equal(t, 0, framework.CountBound(t, ns), "no member bound while the gang does not fit")
	g := waitPendingGang(t, ref, "root.ray", 30*time.Second)
	assert.EqualValues(t, 4, g.MinMember, "head + minReplicas")

	extra := spotNode("rc-spot-3", "16", "zone-c")
	added := time.Now()
	framework.CreateNodes(t, extra)
	bound := pods.waitBound(t, 4, time.Minute)
	t.Logf("all %d bound %s after the node was added (first bind after %s)", len(bound),
		bound[len(bound)-1].Bound.Sub(added).Round(time.Millisecond), bound[0].Bound.Sub(added).Round(time.Millisecond))

	t.Logf("placed: %v", nodeOf(t, bound))
	types := capacityTypes(t, append(nodes, extra)...)
	spotNodes := map[string]bool{}
	var head podRecord
	for _, p := range bound {
		switch p.Labels[gang.LabelRayNodeType] {
		case string(gang.RayHead):
			head = p
		case string(gang.RayWorker):
			assert.Equal(t, capacity.Spot, types[p.Node], "worker %s (prefer-spot) on %s", p.Name, p.Node)
			spotNodes[p.Node] = true
		}
	}
	assert.Len(t, spotNodes, 3, "the 3 workers on 3 spot nodes (one pool each)")
	assert.Equal(t, capacity.OnDemand, types[head.Node], "the head (prefer-on-demand, its role's default) on %s", head.Node)
	for _, p := range bound {
		assert.Contains(t, admittedTo(t, ns, p.Name, 30*time.Second), "root.ray", "pod %s admitted to its namespace's queue", p.Name)
	}
	waitAllocated(t, "root.ray", "34", 30*time.Second)
	var admitted []string
	framework.WaitFor(t, 15*time.Second, "the GangAdmitted Event on the RayCluster", func(context.Context) (bool, error) {
		admitted = framework.EventsFor(t, ns, "raycluster-kuberay", "GangAdmitted")
		return len(admitted) > 0, nil
	})
	t.Logf("Event: %s", admitted[0])
	pods.checkBoundOnce(t, 4)
	op.requireRunning(t)
}

// testRayClusterElastic: replicas 4, minReplicas 3. The gang is the head
// and 3 workers; the 4th worker is elastic: with room for the gang only,
// the gang is bound and the 4th waits; one more node and it is bound, after
// the gang, on its own.
func testRayClusterElastic(t *testing.T, op *operator, d *dyn) {
	ns := framework.NewNamespace(t)
	mapQueue(t, ns, "root.ray")
	pods := watchPods(t, ns)
	framework.CreateNodes(t, onDemandNode("el-od-1", "8", "zone-a"),
		spotNode("el-spot-1", "16", "zone-a"), spotNode("el-spot-2", "16", "zone-b"), spotNode("el-spot-3", "16", "zone-c"))

	rc := rayCluster(t, 4)
	d.create(t, ns, rc)
	d.deleteAtEnd(t, ns, rc)
	pods.waitPods(t, 5, time.Minute)
	gangBound := pods.waitBound(t, 4, time.Minute)
	heads := 0
	for _, p := range gangBound {
		if p.Labels[gang.LabelRayNodeType] == string(gang.RayHead) {
			heads++
		}
	}
	assert.Equal(t, 1, heads, "the head is in the gang: %s", names(gangBound))
	var extra podRecord
	for _, p := range pods.all() {
		if p.Node == "" {
			extra = p
		}
	}
	require.NotEmpty(t, extra.Name, "one worker left pending")
	t.Logf("gang bound (%s); %s waits: %s", names(gangBound), extra.Name, framework.WaitUnschedulable(t, ns, extra.Name, 30*time.Second))
	assert.Len(t, pods.bound(), 4, "the 4th worker not bound without room")

	added := time.Now()
	framework.CreateNodes(t, spotNode("el-spot-4", "16", "zone-d"))
	bound := pods.waitBound(t, 5, time.Minute)
	last := bound[len(bound)-1]
	assert.Equal(t, extra.Name, last.Name)
	t.Logf("4th worker %s bound %s after its node was added", last.Name, last.Bound.Sub(added).Round(time.Millisecond))
	for _, p := range gangBound {
		assert.True(t, p.Bound.Before(last.Bound), "gang member %s bound before the extra worker", p.Name)
	}
	pods.checkBoundOnce(t, 5)
	op.requireRunning(t)
}

// testRayJob: KubeRay's RayJob sample with schedulerName: muster. KubeRay
// makes a RayCluster for it; that cluster's head and worker (200m CPU each)
// are one gang: on one node with room for one, neither is bound; a second
// node and both are.
func testRayJob(t *testing.T, op *operator, d *dyn) {
	ns := framework.NewNamespace(t)
	mapQueue(t, ns, "root.ray")
	pods := watchPods(t, ns)
	framework.CreateNodes(t, framework.Node("rj-1", "300m", "4Gi", nil))

	for _, obj := range testdata(t, "rayjob.yaml") {
		d.create(t, ns, obj)
		d.deleteAtEnd(t, ns, obj)
	}
	members := pods.waitPods(t, 2, time.Minute)
	clusterName := members[0].Labels[gang.LabelRayCluster]
	require.NotEmpty(t, clusterName)
	rc, err := d.resource(t, gang.ResourceRayCluster.GroupVersion().WithKind("RayCluster"), ns).Get(context.Background(), clusterName, metav1.GetOptions{})
	require.NoError(t, err)
	owner := metav1.GetControllerOf(rc)
	require.NotNil(t, owner, "RayCluster %s has a controller", clusterName)
	assert.Equal(t, "RayJob", owner.Kind)
	assert.Equal(t, "rayjob-sample", owner.Name)

	ref := "RayCluster " + ns + "/" + clusterName
	t.Logf("held back: %s", unschedulable(t, ns, members, time.Minute, ref))
	assert.Equal(t, 0, framework.CountBound(t, ns), "neither bound while only one fits")

	added := time.Now()
	framework.CreateNodes(t, framework.Node("rj-2", "300m", "4Gi", nil))
	bound := pods.waitBound(t, 2, time.Minute)
	t.Logf("RayJob's cluster bound %s after the node was added", bound[len(bound)-1].Bound.Sub(added).Round(time.Millisecond))
	assert.NotEqual(t, bound[0].Node, bound[1].Node)
	pods.checkBoundOnce(t, 2)
	op.requireRunning(t)
}
