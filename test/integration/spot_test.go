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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
)

func capNode(name, cpu string, labels map[string]string, taints ...v1.Taint) cluster.Node {
	return cluster.Node{Name: name, Capacity: map[v1.ResourceName]string{v1.ResourceCPU: cpu, v1.ResourceMemory: "64Gi"}, Labels: labels, Taints: taints}
}

// pinned is a muster pod with a capacity policy, pinned to one node.
func pinned(ns, name, node string, policy capacity.Policy) cluster.Pod {
	return cluster.Pod{Namespace: ns, Name: name, SchedulerName: "muster", Requests: cpu("1"),
		Annotations: map[string]string{capacity.AnnotationPolicy: string(policy)},
		Labels:      map[string]string{"pin": node}}
}

// TestSpotLabelSchemes: each capacity-type label scheme is recognised on a
// real node: require-spot pods bind to the spot node of every scheme, and
// not to an unlabelled (on-demand) node.
func TestSpotLabelSchemes(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	schemes := map[string]map[string]string{
		"scheme-muster":    {capacity.LabelMuster: "spot"},
		"scheme-karpenter": {capacity.LabelKarpenter: "spot"},
		"scheme-eks":       {capacity.LabelEKS: "SPOT"},
		"scheme-gke":       {capacity.LabelGKESpot: "true"},
		"scheme-gke-pre":   {capacity.LabelGKEPreemptible: "true"},
		"scheme-aks":       {capacity.LabelAKSPriority: "spot"},
		"scheme-none":      nil,
	}
	var nodes []cluster.Node
	var pods []*v1.Pod
	for name, labels := range schemes {
		nodes = append(nodes, capNode(name, "4", labels))
		p, err := pinned(ns, name, name, capacity.RequireSpot).Object()
		require.NoError(t, err)
		p.Spec.NodeSelector = map[string]string{v1.LabelHostname: name}
		pods = append(pods, p)
	}
	createNodes(t, nodes...)
	startMuster(t)
	for _, p := range pods {
		_, err := env.cp.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	for name := range schemes {
		if name == "scheme-none" {
			waitUnschedulable(t, ns, name, 30*time.Second, "node is on-demand; the pod's capacity policy is require-spot")
			continue
		}
		assert.Equal(t, name, waitBound(t, ns, name, 30*time.Second).Spec.NodeName)
	}
}

// TestSpotSparkPlacement: the driver lands on on-demand and executors on
// spot when both have room; with on-demand full, the driver still runs on
// spot under prefer-on-demand, and waits with a clear reason under
// require-on-demand.
func TestSpotSparkPlacement(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	od := map[string]string{capacity.LabelKarpenter: "on-demand"}
	spot := func(zone string) map[string]string {
		return map[string]string{capacity.LabelKarpenter: "spot", cluster.LabelZone: zone, cluster.LabelInstanceType: "m5.4xlarge"}
	}
	createNodes(t, capNode("sp-od-0", "8", od), capNode("sp-spot-0", "16", spot("a")), capNode("sp-spot-1", "16", spot("b")))
	s := startMuster(t)
	typeOf := map[string]string{"sp-od-0": "on-demand", "sp-spot-0": "spot", "sp-spot-1": "spot"}
	spark := func(app, role, name, cpuQ string, ann map[string]string) cluster.Pod {
		return cluster.Pod{Namespace: ns, Name: name, SchedulerName: "muster", Requests: cpu(cpuQ),
			Labels: map[string]string{gang.LabelSparkApp: app, gang.LabelSparkRole: role}, Annotations: ann}
	}
	before := sumMetric(scrape(t, s.Addr), "muster_placements_total", map[string]string{"capacity_type": "spot", "role": "executor"})

	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{spark("app-a", "driver", "driver-a", "2", nil)}))
	assert.Equal(t, "on-demand", typeOf[waitBound(t, ns, "driver-a", 30*time.Second).Spec.NodeName], "driver on on-demand")
	var execs []cluster.Pod
	for i := 0; i < 4; i++ {
		execs = append(execs, spark("app-a", "executor", fmt.Sprintf("exec-a-%d", i), "2", nil))
	}
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, execs))
	for _, e := range execs {
		assert.Equal(t, "spot", typeOf[waitBound(t, ns, e.Name, 30*time.Second).Spec.NodeName], "%s on spot", e.Name)
	}
	waitFor(t, 10*time.Second, "the placements metric", func(context.Context) (bool, error) {
		return sumMetric(scrape(t, s.Addr), "muster_placements_total", map[string]string{"capacity_type": "spot", "role": "executor"})-before == 4, nil
	})

	// Fill the on-demand node.
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{{Namespace: ns, Name: "filler", SchedulerName: "muster", Requests: cpu("6"),
		Annotations: map[string]string{capacity.AnnotationPolicy: string(capacity.RequireOnDemand)}}}))
	waitBound(t, ns, "filler", 30*time.Second)

	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{
		spark("app-b", "driver", "driver-b", "2", nil),
		spark("app-c", "driver", "driver-c", "2", map[string]string{capacity.AnnotationPolicy: string(capacity.RequireOnDemand)}),
	}))
	assert.Equal(t, "spot", typeOf[waitBound(t, ns, "driver-b", 30*time.Second).Spec.NodeName], "prefer-on-demand falls back to spot")
	msg := waitUnschedulable(t, ns, "driver-c", 30*time.Second, "require-on-demand")
	t.Logf("driver-c: %s", msg)
}

// TestSpotGangSpread: a gang of 8 spot members over four spot pools, each
// of which could hold all 8: no pool holds more than 4.
func TestSpotGangSpread(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	var nodes []cluster.Node
	pools := map[string]string{}
	for p, pool := range []struct{ it, zone string }{{"m5.4xlarge", "a"}, {"m5.4xlarge", "b"}, {"c5.4xlarge", "a"}, {"c5.4xlarge", "b"}} {
		for i := 0; i < 2; i++ {
			name := fmt.Sprintf("pool%d-%d", p, i)
			pools[name] = pool.it + "/" + pool.zone
			nodes = append(nodes, capNode(name, "16", map[string]string{
				capacity.LabelMuster: "spot", cluster.LabelInstanceType: pool.it, cluster.LabelZone: pool.zone}))
		}
	}
	createNodes(t, nodes...)
	startMuster(t)
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, gangPods(ns, "spread", 8, "4", 0,
		map[string]string{gang.LabelGang: "spread"},
		map[string]string{gang.AnnotationMinMember: "8", capacity.AnnotationPolicy: string(capacity.PreferSpot)})))
	waitFor(t, 30*time.Second, "the gang bound", func(context.Context) (bool, error) { return countBound(t, ns) == 8, nil })
	perPool := map[string]int{}
	list, err := env.cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, p := range list.Items {
		perPool[pools[p.Spec.NodeName]]++
	}
	t.Logf("members per pool: %v", perPool)
	for pool, n := range perPool {
		assert.LessOrEqual(t, n, 4, "pool %s holds more than half of the gang", pool)
	}
}

// TestSpotDisruptedNodes: nodes being taken away get no new gang members
// and score lowest for other pods, even when the pods tolerate their taints.
func TestSpotDisruptedNodes(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	createNodes(t,
		capNode("dis-nth", "16", nil, v1.Taint{Key: capacity.TaintNTHSpotITN, Value: "true", Effect: v1.TaintEffectNoSchedule}),
		capNode("dis-ca", "16", nil, v1.Taint{Key: capacity.TaintCADeletionCandidate, Value: "1", Effect: v1.TaintEffectPreferNoSchedule}),
		capNode("dis-karpenter", "16", nil, v1.Taint{Key: capacity.TaintKarpenterDisrupted, Effect: v1.TaintEffectNoSchedule}),
		capNode("healthy", "16", nil),
	)
	startMuster(t)
	tolerateAll := []v1.Toleration{{Operator: v1.TolerationOpExists}}
	var pods []*v1.Pod
	for _, p := range append(gangPods(ns, "g", 3, "4", 0, map[string]string{gang.LabelGang: "g"}, map[string]string{gang.AnnotationMinMember: "3"}),
		cluster.Pod{Namespace: ns, Name: "solo", SchedulerName: "muster", Requests: cpu("2")}) {
		obj, err := p.Object()
		require.NoError(t, err)
		obj.Spec.Tolerations = tolerateAll
		pods = append(pods, obj)
	}
	for _, p := range pods {
		_, err := env.cp.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	for _, p := range pods {
		assert.Equal(t, "healthy", waitBound(t, ns, p.Name, 30*time.Second).Spec.NodeName, "%s avoided the nodes being taken away", p.Name)
	}
}

// TestSpotUnknownPolicy: an unknown policy value gets a Warning Event and a
// condition, and the pod is not bound until it is fixed.
func TestSpotUnknownPolicy(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	createNodes(t, capNode("unk-0", "4", nil))
	startMuster(t)
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{{Namespace: ns, Name: "p", SchedulerName: "muster", Requests: cpu("1"),
		Annotations: map[string]string{capacity.AnnotationPolicy: "cheap"}}}))
	want := `muster.dev/capacity-policy: "cheap" is not a capacity policy`
	waitUnschedulable(t, ns, "p", 30*time.Second, want)
	waitFor(t, 15*time.Second, "the Warning Event", func(context.Context) (bool, error) {
		for _, e := range eventsFor(t, ns, "p", "FailedScheduling") {
			if strings.HasPrefix(e, "Warning: ") && strings.Contains(e, want) {
				return true, nil
			}
		}
		return false, nil
	})
	p, err := env.cp.Client.CoreV1().Pods(ns).Get(ctx, "p", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Empty(t, p.Spec.NodeName)
}
