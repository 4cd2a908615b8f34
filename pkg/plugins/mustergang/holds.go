package mustergang

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/profile"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// A gang at the head of its leaf queue that does not fit yet holds the room
// its plan needs (gang.Hold), so that the queue's later or lower-priority
// pods, and pods of queues above their fair share, cannot take every slot
// that frees up before it is whole: no starvation. Room it cannot use stays
// free for them (backfill). Reclaim of guarantees ignores holds: another
// queue's guarantee is never blocked by them.

// subject is how the holds see a pod about to take room (ref: its gang, if
// any; arrived: its gang's first member's arrival for a member).
func (pl *Plugin) subject(pod *v1.Pod, ref gang.Ref, leaf *queue.Queue, arrived time.Time) gang.Subject {
	prio := corev1helpers.PodPriority(pod)
	if leaf.Ordering == queue.OrderFIFO {
		prio = 0
	}
	return gang.Subject{Ref: ref, Leaf: leaf.Path, Priority: prio, Arrived: arrived, AboveFairShare: pl.rt.Standing(leaf.Path) > 1}
}

// heldFrom is the room, by node, that holds keep from a pod outside gangs
// (or a gang's member beyond its reservation).
func (pl *Plugin) heldFrom(pod *v1.Pod, ref gang.Ref) map[string]resources.Vector {
	if pl.holds.Len() == 0 {
		return nil
	}
	leaf, perr := pl.rt.Place(pod)
	if perr != nil {
		return nil // MusterQueue refuses it
	}
	return pl.holds.For(pl.subject(pod, ref, leaf, pod.CreationTimestamp.Time))
}

// offerHold makes the gang, refused for room, hold what its plan needs if it
// stands at the head of its queue: the plan counts as free what the queue's
// own running pods hold (it frees as they finish), and else takes the
// nodes as if empty.
func (a *admission) offerHold(ctx context.Context) {
	pl := a.pl
	info, ok := pl.reg.Get(a.ref)
	if !ok {
		return
	}
	potential := make([]gang.Node, len(a.free))
	for i, n := range a.free {
		f := n.Free.Clone()
		for _, pi := range a.infos[i].GetPods() {
			p := pi.GetPod()
			if p.Spec.SchedulerName != pl.rt.Profile {
				continue
			}
			if _, leaf, ok := pl.rt.Ledger.Lookup(profile.Key(p)); ok && leaf == a.leaf.Path {
				f.Add(profile.PodRequest(p))
			}
		}
		potential[i] = gang.Node{Name: n.Name, Free: f}
	}
	plan, short := gang.PlanWithPolicies(potential, a.members, a.base, a.views, a.policies)
	if short != nil {
		if plan, short = gang.PlanWithPolicies(a.allocatable, a.members, a.base, a.views, a.policies); short != nil {
			return
		}
	}
	need := map[string]resources.Vector{}
	for i, n := range plan.Node {
		name := a.objs[n].Name
		if need[name] == nil {
			need[name] = resources.Vector{}
		}
		need[name].Add(a.members[i].Request)
	}
	sub := pl.subject(a.pod, a.ref, a.leaf, info.FirstSeen)
	h := gang.Hold{Ref: a.ref, Leaf: a.leaf.Path, Timeouts: info.Timeouts, Priority: sub.Priority, Arrived: info.FirstSeen, Need: need}
	if pl.holds.Offer(h) {
		klog.FromContext(ctx).V(3).Info("Gang holds the room it waits for", "gang", a.ref.String(), "queue", a.leaf.Path, "nodes", len(need))
	}
}

// keepHolds drops the holds of gangs that no longer wait for room.
func (pl *Plugin) keepHolds() {
	if pl.holds.Len() == 0 {
		return
	}
	pl.holds.Keep(func(ref gang.Ref) bool {
		info, ok := pl.reg.Get(ref)
		return ok && info.Phase == gang.PhasePending
	})
}
