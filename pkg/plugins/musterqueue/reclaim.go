package musterqueue

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/profile"
)

var _ fwk.PostFilterPlugin = &Plugin{}

// PostFilter reclaims: when a pod that no node can take belongs to a queue
// below its guaranteed, it preempts pods of queues above theirs (and, within
// its own queue, lower-priority pods), the fewest and least important that
// make room, and nominates the node. It replaces kube-scheduler's
// DefaultPreemption in muster's profile, which would preempt across tenants
// by priority alone.
func (pl *Plugin) PostFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, m fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	s, err := state.Read(stateKey)
	if err != nil {
		return nil, fwk.NewStatus(fwk.Unschedulable) // not admitted by this plugin (a gang member)
	}
	cs := s.(*cycleState)
	nodes, err := m.NodesForStatusCode(pl.rt.Handle.SnapshotSharedLister().NodeInfos(), fwk.Unschedulable)
	if err != nil {
		return nil, fwk.AsStatus(err)
	}
	if len(nodes) == 0 {
		return nil, fwk.NewStatus(fwk.Unschedulable, "preemption cannot help: no node would take the pod even if emptied")
	}
	rr := profile.ReclaimRequest{
		Key: string(pod.UID), Pod: pod, Queue: cs.leaf, Priority: corev1helpers.PodPriority(pod),
		Members: []gang.Member{{Name: pod.Name, Request: cs.req}}, Nodes: nodes,
	}
	if cs.atMax {
		rr.UnderMax = pl.underMax(cs.leaf, cs.req)
	}
	node, err := pl.rt.Reclaim(ctx, rr)
	if err != nil {
		klog.FromContext(ctx).V(4).Info("No reclaim", "pod", klog.KObj(pod), "queue", cs.leaf.Path, "reason", err)
		return nil, fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("no preemption: %v", err))
	}
	klog.FromContext(ctx).V(2).Info("Reclaimed capacity", "pod", klog.KObj(pod), "queue", cs.leaf.Path, "node", node)
	return &fwk.PostFilterResult{NominatingInfo: &fwk.NominatingInfo{NominatedNodeName: node, NominatingMode: fwk.ModeOverride}},
		fwk.NewStatus(fwk.Success)
}
