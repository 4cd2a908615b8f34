package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/test/bench/internal/benchkit"
	"muster.dev/muster/test/framework"
)

// The three levels of the benchmark's topology, each a node label, from
// the widest domain to the narrowest.
const (
	topoZoneKey  = "example.com/zone"
	topoBlockKey = "example.com/block"
	topoRackKey  = "example.com/rack"
)

// topoKeys is the gangs' muster.dev/topology-required value: from the
// widest key to the narrowest, as muster reads it (docs/reference.md); the
// narrowest domain that fits the whole gang wins.
var topoKeys = strings.Join([]string{topoZoneKey, topoBlockKey, topoRackKey}, ",")

// Node and member shapes: nodes of 32 CPU, members of 8 CPU (four to an
// empty node), as GPU workers taking a quarter of a node each.
const (
	topoNodeCPU   = 32
	topoMemberCPU = 8
)

// The two sides: the same muster (shipped configuration), the same gangs;
// only the topology annotation differs.
var (
	topoWith    = benchkit.Side{Name: "topology", Profile: benchkit.Muster.Profile, Config: benchkit.Muster.Config}
	topoWithout = benchkit.Side{Name: "no-topology", Profile: benchkit.Muster.Profile, Config: benchkit.Muster.Config}
)

// topoCluster is the benchmark's cluster: zones of blocks of racks of
// nodes, and the CPU that background pods take on each node.
type topoCluster struct {
	zones, blocks, racks, nodes int      // zones; blocks per zone; racks per block; nodes per rack
	zone, block, rack           []string // each node's domains, by node index
	used                        []int    // CPU taken by background pods, per node
	names                       []string // the nodes, once created
	index                       map[string]int
}

func (c *topoCluster) size() int { return c.zones * c.blocks * c.racks * c.nodes }

// layout names the nodes and their domains, and draws the background load
// (fixed seed): every zone has a base load between 40 and 70 %, each
// block varies it by up to ±15 points, each rack by up to ±25, each node by
// up to ±20; a node's load is rounded to an even number of CPUs. Domains
// of the same key are loaded unevenly, and a node's free CPU is often not a
// multiple of a member's 8, so that where a gang fits is not trivial.
func (c *topoCluster) layout() {
	rng := rand.New(rand.NewPCG(17, 3))
	jitter := func(spread float64) float64 { return spread * (2*rng.Float64() - 1) }
	clamp := func(x, lo, hi float64) float64 { return math.Min(math.Max(x, lo), hi) }
	for z := range c.zones {
		zl := 0.4 + 0.3*rng.Float64()
		for b := range c.blocks {
			bl := zl + jitter(0.15)
			for r := range c.racks {
				rl := clamp(bl+jitter(0.25), 0.02, 0.95)
				for range c.nodes {
					nl := clamp(rl+jitter(0.2), 0, 1)
					c.zone = append(c.zone, fmt.Sprintf("z%d", z))
					c.block = append(c.block, fmt.Sprintf("z%d-b%d", z, b))
					c.rack = append(c.rack, fmt.Sprintf("z%d-b%d-r%d", z, b, r))
					c.used = append(c.used, 2*int(math.Round(nl*topoNodeCPU/2)))
				}
			}
		}
	}
}

// slots returns, per domain of a key (by the node's domain name), how
// many members fit on the background-loaded cluster node by node.
func (c *topoCluster) slots(domain []string) map[string]int {
	out := map[string]int{}
	for i, d := range domain {
		out[d] += (topoNodeCPU - c.used[i]) / topoMemberCPU
	}
	return out
}

func maxOf(m map[string]int) int {
	best := 0
	for _, v := range m {
		best = max(best, v)
	}
	return best
}

func sumOf(m map[string]int) int {
	s := 0
	for _, v := range m {
		s += v
	}
	return s
}

// BenchmarkTopology: gang admission with a three-level topology (zones of
// blocks of racks) at 5,000 nodes. The same gangs (annotation gangs of 8,
// 32, 128 and 512 members of 8 CPU, and a mix of them), once with
// muster.dev/topology-required: zone,block,rack and once without it, in the
// same run, ABBA order; the cluster is partly taken by background pods,
// unevenly (topoCluster.layout), so that gangs of 8 fit a rack, gangs of
// 32 fit some racks, gangs of 128 need a block and gangs of 512 a zone.
// Reported per run: gangs/s and pods/s (first bind to last gang whole), the
// time from the scheduler's start to each gang whole (p50/p99), attempt
// latency, PreFilter time, gangs partly bound at the end (must be 0), and
// where the gangs landed: in one rack, one block, one zone, or spread; a
// gang with the topology that spans two zones is a violation (must be 0).
// Goal (issue 17): with the topology, at most 2× the time without.
func BenchmarkTopology(b *testing.B) {
	c := &topoCluster{zones: 5, blocks: 5, racks: 10, nodes: 20}
	runs := []topoRun{
		{name: "size=8", gangs: repeat(8, 256)},
		{name: "size=32", gangs: repeat(32, 64)},
		{name: "size=128", gangs: repeat(128, 16)},
		{name: "size=512", gangs: repeat(512, 4)},
		{name: "mixed", gangs: mixed(repeat(8, 64), repeat(32, 16), repeat(128, 4), repeat(512, 1))},
	}
	if testing.Short() {
		c = &topoCluster{zones: 2, blocks: 2, racks: 2, nodes: 4}
		runs = []topoRun{{name: "mixed", gangs: mixed(repeat(2, 4), repeat(4, 1), repeat(16, 1))}}
	}
	c.layout()
	rounds := benchkit.Rounds(1)
	c.names = benchkit.Nodes(b, "topo", c.size(), strconv.Itoa(topoNodeCPU), func(i int) map[string]string {
		return map[string]string{topoZoneKey: c.zone[i], topoBlockKey: c.block[i], topoRackKey: c.rack[i]}
	})
	c.index = make(map[string]int, len(c.names))
	for i, n := range c.names {
		c.index[n] = i
	}
	background(b, c)
	rackSlots, blockSlots, zoneSlots := c.slots(c.rack), c.slots(c.block), c.slots(c.zone)
	b.Logf("cluster: %d nodes (%d zones × %d blocks × %d racks × %d nodes), %d %% of CPU taken by background pods; "+
		"room for %d members of %d CPU, the roomiest rack %d, block %d, zone %d",
		c.size(), c.zones, c.blocks, c.racks, c.nodes, 100*sumInts(c.used)/(topoNodeCPU*c.size()),
		sumOf(zoneSlots), topoMemberCPU, maxOf(rackSlots), maxOf(blockSlots), maxOf(zoneSlots))
	for _, run := range runs {
		pods := sumInts(run.gangs)
		if largest := slices.Max(run.gangs); largest > maxOf(zoneSlots) || 3*pods > 2*sumOf(zoneSlots) {
			b.Fatalf("%s: %d members, the largest gang %d, do not fit the background-loaded cluster with a margin", run.name, pods, largest)
		}
		b.Run(fmt.Sprintf("%s/gangs=%d/pods=%d/nodes=%d", run.name, len(run.gangs), pods, c.size()), func(b *testing.B) {
			results := map[string][]topoResult{}
			for _, side := range benchkit.Order(rounds, topoWith, topoWithout) {
				b.Run(side.Name, func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						r := runTopology(b, side, c, run.gangs)
						r.report(b)
						results[side.Name] = append(results[side.Name], r)
					}
				})
			}
			topoVerdict(b, results)
		})
	}
}

// topoRun is one workload: the gangs' sizes, in the order they are created.
type topoRun struct {
	name  string
	gangs []int
}

func repeat(size, count int) []int {
	out := make([]int, count)
	for i := range out {
		out[i] = size
	}
	return out
}

// mixed interleaves the gangs (fixed seed), so that small and large ones
// arrive together.
func mixed(groups ...[]int) []int {
	var out []int
	for _, g := range groups {
		out = append(out, g...)
	}
	rng := rand.New(rand.NewPCG(5, 8))
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func sumInts(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

// background binds one pod per loaded node, taking its background CPU
// (and 2Gi of memory per CPU), directly (spec.nodeName: no scheduler), for
// the whole benchmark. No kubelet runs them; the schedulers count them
// as any bound pod.
func background(b *testing.B, c *topoCluster) {
	b.Helper()
	ns := framework.NewNamespace(b)
	var objs []*v1.Pod
	for i, cpu := range c.used {
		if cpu == 0 {
			continue
		}
		obj, err := cluster.Pod{Namespace: ns, Name: fmt.Sprintf("bg-%d", i), SchedulerName: "bench-background",
			Requests: map[v1.ResourceName]string{v1.ResourceCPU: strconv.Itoa(cpu), v1.ResourceMemory: fmt.Sprintf("%dGi", 2*cpu)}}.Object()
		if err != nil {
			b.Fatal(err)
		}
		obj.Spec.NodeName = c.names[i]
		objs = append(objs, obj)
	}
	createObjects(b, objs)
}

// createObjects creates the pods with 16 requests in flight.
func createObjects(b *testing.B, objs []*v1.Pod) {
	b.Helper()
	work := make(chan *v1.Pod)
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			var first error
			for p := range work {
				if _, err := framework.CP.Client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil && first == nil {
					first = fmt.Errorf("creating pod %s/%s: %w", p.Namespace, p.Name, err)
				}
			}
			errs <- first
		}()
	}
	for _, p := range objs {
		work <- p
	}
	close(work)
	for range 16 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

type topoResult struct {
	benchkit.Result
	gangsPerSec float64
	// span is the time from the first bind to the last gang whole.
	span      time.Duration
	stats     benchkit.GangStats
	prefilter float64 // seconds in PreFilter over the run
	// Where the gangs landed: in one rack, in one block (not one rack), in
	// one zone (not one block), spread over zones.
	inRack, inBlock, inZone, spread int
	// violations: gangs with the topology spread over zones; partial:
	// gangs with some but not all members bound, from the pods' listing.
	violations, partial int
}

func (r topoResult) report(b *testing.B) {
	r.Result.Report(b)
	b.ReportMetric(r.gangsPerSec, "gangs/s")
	b.ReportMetric(benchkit.Percentile(r.stats.ToWhole, 50).Seconds(), "gang-p50-s")
	b.ReportMetric(benchkit.Percentile(r.stats.ToWhole, 99).Seconds(), "gang-p99-s")
	b.ReportMetric(float64(r.stats.PartialNow+r.partial), "partial-gangs")
	b.ReportMetric(float64(r.violations), "violations")
	b.ReportMetric(r.prefilter, "prefilter-s")
	b.ReportMetric(float64(r.inRack), "in-rack")
	b.ReportMetric(float64(r.inBlock), "in-block")
	b.ReportMetric(float64(r.inZone), "in-zone")
}

// runTopology creates the gangs (annotation gangs, members of 8 CPU; with
// the topology annotation on the topology side), runs muster until every
// member is bound, and measures and checks where the gangs landed.
func runTopology(b *testing.B, side benchkit.Side, c *topoCluster, sizes []int) topoResult {
	b.Helper()
	benchkit.Compact(b)
	ns := framework.NewNamespace(b)
	var objs []*v1.Pod
	for g, size := range sizes {
		name := fmt.Sprintf("g%03d-s%d", g, size)
		ann := map[string]string{gang.AnnotationMinMember: strconv.Itoa(size)}
		if side.Name == topoWith.Name {
			ann[gang.AnnotationTopologyRequired] = topoKeys
		}
		for m := range size {
			obj, err := cluster.Pod{Namespace: ns, Name: fmt.Sprintf("%s-%d", name, m), SchedulerName: side.Profile,
				Requests:    map[v1.ResourceName]string{v1.ResourceCPU: strconv.Itoa(topoMemberCPU), v1.ResourceMemory: "16Gi"},
				Labels:      map[string]string{gang.LabelGang: name},
				Annotations: ann}.Object()
			if err != nil {
				b.Fatal(err)
			}
			objs = append(objs, obj)
		}
	}
	createObjects(b, objs)
	quorum := func(p *v1.Pod) (string, int) {
		n, _ := strconv.Atoi(p.Annotations[gang.AnnotationMinMember])
		return p.Labels[gang.LabelGang], n
	}
	w := benchkit.WatchPods(b, ns, nil, quorum)
	r := topoResult{Result: benchkit.Run(b, side, ns, c.names, w, len(objs), benchkit.RunOptions{Timeout: 10 * time.Minute})}
	r.stats = w.Gangs(r.Start)
	if len(r.stats.ToWhole) > 0 {
		first, _ := w.Span()
		if r.span = r.stats.ToWhole[len(r.stats.ToWhole)-1] - first.Sub(r.Start); r.span > 0 {
			r.gangsPerSec = float64(r.stats.Whole) / r.span.Seconds()
		}
	}
	if d, err := time.ParseDuration(r.ExtensionPoints["PreFilter"]); err == nil {
		r.prefilter = d.Seconds()
	}
	r.where(b, c, ns, quorum, side.Name == topoWith.Name)
	b.Logf("load average %s; %v; gangs whole %d/%d in %v (%.1f gangs/s), to whole p50 %v p99 %v, partial %d, longest partial %v; "+
		"in one rack %d, one block %d, one zone %d, spread %d; topology violations %d",
		loadAverage(), r.Result, r.stats.Whole, len(sizes), r.span.Round(time.Millisecond), r.gangsPerSec,
		benchkit.Percentile(r.stats.ToWhole, 50).Round(time.Millisecond), benchkit.Percentile(r.stats.ToWhole, 99).Round(time.Millisecond),
		r.stats.PartialNow+r.partial, r.stats.MaxPartial.Round(time.Millisecond), r.inRack, r.inBlock, r.inZone, r.spread, r.violations)
	if r.stats.PartialNow+r.partial > 0 {
		b.Errorf("%s: %d gangs partly bound at the end", side.Name, r.stats.PartialNow+r.partial)
	}
	if r.violations > 0 {
		b.Errorf("%s: %d gangs with a required topology spread over more than one zone", side.Name, r.violations)
	}
	return r
}

// where lists the run's pods and counts, per gang, the domains its members
// landed in: the narrowest level holding all of them, gangs partly bound,
// and (with the topology) gangs in more than one zone.
func (r *topoResult) where(b *testing.B, c *topoCluster, ns string, quorum benchkit.Gang, required bool) {
	b.Helper()
	list, err := framework.CP.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	type span struct {
		bound, quorum        int
		zones, blocks, racks map[string]bool
	}
	gangs := map[string]*span{}
	for i := range list.Items {
		p := &list.Items[i]
		name, q := quorum(p)
		g := gangs[name]
		if g == nil {
			g = &span{quorum: q, zones: map[string]bool{}, blocks: map[string]bool{}, racks: map[string]bool{}}
			gangs[name] = g
		}
		if p.Spec.NodeName == "" {
			continue
		}
		n, ok := c.index[p.Spec.NodeName]
		if !ok {
			b.Fatalf("pod %s bound to %s, not a node of the benchmark", p.Name, p.Spec.NodeName)
		}
		g.bound++
		g.zones[c.zone[n]], g.blocks[c.block[n]], g.racks[c.rack[n]] = true, true, true
	}
	for _, g := range gangs {
		switch {
		case g.bound == 0:
			continue
		case g.bound < g.quorum:
			r.partial++
		}
		switch {
		case len(g.racks) == 1:
			r.inRack++
		case len(g.blocks) == 1:
			r.inBlock++
		case len(g.zones) == 1:
			r.inZone++
		default:
			r.spread++
			if required {
				r.violations++
			}
		}
	}
}

// topoVerdict logs, over the runs of each side, the means and the ratios
// the goal is about: the time from the first bind to the last gang whole
// (gangs/s), the time to whole at p50/p99, and PreFilter time.
func topoVerdict(b *testing.B, results map[string][]topoResult) {
	mean := func(side string, f func(topoResult) float64) float64 {
		s := 0.0
		for _, r := range results[side] {
			s += f(r)
		}
		return s / float64(len(results[side]))
	}
	if len(results[topoWith.Name]) == 0 || len(results[topoWithout.Name]) == 0 {
		return
	}
	ratio := func(f func(topoResult) float64) (float64, float64, float64) {
		with, without := mean(topoWith.Name, f), mean(topoWithout.Name, f)
		return with / without, with, without
	}
	span, sw, so := ratio(func(r topoResult) float64 { return r.span.Seconds() })
	p50, p50w, p50o := ratio(func(r topoResult) float64 { return benchkit.Percentile(r.stats.ToWhole, 50).Seconds() })
	p99, p99w, p99o := ratio(func(r topoResult) float64 { return benchkit.Percentile(r.stats.ToWhole, 99).Seconds() })
	_, pw, po := ratio(func(r topoResult) float64 { return r.prefilter })
	b.Logf("topology ÷ no-topology: time first bind to last gang whole %.2f (%.2fs ÷ %.2fs), to whole p50 %.2f (%.2fs ÷ %.2fs), p99 %.2f (%.2fs ÷ %.2fs); PreFilter %.2fs ÷ %.2fs",
		span, sw, so, p50, p50w, p50o, p99, p99w, p99o, pw, po)
	if worst := max(span, p99); worst > 2 && !testing.Short() {
		b.Logf("GOAL MISSED: with the topology %.2f× the time without (goal: at most 2×)", worst)
	}
}

// loadAverage is the machine's load average (1, 5, 15 minutes), to read
// the numbers by.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(raw))[:3], " ")
}
