package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/test/framework"
)

// BenchmarkW1PlainPods: plain pods on an idle cluster, muster (every plugin
// on) against kube-scheduler's default profile, on the same nodes in the
// same run. Pods are created first; the scheduler then starts, and the
// throughput is measured from its first bind to its last.
func BenchmarkW1PlainPods(b *testing.B) {
	sizes := []struct{ nodes, pods int }{{1000, 10000}, {5000, 10000}}
	if testing.Short() {
		sizes = []struct{ nodes, pods int }{{100, 1000}}
	}
	for _, size := range sizes {
		b.Run(fmt.Sprintf("nodes=%d/pods=%d", size.nodes, size.pods), func(b *testing.B) {
			benchNodes(b, fmt.Sprintf("w1-%d", size.nodes), size.nodes, "32", nil)
			// Four runs each, in the order ABBA BAAB: runs slow down as the
			// process goes on (the first is always the fastest), and this
			// order gives both sides every position equally.
			order := []string{defaultProfile, muster, muster, defaultProfile, muster, defaultProfile, defaultProfile, muster}
			for _, which := range order {
				b.Run(which, func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						throughput := runPlain(b, which, size.pods)
						b.ReportMetric(throughput, "pods/s")
					}
				})
			}
		})
	}
}

// runPlain schedules n one-CPU pods with one scheduler and returns pods/s.
func runPlain(b *testing.B, which string, n int) float64 {
	b.Helper()
	ctx := context.Background()
	if err := framework.CP.Compact(ctx); err != nil {
		b.Fatal(err)
	}
	ns := framework.NewNamespace(b)
	config, name := schedulerConfig(which)
	pods := make([]cluster.Pod, n)
	for i := range pods {
		pods[i] = cluster.Pod{Namespace: ns, Name: fmt.Sprintf("p-%d", i), SchedulerName: name,
			Requests: map[v1.ResourceName]string{v1.ResourceCPU: "100m", v1.ResourceMemory: "128Mi"}}
	}
	if err := cluster.CreatePods(ctx, framework.CP.Client, pods); err != nil {
		b.Fatal(err)
	}
	w := watchBinds(b, ns, nil)
	b.ResetTimer()
	s := framework.StartScheduler(b, config)
	took := w.waitBound(b, n, 10*time.Minute)
	b.StopTimer()
	b.Logf("%s: batching %v", which, batchAttempts(b, s.Addr, name))
	if err := s.Stop(); err != nil {
		b.Fatal(err)
	}
	return float64(n-1) / took.Seconds()
}

// batchAttempts reads kube-scheduler's opportunistic batching counters
// (process-wide: they add up over the run's schedulers).
func batchAttempts(b *testing.B, addr, profile string) map[string]float64 {
	out := map[string]float64{}
	for _, r := range []string{"hint_used", "hint_not_used", "no_hint"} {
		out[r] = metricSum(b, addr, "scheduler_batch_attempts_total", map[string]string{"profile": profile, "result": r})
	}
	for _, r := range []string{"pod_failed", "pod_skipped", "pod_nominated", "node_missing", "empty_list", "expired", "pod_incompatible", "pod_not_batchable", "filter_error", "prescore_error"} {
		if v := metricSum(b, addr, "scheduler_batch_cache_flushed_total", map[string]string{"profile": profile, "reason": r}); v > 0 {
			out["flush:"+r] = v
		}
	}
	return out
}
