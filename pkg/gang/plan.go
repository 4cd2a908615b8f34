package gang

import (
	"strings"

	"muster.dev/muster/pkg/capacity"
)

// PlanWithPolicies places a gang node by node, honouring its members' capacity
// policies as far as the cluster allows: first with preferred types as hard
// requirements and the gang's spot members spread over spot pools (no pool
// takes more than capacity.MaxPerPool), then without the spread (it applies only
// while another pool has room), then with preferences relaxed. Nodes being
// taken away and nodes of a type a policy does not allow are never used.
// The first plan that works wins; if none does, the shortfall of the most
// relaxed attempt explains why.
//
// views and base describe nodes (same index as nodes); policies gives each
// member class its policy.
func PlanWithPolicies(nodes []Node, members []Member, base func(class, node int) bool,
	views []capacity.NodeView, policies []capacity.Policy) (Plan, *Shortfall) {
	spotMembers := 0
	for _, m := range members {
		if capacity.MaySpot(policies[m.Class]) {
			spotMembers++
		}
	}
	pools := make([]string, len(views))
	for i, v := range views {
		pools[i] = v.SpotPool()
	}
	spread := Spread{Pool: pools, MaxPerPool: capacity.MaxPerPool(spotMembers)}
	if spotMembers <= 1 {
		spread.MaxPerPool = 0
	}
	var short *Shortfall
	for _, strict := range []bool{true, false} {
		eligible := capacity.EligibleFor(base, views, policies, strict)
		var plan Plan
		if spread.MaxPerPool > 0 {
			if plan, short = PackSpread(nodes, members, eligible, spread); short == nil {
				return plan, nil
			}
		}
		if plan, short = Pack(nodes, members, eligible); short == nil {
			return plan, nil
		}
	}
	return Plan{}, short
}

// RequiredNote names the policies among the members' that require a
// capacity type, " (capacity policy require-spot)", or "" when none does:
// they narrow where the gang may go, which a shortfall should say.
func RequiredNote(members []Member, policies []capacity.Policy) string {
	seen := map[capacity.Policy]bool{}
	var notes []string
	for _, m := range members {
		p := policies[m.Class]
		if p.Required() != "" && !seen[p] {
			seen[p] = true
			notes = append(notes, string(p))
		}
	}
	if len(notes) == 0 {
		return ""
	}
	return " (capacity policy " + strings.Join(notes, ", ") + ")"
}
