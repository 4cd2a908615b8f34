package mustergang

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/resources"
)

// ErrReasonReserved is Filter's reason: one fixed string, so that
// kube-scheduler's summary of a pod's failed nodes groups them; the resource
// goes to the log at V(4).
const ErrReasonReserved = "the node's free capacity is reserved for admitted gangs"

// Filter keeps every pod off the capacity that admitted gangs (other than
// its own) hold on the node, and off the room gangs at the head of their
// queues hold against it: that capacity is spoken for.
func (pl *Plugin) Filter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, ni fwk.NodeInfo) *fwk.Status {
	n := ni.Node()
	if n == nil {
		return fwk.NewStatus(fwk.Error, "node not found")
	}
	cs := readState(state)
	reserved := pl.reg.ReservedOnNode(n.Name, cs.ref)
	if held := cs.held[n.Name]; len(held) > 0 {
		reserved = reserved.Plus(held)
	}
	if len(reserved) == 0 {
		return nil
	}
	need := pl.rt.PodRequest(pod)
	alloc, used := pl.rt.NodeUsage(ni)
	for _, r := range need.Names() {
		if need[r] == 0 || reserved[r] == 0 {
			continue
		}
		if used[r]+reserved[r]+need[r] > alloc[r] {
			if cs.held[n.Name][r] > 0 {
				pl.heldOffBy(pod)
			}
			klog.FromContext(ctx).V(4).Info("Node's free capacity is reserved for admitted gangs", "pod", klog.KObj(pod), "node", n.Name,
				"resource", r, "reserved", resources.Format(r, reserved[r]), "requested", resources.Format(r, need[r]))
			return fwk.NewStatus(fwk.Unschedulable, ErrReasonReserved)
		}
	}
	return nil
}

// PostFilter releases an admitted gang whose member found no node in the
// gang's slots (a pod from outside muster took the room, or the member's
// constraints differ from the one the plan was made for): the gang is
// admitted again from scratch, with a fresh plan; not while pods preempted
// to make that room may still be exiting. It never makes the pod
// schedulable itself.
func (pl *Plugin) PostFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, m fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	cs := readState(state)
	if cs.member && cs.elastic != nil {
		// Beyond its gang's reservation: it reclaims within its queue's
		// guarantee as a pod of its own would (MusterQueue's PostFilter,
		// which gang members skip).
		return pl.rt.ReclaimForPod(ctx, pod, cs.elastic, pl.rt.PodRequest(pod), nil, m)
	}
	if !cs.member || !cs.slots {
		return nil, fwk.NewStatus(fwk.Unschedulable)
	}
	if pl.rt.Reclaiming(gangKey(cs.ref)) {
		// Admitted to room its reclaim frees: the victims are still exiting.
		return nil, fwk.NewStatus(fwk.Unschedulable)
	}
	if info, ok := pl.reg.Get(cs.ref); ok && info.Phase == gang.PhaseAdmitted {
		pl.release(ctx, cs.ref, fmt.Sprintf("member %s/%s did not fit in the gang's reserved slots; admitting the gang again", pod.Namespace, pod.Name), false)
	}
	return nil, fwk.NewStatus(fwk.Unschedulable)
}

// eligibility tells the planner which nodes the members of each class may
// use: those the class's pod (pods[class]) tolerates and selects (cordon,
// taints, node selector, required node affinity). The members of a class
// share its constraints (its shape); a member that does not fit its slot
// anyway releases the admission (PostFilter) rather than bind part of the
// gang.
func eligibility(pods []*v1.Pod, nodes []*v1.Node) func(class, node int) bool {
	ok := make([][]bool, len(pods))
	for c, pod := range pods {
		if c > 0 && pod == pods[c-1] { // the same constraints (a driver and its executors)
			ok[c] = ok[c-1]
			continue
		}
		affinity := nodeaffinity.GetRequiredNodeAffinity(pod)
		ok[c] = make([]bool, len(nodes))
		for i, n := range nodes {
			ok[c][i] = nodeAllows(pod, n, affinity)
		}
	}
	return func(class int, node int) bool { return ok[class][node] }
}

func nodeAllows(pod *v1.Pod, n *v1.Node, affinity nodeaffinity.RequiredNodeAffinity) bool {
	if n.Spec.Unschedulable && !tolerates(pod, v1.Taint{Key: v1.TaintNodeUnschedulable, Effect: v1.TaintEffectNoSchedule}) {
		return false
	}
	for _, t := range n.Spec.Taints {
		if t.Effect == v1.TaintEffectPreferNoSchedule {
			continue
		}
		if !tolerates(pod, t) {
			return false
		}
	}
	match, err := affinity.Match(n)
	return err == nil && match
}

func tolerates(pod *v1.Pod, t v1.Taint) bool {
	for i := range pod.Spec.Tolerations {
		if pod.Spec.Tolerations[i].ToleratesTaint(klog.Background(), &t, false) {
			return true
		}
	}
	return false
}
