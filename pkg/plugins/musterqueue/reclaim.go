package musterqueue

import (
	"context"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"muster.dev/muster/pkg/resources"
)

var _ fwk.PostFilterPlugin = &Plugin{}

// PostFilter reclaims: when a pod that no node can take belongs to a queue
// below its guaranteed, it preempts pods of queues above theirs (and, within
// its own queue, lower-priority pods), the fewest and least important that
// make room, and nominates the node. Failing that, a pod at the head of
// its queue holds the room it waits for (profile.OfferPodHold). It replaces kube-scheduler's
// DefaultPreemption in muster's profile, which would preempt across tenants
// by priority alone.
func (pl *Plugin) PostFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, m fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	s, err := state.Read(stateKey)
	if err != nil {
		return nil, fwk.NewStatus(fwk.Unschedulable) // not admitted by this plugin (a gang member)
	}
	cs := s.(*cycleState)
	var underMax func(resources.Vector) bool
	if cs.atMax {
		underMax = pl.rt.UnderMax(cs.leaf, cs.req)
	}
	res, st := pl.rt.ReclaimForPod(ctx, pod, cs.leaf, cs.req, underMax, m)
	if !st.IsSuccess() && !cs.atMax {
		// Admitted by its queue, and no node has room yet: at the head of
		// its queue it holds the room it waits for.
		pl.rt.OfferPodHold(ctx, pod, cs.leaf, cs.req, m)
	}
	return res, st
}
