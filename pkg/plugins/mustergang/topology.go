package mustergang

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"muster.dev/muster/pkg/gang"
)

// A gang's topology (gang.Topology) is planned at admission
// (admission.plan); slots planned later (a Spark app's executors rebuilt
// after a restart, slots moved off a node being taken away) stay in the
// domain of the widest required key that the gang's bound members are in.

// sameDomain narrows base to the nodes in the anchor node's domain of a
// required topology's widest key; base as it is without a required
// topology or an anchor.
func sameDomain(topo gang.Topology, anchor *v1.Node, objs []*v1.Node, base func(class, node int) bool) func(class, node int) bool {
	if !topo.Required || anchor == nil {
		return base
	}
	key := topo.Keys[0]
	value, ok := anchor.Labels[key]
	return func(class, n int) bool {
		return ok && objs[n].Labels[key] == value && base(class, n)
	}
}

// anchorOf is the node of one of the gang's bound members (the pod itself
// first), else of one of its slots left in place, among objs; nil when
// there is none.
func (pl *Plugin) anchorOf(ctx context.Context, ref gang.Ref, pod *v1.Pod, objs []*v1.Node) *v1.Node {
	name := pod.Spec.NodeName
	if name == "" {
		for _, m := range pl.sources.members(ctx, ref) {
			if m.Spec.NodeName != "" && gang.Live(m) {
				name = m.Spec.NodeName
				break
			}
		}
	}
	if name == "" {
		if slots := pl.reg.SlotNodes(ref); len(slots) > 0 {
			name = slots[0]
		}
	}
	for _, n := range objs {
		if name != "" && n.Name == name {
			return n
		}
	}
	return nil
}

// domainNodes is, for a member beyond its gang's reservation (a Spark
// app's executor past min-executors, a member above the quorum), the nodes
// of its gang's domain under a required topology: the domain of the widest
// key its bound members are in. ok is false when nothing narrows it (no
// required topology, no member bound yet).
func (pl *Plugin) domainNodes(ctx context.Context, ref gang.Ref, pod *v1.Pod, topo gang.Topology) (sets.Set[string], bool) {
	if !topo.Required {
		return nil, false
	}
	infos, err := pl.handle.SnapshotSharedLister().NodeInfos().List()
	if err != nil {
		return nil, false
	}
	objs := make([]*v1.Node, 0, len(infos))
	for _, ni := range infos {
		if n := ni.Node(); n != nil {
			objs = append(objs, n)
		}
	}
	anchor := pl.anchorOf(ctx, ref, pod, objs)
	if anchor == nil {
		return nil, false
	}
	key := topo.Keys[0]
	value, labelled := anchor.Labels[key]
	out := sets.New[string]()
	for _, n := range objs {
		if labelled && n.Labels[key] == value {
			out.Insert(n.Name)
		}
	}
	return out, true
}
