package integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
)

const gpuResource v1.ResourceName = "nvidia.com/gpu"

// createPinned creates muster pods held to one node by a node selector.
func createPinned(t *testing.T, node string, pods []cluster.Pod) {
	t.Helper()
	ctx := testContext(t)
	for _, p := range pods {
		obj, err := p.Object()
		require.NoError(t, err)
		obj.Spec.NodeSelector = map[string]string{"muster.dev/test-node": node}
		_, err = env.cp.Client.CoreV1().Pods(p.Namespace).Create(ctx, obj, metav1.CreateOptions{})
		require.NoError(t, err)
	}
}

// TestFairShareGPUGangReclaim is the sandbox demo's training gang in small:
// the only GPUs are on two small nodes that batch pods (a queue without a
// guarantee) partly fill. Spark-like drivers of a queue below its guarantee
// arrive first and must keep off the GPU nodes while a CPU node has room
// (best fit alone put them there, where nothing may take them back); then
// the training gang, its queue below its guarantee, reclaims room on the GPU
// nodes from batch pods there, one per node, no more, and binds whole.
func TestFairShareGPUGangReclaim(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	setQueues(t, `
queues:
  - name: analytics
    guaranteed: {cpu: "20"}
    queues:
      - name: etl
  - name: ml
    guaranteed: {cpu: "12", nvidia.com/gpu: "2"}
  - name: batch
`)
	gpuNodes := []string{"gpu-reclaim-0", "gpu-reclaim-1"}
	for _, n := range gpuNodes {
		createNodes(t, cluster.Node{Name: n, Labels: map[string]string{"muster.dev/test-node": n},
			Capacity: map[v1.ResourceName]string{v1.ResourceCPU: "8", v1.ResourceMemory: "32Gi", gpuResource: "1"}})
	}
	createNodes(t, node("cpu-reclaim-0", "16", "64Gi", map[string]string{"muster.dev/test-node": "cpu-reclaim-0"}))
	s := startMuster(t)

	// Batch: two 2-cpu pods on each GPU node (4 of 8 cpu free there), four
	// on the CPU node (8 of 16 free).
	batch := map[string]string{queue.LabelQueue: "batch"}
	createPinned(t, gpuNodes[0], musterPods(ns, "batch-g0", 2, "2", 0, batch))
	createPinned(t, gpuNodes[1], musterPods(ns, "batch-g1", 2, "2", 0, batch))
	createPinned(t, "cpu-reclaim-0", musterPods(ns, "batch-c", 4, "2", 0, batch))
	waitFor(t, time.Minute, "the batch pods bound", func(context.Context) (bool, error) { return countBound(t, ns) == 8, nil })

	// Three 1-cpu drivers, one gang in a queue below its guarantee.
	drivers := gangPods(ns, "driver", 3, "1", 0, map[string]string{gang.LabelGang: "drivers", queue.LabelQueue: "etl"},
		map[string]string{gang.AnnotationMinMember: "3"})
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, drivers))
	for _, d := range drivers {
		p := waitBound(t, ns, d.Name, time.Minute)
		assert.Equal(t, "cpu-reclaim-0", p.Spec.NodeName, "%s keeps off the GPU nodes", d.Name)
	}

	before := sumMetric(scrape(t, s.Addr), "muster_preemptions_total", map[string]string{"queue": "root.ml", "reason": "reclaim"})
	workers := gangPods(ns, "train", 2, "6", 0, map[string]string{gang.LabelGang: "train", queue.LabelQueue: "ml"},
		map[string]string{gang.AnnotationMinMember: "2"})
	for i := range workers {
		workers[i].Requests[gpuResource] = "1"
	}
	start := time.Now()
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, workers))
	var on []string
	for _, w := range workers {
		on = append(on, waitBound(t, ns, w.Name, time.Minute).Spec.NodeName)
	}
	t.Logf("the training gang bound in %s", time.Since(start).Round(10*time.Millisecond))
	assert.ElementsMatch(t, gpuNodes, on, "one worker on each GPU node")

	// One batch pod went from each GPU node; none from the CPU node, no driver.
	left := map[string]int{}
	list, err := env.cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			left[p.Labels[queue.LabelQueue]+"@"+p.Spec.NodeName]++
		}
	}
	assert.Equal(t, map[string]int{
		"batch@" + gpuNodes[0]: 1, "batch@" + gpuNodes[1]: 1, "batch@cpu-reclaim-0": 4,
		"etl@cpu-reclaim-0": 3, "ml@" + gpuNodes[0]: 1, "ml@" + gpuNodes[1]: 1,
	}, left, "pods left, by queue and node")
	waitFor(t, 10*time.Second, "the preemption metric", func(context.Context) (bool, error) {
		return sumMetric(scrape(t, s.Addr), "muster_preemptions_total", map[string]string{"queue": "root.ml", "reason": "reclaim"})-before == 2, nil
	})
}
