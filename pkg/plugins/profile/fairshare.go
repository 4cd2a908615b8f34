package profile

import (
	"sync"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"muster.dev/muster/pkg/fairshare"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// shareCache keeps the fair shares, the gate built on them, and the last
// whole picture (Shares).
//
// Fair shares depend on demand, capacity and the tree, not on usage: a pod
// reserved or bound moves from pending to used and leaves its queue's
// demand as it was. So they are computed again only when the ledger's
// demand version, the capacity or the tree changed, and between those the
// gate follows usage leaf by leaf from the ledger's journal
// (queue.Ledger.UsageChanges): a bind costs O(depth), not O(queues).
type shareCache struct {
	mu       sync.Mutex
	capEpoch atomic.Uint64 // bumped by node and foreign-pod events
	capSeen  uint64
	capacity resources.Vector

	gate       *fairshare.Gate
	fair       map[string]resources.Vector // the gate's fair shares
	gateVer    uint64                      // the ledger's usage version the gate is at
	gateDemand uint64                      // the demand version its shares are for
	gateCap    uint64                      // the capacity epoch they are for

	ledgerVer uint64
	input     fairshare.Input
	shares    fairshare.Shares
	valid     bool
}

// watchCapacity keeps the capacity epoch current: nodes, and pods bound by
// other schedulers, change what muster's queues can share. Updates that
// change neither (a node's heartbeat or conditions, a foreign pod's status)
// leave it alone, so a large cluster's routine writes do not make every
// pod pay for a new capacity and new fair shares.
func (rt *Runtime) watchCapacity() error {
	bump := func(any) { rt.shares.capEpoch.Add(1) }
	f := rt.Handle.SharedInformerFactory()
	if rt.devices != nil {
		rt.devices.onCatalogChange(func() { bump(nil) })
	}
	if _, err := f.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: bump,
		UpdateFunc: func(o, n any) {
			on, ok1 := o.(*v1.Node)
			nn, ok2 := n.(*v1.Node)
			if !ok1 || !ok2 || !resources.FromList(on.Status.Allocatable).Equal(resources.FromList(nn.Status.Allocatable)) {
				bump(n)
			}
		},
		DeleteFunc: bump,
	}); err != nil {
		return err
	}
	foreign := func(o any) bool {
		if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		p, ok := o.(*v1.Pod)
		return ok && p.Spec.SchedulerName != rt.Profile && p.Spec.NodeName != ""
	}
	counted := func(o any) bool { // what computeCapacity subtracts
		p, ok := o.(*v1.Pod)
		return ok && foreign(p) && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed
	}
	_, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if foreign(o) {
				bump(o)
			}
		},
		UpdateFunc: func(o, n any) {
			if counted(o) != counted(n) || (counted(n) && !rt.PodRequest(o.(*v1.Pod)).Equal(rt.PodRequest(n.(*v1.Pod)))) {
				bump(n)
			}
		},
		DeleteFunc: func(o any) {
			if foreign(o) {
				bump(o)
			}
		},
	})
	return err
}

// computeCapacity is what muster's queues share: the nodes' allocatable
// minus the requests of pods other schedulers bound.
func (rt *Runtime) computeCapacity() resources.Vector {
	f := rt.Handle.SharedInformerFactory()
	total := resources.Vector{}
	nodes, _ := f.Core().V1().Nodes().Lister().List(labels.Everything())
	for _, n := range nodes {
		total.Add(resources.FromList(n.Status.Allocatable))
	}
	if rt.devices != nil {
		total.Add(rt.devices.inventoryNow().Total()) // DRA devices by class
	}
	pods, _ := f.Core().V1().Pods().Lister().List(labels.Everything())
	for _, p := range pods {
		if p.Spec.NodeName == "" || p.Spec.SchedulerName == rt.Profile || p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			continue
		}
		total.Sub(rt.PodRequest(p))
	}
	for r, a := range total {
		if a < 0 {
			total[r] = 0
		}
	}
	delete(total, v1.ResourcePods)
	return total
}

// Shares returns the fair shares for the current usage, demand and
// capacity, and the inputs they were computed from. It copies every
// queue's usage (O(queues)): for status, metrics and the order's
// standings, not for every pod.
func (rt *Runtime) Shares() (fairshare.Shares, fairshare.Input) {
	c := &rt.shares
	c.mu.Lock()
	defer c.mu.Unlock()
	epoch, ver := c.capEpoch.Load(), rt.Ledger.Version()
	if c.valid && epoch == c.capSeen && ver == c.ledgerVer {
		return c.shares, c.input
	}
	rt.refreshCapacity(epoch)
	t, usage, v := rt.Ledger.SnapshotVersions()
	in := shareInput(t, c.capacity, usage)
	shares := fairshare.Shares{Fair: c.fair, Dominant: fairshare.Dominants(in)}
	if c.gate == nil || c.gate.Tree() != t || c.gateDemand != v.Demand || c.gateCap != c.capSeen {
		shares = fairshare.Compute(in)
	}
	c.ledgerVer, c.input, c.shares, c.valid = v.Usage, in, shares, true
	return c.shares, c.input
}

// shareInput is the fair-share computation's input from a ledger snapshot.
func shareInput(t *queue.Tree, capacity resources.Vector, usage map[string]queue.Usage) fairshare.Input {
	in := fairshare.Input{Tree: t, Capacity: capacity, Usage: map[string]resources.Vector{}, Demand: map[string]resources.Vector{}}
	for path, u := range usage {
		used := usedOf(u)
		in.Usage[path] = used
		in.Demand[path] = used.Plus(u.Pending)
		delete(in.Demand[path], v1.ResourcePods)
	}
	return in
}

// usedOf is what a queue holds, for fair sharing: a count of pods is a
// limit, not a share.
func usedOf(u queue.Usage) resources.Vector {
	used := u.Used()
	delete(used, v1.ResourcePods)
	return used
}

// currentGate returns the fair-share gate at the ledger's current usage:
// brought up to date from the ledger's journal when only usage changed
// since, built anew (the whole tree's fair shares computed) when demand,
// capacity or the tree changed, or the journal does not reach back. c.mu
// must be held and the capacity refreshed.
func (rt *Runtime) currentGate() *fairshare.Gate {
	c := &rt.shares
	if c.gate != nil && c.gateCap == c.capSeen {
		changed, v, ok := rt.Ledger.UsageChanges(c.gateVer)
		if ok && v.Demand == c.gateDemand {
			for path, u := range changed {
				c.gate.SetUsage(path, usedOf(u))
			}
			c.gateVer = v.Usage
			return c.gate
		}
	}
	t, usage, v := rt.Ledger.SnapshotVersions()
	in := shareInput(t, c.capacity, usage)
	s := fairshare.Compute(in)
	c.gate, c.fair = fairshare.NewGate(in, s), s.Fair
	c.gateVer, c.gateDemand, c.gateCap = v.Usage, v.Demand, c.capSeen
	return c.gate
}

// refreshCapacity recomputes the capacity when nodes or other schedulers'
// pods changed since it was last computed. c.mu must be held.
func (rt *Runtime) refreshCapacity(epoch uint64) {
	c := &rt.shares
	if epoch != c.capSeen || c.capacity == nil {
		c.capacity, c.capSeen = rt.computeCapacity(), epoch
	}
}

// FairShareAdmit applies the fair-share gate to a request of a leaf queue.
// When the request and all the demand fit in the capacity together it
// admits at once (fairshare.Uncontended): computing the whole tree's shares
// after every bind would cost O(queues) per pod on a cluster that has room
// for everyone. Otherwise the gate decides, kept current incrementally
// (currentGate).
func (rt *Runtime) FairShareAdmit(leaf *queue.Queue, req resources.Vector) *fairshare.Refusal {
	root := rt.Ledger.Usage(queue.RootName)
	demand := root.Used().Plus(root.Pending)
	delete(demand, v1.ResourcePods)
	c := &rt.shares
	c.mu.Lock()
	defer c.mu.Unlock()
	rt.refreshCapacity(c.capEpoch.Load())
	if fairshare.Uncontended(c.capacity, demand, withoutPods(req)) {
		return nil
	}
	g := rt.currentGate()
	if t := g.Tree(); t == nil || t.Get(leaf.Path) != leaf {
		return nil // a new tree came in between: the next attempt decides
	}
	return g.Admit(leaf, req)
}

func withoutPods(v resources.Vector) resources.Vector {
	if _, ok := v[v1.ResourcePods]; !ok {
		return v
	}
	out := v.Clone()
	delete(out, v1.ResourcePods)
	return out
}

// SetStandings records each leaf queue's standing against its fair share
// (fairshare.Shares.Standing), as last computed for the scheduling queue's
// order.
func (rt *Runtime) SetStandings(m map[string]float64) { rt.standings.Store(&m) }

// Standing is a leaf queue's standing as last recorded: below 1 it holds
// less than its fair share; 0 when not computed yet.
func (rt *Runtime) Standing(leaf string) float64 {
	if m := rt.standings.Load(); m != nil {
		return (*m)[leaf]
	}
	return 0
}

// Standings reports whether any standing was recorded yet.
func (rt *Runtime) Standings() bool { return rt.standings.Load() != nil }
