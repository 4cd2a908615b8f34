package gang

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"muster.dev/muster/pkg/capacity"
)

func TestParseTopology(t *testing.T) {
	cases := []struct {
		name    string
		ann     map[string]string
		want    Topology
		wantErr string
	}{
		{"none", nil, Topology{}, ""},
		{"required", map[string]string{AnnotationTopologyRequired: "example.com/rack"}, Topology{Keys: []string{"example.com/rack"}, Required: true}, ""},
		{"preferred, two levels", map[string]string{AnnotationTopologyPreferred: "example.com/block, example.com/rack"},
			Topology{Keys: []string{"example.com/block", "example.com/rack"}}, ""},
		{"both", map[string]string{AnnotationTopologyRequired: "a", AnnotationTopologyPreferred: "b"}, Topology{}, "set one, not both"},
		{"empty", map[string]string{AnnotationTopologyRequired: ""}, Topology{}, `"" is not a node label key`},
		{"bad key", map[string]string{AnnotationTopologyPreferred: "rack/"}, Topology{}, `"rack/" is not a node label key`},
		{"twice", map[string]string{AnnotationTopologyRequired: "rack,rack"}, Topology{}, `key "rack" appears twice`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseTopology(c.ann)
			if c.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
}

// TestPlanInTopology: a gang goes whole into one domain, the narrowest
// that fits, the tightest of them; a required constraint that no domain
// fits says how close the best came; a preferred one spreads.
func TestPlanInTopology(t *testing.T) {
	// Two blocks of two racks of two nodes; free CPUs per node below.
	names := []string{"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"}
	racks := []string{"r0", "r0", "r1", "r1", "r2", "r2", "r3", "r3"}
	blocks := []string{"b0", "b0", "b0", "b0", "b1", "b1", "b1", "b1"}
	labels := make([]map[string]string, len(names))
	views := make([]capacity.NodeView, len(names))
	for i := range names {
		labels[i] = map[string]string{"rack": racks[i], "block": blocks[i]}
	}
	nodesWith := func(free ...int64) []Node {
		out := make([]Node, len(free))
		for i, f := range free {
			out[i] = cpuNode(names[i], f)
		}
		return out
	}
	cases := []struct {
		name       string
		free       []int64
		members    int
		topo       Topology
		wantDomain Domain
		wantNodes  []string // the set of nodes used; nil: any
		wantShort  string
	}{
		{"the tightest rack that fits", []int64{4, 4, 2, 2, 3, 3, 8, 8}, 6, Topology{Keys: []string{"rack"}, Required: true},
			Domain{Key: "rack", Value: "r2"}, []string{"n4", "n5"}, ""},
		{"no rack fits: required says how close", []int64{3, 2, 2, 2, 1, 1, 1, 1}, 6, Topology{Keys: []string{"rack"}, Required: true},
			Domain{}, nil, "no rack has room for all 6 members (topology required rack); the best, rack=r0, has room for 5"},
		{"no rack fits: preferred spreads", []int64{3, 2, 2, 2, 1, 1, 1, 1}, 6, Topology{Keys: []string{"rack"}},
			Domain{}, nil, ""},
		{"two levels: a rack when one fits", []int64{1, 1, 1, 1, 4, 4, 1, 1}, 8, Topology{Keys: []string{"block", "rack"}, Required: true},
			Domain{Key: "rack", Value: "r2"}, []string{"n4", "n5"}, ""},
		{"two levels: else a block", []int64{1, 1, 1, 1, 3, 3, 1, 1}, 8, Topology{Keys: []string{"block", "rack"}, Required: true},
			Domain{Key: "block", Value: "b1"}, []string{"n4", "n5", "n6", "n7"}, ""},
		{"two levels: no block fits", []int64{1, 1, 1, 1, 2, 2, 1, 1}, 8, Topology{Keys: []string{"block", "rack"}, Required: true},
			Domain{}, nil, "no block has room for all 8 members (topology required block,rack); the best, block=b1, has room for 6"},
		{"no node has the label", []int64{8, 8, 8, 8, 8, 8, 8, 8}, 2, Topology{Keys: []string{"example.com/nvlink"}, Required: true},
			Domain{}, nil, "no node has the label example.com/nvlink that the gang's topology constraint requires"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nodes := nodesWith(c.free...)
			plan, domain, short := PlanInTopology(nodes, cpuMembers(c.members, 0), anyNode, views, make([]capacity.Policy, 1), labels, c.topo)
			if c.wantShort != "" {
				require.NotNil(t, short)
				assert.Equal(t, c.wantShort, short.Reason)
				return
			}
			require.Nil(t, short, "%v", short)
			assert.Equal(t, c.wantDomain, domain)
			require.Len(t, plan.Node, c.members)
			if c.wantNodes != nil {
				for _, n := range plan.Node {
					assert.Contains(t, c.wantNodes, nodes[n].Name)
				}
			}
		})
	}
}
