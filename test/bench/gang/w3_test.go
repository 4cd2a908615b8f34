package gang

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	schedv1beta1 "k8s.io/api/scheduling/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/test/bench/internal/benchkit"
	"muster.dev/muster/test/framework"
)

// BenchmarkW3Gangs: gangs of 8, 32, 128 and 256 members (Workload API
// PodGroups with a gang policy, minCount = size), all created before the
// scheduler starts, on nodes with room for all of them. Compared in the same
// run: muster, kube-scheduler's default profile with its GangScheduling
// plugin (the GenericWorkload gate is on), and the default profile with
// GangScheduling off (members scheduled one by one). Reported per run:
// gangs/s and pods/s (first bind to last), time from the scheduler's start
// to each gang's quorum bound (p50/p99), gangs left partly bound at the end
// and the longest time any gang spent partly bound, and the scheduler's
// attempt latency, CPU and heap.
func BenchmarkW3Gangs(b *testing.B) {
	sizes, pods, nodes, rounds := []int{8, 32, 128, 256}, 2048, 500, benchkit.Rounds(1)
	if testing.Short() {
		sizes, pods, nodes = []int{8, 32}, 64, 20
	}
	names := benchkit.Nodes(b, "w3", nodes, "32", nil)
	for _, size := range sizes {
		b.Run(fmt.Sprintf("size=%d/gangs=%d/nodes=%d", size, pods/size, nodes), func(b *testing.B) {
			results := map[string][]gangResult{}
			for _, side := range benchkit.Order(rounds, benchkit.Muster, benchkit.UpstreamGang, benchkit.DefaultNoGang) {
				b.Run(side.Name, func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						r := runGangs(b, side, names, size, pods/size, nil)
						r.report(b)
						results[side.Name] = append(results[side.Name], r)
					}
				})
			}
			mean := func(side string) float64 {
				s := 0.0
				for _, r := range results[side] {
					s += r.gangsPerSec
				}
				return s / float64(len(results[side]))
			}
			b.Logf("gangs/s: muster ÷ upstream-gang = %.2f (%.1f ÷ %.1f)", mean("muster")/mean("upstream-gang"), mean("muster"), mean("upstream-gang"))
		})
	}
	// A cluster with room for three quarters of the gangs: all-or-nothing
	// shows in what is left partly bound when it is full.
	tight := &tightCluster{nodes: 8, capacity: 8 * 32, wait: 30 * time.Second}
	size := 32
	if testing.Short() {
		tight, size = &tightCluster{nodes: 2, capacity: 2 * 32, wait: 10 * time.Second}, 8
	}
	count := tight.capacity * 4 / 3 / size
	b.Run(fmt.Sprintf("tight/size=%d/gangs=%d/room=%d", size, count, tight.capacity/size), func(b *testing.B) {
		names := benchkit.Nodes(b, "w3-tight", tight.nodes, "32", func(int) map[string]string { return map[string]string{tightLabel: "true"} })
		for _, side := range []benchkit.Side{benchkit.Muster, benchkit.UpstreamGang, benchkit.DefaultNoGang} {
			b.Run(side.Name, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					r := runGangs(b, side, names, size, count, tight)
					r.report(b)
					b.ReportMetric(float64(r.stats.Whole), "whole-gangs")
					if side.Name == benchkit.Muster.Name && r.stats.PartialNow > 0 {
						b.Errorf("muster left %d gangs partly bound", r.stats.PartialNow)
					}
				}
			})
		}
	})
}

// gangLabel names a pod's gang, for the benchmark's own accounting.
const gangLabel = "bench.muster.dev/gang"

// tightLabel marks the nodes of the tight cluster; its pods select them.
const tightLabel = "bench.muster.dev/tight"

// tightCluster is a cluster with room for some of the gangs only.
type tightCluster struct {
	nodes, capacity int
	wait            time.Duration
}

type gangResult struct {
	benchkit.Result
	gangsPerSec float64
	stats       benchkit.GangStats
}

func (r gangResult) report(b *testing.B) {
	r.Result.Report(b)
	b.ReportMetric(r.gangsPerSec, "gangs/s")
	b.ReportMetric(benchkit.Percentile(r.stats.ToWhole, 50).Seconds(), "gang-p50-s")
	b.ReportMetric(benchkit.Percentile(r.stats.ToWhole, 99).Seconds(), "gang-p99-s")
	b.ReportMetric(float64(r.stats.PartialNow), "partial-gangs")
	b.ReportMetric(r.stats.MaxPartial.Seconds(), "max-partial-s")
}

// runGangs creates count gangs of size members (one CPU each) for the
// side's scheduler, runs it until every member is bound, and measures.
func runGangs(b *testing.B, side benchkit.Side, nodes []string, size, count int, tight *tightCluster) gangResult {
	b.Helper()
	benchkit.Compact(b)
	ctx := context.Background()
	ns := framework.NewNamespace(b)
	var objs []*v1.Pod
	for g := range count {
		name := fmt.Sprintf("g%d", g)
		if _, err := framework.CP.Client.SchedulingV1beta1().PodGroups(ns).Create(ctx, &schedv1beta1.PodGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: schedv1beta1.PodGroupSpec{SchedulingPolicy: schedv1beta1.PodGroupSchedulingPolicy{
				Gang: &schedv1beta1.GangSchedulingPolicy{MinCount: int32(size)}}},
		}, metav1.CreateOptions{}); err != nil {
			b.Fatal(fmt.Errorf("creating PodGroup %s/%s: %w", ns, name, err))
		}
		for m := range size {
			podName := fmt.Sprintf("%s-%d", name, m)
			if tight != nil {
				// Gangs submitted together: a scheduler starting on them
				// lists them in name order, which interleaves the gangs.
				podName = fmt.Sprintf("m%03d-%s", m, name)
			}
			obj, err := cluster.Pod{Namespace: ns, Name: podName, SchedulerName: side.Profile,
				Requests: map[v1.ResourceName]string{v1.ResourceCPU: "1", v1.ResourceMemory: "1Gi"}}.Object()
			if err != nil {
				b.Fatal(err)
			}
			obj.Labels = map[string]string{gangLabel: name}
			if side.Name != benchkit.DefaultNoGang.Name {
				// The default profile without gangs sees the members as
				// plain pods: with the GenericWorkload gate on, kube-scheduler
				// queues a pod group's members together even without the
				// GangScheduling plugin.
				obj.Spec.SchedulingGroup = &v1.PodSchedulingGroup{PodGroupName: &name}
			}
			if tight != nil {
				obj.Spec.NodeSelector = map[string]string{tightLabel: "true"}
			}
			objs = append(objs, obj)
		}
	}
	createPods(b, objs)
	w := benchkit.WatchPods(b, ns, nil, func(p *v1.Pod) (string, int) { return p.Labels[gangLabel], size })
	o := benchkit.RunOptions{Timeout: 10 * time.Minute}
	if tight != nil {
		// The cluster holds only some of the gangs: wait until it is full
		// or the time is up, whichever comes first.
		o.Wait = func(time.Time) {
			framework.WaitFor(b, tight.wait+time.Minute, "the cluster full or the time up", func(context.Context) (bool, error) {
				return w.Bound() >= tight.capacity || time.Since(w.Created()) > tight.wait, nil
			})
		}
	}
	o.Done = func(addr string) {
		// The comparison means something only if the upstream side has its
		// gang plugin and the others do not.
		configz := benchkit.Get(b, addr, "/configz")
		if has := strings.Contains(configz, `"GangScheduling"`) && !strings.Contains(configz, `"disabled":[{"name":"GangScheduling"`); has != (side.Name == benchkit.UpstreamGang.Name) {
			b.Fatalf("%s: GangScheduling enabled is %v in the effective configuration: %s", side.Name, has, configz)
		}
	}
	r := gangResult{Result: benchkit.Run(b, side, ns, nodes, w, len(objs), o)}
	r.stats = w.Gangs(r.Start)
	if len(r.stats.ToWhole) > 0 {
		first, _ := w.Span()
		if span := r.stats.ToWhole[len(r.stats.ToWhole)-1] - first.Sub(r.Start); span > 0 {
			r.gangsPerSec = float64(r.stats.Whole) / span.Seconds()
		}
	}
	if tight != nil {
		b.Logf("tight cluster: %d of %d pods bound (room for %d)", w.Bound(), len(objs), tight.capacity)
	}
	b.Logf("%v; gangs whole %d/%d, to whole p50 %v p99 %v, partial now %d, longest partial %v",
		r.Result, r.stats.Whole, count, benchkit.Percentile(r.stats.ToWhole, 50).Round(time.Millisecond),
		benchkit.Percentile(r.stats.ToWhole, 99).Round(time.Millisecond), r.stats.PartialNow, r.stats.MaxPartial.Round(time.Millisecond))
	return r
}

// createPods creates the pods with 16 requests in flight.
func createPods(b *testing.B, objs []*v1.Pod) {
	b.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	work := make(chan *v1.Pod)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				if _, err := framework.CP.Client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
					mu.Lock()
					first = cmpOr(first, fmt.Errorf("creating pod %s/%s: %w", p.Namespace, p.Name, err))
					mu.Unlock()
				}
			}
		}()
	}
	for _, p := range objs {
		work <- p
	}
	close(work)
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
