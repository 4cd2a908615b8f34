package bench

import (
	"fmt"
	"testing"

	"muster.dev/muster/test/bench/internal/benchkit"
)

// BenchmarkW1PlainPods: plain pods on an idle cluster, muster (every plugin
// on) against kube-scheduler's default profile and the raw bind limit, on
// the same nodes in the same run. Pods are created first; the scheduler then
// starts, and the throughput is measured from its first bind to its last.
func BenchmarkW1PlainPods(b *testing.B) {
	sizes := []struct{ nodes, pods int }{{1000, 10000}, {5000, 10000}}
	if testing.Short() {
		sizes = []struct{ nodes, pods int }{{100, 500}}
	}
	for _, size := range sizes {
		b.Run(fmt.Sprintf("nodes=%d/pods=%d", size.nodes, size.pods), func(b *testing.B) {
			nodes := benchkit.Nodes(b, fmt.Sprintf("w1-%d", size.nodes), size.nodes, "32", nil)
			results := map[string][]benchkit.Result{}
			for _, side := range benchkit.Order(rounds(), benchkit.Default, benchkit.Muster, benchkit.Limit) {
				b.Run(side.Name, func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						r := runPods(b, side, nodes, size.pods, nil, benchkit.RunOptions{Done: func(addr string) {
							b.Logf("%s: batching %v", side.Name, batchAttempts(b, addr, side.Profile))
						}})
						r.Report(b)
						results[side.Name] = append(results[side.Name], r)
					}
				})
			}
			ratios(b, results, benchkit.Default.Name)
			ratios(b, results, benchkit.Limit.Name)
		})
	}
}

// batchAttempts reads kube-scheduler's opportunistic batching counters
// (process-wide: they add up over the run's schedulers).
func batchAttempts(b *testing.B, addr, profile string) map[string]float64 {
	out := map[string]float64{}
	for _, r := range []string{"hint_used", "hint_not_used", "no_hint"} {
		out[r] = benchkit.MetricSum(b, addr, "scheduler_batch_attempts_total", map[string]string{"profile": profile, "result": r})
	}
	for _, r := range []string{"pod_failed", "pod_skipped", "pod_nominated", "node_missing", "empty_list", "expired", "pod_incompatible", "pod_not_batchable", "filter_error", "prescore_error"} {
		if v := benchkit.MetricSum(b, addr, "scheduler_batch_cache_flushed_total", map[string]string{"profile": profile, "reason": r}); v > 0 {
			out["flush:"+r] = v
		}
	}
	return out
}
