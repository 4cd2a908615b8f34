package profile

import (
	"context"
	"math"
	"time"

	v1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// The pod or gang at the head of its leaf queue that does not fit yet holds
// the room it waits for (gang.Hold), so that the queue's later or
// lower-priority pods, and pods of queues above their fair share while the
// holder's queue is below its own, cannot take every slot that frees up
// before it: no starvation. Room it cannot use stays free for them
// (backfill). Reclaim of guarantees ignores holds: another queue's
// guarantee is never blocked by them. MusterGang plans and offers a gang's
// hold; a single pod's is offered here, from MusterQueue's PostFilter.

// HoldSubject is how the holds see a pod about to take room: ref is its
// gang, or the pod itself (gang.PodRef); arrived its gang's first member's
// arrival for a member, else its creation.
func (rt *Runtime) HoldSubject(pod *v1.Pod, ref gang.Ref, leaf *queue.Queue, arrived time.Time) gang.Subject {
	prio := corev1helpers.PodPriority(pod)
	if leaf.Ordering == queue.OrderFIFO {
		prio = 0
	}
	return gang.Subject{Ref: ref, Leaf: leaf.Path, Priority: prio, Arrived: arrived, AboveFairShare: rt.Standing(leaf.Path) > 1}
}

// HeldFrom is the room, by node, that the holds keep from the subject.
func (rt *Runtime) HeldFrom(sub gang.Subject) map[string]resources.Vector {
	if rt.Holds.Len() == 0 {
		return nil
	}
	return rt.Holds.For(sub, rt.owed)
}

// owed reports whether a leaf holds less than its fair share (as last
// recorded; a leaf not computed yet counts as owed).
func (rt *Runtime) owed(leaf string) bool {
	s := rt.Standing(leaf)
	return !math.IsNaN(s) && s < 1
}

// OfferPodHold makes a pod outside gangs that no node takes now, admitted
// by its queue, hold room on one node if it stands at the head of its
// queue: of the nodes that refused it only for now (m), the one closest to
// taking it once the queue's own running pods there finish (they are behind
// it or will end), else once emptied, as a gang's plan does. A pod that
// yielded its hold past timeouts holds behind those that never did.
func (rt *Runtime) OfferPodHold(ctx context.Context, pod *v1.Pod, leaf *queue.Queue, req resources.Vector, m fwk.NodeToStatusReader) {
	if rt.Reclaiming(Key(pod)) || !rt.ClaimsIn(leaf.Path, Key(pod)).IsZero() {
		// Its victims are exiting, or its queue's other preemptors': the
		// room they free is theirs, not to be held against them.
		return
	}
	ref := gang.PodRef(pod.Namespace, pod.Name)
	sub := rt.HoldSubject(pod, ref, leaf, pod.CreationTimestamp.Time)
	if !rt.Holds.Ahead(gang.Hold{Ref: ref, Leaf: leaf.Path, Timeouts: rt.Holds.Yielded(ref), Priority: sub.Priority, Arrived: sub.Arrived}) {
		return // another stands before it at the head of its queue
	}
	lister := rt.Handle.SnapshotSharedLister().NodeInfos()
	infos, err := m.NodesForStatusCode(lister, fwk.Unschedulable)
	if err != nil || len(infos) == 0 {
		return
	}
	held := rt.HeldFrom(sub)
	best, bestMissing, bestEmpty, bestEmptyMissing := "", math.Inf(1), "", math.Inf(1)
	for _, ni := range infos {
		n := ni.Node()
		if n == nil {
			continue
		}
		alloc, used := rt.NodeUsage(ni)
		used.Add(rt.Gangs.ReservedOnNode(n.Name, gang.Ref{}))
		used.Add(held[n.Name])
		free := alloc.Clone()
		free.Sub(used)
		potential := free.Clone()
		for _, pi := range ni.GetPods() {
			p := pi.GetPod()
			if p.Spec.SchedulerName != rt.Profile {
				continue
			}
			if _, l, ok := rt.Ledger.Lookup(Key(p)); ok && l == leaf.Path {
				potential.Add(rt.PodRequest(p))
			}
		}
		missing := shortOf(req, free)
		switch {
		case potential.Covers(req):
			if missing < bestMissing || missing == bestMissing && n.Name < best {
				best, bestMissing = n.Name, missing
			}
		case alloc.Covers(req):
			if missing < bestEmptyMissing || missing == bestEmptyMissing && n.Name < bestEmpty {
				bestEmpty, bestEmptyMissing = n.Name, missing
			}
		}
	}
	if best == "" {
		best = bestEmpty
	}
	if best == "" {
		return
	}
	h := gang.Hold{Ref: ref, Leaf: leaf.Path, Timeouts: rt.Holds.Yielded(ref), Priority: sub.Priority, Arrived: sub.Arrived,
		Need: map[string]resources.Vector{best: req.Clone()}, Since: rt.Clock.Now()}
	if rt.Holds.Offer(h) {
		klog.FromContext(ctx).V(3).Info("Pod holds the room it waits for", "pod", klog.KObj(pod), "queue", leaf.Path, "node", best)
	}
}

// shortOf is the largest fraction of a requested resource that free lacks
// (0 when it fits).
func shortOf(req, free resources.Vector) float64 {
	worst := 0.0
	for name, want := range req {
		if want <= 0 {
			continue
		}
		if lack := float64(want-free[name]) / float64(want); lack > worst {
			worst = lack
		}
	}
	return worst
}

// KeepPodHolds drops the holds of single pods that no longer wait (bound,
// deleted, gone from the informer), and makes those that held longer than
// timeout yield their place.
func (rt *Runtime) KeepPodHolds(timeout time.Duration) {
	if rt.Holds.Len() == 0 {
		return
	}
	lister := rt.Handle.SharedInformerFactory().Core().V1().Pods().Lister()
	now := rt.Clock.Now()
	var yield []gang.Ref
	rt.Holds.Keep(func(h gang.Hold) bool {
		if h.Ref.Kind != gang.KindPod {
			return true
		}
		p, err := lister.Pods(h.Ref.Namespace).Get(h.Ref.Name)
		if err != nil || p.Spec.NodeName != "" || p.DeletionTimestamp != nil {
			return false
		}
		if timeout > 0 && now.Sub(h.Since) >= timeout {
			yield = append(yield, h.Ref)
		}
		return true
	})
	for _, ref := range yield {
		rt.Holds.Yield(ref)
	}
}
