package mustergang

import (
	"context"
	"fmt"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/metrics"
	"muster.dev/muster/pkg/plugins/profile"
	"muster.dev/muster/pkg/waitreason"
)

// onPod keeps the registry's members in step with the cluster.
func (pl *Plugin) onPod(obj any) {
	p, ok := obj.(*v1.Pod)
	if !ok || p.Spec.SchedulerName != pl.rt.Profile {
		return
	}
	ref, role, ok := pl.sources.identify(p)
	if !ok {
		pl.sources.askDiscovery(p)
		return
	}
	pl.markStatusOf(p, ref)
	if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed || p.DeletionTimestamp != nil {
		pl.forget(p, ref, role)
		return
	}
	gs, err := pl.sources.specOf(pl.ctx, p, ref)
	if err != nil || gs.wait != "" {
		return // PreFilter tells the pod why
	}
	leaf, perr := pl.place(p, gs)
	queuePath := ""
	if perr == nil {
		queuePath = leaf.Path
	}
	m := pl.memberPod(p)
	if p.Spec.NodeName != "" && pl.reg.BoundElsewhere(ref, m.Key, p.Spec.NodeName, m.Request) {
		// Not placed by this scheduler (another replica bound it during a
		// leadership change): the gang no longer holds its share for it;
		// the pod itself is counted as allocated by the shared runtime.
		pl.rt.Ledger.Shrink(gangKey(ref), m.Request)
	}
	pl.observe(pl.ctx, ref, gs.spec, queuePath, m, "")
	// Only a bind can complete a gang: Settle walks the members.
	if m.Bound && pl.reg.Settle(ref) {
		pl.rt.Ledger.Remove(gangKey(ref))
	}
}

// observe records a member. When that completes its gang (a member arrives,
// or a scheduling gate is lifted), the members refused while it was short
// are retried at once, so that each is admitted or says why it waits now:
// no cluster event reaches them (see EventsToRegister). except is the pod in
// the current scheduling cycle, if any.
func (pl *Plugin) observe(ctx context.Context, ref gang.Ref, spec gang.Spec, queuePath string, m gang.Pod, except types.UID) {
	before, known := pl.reg.Get(ref)
	pl.reg.Observe(ref, spec, queuePath, m)
	after, _ := pl.reg.Get(ref)
	if (!known || before.Phase == gang.PhaseWaiting) && after.Phase == gang.PhasePending {
		pl.activate(ctx, ref, except)
	}
}

func (pl *Plugin) onPodDelete(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	p, ok := obj.(*v1.Pod)
	if !ok || p.Spec.SchedulerName != pl.rt.Profile {
		return
	}
	if ref, role, ok := pl.sources.identify(p); ok {
		pl.markStatusOf(p, ref)
		pl.forget(p, ref, role)
	}
}

// forget drops a member that is gone. A Spark driver takes its app's
// reservation with it: executors of a dead driver are never scheduled.
func (pl *Plugin) forget(p *v1.Pod, ref gang.Ref, role gang.Role) {
	pl.reg.Forget(ref, profile.Key(p))
	if role == gang.SparkDriver {
		pl.reg.ReleaseSlots(ref)
		pl.rt.Ledger.Remove(gangKey(ref))
	}
	info, ok := pl.reg.Get(ref)
	if !ok {
		pl.rt.Ledger.Remove(gangKey(ref))
		pl.rt.ReclaimGone(gangKey(ref)) // a gang submitted again under this name starts afresh
		pl.mu.Lock()
		delete(pl.neverFits, ref)
		delete(pl.displacedFrom, ref)
		pl.mu.Unlock()
		return
	}
	// An admission short of members can never reach its quorum: release it
	// now rather than hold its room until the timeout. (A member deleted
	// while waiting at Permit is rejected by the framework and released in
	// Unreserve; this is the member that was not placed yet.)
	if ready := info.Members - info.Gated; info.Phase == gang.PhaseAdmitted && info.Spec.Executors == 0 && ready < int(info.Spec.MinMember) {
		pl.release(pl.ctx, ref, fmt.Sprintf("member %s/%s is gone; %d of %d members may be scheduled", p.Namespace, p.Name, ready, info.Spec.MinMember), false)
	}
}

// onNodeDelete releases the admitted gangs that counted on a node that is
// gone: members waiting at Permit on it would be bound to a node that no
// longer exists, and slots on it can never be taken. The gangs are admitted
// again on the nodes that are left. A bound gang's slots there (a Spark
// driver's executors) are placed again on other nodes.
func (pl *Plugin) onNodeDelete(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	node, ok := obj.(*v1.Node)
	if !ok {
		return
	}
	affected := map[gang.Ref]bool{}
	pl.handle.IterateOverWaitingPods(func(wp fwk.WaitingPod) {
		if p := wp.GetPod(); p.Spec.NodeName == node.Name {
			if ref, ok := pl.rt.GangOf(p); ok {
				affected[ref] = true
			}
		}
	})
	for _, info := range pl.reg.List() {
		if info.Phase == gang.PhaseAdmitted && slices.Contains(pl.reg.SlotNodes(info.Ref), node.Name) {
			affected[info.Ref] = true
		}
	}
	for ref := range affected {
		if info, ok := pl.reg.Get(ref); ok && info.Phase == gang.PhaseAdmitted {
			pl.release(pl.ctx, ref, fmt.Sprintf("node %s was deleted; admitting the gang again on the nodes left", node.Name), false)
		}
	}
	pl.displace(pl.ctx, node.Name, "deleted")
}

// onPodGroupAdd records the members that arrived before their PodGroup (a
// member is not recorded while its PodGroup is missing). A gated member is
// in no scheduling cycle, so nothing else would record it.
func (pl *Plugin) onPodGroupAdd(obj any) {
	pg, ok := obj.(*schedv1alpha1.PodGroup)
	if !ok {
		return
	}
	ref := gang.Ref{Kind: gang.KindPodGroup, Namespace: pg.Namespace, Name: pg.Name}
	pl.markStatus(ref)
	pl.observeMembers(ref)
}

// observeMembers observes the pods of a gang whose source object has just
// arrived: members seen before it could not be told their gang's spec (the
// pod and the object come through different watches, in no fixed order),
// and the member that completes the gang activates the others.
func (pl *Plugin) observeMembers(ref gang.Ref) {
	for _, p := range pl.sources.members(pl.ctx, ref) {
		pl.onPod(p)
	}
}

// onPodGroupUpdate: a PodGroup whose spec changed (minMember) may change
// phase, and a status someone else wrote is put right. muster's own status
// writes come back here too: each costs one more comparison, no write.
func (pl *Plugin) onPodGroupUpdate(_, newObj any) {
	if pg, ok := newObj.(*schedv1alpha1.PodGroup); ok {
		pl.markStatus(gang.Ref{Kind: gang.KindPodGroup, Namespace: pg.Namespace, Name: pg.Name})
	}
}

// onPodGroupDelete releases the admission of a PodGroup's gang when the
// PodGroup is deleted: its members wait for it to exist again, and the room
// held for them is free meanwhile.
func (pl *Plugin) onPodGroupDelete(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pg, ok := obj.(*schedv1alpha1.PodGroup)
	if !ok {
		return
	}
	ref := gang.Ref{Kind: gang.KindPodGroup, Namespace: pg.Namespace, Name: pg.Name}
	pl.unmarkStatus(ref)
	if info, ok := pl.reg.Get(ref); ok && info.Phase == gang.PhaseAdmitted {
		pl.release(pl.ctx, ref, fmt.Sprintf("PodGroup %s/%s was deleted", pg.Namespace, pg.Name), false)
	}
}

// runTimeouts checks every second for gangs past their timeout.
func (pl *Plugin) runTimeouts(ctx context.Context) {
	ticker := pl.clock.NewTicker(time.Second)
	defer ticker.Stop()
	for tick := 1; ; tick++ {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
		if tick%10 == 0 {
			pl.reconcileMembers()
		}
		pl.keepHolds()
		for _, info := range pl.reg.TimedOut(pl.clock.Now()) {
			pl.holds.Drop(info.Ref) // past its timeout, a gang yields its place
			switch info.Phase {
			case gang.PhaseBound:
				// A Spark driver's executors did not all come: free their room.
				pl.reg.ReleaseSlots(info.Ref)
				pl.rt.Ledger.Remove(gangKey(info.Ref))
				klog.FromContext(ctx).V(2).Info("Released the unused reservation of a gang", "gang", info.Ref.String(), "after", info.Spec.Timeout)
			case gang.PhaseAdmitted:
				pl.release(ctx, info.Ref, fmt.Sprintf("timed out after %s with %d of %d members placed",
					info.Spec.Timeout, info.Assumed+info.Bound, info.Spec.MinMember), true)
			case gang.PhaseWaiting:
				// Members never came: nothing is held, but the tenant and the
				// admin hear about it (Event, metric, status) as for any timeout.
				reason := fmt.Sprintf("only %d of %d members exist", info.Members, info.Spec.MinMember)
				if info.Gated > 0 {
					reason = info.Reason // counts the members held by scheduling gates, and names the gates
				}
				pl.reg.Release(info.Ref, info.ReasonCode, reason, pl.clock.Now())
				pl.timedOut(ctx, info.Ref, fmt.Sprintf("not complete within %s: %s", info.Spec.Timeout, reason))
			case gang.PhasePending:
				reason := info.Reason
				if reason == "" {
					reason = "not admitted"
				}
				backoff := pl.clock.Now().Add(time.Duration(pl.args.BackoffSeconds) * time.Second)
				pl.reg.Release(info.Ref, waitreason.BackingOff, reason, backoff)
				pl.timedOut(ctx, info.Ref, fmt.Sprintf("not admitted within %s: %s", info.Spec.Timeout, reason))
			}
		}
	}
}

// timedOut reports a timeout (Event, metric) and schedules the retry.
func (pl *Plugin) timedOut(ctx context.Context, ref gang.Ref, reason string) {
	info, _ := pl.reg.Get(ref)
	metrics.GangTimeouts.WithLabelValues(info.Queue).Inc()
	msg := fmt.Sprintf("%s timed out (%s); its members were released, retrying after %ds", ref, reason, pl.args.BackoffSeconds)
	klog.FromContext(ctx).Info("Gang timed out", "gang", ref.String(), "reason", reason, "timeouts", info.Timeouts)
	members := pl.sources.members(ctx, ref)
	if len(members) > 0 {
		gs, _ := pl.sources.specOf(ctx, members[0], ref)
		pl.event(members[0], gs, v1.EventTypeWarning, ReasonTimedOut, "Admit", msg)
	}
	delay := time.Duration(pl.args.BackoffSeconds) * time.Second
	pl.clock.AfterFunc(delay, func() { pl.activate(ctx, ref, "") })
}

// reconcileMembers forgets members whose pods no longer exist. Deletions
// are normally seen as they happen; this catches a member observed again
// by a scheduling cycle that began before its pod was deleted, which would
// otherwise keep its gang (and what it holds) forever.
func (pl *Plugin) reconcileMembers() {
	for ref, members := range pl.reg.Members() {
		for key, name := range members {
			p, err := pl.sources.pods.Pods(ref.Namespace).Get(name)
			if err == nil && string(p.UID) == key {
				continue
			}
			if err != nil && !apierrors.IsNotFound(err) {
				continue
			}
			gone := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ref.Namespace, Name: name, UID: types.UID(key)}}
			pl.forget(gone, ref, gang.NoRole)
		}
	}
}
