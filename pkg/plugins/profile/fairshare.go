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

// shareCache keeps the last fair-share computation and the inputs it came
// from; it is recomputed only when the ledger or the capacity changed.
type shareCache struct {
	mu        sync.Mutex
	capEpoch  atomic.Uint64 // bumped by node and foreign-pod events
	capSeen   uint64
	capacity  resources.Vector
	ledgerVer uint64
	input     fairshare.Input
	shares    fairshare.Shares
	valid     bool
}

// watchCapacity keeps the capacity epoch current: nodes, and pods bound by
// other schedulers, change what muster's queues can share.
func (rt *Runtime) watchCapacity() error {
	bump := func(any) { rt.shares.capEpoch.Add(1) }
	f := rt.Handle.SharedInformerFactory()
	if rt.devices != nil {
		rt.devices.onCatalogChange(func() { bump(nil) })
	}
	if _, err := f.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: bump, UpdateFunc: func(_, o any) { bump(o) }, DeleteFunc: bump,
	}); err != nil {
		return err
	}
	foreign := func(o any) {
		if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		if p, ok := o.(*v1.Pod); ok && p.Spec.SchedulerName != rt.Profile && p.Spec.NodeName != "" {
			bump(o)
		}
	}
	_, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: foreign, UpdateFunc: func(_, o any) { foreign(o) }, DeleteFunc: foreign,
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
// capacity, and the inputs they were computed from.
func (rt *Runtime) Shares() (fairshare.Shares, fairshare.Input) {
	c := &rt.shares
	c.mu.Lock()
	defer c.mu.Unlock()
	epoch, ver := c.capEpoch.Load(), rt.Ledger.Version()
	if c.valid && epoch == c.capSeen && ver == c.ledgerVer {
		return c.shares, c.input
	}
	rt.refreshCapacity(epoch)
	t, usage := rt.Ledger.Snapshot()
	c.ledgerVer = rt.Ledger.Version()
	in := fairshare.Input{Tree: t, Capacity: c.capacity, Usage: map[string]resources.Vector{}, Demand: map[string]resources.Vector{}}
	for path, u := range usage {
		used := u.Used()
		delete(used, v1.ResourcePods) // a count of pods is a limit, not a share
		in.Usage[path] = used
		in.Demand[path] = used.Plus(u.Pending)
		delete(in.Demand[path], v1.ResourcePods)
	}
	c.input, c.shares, c.valid = in, fairshare.Compute(in), true
	return c.shares, c.input
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
// for everyone.
func (rt *Runtime) FairShareAdmit(leaf *queue.Queue, req resources.Vector) *fairshare.Refusal {
	root := rt.Ledger.Usage(queue.RootName)
	demand := root.Used().Plus(root.Pending)
	delete(demand, v1.ResourcePods)
	rt.shares.mu.Lock()
	rt.refreshCapacity(rt.shares.capEpoch.Load())
	capacity := rt.shares.capacity
	rt.shares.mu.Unlock()
	if fairshare.Uncontended(capacity, demand, withoutPods(req)) {
		return nil
	}
	s, in := rt.Shares()
	if in.Tree == nil || in.Tree.Get(leaf.Path) != leaf {
		return nil // a new tree came in between: the next attempt decides
	}
	return fairshare.Admit(leaf, req, s, in)
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
