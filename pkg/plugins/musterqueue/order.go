package musterqueue

import (
	"context"
	"math"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	fwk "k8s.io/kube-scheduler/framework"

	"muster.dev/muster/pkg/queue"
)

var _ fwk.QueueSortPlugin = &Plugin{}

// standingsEvery is how often the queues' standing against their fair
// shares is read for the order across queues. The scheduling queue's heap
// is not re-sorted when it changes: a refresh applies to the pods pushed
// and popped after it, so it is kept coarse.
const standingsEvery = time.Second

// order is what MusterQueue's QueueSort knows of each pending pod: when it
// arrived, and the part of its place in the order that does not change
// while it waits (cached: Less runs many times per pod; the queues'
// standings come from the runtime at each comparison).
type order struct {
	mu      sync.Mutex
	entries map[types.UID]*orderEntry
}

type orderEntry struct {
	// seen is when muster first saw the pod: a creation time is kept to
	// the second, too coarse for first come first served.
	seen time.Time
	// key is the cached part of its key, computed under tree (nil: not
	// computed yet).
	key  *orderKey
	tree *queue.Tree
}

func newOrder() *order { return &order{entries: map[types.UID]*orderEntry{}} }

func (o *order) arrive(uid types.UID, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.entries[uid]; !ok {
		o.entries[uid] = &orderEntry{seen: now}
	}
}

// changed drops the cached key of a pod that changed (its labels may place
// it elsewhere).
func (o *order) changed(uid types.UID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if e, ok := o.entries[uid]; ok {
		e.key = nil
	}
}

func (o *order) forget(uid types.UID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.entries, uid)
}

// cached returns the pod's cached key under tree, and when it was first
// seen.
func (o *order) cached(uid types.UID, tree *queue.Tree) (*orderKey, time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.entries[uid]
	if !ok {
		return nil, time.Time{}
	}
	if e.key != nil && e.tree == tree {
		return e.key, e.seen
	}
	return nil, e.seen
}

func (o *order) store(uid types.UID, tree *queue.Tree, k orderKey) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if e, ok := o.entries[uid]; ok {
		e.key, e.tree = &k, tree
	}
}

// runStandings refreshes the standings while ctx lasts.
func (pl *Plugin) runStandings(ctx context.Context) {
	var seen uint64
	for {
		if v := pl.rt.Ledger.Version(); v != seen || !pl.rt.Standings() {
			seen = v
			pl.refreshStandings()
		}
		select {
		case <-ctx.Done():
			return
		case <-pl.rt.Clock.After(standingsEvery):
		}
	}
}

func (pl *Plugin) refreshStandings() {
	shares, in := pl.rt.Shares()
	if in.Tree == nil {
		return
	}
	m := make(map[string]float64, len(in.Tree.Queues))
	for _, q := range in.Tree.Queues {
		if q.IsLeaf() {
			m[q.Path] = shares.Standing(q.Path, in.Usage[q.Path])
		}
	}
	pl.rt.SetStandings(m)
}

// orderKey is where an entity stands in the scheduling queue.
type orderKey struct {
	leaf     string // not compared: the standing is the leaf's
	standing float64
	priority int32 // 0 in a fifo queue
	// arrived: the pod's creation, or its gang's first member's; then when
	// muster first saw the pod (none for a gang member), then its group (a
	// gang's members stay together), then when it was last queued.
	arrived time.Time
	seen    time.Time
	group   string
	queued  time.Time
}

// Less implements fwk.QueueSortPlugin. Across leaf queues, the queue that
// stands lowest against its fair share goes first; within a queue, by
// priority then arrival (ordering: priority, the default) or by arrival
// only (ordering: fifo); a gang by its first member's arrival. Pods muster
// cannot place yet are ordered as kube-scheduler's PrioritySort does.
func (pl *Plugin) Less(a, b fwk.QueuedEntityInfo) bool {
	return pl.keyOf(a).before(pl.keyOf(b))
}

// before is lexicographic, so that the order is total (the heap needs
// that): a fifo queue's pods carry no priority, and pods of one queue share
// its standing.
func (k orderKey) before(o orderKey) bool {
	if k.standing != o.standing {
		return k.standing < o.standing
	}
	if k.priority != o.priority {
		return k.priority > o.priority
	}
	if !k.arrived.Equal(o.arrived) {
		return k.arrived.Before(o.arrived)
	}
	if !k.seen.Equal(o.seen) {
		return k.seen.Before(o.seen)
	}
	if k.group != o.group {
		return k.group < o.group
	}
	return k.queued.Before(o.queued)
}

type podEntity interface{ GetPodInfo() fwk.PodInfo }

func (pl *Plugin) keyOf(e fwk.QueuedEntityInfo) orderKey {
	pe, ok := e.(podEntity)
	if !ok || pe.GetPodInfo() == nil {
		return orderKey{priority: e.GetPriority(), queued: e.GetTimestamp(), arrived: e.GetTimestamp()}
	}
	p := pe.GetPodInfo().GetPod()
	t := pl.rt.Tree()
	c, seen := pl.order.cached(p.UID, t)
	var k orderKey
	if c != nil {
		k = *c
	} else {
		var cache bool
		k, cache = pl.staticKey(p, t, seen)
		if cache {
			pl.order.store(p.UID, t, k)
		}
	}
	k.queued = e.GetTimestamp()
	if k.leaf != "" {
		if k.standing = pl.rt.Standing(k.leaf); math.IsNaN(k.standing) {
			k.standing = 0
		}
	}
	return k
}

// staticKey is the part of a pod's key that does not change while it
// waits; false when it may still change (a gang member whose gang muster
// has not recorded yet, a pod it cannot place).
func (pl *Plugin) staticKey(p *v1.Pod, t *queue.Tree, seen time.Time) (orderKey, bool) {
	k := orderKey{priority: corev1helpers.PodPriority(p), arrived: p.CreationTimestamp.Time, seen: seen, group: "pod/" + string(p.UID)}
	leaf, settled := "", true
	if ref, isMember := pl.rt.GangOf(p); isMember {
		q, first, known := pl.rt.Gangs.Order(ref)
		if known {
			// A gang's members stay together: by its first member, then
			// by the gang.
			leaf, k.arrived, k.seen, k.group = q, first, time.Time{}, "gang/"+ref.String()
		}
		settled = known
	}
	var q *queue.Queue
	if leaf != "" && t != nil {
		q = t.Get(leaf)
	}
	if q == nil {
		var perr *queue.PlacementError
		if q, perr = pl.rt.Place(p); perr != nil {
			return k, false
		}
	}
	if q.Ordering == queue.OrderFIFO {
		k.priority = 0
	}
	k.leaf = q.Path
	return k, settled
}

// arrive notes a pod muster schedules when it is first seen.
func (pl *Plugin) arrive(p *v1.Pod) {
	if p.Spec.SchedulerName == pl.rt.Profile && p.Spec.NodeName == "" {
		pl.order.arrive(p.UID, pl.rt.Clock.Now())
	}
}
