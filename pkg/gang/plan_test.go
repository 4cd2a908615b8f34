package gang

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/resources"
)

func cpuNode(name string, cpus int64) Node {
	return Node{Name: name, Free: resources.Vector{v1.ResourceCPU: cpus * 1000}}
}

func cpuMembers(n, class int) []Member {
	out := make([]Member, n)
	for i := range out {
		out[i] = Member{Name: fmt.Sprintf("m%d", i), Request: resources.Vector{v1.ResourceCPU: 1000}, Class: class}
	}
	return out
}

func anyNode(int, int) bool { return true }

// TestPlanGangHalfRule checks the spread rule on the planner admission
// uses, over every small case of four spot pools with room for 0 to 3
// members each: a gang that fits is placed whole; when the pools can hold it
// with at most half (rounded up) in each, no pool holds more; the plan is
// the same every time.
func TestPlanGangHalfRule(t *testing.T) {
	pools := []string{"a", "b", "c", "d"}
	views := make([]capacity.NodeView, len(pools))
	for i, p := range pools {
		views[i] = capacity.NodeView{Type: capacity.Spot, Pool: p}
	}
	for mask := 0; mask < 4*4*4*4; mask++ {
		nodes := make([]Node, len(pools))
		room := 0
		for i, p := range pools {
			c := (mask >> (2 * i)) & 3
			nodes[i] = cpuNode(p, int64(c))
			room += c
		}
		for n := 1; n <= 9; n++ {
			name := fmt.Sprintf("room %v, gang of %d", nodes, n)
			members := cpuMembers(n, 0)
			plan, short := PlanWithPolicies(nodes, members, anyNode, views, []capacity.Policy{capacity.PreferSpot})
			again, _ := PlanWithPolicies(nodes, members, anyNode, views, []capacity.Policy{capacity.PreferSpot})
			require.Equal(t, plan, again, "deterministic: %s", name)
			require.Equal(t, n <= room, short == nil, name)
			if short != nil {
				continue
			}
			perPool := map[string]int{}
			for _, node := range plan.Node {
				perPool[pools[node]]++
			}
			limit, capped := capacity.MaxPerPool(n), 0
			for _, node := range nodes {
				capped += min(int(node.Free[v1.ResourceCPU]/1000), limit)
			}
			if n > 1 && capped >= n {
				for p, k := range perPool {
					require.LessOrEqual(t, k, limit, "%s: pool %s past the limit though the pools could hold the gang within it", name, p)
				}
			}
		}
	}
}

// TestPlanGangPolicies: the planner follows the table: a required type is
// never relaxed, a preferred one is relaxed only when the gang does not fit
// on it, and nodes being taken away are never used.
func TestPlanGangPolicies(t *testing.T) {
	views := []capacity.NodeView{
		{Type: capacity.OnDemand, Pool: "m5/a"},
		{Type: capacity.Spot, Pool: "m5/a"},
		{Type: capacity.Spot, Pool: "m5/b"},
		{Type: capacity.Spot, Pool: "m5/c", Disrupted: true},
	}
	cases := map[string]struct {
		policy  capacity.Policy
		members int
		room    []int64
		want    map[capacity.Type]int // members per type; nil: does not fit
	}{
		"prefer-spot on roomy spot":            {capacity.PreferSpot, 4, []int64{8, 2, 2, 8}, map[capacity.Type]int{capacity.Spot: 4}},
		"prefer-spot relaxed to on-demand":     {capacity.PreferSpot, 6, []int64{8, 2, 2, 8}, map[capacity.Type]int{capacity.OnDemand: 2, capacity.Spot: 4}},
		"require-spot is never relaxed":        {capacity.RequireSpot, 6, []int64{8, 2, 2, 8}, nil},
		"prefer-on-demand on roomy on-demand":  {capacity.PreferOnDemand, 4, []int64{8, 2, 2, 8}, map[capacity.Type]int{capacity.OnDemand: 4}},
		"prefer-on-demand relaxed to spot":     {capacity.PreferOnDemand, 4, []int64{2, 2, 2, 8}, map[capacity.Type]int{capacity.OnDemand: 2, capacity.Spot: 2}},
		"require-on-demand is never relaxed":   {capacity.RequireOnDemand, 4, []int64{2, 2, 2, 8}, nil},
		"any packs anywhere but the disrupted": {capacity.Any, 6, []int64{2, 2, 2, 8}, map[capacity.Type]int{capacity.OnDemand: 2, capacity.Spot: 4}},
		"any does not use a disrupted node":    {capacity.Any, 7, []int64{2, 2, 2, 8}, nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			nodes := make([]Node, len(tc.room))
			for i, r := range tc.room {
				nodes[i] = cpuNode(fmt.Sprint(i), r)
			}
			plan, short := PlanWithPolicies(nodes, cpuMembers(tc.members, 0), anyNode, views, []capacity.Policy{tc.policy})
			if tc.want == nil {
				assert.NotNil(t, short)
				return
			}
			require.Nil(t, short)
			got := map[capacity.Type]int{}
			for _, n := range plan.Node {
				got[views[n].Type]++
				assert.False(t, views[n].Disrupted, "member on a node being taken away")
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestRequiredNote(t *testing.T) {
	members := []Member{{Class: 0}, {Class: 1}, {Class: 1}, {Class: 2}}
	cases := map[string]struct {
		policies []capacity.Policy
		want     string
	}{
		"no policy requires a type": {[]capacity.Policy{capacity.PreferSpot, capacity.PreferOnDemand, capacity.Any}, ""},
		"one requires":              {[]capacity.Policy{capacity.RequireSpot, capacity.PreferOnDemand, capacity.Any}, " (capacity policy require-spot)"},
		"each named once":           {[]capacity.Policy{capacity.RequireOnDemand, capacity.RequireSpot, capacity.RequireOnDemand}, " (capacity policy require-on-demand, require-spot)"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, RequiredNote(members, tc.policies))
		})
	}
}
