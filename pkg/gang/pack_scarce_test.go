package gang

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPackKeepsOffIdleGPUs: members that request no GPU go to nodes without
// free GPUs while any fits them, however tight the GPU nodes would fit. The
// sandbox demo showed why: three 1-CPU Spark drivers best-fitted onto an
// 8-CPU GPU node (the smallest on-demand node) left it 5 CPU, too little for
// a 6-CPU training worker; their queue was below its guarantee, so reclaim
// could not move them, and the training gang waited 15 minutes.
func TestPackKeepsOffIdleGPUs(t *testing.T) {
	m5 := nodesOf("m5", 2, "cpu=10, memory=40Gi, pods=100")
	g5 := nodesOf("g5", 2, "cpu=8, memory=32Gi, nvidia.com/gpu=1, pods=100")
	g5used := nodesOf("g5-busy", 1, "cpu=8, memory=32Gi, nvidia.com/gpu=0, pods=100")
	cases := map[string]struct {
		nodes   []Node
		members []Member
		want    []string // node name per member
	}{
		"CPU-only members skip the tighter GPU nodes": {
			nodes:   concat(g5, m5),
			members: membersOf("driver", 3, "cpu=1, memory=4Gi, pods=1", 0),
			want:    []string{"m5-0", "m5-0", "m5-0"},
		},
		"a GPU node whose GPUs are taken is an ordinary node": {
			nodes:   concat(m5, g5used),
			members: membersOf("driver", 1, "cpu=1, memory=4Gi, pods=1", 0),
			want:    []string{"g5-busy-0"},
		},
		"GPU nodes are used when nothing else fits": {
			nodes:   concat(g5, nodesOf("m5-full", 1, "cpu=0, memory=40Gi, pods=100")),
			members: membersOf("driver", 1, "cpu=1, memory=4Gi, pods=1", 0),
			want:    []string{"g5-0"},
		},
		"GPU members still go to GPU nodes, CPU members beside them elsewhere": {
			nodes: concat(m5, g5),
			members: concat(membersOf("worker", 2, "cpu=6, memory=24Gi, nvidia.com/gpu=1, pods=1", 0),
				membersOf("driver", 1, "cpu=1, memory=4Gi, pods=1", 0)),
			want: []string{"g5-0", "g5-1", "m5-0"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			plan, short := Pack(tc.nodes, tc.members, nil)
			require.Nil(t, short)
			requireValidPlan(t, tc.nodes, tc.members, nil, plan)
			got := make([]string, len(plan.Node))
			for i, n := range plan.Node {
				got[i] = tc.nodes[n].Name
			}
			assert.Equal(t, tc.want, got)
		})
	}
}
