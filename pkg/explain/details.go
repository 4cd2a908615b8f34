package explain

import (
	"fmt"
	"sort"
	"strings"

	"muster.dev/muster/pkg/capacity"
)

// NodeFacts is a node as muster's node filters see it.
type NodeFacts struct {
	Name string
	View capacity.NodeView
}

// mostNamed bounds the node names a detail lists.
const mostNamed = 5

// nodeDetails says what muster's node filter reasons leave out, for a pod
// no node takes: those reasons are fixed sentences (so that
// kube-scheduler's summary counts the nodes each one refused), and the
// nodes, pools and counts behind them are here.
func (x *explainer) nodeDetails() []string {
	nodes := x.in.Nodes
	if len(nodes) == 0 {
		return nil
	}
	var out []string
	if req := x.policy.Required(); req != "" && x.policyErr == nil {
		other := 0
		for _, n := range nodes {
			if n.View.Type != req {
				other++
			}
		}
		if other > 0 {
			out = append(out, fmt.Sprintf("%d of %d node(s) are not %s, which the capacity policy %s (%s) requires",
				other, len(nodes), req, x.policy, x.source))
		}
	}
	g := x.in.Gang
	if g == nil {
		return out
	}
	var disrupted []string
	for _, n := range nodes {
		if n.View.Disrupted {
			disrupted = append(disrupted, fmt.Sprintf("%s (%s)", n.Name, n.View.Reason))
		}
	}
	if len(disrupted) > 0 {
		out = append(out, fmt.Sprintf("%d node(s) are being taken away and get no new gang members: %s", len(disrupted), some(disrupted)))
	}
	if x.policyErr == nil && capacity.MaySpot(x.policy) {
		if line := x.poolLine(); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// poolLine counts the gang's bound members per spot pool, against the
// spread rule's limit.
func (x *explainer) poolLine() string {
	poolOf := make(map[string]string, len(x.in.Nodes))
	for _, n := range x.in.Nodes {
		poolOf[n.Name] = n.View.SpotPool()
	}
	in := map[string]int{}
	for _, node := range x.in.GangNodes {
		if p := poolOf[node]; p != "" {
			in[p]++
		}
	}
	if len(in) == 0 {
		return ""
	}
	pools := make([]string, 0, len(in))
	for p := range in {
		pools = append(pools, p)
	}
	sort.Strings(pools)
	parts := make([]string, len(pools))
	for i, p := range pools {
		parts[i] = fmt.Sprintf("%s %d", p, in[p])
	}
	spot := max(x.in.Gang.Members, int(x.in.Gang.MinMember))
	return fmt.Sprintf("the gang's members per spot pool: %s; while another pool has room, one pool takes at most %d of the gang's %d",
		strings.Join(parts, ", "), capacity.MaxPerPool(spot), spot)
}

// some lists up to mostNamed of names, and how many more.
func some(names []string) string {
	if len(names) <= mostNamed {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:mostNamed], ", "), len(names)-mostNamed)
}
