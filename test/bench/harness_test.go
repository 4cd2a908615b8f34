package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/test/bench/internal/benchkit"
	"muster.dev/muster/test/framework"
)

// rounds is how many ABBA rounds each comparison runs: two, one in short
// mode, or BENCH_ROUNDS.
func rounds() int { return benchkit.Rounds(2) }

// plainPods returns n pods of 100m CPU / 128Mi for the side's scheduler.
func plainPods(ns, profile string, n int, labels func(i int) map[string]string) []cluster.Pod {
	pods := make([]cluster.Pod, n)
	for i := range pods {
		var l map[string]string
		if labels != nil {
			l = labels(i)
		}
		pods[i] = cluster.Pod{Namespace: ns, Name: fmt.Sprintf("p-%d", i), SchedulerName: profile, Labels: l,
			Requests: map[v1.ResourceName]string{v1.ResourceCPU: "100m", v1.ResourceMemory: "128Mi"}}
	}
	return pods
}

// runPods compacts etcd, creates the pods in a fresh namespace, then runs
// the side's scheduler until they are all bound.
func runPods(b *testing.B, side benchkit.Side, nodes []string, n int, labels func(i int) map[string]string, o benchkit.RunOptions) benchkit.Result {
	b.Helper()
	return runPodsUntil(b, side, nodes, n, n, labels, o)
}

// runPodsUntil is runPods that creates n pods and waits until bind of them
// are bound (the cluster may have room for fewer).
func runPodsUntil(b *testing.B, side benchkit.Side, nodes []string, n, bind int, labels func(i int) map[string]string, o benchkit.RunOptions) benchkit.Result {
	b.Helper()
	benchkit.Compact(b)
	ns := framework.NewNamespace(b)
	if err := cluster.CreatePods(context.Background(), framework.CP.Client, plainPods(ns, side.Profile, n, labels)); err != nil {
		b.Fatal(err)
	}
	w := benchkit.WatchPods(b, ns, nil, nil)
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Minute
	}
	r := benchkit.Run(b, side, ns, nodes, w, bind, o)
	b.Log(r)
	return r
}

// ratios logs the ratio of the mean pods/s of each side to base's.
func ratios(b *testing.B, results map[string][]benchkit.Result, base string) {
	mean := func(rs []benchkit.Result) float64 {
		s := 0.0
		for _, r := range rs {
			s += r.PodsPerSec()
		}
		return s / float64(len(rs))
	}
	for side, rs := range results {
		if side != base && len(results[base]) > 0 {
			b.Logf("%s ÷ %s = %.2f (mean pods/s %.0f ÷ %.0f)", side, base, mean(rs)/mean(results[base]), mean(rs), mean(results[base]))
		}
	}
}
