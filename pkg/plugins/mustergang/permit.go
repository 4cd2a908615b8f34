package mustergang

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/profile"
	"muster.dev/muster/pkg/waitreason"
)

// Reserve takes one of the gang's slots on the chosen node for the member,
// moving its share of the gang's quota to the pod. A member beyond the
// reservation takes its own quota, checked against the queue's limits.
func (pl *Plugin) Reserve(ctx context.Context, state fwk.CycleState, pod *v1.Pod, node string) *fwk.Status {
	cs := readState(state)
	if !cs.member {
		return nil
	}
	key, req := profile.Key(pod), pl.rt.PodRequest(pod)
	if pl.reg.Gone(key) {
		// Deleted while this cycle held it: nothing may be taken for it.
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("%s/%s was deleted", pod.Namespace, pod.Name))
	}
	if cs.slots && pl.reg.Claim(cs.ref, key, node, req) {
		pl.rt.Ledger.Transfer(gangKey(cs.ref), key, req)
		return nil
	}
	info, _ := pl.reg.Get(cs.ref)
	leaf := pl.rt.Tree()
	if leaf == nil {
		return fwk.NewStatus(fwk.Unschedulable, "no valid queue configuration is in force")
	}
	q := leaf.Get(info.Queue)
	if q == nil {
		return fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("%s: queue %s no longer exists", cs.ref, info.Queue))
	}
	if lerr := pl.rt.Ledger.Reserve(key, q, req); lerr != nil {
		return fwk.NewStatus(fwk.Unschedulable, lerr.Error())
	}
	pl.rt.ReclaimAdmitted(key) // if it reclaimed, the ledger holds its room now
	pl.reg.Assume(cs.ref, key)
	return nil
}

// Unreserve undoes Reserve. For a gang still short of its quorum, one
// member failing fails the admission: the whole gang is released.
func (pl *Plugin) Unreserve(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ string) {
	cs := readState(state)
	if !cs.member {
		return
	}
	pl.rt.Ledger.Unreserve(profile.Key(pod))
	info, ok := pl.reg.Get(cs.ref)
	if !ok {
		return
	}
	if info.Phase != gang.PhaseAdmitted {
		pl.reg.Unassume(cs.ref, profile.Key(pod))
		return
	}
	timedOut := !pl.clock.Now().Before(info.Deadline())
	reason := fmt.Sprintf("member %s/%s could not be bound", pod.Namespace, pod.Name)
	if timedOut {
		reason = fmt.Sprintf("timed out after %s with %d of %d members placed", info.Spec.Timeout, info.Assumed+info.Bound, info.Spec.MinMember)
	}
	pl.release(ctx, cs.ref, reason, timedOut)
}

// Permit holds a member of an admitted gang until its quorum is assumed,
// then lets every waiting member through together.
func (pl *Plugin) Permit(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ string) (*fwk.Status, time.Duration) {
	cs := readState(state)
	if !cs.member {
		return nil, 0
	}
	if pl.reg.Gone(profile.Key(pod)) {
		// Deleted before it could wait: no release or delete handler will
		// find it among the waiting pods to reject it.
		return fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("%s/%s was deleted", pod.Namespace, pod.Name)), 0
	}
	info, ok := pl.reg.Get(cs.ref)
	if !ok || info.Phase != gang.PhaseAdmitted {
		return nil, 0 // quorum already bound: members beyond it go one by one
	}
	held, quorum := pl.reg.Held(cs.ref)
	if held < quorum {
		klog.FromContext(ctx).V(4).Info("Gang member waits for its quorum", "pod", klog.KObj(pod), "gang", cs.ref.String(), "held", held, "quorum", quorum)
		return fwk.NewStatus(fwk.Wait, fmt.Sprintf("%s: %d of %d members placed", cs.ref, held, quorum)), pl.remaining(info)
	}
	pl.handle.IterateOverWaitingPods(func(wp fwk.WaitingPod) {
		if ref, ok := pl.rt.GangOf(wp.GetPod()); ok && ref == cs.ref {
			wp.Allow(Name)
		}
	})
	pl.markScheduled(cs.ref, held)
	klog.FromContext(ctx).V(2).Info("Gang quorum placed; binding", "gang", cs.ref.String(), "members", held)
	return nil, 0
}

// release undoes a gang's admission: its slots and quota are freed and the
// members waiting at Permit are rejected (each is then unreserved and
// retried). timedOut starts a backoff and counts a timeout.
func (pl *Plugin) release(ctx context.Context, ref gang.Ref, reason string, timedOut bool) {
	var backoff time.Time
	code := waitreason.Released
	if timedOut {
		backoff = pl.clock.Now().Add(time.Duration(pl.args.BackoffSeconds) * time.Second)
		code = waitreason.BackingOff
	}
	keys := pl.reg.Release(ref, code, reason, backoff)
	pl.rt.Ledger.Remove(gangKey(ref))
	waiting := map[string]bool{}
	for _, k := range keys {
		waiting[k] = true
	}
	pl.handle.IterateOverWaitingPods(func(wp fwk.WaitingPod) {
		if waiting[string(wp.GetPod().UID)] {
			wp.Reject(Name, fmt.Sprintf("%s released: %s", ref, reason))
		}
	})
	klog.FromContext(ctx).V(2).Info("Gang released", "gang", ref.String(), "reason", reason, "rejected", len(keys))
	if timedOut {
		pl.timedOut(ctx, ref, reason)
	}
	pl.activate(ctx, ref, "")
}
