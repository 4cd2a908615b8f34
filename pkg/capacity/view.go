package capacity

import v1 "k8s.io/api/core/v1"

// NodeView is what placement needs to know of a node.
type NodeView struct {
	Type Type
	// Pool is the node's pool (instance type/zone); it matters for spot nodes.
	Pool string
	// Disrupted is set for a node being taken away, with the reason.
	Disrupted bool
	Reason    string
}

// ViewOf describes a node.
func ViewOf(n *v1.Node) NodeView {
	reason, disrupted := Disruption(n.Labels, n.Spec.Taints, n.Spec.Unschedulable)
	return NodeView{Type: TypeOf(n.Labels), Pool: PoolOf(n.Labels), Disrupted: disrupted, Reason: reason}
}

// SpotPool is the node's pool when it is spot, else "": only spot pools are
// spread over.
func (v NodeView) SpotPool() string {
	if v.Type == Spot {
		return v.Pool
	}
	return ""
}

// Eligible reports whether a gang member with policy p may be planned on the
// node: never on a node being taken away, only on the required type, and,
// when strict, only on the preferred type. A gang is planned strictly first
// and relaxed only if that fails, so preferences hold whenever they can.
func Eligible(p Policy, v NodeView, strict bool) bool {
	if v.Disrupted || !Allows(p, v.Type) {
		return false
	}
	pref := p.Preferred()
	return !strict || pref == "" || pref == v.Type
}

// MaySpot reports whether members with policy p count as the gang's spot
// members for the spread rule: those that may go to spot nodes and do not
// prefer on-demand.
func MaySpot(p Policy) bool { return Allows(p, Spot) && p.Preferred() != OnDemand }
