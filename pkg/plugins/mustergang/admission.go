package mustergang

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/profile"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
	"muster.dev/muster/pkg/waitreason"
)

// gangKey is a gang's entry in the queue ledger.
func gangKey(ref gang.Ref) string { return "gang:" + ref.String() }

// PreFilter admits the pod's gang as a whole if it is not admitted yet, then
// narrows the pod to the nodes holding its gang's slots. Pods outside gangs
// only need Filter when some gang holds capacity.
func (pl *Plugin) PreFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	if err := pl.rt.Ready(); err != nil {
		return nil, fwk.AsStatus(err)
	}
	// Before any decision: reservations are what this cycle must respect.
	pl.maintain(ctx)
	ref, _, ok := pl.sources.identify(pod)
	if !ok {
		if !pl.reg.AnyReserved() && pl.holds.Len() == 0 {
			return nil, fwk.NewStatus(fwk.Skip)
		}
		state.Write(stateKey, &cycleState{held: pl.heldFrom(pod, gang.PodRef(pod.Namespace, pod.Name))})
		return nil, nil
	}
	gs, err := pl.sources.specOf(ctx, pod, ref)
	if err != nil {
		return nil, pl.refuse(pod, waitreason.InvalidGang, fmt.Sprintf("%s: %v", ref, err))
	}
	if gs.wait != "" {
		return nil, pl.refuse(pod, waitreason.GangSourceMissing, fmt.Sprintf("%s: %s", ref, gs.wait))
	}
	leaf, perr := pl.place(pod, gs)
	if perr != nil {
		return nil, pl.refuse(pod, perr.Code, fmt.Sprintf("%s: %s", ref, perr.Msg))
	}
	pl.observe(ctx, ref, gs.spec, leaf.Path, pl.memberPod(pod), pod.UID)

	info, _ := pl.reg.Get(ref)
	cs := &cycleState{ref: ref, member: true}
	switch info.Phase {
	case gang.PhaseWaiting:
		// Members held by scheduling gates do not count (info.Reason says
		// so); lifting the last gate brings that pod here and admits the gang.
		return nil, pl.refuse(pod, info.ReasonCode, fmt.Sprintf("%s: %s", ref, info.Reason))
	case gang.PhasePending:
		if now := pl.clock.Now(); info.BackoffUntil.After(now) {
			return nil, pl.refuse(pod, waitreason.BackingOff, fmt.Sprintf(
				"%s: %s; backing off, retrying at %s", ref, info.Reason, info.BackoffUntil.UTC().Format("15:04:05")))
		}
		if st := pl.admit(ctx, pod, ref, gs, leaf); !st.IsSuccess() {
			return nil, st
		}
	}
	if pl.reg.HasSlots(ref) {
		cs.slots = true
		state.Write(stateKey, cs)
		pl.rt.Admitted(pod, leaf.Path)
		return &fwk.PreFilterResult{NodeNames: sets.New(pl.reg.SlotNodesFor(ref, profile.Key(pod))...)}, nil
	}
	// Beyond the reservation (a bound gang's extra members, a Spark app's
	// executors past min-executors): admitted one by one in the queue.
	if lerr := pl.rt.Ledger.Check(leaf, pl.rt.PodRequest(pod)); lerr != nil {
		return nil, pl.refuse(pod, lerr.Code(), lerr.Error())
	}
	// A member beyond the reservation stands in its queue by its gang's
	// first member's arrival, as MusterQueue's QueueSort orders it.
	sub := pl.rt.HoldSubject(pod, ref, leaf, info.FirstSeen)
	sub.Served = true
	cs.held, cs.elastic = pl.rt.HeldFrom(sub), leaf
	state.Write(stateKey, cs)
	pl.rt.Admitted(pod, leaf.Path)
	if nodes, ok := pl.domainNodes(ctx, ref, pod, gs.spec.Topology); ok {
		// A required topology holds every member, not only the reserved.
		return &fwk.PreFilterResult{NodeNames: nodes}, nil
	}
	return nil, nil
}

// PreFilterExtensions implements fwk.PreFilterPlugin.
func (pl *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// place returns the gang's leaf queue: the PodGroup's muster.dev/queue
// label, else the pod's, else namespaceQueues.
func (pl *Plugin) place(pod *v1.Pod, gs gangSpec) (*queue.Queue, *queue.PlacementError) {
	t := pl.rt.Tree()
	if t == nil {
		return pl.rt.Place(pod) // explains that no configuration is in force
	}
	return t.Place(pod.Namespace, gs.queueLabel)
}

// nodes builds the planner's view: per node what is free for this gang (what
// other gangs hold, admitted or at the head of their queues (held), counts
// as used), and its full allocatable.
func (pl *Plugin) nodes(ref gang.Ref, held map[string]resources.Vector) (free, allocatable []gang.Node, objs []*v1.Node, kept []fwk.NodeInfo, err error) {
	infos, err := pl.handle.SnapshotSharedLister().NodeInfos().List()
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("listing nodes: %w", err)
	}
	free = make([]gang.Node, 0, len(infos))
	allocatable = make([]gang.Node, 0, len(infos))
	objs = make([]*v1.Node, 0, len(infos))
	for _, ni := range infos {
		n := ni.Node()
		if n == nil {
			continue
		}
		alloc, used := pl.rt.NodeUsage(ni)
		used.Add(pl.reg.ReservedOnNode(n.Name, ref))
		used.Add(held[n.Name])
		f := alloc.Clone()
		f.Sub(used)
		free = append(free, gang.Node{Name: n.Name, Free: f})
		allocatable = append(allocatable, gang.Node{Name: n.Name, Free: alloc})
		objs = append(objs, n)
		kept = append(kept, ni)
	}
	return free, allocatable, objs, kept, nil
}

// activate moves the gang's other pending members to the active queue: the
// gang has room now.
func (pl *Plugin) activate(ctx context.Context, ref gang.Ref, except types.UID) {
	pods := map[string]*v1.Pod{}
	for _, p := range pl.sources.members(ctx, ref) {
		if p.UID != except && p.Spec.NodeName == "" {
			pods[p.Namespace+"/"+p.Name] = p
		}
	}
	if len(pods) > 0 {
		pl.handle.Activate(klog.FromContext(ctx), pods)
	}
}

func countDistinct(names []string) int { return sets.New(names...).Len() }

// event records an Event on the gang's PodGroup, or on the pod.
func (pl *Plugin) event(pod *v1.Pod, gs gangSpec, eventType, reason, action, msg string) {
	if gs.object != nil {
		pl.recorder.Eventf(gs.object, pod, eventType, reason, action, "%s", msg)
		return
	}
	pl.recorder.Eventf(pod, nil, eventType, reason, action, "%s", msg)
}
