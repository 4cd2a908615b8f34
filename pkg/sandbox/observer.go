package sandbox

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/fairshare"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// partialGrace is how long a gang may be partly bound before it counts as
// partially bound: binding a gang takes one API call per member.
//
// A gang is partially bound when, before it ever reached its quorum, some
// but fewer than its quorum of its members were bound for longer than that.
// What happens once it reached its quorum does not count: members that
// finish at different times, are lost with an interrupted node or replaced,
// or executors added beyond min-executors that wait for room.
const partialGrace = 10 * time.Second

// podRec is what the observer knows of one pod.
type podRec struct {
	app          string // namespace/name of its app
	kind         string
	queue        string // leaf path
	role         capacity.Role
	request      resources.Vector
	submitted    time.Time
	bound        time.Time
	capType      capacity.Type
	finished     bool // succeeded, or removed by its app
	lost         bool // on a node that was taken away
	deleted      bool
	spotRelevant bool
	// rack and block: the node's sandbox rack and block labels at its bind.
	rack, block string
}

func (r *podRec) running() bool { return !r.bound.IsZero() && !r.finished && !r.lost && !r.deleted }
func (r *podRec) pending() bool { return r.bound.IsZero() && !r.finished && !r.lost && !r.deleted }

// gangRec follows one gang: a training job, or a Spark app with a reservation.
type gangRec struct {
	kind, key    string
	quorum       int
	admitted     bool // reached its quorum at some moment (see boundLocked)
	submitted    time.Time
	admittedAt   time.Time
	partialSince time.Time
	partialBound int // members bound when it became partial
	partial      bool
	// placement: a training's topology constraint and DRA GPUs, for the
	// report of the domains it spanned; empty for other gangs.
	placement string
}

// queueAcc accumulates a queue's allocation and fair share over samples.
type queueAcc struct {
	alloc, fair float64 // CPU cores, summed over samples
	samples     int
}

// observer follows the cluster by watch and keeps what the report needs.
type observer struct {
	mu        sync.Mutex
	clock     clock.Clock
	tree      *queue.Tree
	nodes     corelisters.NodeLister
	pods      map[string]*podRec
	gangs     map[string]*gangRec
	acc       map[string]*queueAcc
	lost      map[string]bool // apps lost to interruptions
	preempted map[string]bool // apps lost to preemption
	log       []string
	start     time.Time
	scale     float64
	points    []SeriesPoint // one per sample, for the charts
	marks     []Mark
}

func newObserver(clk clock.Clock, tree *queue.Tree, nodes corelisters.NodeLister, scale float64) *observer {
	return &observer{clock: clk, tree: tree, nodes: nodes, scale: scale, pods: map[string]*podRec{},
		gangs: map[string]*gangRec{}, acc: map[string]*queueAcc{}, lost: map[string]bool{}, preempted: map[string]bool{}}
}

func (o *observer) watch(informer cache.SharedIndexInformer) error {
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { o.observe(obj, false) },
		UpdateFunc: func(_, obj any) { o.observe(obj, false) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			o.observe(obj, true)
		},
	})
	return err
}

// submitted records pods about to be created, with their app.
func (o *observer) submitted(a *app, pods []cluster.Pod) {
	now := o.clock.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range pods {
		obj, err := p.Object()
		if err != nil {
			continue
		}
		leaf := ""
		if o.tree != nil {
			if q, err := o.tree.Place(p.Namespace, p.Labels[queue.LabelQueue]); err == nil {
				leaf = q.Path
			}
		}
		o.pods[p.Namespace+"/"+p.Name] = &podRec{app: a.key(), kind: a.kind, queue: leaf, role: capacity.RoleOf(p.Labels),
			request: resources.FromList(obj.Spec.Containers[0].Resources.Requests), submitted: now}
	}
	switch {
	case a.kind == kindTraining && o.gangs[a.key()] == nil:
		o.gangs[a.key()] = &gangRec{kind: a.kind, key: a.key(), quorum: a.training.Workers, placement: a.training.placement(), submitted: now}
	case a.kind == kindSpark && a.spark.MinExecutors > 0 && o.gangs[a.key()] == nil:
		o.gangs[a.key()] = &gangRec{kind: a.kind, key: a.key(), quorum: 1 + a.spark.MinExecutors, submitted: now}
	}
}

func (o *observer) observe(obj any, deleted bool) {
	p, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	now := o.clock.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.pods[p.Namespace+"/"+p.Name]
	if r == nil {
		return
	}
	if p.Spec.NodeName != "" && r.bound.IsZero() {
		o.boundLocked(r, p.Spec.NodeName, now)
	}
	// A pod the world took away with its node stays lost when its last
	// status update, racing the deletion, says it succeeded: the cluster no
	// longer has it.
	if p.Status.Phase == v1.PodSucceeded && !r.lost {
		r.finished = true
	}
	if deleted {
		r.deleted = true
	}
}

// boundLocked records a pod's first bind and, for a member of a gang not yet
// admitted, whether the gang now holds its quorum. Admission is followed
// here, bind by bind, and not in the samples taken a second apart: a gang
// whose member is lost (to a spot interruption) or finishes within a second
// of the quorum's bind would never be seen whole by a sample.
func (o *observer) boundLocked(r *podRec, node string, now time.Time) {
	r.bound = now
	if n, err := o.nodes.Get(node); err == nil {
		r.capType = capacity.TypeOf(n.Labels)
		r.rack, r.block = n.Labels[LabelRack], n.Labels[LabelBlock]
	}
	g := o.gangs[r.app]
	if g == nil || g.admitted {
		return
	}
	bound := 0
	for _, m := range o.pods {
		if m.app == r.app && m.running() {
			bound++
		}
	}
	if bound >= g.quorum {
		g.admitted, g.admittedAt = true, now
	}
}

// podLost records a pod that goes with an interrupted node. The world found
// it on the node through the API; the watch may not have shown its bind yet,
// so the bind is recorded first.
func (o *observer) podLost(p *v1.Pod) {
	now := o.clock.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	if r := o.pods[p.Namespace+"/"+p.Name]; r != nil {
		if p.Spec.NodeName != "" && r.bound.IsZero() {
			o.boundLocked(r, p.Spec.NodeName, now)
		}
		r.lost = true
	}
}

// appLost records an app that ended before finishing: its driver or a
// worker went with an interrupted node, or was preempted.
func (o *observer) appLost(a *app, interrupted bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if interrupted {
		o.lost[a.key()] = true
		o.logf("%s %s lost to a spot interruption", a.kind, a.key())
		return
	}
	o.preempted[a.key()] = true
	o.logf("%s %s lost: a driver or worker was preempted", a.kind, a.key())
}

// wasLost reports whether the pod went with an interrupted node.
func (o *observer) wasLost(p *v1.Pod) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.pods[p.Namespace+"/"+p.Name]
	return r != nil && r.lost
}

func (o *observer) event(msg string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.logf("%s", msg)
}

// mark records an event that the report's charts mark (a spot
// interruption), with a short label, and logs it.
func (o *observer) mark(msg, label string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.logf("%s", msg)
	o.marks = append(o.marks, Mark{At: o.traceTime(o.clock.Now()), Label: label})
}

func (o *observer) logf(format string, args ...any) {
	o.log = append(o.log, fmt.Sprintf("[%s] ", fmtTrace(o.traceTime(o.clock.Now())))+fmt.Sprintf(format, args...))
}

// traceTime converts a moment to trace time since the start.
func (o *observer) traceTime(t time.Time) time.Duration {
	return time.Duration(float64(t.Sub(o.start)) * o.scale)
}

// snapshot is the state of the run at one moment.
type snapshot struct {
	at                time.Duration // trace time
	running, pending  int
	spot, onDemand    int
	gangsWaiting      int
	alloc, fair, want map[string]float64 // CPU cores by leaf queue
}

// sample takes a snapshot, accumulates shares and follows gangs.
func (o *observer) sample() snapshot {
	now := o.clock.Now()
	capacityV := resources.Vector{}
	if nodes, err := o.nodes.List(labels.Everything()); err == nil {
		for _, n := range nodes {
			capacityV.Add(resources.FromList(n.Status.Allocatable))
		}
	}
	delete(capacityV, v1.ResourcePods)
	o.mu.Lock()
	defer o.mu.Unlock()
	s := snapshot{at: o.traceTime(now), alloc: map[string]float64{}, fair: map[string]float64{}, want: map[string]float64{}}
	usage, demand := map[string]resources.Vector{}, map[string]resources.Vector{}
	boundBy := map[string]int{}
	waitingExec := map[string]int{} // Spark executors created and not bound, by app
	for _, r := range o.pods {
		req := r.request.Clone()
		delete(req, v1.ResourcePods)
		switch {
		case r.running():
			s.running++
			if r.capType == capacity.Spot {
				s.spot++
			} else {
				s.onDemand++
			}
			addPath(usage, r.queue, req)
			addPath(demand, r.queue, req)
			boundBy[r.app]++
		case r.pending():
			s.pending++
			addPath(demand, r.queue, req)
			if r.role == capacity.RoleExecutor {
				waitingExec[r.app]++
			}
		}
	}
	if o.tree != nil {
		shares := fairshare.Compute(fairshare.Input{Tree: o.tree, Capacity: capacityV, Usage: usage, Demand: demand})
		for _, q := range o.tree.Leaves() {
			a := o.acc[q.Path]
			if a == nil {
				a = &queueAcc{}
				o.acc[q.Path] = a
			}
			alloc := float64(usage[q.Path][v1.ResourceCPU]) / 1000
			fair := float64(shares.Fair[q.Path][v1.ResourceCPU]) / 1000
			s.alloc[q.Path], s.fair[q.Path] = alloc, fair
			s.want[q.Path] = float64(demand[q.Path][v1.ResourceCPU])/1000 - alloc
			if demand[q.Path][v1.ResourceCPU] > 0 {
				a.alloc += alloc
				a.fair += fair
				a.samples++
			}
		}
	}
	for _, g := range o.gangs {
		b := boundBy[g.key]
		// Only on the way to the quorum: a gang that reached it may later
		// have fewer bound (members finish, are lost or replaced). A Spark
		// app's executors are created once its driver runs, so a bound
		// driver alone is not a partial gang; executors that exist and
		// cannot bind while the app is short of its quorum are.
		short := !g.admitted && b > 0 && b < g.quorum
		if g.kind == kindSpark {
			short = short && waitingExec[g.key] > 0
		}
		switch {
		case short && !o.lost[g.key] && !o.preempted[g.key]:
			if g.partialSince.IsZero() {
				g.partialSince, g.partialBound = now, b
			} else if now.Sub(g.partialSince) > partialGrace && !g.partial {
				g.partial = true
				o.logf("%s %s partially bound: %d of its quorum of %d bound since %s", g.kind, g.key, g.partialBound, g.quorum, fmtTrace(o.traceTime(g.partialSince)))
			}
		default:
			g.partialSince = time.Time{}
		}
		if b == 0 && !g.admitted && !o.lost[g.key] {
			s.gangsWaiting++
		}
	}
	o.points = append(o.points, SeriesPoint{At: s.at, Running: s.running, Pending: s.pending, GangsWaiting: s.gangsWaiting,
		Spot: s.spot, OnDemand: s.onDemand, HeldCPU: maps.Clone(s.alloc), FairCPU: maps.Clone(s.fair)})
	return s
}

func addPath(m map[string]resources.Vector, leaf string, v resources.Vector) {
	for p := leaf; p != ""; p = queue.ParentPath(p) {
		if m[p] == nil {
			m[p] = resources.Vector{}
		}
		m[p].Add(v)
	}
}

// finished reports whether every submitted pod has finished, been lost or
// removed: the trace has played out.
func (o *observer) finished() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range o.pods {
		if r.pending() || r.running() {
			return false
		}
	}
	return true
}

// percentile of sorted durations.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(q*float64(len(ds))+0.5) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

func sortedDurations(ds []time.Duration) []time.Duration {
	slices.Sort(ds)
	return ds
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func fmtTrace(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= time.Hour {
		return fmt.Sprintf("%dh%02dm%02ds", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
	}
	return fmt.Sprintf("%02dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}
