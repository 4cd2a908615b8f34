package bench

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/metrics/legacyregistry"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	"sigs.k8s.io/yaml"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/bench/internal/benchkit"
	"muster.dev/muster/test/framework"
)

// scaleSize is one size of BenchmarkScale.
type scaleSize struct {
	name                       string
	pods, nodes, queues, gangs int
}

// The shapes of BenchmarkScale: nodes of 32 CPU; pending pods of 1 CPU /
// 1Gi, gangs of 4 of them (scheduler-plugins PodGroups, minMember 4), the
// rest plain pods; every queue holds the fillers of nodes/queues nodes.
const (
	scaleNodeCPU  = 32
	scaleGangSize = 4
	// scaleRoom is the CPU left free on the first node and under the first
	// leaf queue's max: room for exactly one gang of 4 (or 4 plain pods).
	scaleRoom = 4
)

// The two sides: muster as shipped, and kube-scheduler's default profile
// under muster's scheduler name, so that both hold exactly the same pods.
var (
	scaleMuster  = benchkit.Muster
	scaleDefault = benchkit.Side{Name: "default", Profile: scheduler.SchedulerName, Config: scheduler.DefaultProfileConfig(scheduler.SchedulerName)}
)

// BenchmarkScale: muster starting on a cluster of pods it cannot place —
// 50,000 pending pods, 5,000 nodes, 1,000 leaf queues and 10,000 gangs at
// once (full), 10,000 / 1,000 / 200 / 2,000 (small), 5,000 / 500 / 100 /
// 1,000 (mid), 500 / 50 / 10 / 100 in -short mode (tiny) — against kube-scheduler's default profile holding
// the same pods, in the same run, ABBA order (muster, default, default,
// muster).
//
// The cluster is full, and every queue is at its max, before any scheduler
// starts: every node holds one filler pod (bound directly, spec.nodeName)
// of all its 32 CPU, and belongs to a leaf queue (node i to leaf i mod
// queues, nodes/queues = 5 nodes each); each leaf's max is the CPU of its
// fillers. So muster refuses every pending pod at its queue's max (in
// PreFilter) and the default profile finds no node. The exception is the
// room: the filler of the first node takes 28 CPU, and the first leaf's max
// leaves 4 CPU, so exactly 4 pods can bind — for muster, the head of the
// first leaf (a gang of 4), for the default profile any 4 pods.
//
// Measured per run, the scheduler started with the pods in place:
//   - sync-s: start to /readyz (kube-scheduler's sched-handler-sync: every
//     informer listed and its handlers through the initial list);
//   - first-bind-s: start to the first bind, seen by a watch, and the
//     scheduling attempts made by then. muster reads its queue
//     configuration and rebuilds its ledger (every pod's usage, by queue)
//     and its gangs in its first scheduling cycle, in between; checked
//     after the run: muster_queue_pods of root, pending + running, is the
//     pending pods plus the fillers;
//   - heap: live heap (runtime.GC, then MemStats.HeapAlloc) once the room is
//     bound, minus the live heap just before the scheduler started, per
//     pending pod. The process also holds the apiserver, etcd and the
//     benchmark, which do not change between the two readings but for the
//     conditions the scheduler writes on the pods meanwhile.
//
// After the last muster run (settle): the time until muster has made as many
// scheduling attempts as there are pending pods (every pod tried once, its
// conditions written), the live heap then, and then the status ConfigMap
// (muster-queue-status): writes seen by a watch over several intervals,
// their size, the apiserver's time per PUT, and the time status.Encode
// takes on the whole report (its pending gangs put back) with its size
// untruncated. MUSTER_SCALE_PROFILE=dir writes heap profiles at the heap
// readings there.
func BenchmarkScale(b *testing.B) {
	sizes := []scaleSize{
		{name: "mid", pods: 5000, nodes: 500, queues: 100, gangs: 1000},
		{name: "small", pods: 10000, nodes: 1000, queues: 200, gangs: 2000},
		{name: "full", pods: 50000, nodes: 5000, queues: 1000, gangs: 10000},
	}
	if testing.Short() {
		sizes = []scaleSize{{name: "tiny", pods: 500, nodes: 50, queues: 10, gangs: 100}}
	}
	for _, sz := range sizes {
		b.Run(fmt.Sprintf("%s/pods=%d/nodes=%d/queues=%d/gangs=%d", sz.name, sz.pods, sz.nodes, sz.queues, sz.gangs), func(b *testing.B) {
			runScale(b, sz)
		})
	}
}

// scaleRun is what one side's run measured.
type scaleRun struct {
	side                  string
	sync, firstBnd        time.Duration
	attemptsAtBind        float64
	heapBefore, heapAfter uint64
	requests              []string
}

func (r scaleRun) heapDelta() float64 { return float64(r.heapAfter) - float64(r.heapBefore) }

func runScale(b *testing.B, sz scaleSize) {
	ctx := context.Background()
	if sz.nodes%sz.queues != 0 || sz.gangs*scaleGangSize > sz.pods {
		b.Fatalf("size %s: nodes must be a multiple of queues and the gangs fit in the pods", sz.name)
	}
	setupStart := time.Now()
	perQueue := sz.nodes / sz.queues
	leaves := scaleQueues(b, sz.queues, perQueue*scaleNodeCPU)
	nodes := benchkit.Nodes(b, "scale-"+sz.name, sz.nodes, fmt.Sprint(scaleNodeCPU), nil)
	ns := framework.NewNamespace(b)

	// Fillers: the cluster full, each queue at its max.
	fillers := make([]*v1.Pod, sz.nodes)
	for i := range fillers {
		cpu := scaleNodeCPU
		if i == 0 {
			cpu -= scaleRoom
		}
		obj, err := cluster.Pod{Namespace: ns, Name: fmt.Sprintf("fill-%d", i), SchedulerName: scheduler.SchedulerName,
			Requests: map[v1.ResourceName]string{v1.ResourceCPU: fmt.Sprint(cpu), v1.ResourceMemory: "1Gi"},
			Labels:   map[string]string{queue.LabelQueue: leaves[i%sz.queues]}}.Object()
		if err != nil {
			b.Fatal(err)
		}
		obj.Spec.NodeName = nodes[i]
		fillers[i] = obj
	}
	createObjects(b, fillers)

	// PodGroups, then the pending pods: the gangs' members, then plain pods.
	pgs := framework.PodGroupClient(b).SchedulingV1alpha1().PodGroups(ns)
	b.Cleanup(func() { _ = pgs.DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{}) })
	if err := scaleParallel(sz.gangs, func(g int) error {
		_, err := pgs.Create(ctx, &schedv1alpha1.PodGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("g%d", g), Labels: map[string]string{queue.LabelQueue: leaves[g%sz.queues]}},
			Spec:       schedv1alpha1.PodGroupSpec{MinMember: scaleGangSize},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating PodGroup %s/g%d: %w", ns, g, err)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	pending := make([]*v1.Pod, 0, sz.pods)
	byName := make(map[string]int, sz.pods)
	add := func(name, leaf string, labels map[string]string) {
		l := map[string]string{queue.LabelQueue: leaf}
		for k, v := range labels {
			l[k] = v
		}
		obj, err := cluster.Pod{Namespace: ns, Name: name, SchedulerName: scheduler.SchedulerName,
			Requests: map[v1.ResourceName]string{v1.ResourceCPU: "1", v1.ResourceMemory: "1Gi"}, Labels: l}.Object()
		if err != nil {
			b.Fatal(err)
		}
		byName[name] = len(pending)
		pending = append(pending, obj)
	}
	for g := range sz.gangs {
		for m := range scaleGangSize {
			add(fmt.Sprintf("g%d-m%d", g, m), leaves[g%sz.queues], map[string]string{gang.LabelPodGroup: fmt.Sprintf("g%d", g)})
		}
	}
	for j := range sz.pods - sz.gangs*scaleGangSize {
		add(fmt.Sprintf("p%d", j), leaves[j%sz.queues], nil)
	}
	createObjects(b, pending)
	statusWrites := watchStatus(b)
	b.Logf("set up in %v: %d nodes of %d CPU, each full (one filler pod), %d leaf queues each at its max (%d nodes' CPU), "+
		"%d pending pods (%d gangs of %d, %d plain pods); room for %d CPU on node 0 under leaf %s; load average %s",
		time.Since(setupStart).Round(time.Second), sz.nodes, scaleNodeCPU, sz.queues, perQueue, sz.pods, sz.gangs, scaleGangSize,
		sz.pods-sz.gangs*scaleGangSize, scaleRoom, leaves[0], loadAverage())

	order := benchkit.Order(benchkit.Rounds(1), scaleMuster, scaleDefault)
	lastMuster := 0
	for i, side := range order {
		if side.Name == scaleMuster.Name {
			lastMuster = i
		}
	}
	results := map[string][]scaleRun{}
	var settled *scaleSettle
	for i, side := range order {
		b.Run(side.Name, func(b *testing.B) {
			for range b.N {
				r, st := runScaleSide(b, side, sz, ns, pending, byName, i == lastMuster, statusWrites)
				results[side.Name] = append(results[side.Name], r)
				if st != nil {
					settled = st
				}
			}
		})
	}
	scaleVerdict(b, sz, results, settled)
}

// scaleQueues installs a two-level tree of n leaves (in ten departments, or
// two below 100 leaves), each with a max of maxCPU, and returns the leaves.
func scaleQueues(b *testing.B, n, maxCPU int) []string {
	b.Helper()
	depts := 10
	if n < 100 {
		depts = 2
	}
	var (
		sb     strings.Builder
		leaves []string
	)
	sb.WriteString("queues:\n")
	for d := range depts {
		fmt.Fprintf(&sb, "  - name: d%d\n    weight: %d\n    queues:\n", d, 1+d%3)
		for l := range n / depts {
			leaf := fmt.Sprintf("s%d", d*(n/depts)+l)
			leaves = append(leaves, leaf)
			fmt.Fprintf(&sb, "      - {name: %s, weight: %d, max: {cpu: \"%d\"}}\n", leaf, 1+l%3, maxCPU)
		}
	}
	framework.SetQueues(b, sb.String())
	return leaves
}

// scaleParallel runs fn(0..n-1), 16 at a time, and returns the first error.
func scaleParallel(n int, fn func(i int) error) error {
	work := make(chan int)
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			var first error
			for i := range work {
				if err := fn(i); err != nil && first == nil {
					first = err
				}
			}
			errs <- first
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	var first error
	for range 16 {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// liveHeap is the live heap after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// heapProfile writes a heap profile to $MUSTER_SCALE_PROFILE/name, if set.
func heapProfile(b *testing.B, name string) {
	dir := os.Getenv("MUSTER_SCALE_PROFILE")
	if dir == "" {
		return
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		b.Fatal(fmt.Errorf("creating heap profile: %w", err))
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(fmt.Errorf("writing heap profile %s: %w", name, err))
	}
}

// cpuProfile profiles the process's CPU into $MUSTER_SCALE_PROFILE/name, if
// set, until the returned function is called.
func cpuProfile(b *testing.B, name string) func() {
	dir := os.Getenv("MUSTER_SCALE_PROFILE")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		b.Fatal(fmt.Errorf("creating CPU profile: %w", err))
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		b.Logf("no CPU profile of the run: %v", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// binds follows, from now on, the pods of ns that get bound: the first
// bind's time and every pod bound (fillers, bound before, are not).
type binds struct {
	mu    sync.Mutex
	first time.Time
	names map[string]bool
}

func watchBinds(b *testing.B, ns string) *binds {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	pods := framework.CP.Client.CoreV1().Pods(ns)
	list, err := pods.List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		b.Fatal(fmt.Errorf("listing pods of %s: %w", ns, err))
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName!=", ResourceVersion: list.ResourceVersion})
	if err != nil {
		b.Fatal(fmt.Errorf("watching binds in %s: %w", ns, err))
	}
	bs := &binds{names: map[string]bool{}}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*v1.Pod)
			if !ok || ev.Type == watch.Deleted || strings.HasPrefix(p.Name, "fill-") {
				continue
			}
			bs.mu.Lock()
			if !bs.names[p.Name] {
				if len(bs.names) == 0 {
					bs.first = time.Now()
				}
				bs.names[p.Name] = true
			}
			bs.mu.Unlock()
		}
	}()
	return bs
}

func (bs *binds) seen() (time.Time, []string) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	var names []string
	for n := range bs.names {
		names = append(names, n)
	}
	slices.Sort(names)
	return bs.first, names
}

// statusWrite is one write of the status ConfigMap seen by the watch.
type statusWrite struct {
	at    time.Time
	bytes int // the whole object, as JSON
}

// statusLog is every write of the status ConfigMap, and the latest
// status.yaml (only the latest: the benchmark's own memory must not grow
// with the writes while heaps are compared).
type statusLog struct {
	mu     sync.Mutex
	writes []statusWrite
	last   string
}

// watchStatus records every version of the status ConfigMap.
func watchStatus(b *testing.B) *statusLog {
	b.Helper()
	l := &statusLog{}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	f := informers.NewSharedInformerFactoryWithOptions(framework.CP.Client, 0, informers.WithNamespace(framework.MusterNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", framework.StatusConfigMap).String()
		}))
	record := func(o any) {
		cm, ok := o.(*v1.ConfigMap)
		if !ok {
			return
		}
		raw, err := json.Marshal(cm)
		if err != nil {
			return
		}
		l.mu.Lock()
		l.writes = append(l.writes, statusWrite{at: time.Now(), bytes: len(raw)})
		l.last = cm.Data[status.Key]
		l.mu.Unlock()
	}
	if _, err := f.Core().V1().ConfigMaps().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: record, UpdateFunc: func(_, o any) { record(o) },
	}); err != nil {
		b.Fatal(fmt.Errorf("watching the status ConfigMap: %w", err))
	}
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	return l
}

func (l *statusLog) since(t time.Time) []statusWrite {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []statusWrite
	for _, w := range l.writes {
		if w.at.After(t) {
			out = append(out, w)
		}
	}
	return out
}

// readyz reports whether the scheduler's /readyz answers 200.
func readyz(addr string) bool {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback test endpoint
	resp, err := client.Get("https://" + addr + "/readyz")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// registrySum adds up the counters (or a histogram's sum and count) of the
// process's legacy registry whose labels include want.
func registrySum(b *testing.B, name string, want map[string]string) (sum, count float64) {
	b.Helper()
	fams, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		b.Fatal(fmt.Errorf("gathering metrics: %w", err))
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			if h := m.GetHistogram(); h != nil {
				sum += h.GetSampleSum()
				count += float64(h.GetSampleCount())
				continue
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum, count
}

// incoming reads scheduler_queue_incoming_pods_total by event, for pods
// moved from the unschedulable pool (queue unschedulable or backoff).
func incoming(b *testing.B) map[string]float64 {
	b.Helper()
	fams, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		b.Fatal(fmt.Errorf("gathering metrics: %w", err))
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "scheduler_queue_incoming_pods_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			out[l["event"]+" → "+l["queue"]] += m.GetCounter().GetValue()
		}
	}
	return out
}

func attempts(b *testing.B) float64 {
	n, _ := registrySum(b, "scheduler_schedule_attempts_total", map[string]string{"profile": scheduler.SchedulerName})
	return n
}

// scaleSettle is what the last muster run measured once it settled.
type scaleSettle struct {
	settle     time.Duration // start to attempts >= pending pods
	heapSettle uint64
	heapBefore uint64
	writes     []statusWrite
	last       string  // the latest status.yaml
	putSum     float64 // seconds in PUT configmaps, over the window
	putCount   float64
	window     time.Duration
	requests   []string
}

// runScaleSide runs one side's scheduler on the pods, measures, stops it,
// and puts the room back: the pods it bound are deleted and created again,
// pending.
func runScaleSide(b *testing.B, side benchkit.Side, sz scaleSize, ns string, pending []*v1.Pod, byName map[string]int,
	settle bool, statusWrites *statusLog) (scaleRun, *scaleSettle) {
	b.Helper()
	benchkit.Compact(b)
	bs := watchBinds(b, ns)
	r := scaleRun{side: side.Name}
	reqs := benchkit.Requests(b)
	attempts0 := attempts(b)
	moved0 := incoming(b)
	r.heapBefore = liveHeap()
	heapProfile(b, fmt.Sprintf("heap-%s-%s-%d-before.pprof", sz.name, side.Name, time.Now().Unix()))
	stopCPU := cpuProfile(b, fmt.Sprintf("cpu-%s-%s-%d.pprof", sz.name, side.Name, time.Now().Unix()))
	defer stopCPU()
	b.ResetTimer()
	start := time.Now()
	s := framework.StartScheduler(b, side.Config)
	timeout := 10 * time.Minute
	framework.WaitFor(b, timeout, "the scheduler ready (informers synced)", func(context.Context) (bool, error) {
		return readyz(s.Addr), nil
	})
	r.sync = time.Since(start)
	framework.WaitFor(b, timeout, "the first bind", func(context.Context) (bool, error) {
		first, _ := bs.seen()
		return !first.IsZero(), nil
	})
	first, _ := bs.seen()
	r.firstBnd = first.Sub(start)
	r.attemptsAtBind = attempts(b) - attempts0
	framework.WaitFor(b, timeout, "the room bound", func(context.Context) (bool, error) {
		_, names := bs.seen()
		return len(names) >= scaleRoom, nil
	})
	r.heapAfter = liveHeap()
	b.StopTimer()
	if side.Name == scaleMuster.Name {
		// muster rebuilt its ledger in its first scheduling cycle, before the
		// first bind; check that it holds every pod.
		want := float64(sz.pods + sz.nodes)
		framework.WaitFor(b, timeout, "muster's ledger holding every pod", func(context.Context) (bool, error) {
			got := benchkit.MetricSum(b, s.Addr, "muster_queue_pods", map[string]string{"queue": "root", "state": "pending"}) +
				benchkit.MetricSum(b, s.Addr, "muster_queue_pods", map[string]string{"queue": "root", "state": "running"})
			return got >= want, nil
		})
	}
	heapProfile(b, fmt.Sprintf("heap-%s-%s-%d-after.pprof", sz.name, side.Name, time.Now().Unix()))
	_, bound := bs.seen()
	b.Logf("%s: load average %s; start → ready (informers synced) %v, → first bind %v (%.0f attempts); bound %v; "+
		"live heap %.0f → %.0f MiB: %.0f MiB, %.2f KiB per pending pod",
		side.Name, loadAverage(), r.sync.Round(time.Millisecond), r.firstBnd.Round(time.Millisecond),
		r.attemptsAtBind, bound, float64(r.heapBefore)/(1<<20), float64(r.heapAfter)/(1<<20), r.heapDelta()/(1<<20), r.heapDelta()/1024/float64(sz.pods))
	b.ReportMetric(r.sync.Seconds(), "sync-s")
	b.ReportMetric(r.firstBnd.Seconds(), "first-bind-s")
	b.ReportMetric(r.heapDelta()/(1<<20), "heap-MiB")
	b.ReportMetric(r.heapDelta()/1024/float64(sz.pods), "KiB/pending-pod")

	var st *scaleSettle
	if settle {
		st = &scaleSettle{heapBefore: r.heapBefore}
		// Gathering the process's registry (the apiserver's metrics too)
		// costs tens of milliseconds: read it once a second, not every poll.
		var checked time.Time
		framework.WaitFor(b, 20*time.Minute, "every pending pod attempted", func(context.Context) (bool, error) {
			if time.Since(checked) < time.Second {
				return false, nil
			}
			checked = time.Now()
			return attempts(b)-attempts0 >= float64(sz.pods), nil
		})
		st.settle = time.Since(start)
		st.heapSettle = liveHeap()
		heapProfile(b, fmt.Sprintf("heap-%s-settled-%d.pprof", sz.name, time.Now().Unix()))
		// The status ConfigMap over a few of its intervals.
		writes := 4
		if testing.Short() {
			writes = 2
		}
		from := time.Now()
		put0, n0 := registrySum(b, "apiserver_request_duration_seconds", map[string]string{"verb": "PUT", "resource": "configmaps"})
		framework.WaitFor(b, 2*time.Minute, "status ConfigMap writes", func(context.Context) (bool, error) {
			return len(statusWrites.since(from)) >= writes, nil
		})
		put1, n1 := registrySum(b, "apiserver_request_duration_seconds", map[string]string{"verb": "PUT", "resource": "configmaps"})
		st.writes, st.putSum, st.putCount, st.window = statusWrites.since(from), put1-put0, n1-n0, time.Since(from)
		statusWrites.mu.Lock()
		st.last = statusWrites.last
		statusWrites.mu.Unlock()
		st.requests = benchkit.RequestsDelta(reqs, benchkit.Requests(b), 8)
		b.Logf("settled: every pending pod attempted %v after the start; live heap %.0f MiB above the start (%.2f KiB per pending pod); requests %v",
			st.settle.Round(time.Millisecond), (float64(st.heapSettle)-float64(st.heapBefore))/(1<<20),
			(float64(st.heapSettle)-float64(st.heapBefore))/1024/float64(sz.pods), st.requests)
	}
	r.requests = benchkit.RequestsDelta(reqs, benchkit.Requests(b), 8)
	b.Logf("%s: scheduling attempts %.0f; pods moved back to the active or backoff queue, by event: %v; requests %v",
		side.Name, attempts(b)-attempts0, benchkit.RequestsDelta(moved0, incoming(b), 6), r.requests)
	if err := s.Stop(); err != nil {
		b.Fatal(fmt.Errorf("stopping %s: %w", side.Name, err))
	}
	restore(b, ns, pending, byName, bound)
	return r, st
}

// restore deletes the pods the run bound and creates them again, pending.
func restore(b *testing.B, ns string, pending []*v1.Pod, byName map[string]int, bound []string) {
	b.Helper()
	ctx := context.Background()
	pods := framework.CP.Client.CoreV1().Pods(ns)
	zero := int64(0)
	uids := map[string]types.UID{}
	for _, name := range bound {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			b.Fatal(fmt.Errorf("reading bound pod %s/%s: %w", ns, name, err))
		}
		uids[name] = p.UID
		if err := pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			b.Fatal(fmt.Errorf("deleting bound pod %s/%s: %w", ns, name, err))
		}
	}
	var again []*v1.Pod
	for _, name := range bound {
		framework.WaitFor(b, time.Minute, "pod "+name+" gone", func(ctx context.Context) (bool, error) {
			p, err := pods.Get(ctx, name, metav1.GetOptions{})
			return err != nil || p.UID != uids[name], nil
		})
		i, ok := byName[name]
		if !ok {
			b.Fatalf("bound pod %s is not one of the benchmark's", name)
		}
		again = append(again, pending[i].DeepCopy())
	}
	createObjects(b, again)
}

// scaleVerdict logs the size's means, muster ÷ default, and the status
// ConfigMap's cost.
func scaleVerdict(b *testing.B, sz scaleSize, results map[string][]scaleRun, st *scaleSettle) {
	mean := func(side string, f func(scaleRun) float64) float64 {
		s := 0.0
		for _, r := range results[side] {
			s += f(r)
		}
		return s / float64(max(1, len(results[side])))
	}
	perPod := func(r scaleRun) float64 { return r.heapDelta() / 1024 / float64(sz.pods) }
	mm, dm := mean(scaleMuster.Name, perPod), mean(scaleDefault.Name, perPod)
	b.Logf("SCALE %s: pods %d nodes %d queues %d gangs %d | muster: ready %.2fs, first bind %.2fs, heap %.2f KiB/pending pod | "+
		"default: ready %.2fs, first bind %.2fs, heap %.2f KiB/pending pod | muster ÷ default heap %.2f",
		sz.name, sz.pods, sz.nodes, sz.queues, sz.gangs,
		mean(scaleMuster.Name, func(r scaleRun) float64 { return r.sync.Seconds() }),
		mean(scaleMuster.Name, func(r scaleRun) float64 { return r.firstBnd.Seconds() }), mm,
		mean(scaleDefault.Name, func(r scaleRun) float64 { return r.sync.Seconds() }),
		mean(scaleDefault.Name, func(r scaleRun) float64 { return r.firstBnd.Seconds() }), dm, mm/dm)
	if st == nil || len(st.writes) == 0 {
		return
	}
	sizes := make([]int, len(st.writes))
	for i, w := range st.writes {
		sizes[i] = w.bytes
	}
	var gaps []time.Duration
	for i := 1; i < len(st.writes); i++ {
		gaps = append(gaps, st.writes[i].at.Sub(st.writes[i-1].at))
	}
	rep, err := status.Decode([]byte(st.last))
	if err != nil {
		b.Fatal(err)
	}
	shown, omitted := len(rep.PendingGangs), rep.PendingGangsOmitted
	// The whole report, its omitted gangs put back (copies of those shown):
	// what muster encodes on every write.
	whole := rep
	whole.PendingGangs = slices.Clone(rep.PendingGangs)
	for i := 0; len(whole.PendingGangs) < shown+omitted && shown > 0; i++ {
		g := rep.PendingGangs[i%shown]
		g.Gang = fmt.Sprintf("%s-copy%d", g.Gang, i)
		whole.PendingGangs = append(whole.PendingGangs, g)
	}
	whole.PendingGangsOmitted = 0
	raw, err := yaml.Marshal(whole)
	if err != nil {
		b.Fatal(fmt.Errorf("encoding the whole report: %w", err))
	}
	queuesOnly := whole
	queuesOnly.PendingGangs, queuesOnly.Holds = nil, nil
	rawQueues, err := yaml.Marshal(queuesOnly)
	if err != nil {
		b.Fatal(fmt.Errorf("encoding the queues: %w", err))
	}
	var encs []time.Duration
	for range 3 {
		t := time.Now()
		if _, err := status.Encode(whole); err != nil {
			b.Fatal(fmt.Errorf("encoding the status: %w", err))
		}
		encs = append(encs, time.Since(t))
	}
	slices.Sort(encs)
	putMean := 0.0
	if st.putCount > 0 {
		putMean = st.putSum / st.putCount
	}
	b.Logf("SCALE %s status ConfigMap: %d writes in %v (gaps %v); object %d bytes (status.yaml %d); %d pending gangs listed, %d omitted; "+
		"untruncated report %d bytes, of which queues %d (%d bytes a queue); status.Encode of the whole report %v (median of 3); "+
		"apiserver PUT configmaps mean %.1f ms over %.0f PUTs",
		sz.name, len(st.writes), st.window.Round(time.Millisecond), gaps, slices.Max(sizes), len(st.last), shown, omitted,
		len(raw), len(rawQueues), len(rawQueues)/max(1, len(rep.Queues)), encs[1].Round(time.Microsecond), 1000*putMean, st.putCount)
}
