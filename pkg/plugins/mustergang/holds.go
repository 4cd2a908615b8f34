package mustergang

import (
	"context"

	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/profile"
	"muster.dev/muster/pkg/resources"
)

// A gang at the head of its leaf queue that does not fit yet holds the room
// its plan needs (gang.Hold; see profile/holds.go for the rules).

// heldFrom is the room, by node, that holds keep from a pod outside gangs
// (ref: the pod itself, leaf nil: placed here).
func (pl *Plugin) heldFrom(pod *v1.Pod, ref gang.Ref) map[string]resources.Vector {
	if pl.holds.Len() == 0 {
		return nil
	}
	if pod.Status.NominatedNodeName != "" || pl.rt.Reclaiming(profile.Key(pod)) {
		return nil // preemption made room for it: that room is its own
	}
	leaf, perr := pl.rt.Place(pod)
	if perr != nil {
		return nil // MusterQueue refuses it
	}
	return pl.rt.HeldFrom(pl.rt.HoldSubject(pod, ref, leaf, pod.CreationTimestamp.Time))
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
				f.Add(pl.rt.PodRequest(p))
			}
		}
		potential[i] = gang.Node{Name: n.Name, Free: f}
	}
	plan, _, short := a.plan(potential)
	if short != nil {
		if plan, _, short = a.plan(a.allocatable); short != nil {
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
	sub := pl.rt.HoldSubject(a.pod, a.ref, a.leaf, info.FirstSeen)
	h := gang.Hold{Ref: a.ref, Leaf: a.leaf.Path, Timeouts: info.Timeouts, Priority: sub.Priority, Arrived: info.FirstSeen, Need: need, Since: pl.clock.Now()}
	if pl.holds.Offer(h) {
		klog.FromContext(ctx).V(3).Info("Gang holds the room it waits for", "gang", a.ref.String(), "queue", a.leaf.Path, "nodes", len(need))
	}
}

// keepHolds drops the holds of gangs that no longer wait for room, and
// those of single pods that no longer wait or held past the default gang
// timeout.
func (pl *Plugin) keepHolds() {
	if pl.holds.Len() == 0 {
		return
	}
	pl.holds.Keep(func(h gang.Hold) bool {
		if h.Ref.Kind == gang.KindPod {
			return true
		}
		info, ok := pl.reg.Get(h.Ref)
		return ok && info.Phase == gang.PhasePending
	})
	pl.rt.KeepPodHolds(time.Duration(pl.args.DefaultTimeoutSeconds) * time.Second)
}

// heldOffBy notes a pod that a hold kept from room it would have taken.
func (pl *Plugin) heldOffBy(pod *v1.Pod) { pl.heldOff.Add(pod) }

// retryHeldOff moves the pods holds kept off room back to the active queue:
// held room was released.
func (pl *Plugin) retryHeldOff(ctx context.Context) {
	pl.heldOff.Activate(klog.FromContext(ctx), pl.handle, "Held room released; retrying the pods it kept off")
}
