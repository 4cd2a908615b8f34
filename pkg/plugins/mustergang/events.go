package mustergang

import (
	"context"
	"maps"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/gang"
)

// podGroupResource is how kube-scheduler names the PodGroup CRD for events.
const podGroupResource fwk.EventResource = "podgroups.v1alpha1.scheduling.x-k8s.io"

// EventsToRegister: a waiting gang may become admissible when a member is
// bound, a pod goes away or a node appears or grows (room), or its PodGroup
// changes. Admission and the end of a backoff activate the members directly.
//
// The arrival of the member that completes a gang, or the lifting of its
// last scheduling gate, is no cluster event for the other members:
// kube-scheduler reports a new unscheduled pod to plugins only with the
// GenericWorkload gate on, and hands an unscheduled pod's update to that pod
// alone (its SchedulingGates plugin then queues it). observe activates the
// gang's members when their quorum is complete.
func (pl *Plugin) EventsToRegister(context.Context) ([]fwk.ClusterEventWithHint, error) {
	events := []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Add}, QueueingHintFn: pl.afterPodAdd},
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Delete}, QueueingHintFn: pl.afterPodDeleted},
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeAllocatable | fwk.UpdateNodeTaint | fwk.UpdateNodeLabel}, QueueingHintFn: pl.afterRoomFreed},
		// DRA devices: a claim deallocated or gone frees its devices; a
		// ResourceSlice or DeviceClass added or changed may bring some.
		{Event: fwk.ClusterEvent{Resource: fwk.ResourceClaim, ActionType: fwk.Update | fwk.Delete}, QueueingHintFn: pl.afterDevicesChanged},
		{Event: fwk.ClusterEvent{Resource: fwk.ResourceSlice, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: pl.afterDevicesChanged},
		{Event: fwk.ClusterEvent{Resource: fwk.DeviceClass, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: pl.afterDevicesChanged},
	}
	if pl.sources.pgs() != nil { // served at start-up: a PodGroup CRD installed later is not watched by kube-scheduler
		events = append(events, fwk.ClusterEventWithHint{
			Event: fwk.ClusterEvent{Resource: podGroupResource, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: pl.afterPodGroupChange})
	}
	return events, nil
}

// afterPodAdd requeues a waiting member when another member of its gang is
// bound (fwk.Pod Add is an assigned pod's arrival).
func (pl *Plugin) afterPodAdd(_ klog.Logger, pod *v1.Pod, _, newObj any) (fwk.QueueingHint, error) {
	added, ok := newObj.(*v1.Pod)
	if !ok {
		return fwk.Queue, nil
	}
	if len(added.Spec.SchedulingGates) > 0 {
		return fwk.QueueSkip, nil // a gated member does not count toward the quorum
	}
	return pl.sameGang(pod, added), nil
}

// sameGang: Queue when other is another member of pod's gang.
func (pl *Plugin) sameGang(pod, other *v1.Pod) fwk.QueueingHint {
	mine, ok1 := pl.rt.GangOf(pod)
	theirs, ok2 := pl.rt.GangOf(other)
	if ok1 && ok2 && mine == theirs && other.UID != pod.UID {
		return fwk.Queue
	}
	return fwk.QueueSkip
}

// afterRoomFreed requeues members of gangs that wait for room; not gangs
// still short of members or backing off.
func (pl *Plugin) afterRoomFreed(_ klog.Logger, pod *v1.Pod, _, _ any) (fwk.QueueingHint, error) {
	ref, ok := pl.rt.GangOf(pod)
	if !ok {
		return fwk.QueueSkip, nil // other pods this plugin refused were on reserved room: see Filter
	}
	info, ok := pl.reg.Get(ref)
	if !ok || info.Phase == gang.PhaseWaiting || info.BackoffUntil.After(pl.clock.Now()) {
		return fwk.QueueSkip, nil
	}
	return fwk.Queue, nil
}

// afterPodDeleted is afterRoomFreed for a pod deleted or finished, taken
// off the ledger first (Runtime.Gone).
func (pl *Plugin) afterPodDeleted(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	if gone, ok := oldObj.(*v1.Pod); ok {
		pl.rt.Gone(gone)
	}
	return pl.afterRoomFreed(logger, pod, oldObj, newObj)
}

// afterDevicesChanged is afterRoomFreed for members that take DRA devices:
// only devices changed.
func (pl *Plugin) afterDevicesChanged(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	if len(pod.Spec.ResourceClaims) == 0 {
		return fwk.QueueSkip, nil
	}
	return pl.afterRoomFreed(logger, pod, oldObj, newObj)
}

// afterPodGroupChange requeues the members of the PodGroup that was added
// or whose spec, labels or annotations changed. kube-scheduler watches the
// CRD with a dynamic informer, which hands over unstructured objects: their
// namespace and name are read through meta.Accessor. Updates of the status
// alone (muster writes it every few seconds) never make a gang admissible:
// answering Queue to them, for every pending pod, sent the whole backlog
// back to the active queue at every PodGroup status write (BenchmarkScale:
// minutes from a restart to the first bind).
func (pl *Plugin) afterPodGroupChange(_ klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	m, err := meta.Accessor(newObj)
	if err != nil {
		return fwk.Queue, nil // cannot tell whose it is: a useless retry beats a stuck pod
	}
	if pod.Namespace != m.GetNamespace() || gang.PodGroupOf(pod) != m.GetName() {
		return fwk.QueueSkip, nil
	}
	if oldObj != nil && !podGroupChanged(oldObj, newObj) {
		return fwk.QueueSkip, nil // its status only
	}
	return fwk.Queue, nil // its gang's PodGroup, or one it composes with
}

// podGroupChanged reports whether an update of a PodGroup, typed or
// unstructured, changed more than its status.
func podGroupChanged(oldObj, newObj any) bool {
	om, err1 := meta.Accessor(oldObj)
	nm, err2 := meta.Accessor(newObj)
	if err1 != nil || err2 != nil || !maps.Equal(om.GetLabels(), nm.GetLabels()) || !maps.Equal(om.GetAnnotations(), nm.GetAnnotations()) {
		return true
	}
	switch o := oldObj.(type) {
	case *schedv1alpha1.PodGroup:
		n, ok := newObj.(*schedv1alpha1.PodGroup)
		return !ok || !equality.Semantic.DeepEqual(o.Spec, n.Spec)
	case *unstructured.Unstructured:
		n, ok := newObj.(*unstructured.Unstructured)
		return !ok || !equality.Semantic.DeepEqual(o.Object["spec"], n.Object["spec"])
	}
	return true
}
