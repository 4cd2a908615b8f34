package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/test/bench/internal/benchkit"
	"muster.dev/muster/test/framework"
)

// BenchmarkFairness: tenants with weights 1, 2 and 3 keep more work queued
// than a full cluster can run (pods come and go), then a fourth queue with a
// guarantee arrives. Reported:
//   - deviation-%: the mean, over samples taken once the cluster turned over,
//     of the largest relative gap between a tenant's running CPU and its
//     weighted DRF share (goal <= 5%);
//   - reclaim-s: time for the newcomer to hold its guarantee (goal <= 30 s);
//   - preemptions: pods preempted for it.
func BenchmarkFairness(b *testing.B) {
	nodes, perNode := 40, 8
	steady, podLife := 40*time.Second, 10*time.Second
	if testing.Short() {
		nodes, steady, podLife = 10, 15*time.Second, 4*time.Second
	}
	capacity := nodes * perNode
	guarantee := capacity / 4
	benchkit.Nodes(b, "fair", nodes, fmt.Sprint(perNode), nil)
	for i := 0; i < b.N; i++ {
		dev, reclaim, preempted := runFairness(b, capacity, guarantee, steady, podLife)
		b.ReportMetric(dev, "deviation-%")
		b.ReportMetric(reclaim.Seconds(), "reclaim-s")
		b.ReportMetric(float64(preempted), "preemptions")
	}
}

func runFairness(b *testing.B, capacity, guarantee int, steady, podLife time.Duration) (float64, time.Duration, int) {
	ctx := context.Background()
	ns := framework.NewNamespace(b)
	weights := map[string]int{"t1": 1, "t2": 2, "t3": 3}
	cfg := fmt.Sprintf(`
queues:
  - {name: t1, weight: 1}
  - {name: t2, weight: 2}
  - {name: t3, weight: 3}
  - name: vip
    guaranteed: {cpu: "%d"}
`, guarantee)
	cms := framework.CP.Client.CoreV1().ConfigMaps(framework.MusterNamespace)
	if _, err := cms.Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "muster-queues", Namespace: framework.MusterNamespace},
		Data: map[string]string{queue.ConfigKey: cfg}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cms.Delete(context.Background(), "muster-queues", metav1.DeleteOptions{}) })

	w := benchkit.WatchPods(b, ns, func(p *v1.Pod) string { return p.Labels[queue.LabelQueue] }, nil)
	s := framework.StartMuster(b)
	b.Cleanup(func() { _ = s.Stop() })

	// Keep every tenant's backlog above what the cluster can run: each
	// round tops it up to a full cluster's worth of waiting pods.
	submitted := map[string]int{}
	// Run times vary (0.5 to 1.5 times podLife, a fixed seed): pods that all
	// end at once would measure the benchmark's own rhythm, not fairness.
	rng := rand.New(rand.NewPCG(1, 2))
	submit := func(q string, n int, life time.Duration) {
		pods := make([]cluster.Pod, n)
		for i := range pods {
			d := time.Duration(float64(life) * (0.5 + rng.Float64()))
			pods[i] = cluster.Pod{Namespace: ns, Name: fmt.Sprintf("%s-%d", q, submitted[q]+i), SchedulerName: scheduler.SchedulerName,
				Requests: map[v1.ResourceName]string{v1.ResourceCPU: "1"}, Labels: map[string]string{queue.LabelQueue: q}, Duration: d}
		}
		submitted[q] += n
		if err := cluster.CreatePods(ctx, framework.CP.Client, pods); err != nil {
			b.Fatal(err)
		}
	}
	topUp := func() {
		run := w.Running()
		for q := range weights {
			if waiting := submitted[q] - w.BoundWithPrefix(q+"-"); waiting < capacity {
				submit(q, capacity-waiting, podLife)
			}
			_ = run
		}
	}
	topUp()
	start := time.Now()
	var devs []float64
	for time.Since(start) < steady {
		deadline := time.Now().Add(time.Second)
		topUp()
		if time.Since(start) > 3*podLife/2+2*time.Second { // one turnover first
			run := w.Running()
			worst := 0.0
			for q, wgt := range weights {
				fair := float64(capacity) * float64(wgt) / 6
				worst = math.Max(worst, math.Abs(float64(run[q])-fair)/fair)
			}
			devs = append(devs, worst)
			if os.Getenv("MUSTER_BENCH_DEBUG") != "" {
				b.Logf("t=%.0fs running %v worst %.2f", time.Since(start).Seconds(), run, worst)
			}
		}
		framework.WaitFor(b, 2*time.Second, "the next sample", func(context.Context) (bool, error) { return time.Now().After(deadline), nil })
	}
	dev := 0.0
	for _, d := range devs {
		dev += d
	}
	if len(devs) > 0 {
		dev = 100 * dev / float64(len(devs))
	}

	// The newcomer with a guarantee: long-running pods, all at once.
	before := preemptions(b, s.Addr)
	arrived := time.Now()
	submit("vip", guarantee, time.Hour)
	framework.WaitFor(b, 2*time.Minute, "the guarantee reclaimed", func(context.Context) (bool, error) {
		topUp()
		return w.Running()["vip"] >= guarantee, nil
	})
	reclaim := time.Since(arrived)
	return dev, reclaim, preemptions(b, s.Addr) - before
}

// preemptions reads muster_preemptions_total from the scheduler's /metrics.
func preemptions(b *testing.B, addr string) int {
	b.Helper()
	return int(benchkit.MetricSum(b, addr, "muster_preemptions_total", nil))
}
