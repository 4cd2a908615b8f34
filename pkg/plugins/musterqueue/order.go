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

// order is when each pod arrived, for MusterQueue's QueueSort (which reads
// the queues' standings from the runtime).
type order struct {
	mu sync.Mutex
	// arrived is when each pod was first seen: a creation time is kept to
	// the second, too coarse for first come first served.
	arrived map[types.UID]time.Time
}

func newOrder() *order { return &order{arrived: map[types.UID]time.Time{}} }

func (o *order) arrive(uid types.UID, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.arrived[uid]; !ok {
		o.arrived[uid] = now
	}
}

func (o *order) forget(uid types.UID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.arrived, uid)
}

func (o *order) arrival(uid types.UID) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.arrived[uid]
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
	k := orderKey{priority: e.GetPriority(), queued: e.GetTimestamp(), arrived: e.GetTimestamp()}
	pe, ok := e.(podEntity)
	if !ok || pe.GetPodInfo() == nil {
		return k
	}
	p := pe.GetPodInfo().GetPod()
	k.priority = corev1helpers.PodPriority(p)
	k.arrived, k.seen, k.group = p.CreationTimestamp.Time, pl.order.arrival(p.UID), "pod/"+string(p.UID)
	leaf := ""
	if ref, isMember := pl.rt.GangOf(p); isMember {
		if q, first, known := pl.rt.Gangs.Order(ref); known {
			// A gang's members stay together: by its first member, then
			// by the gang.
			leaf, k.arrived, k.seen, k.group = q, first, time.Time{}, "gang/"+ref.String()
		}
	}
	t := pl.rt.Tree()
	var q *queue.Queue
	if leaf != "" && t != nil {
		q = t.Get(leaf)
	}
	if q == nil {
		var perr *queue.PlacementError
		if q, perr = pl.rt.Place(p); perr != nil {
			return k
		}
	}
	if q.Ordering == queue.OrderFIFO {
		k.priority = 0
	}
	k.standing = pl.rt.Standing(q.Path)
	if math.IsNaN(k.standing) {
		k.standing = 0
	}
	return k
}

// arrive notes a pod muster schedules when it is first seen.
func (pl *Plugin) arrive(p *v1.Pod) {
	if p.Spec.SchedulerName == pl.rt.Profile && p.Spec.NodeName == "" {
		pl.order.arrive(p.UID, pl.rt.Clock.Now())
	}
}
