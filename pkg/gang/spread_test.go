package gang

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/resources"
)

func TestPackSpread(t *testing.T) {
	node := func(name string, cpu int64) Node {
		return Node{Name: name, Free: resources.Vector{v1.ResourceCPU: cpu * 1000, v1.ResourcePods: 110}}
	}
	members := func(n int) []Member {
		out := make([]Member, n)
		for i := range out {
			out[i] = Member{Name: string(rune('a' + i)), Request: resources.Vector{v1.ResourceCPU: 4000, v1.ResourcePods: 1}}
		}
		return out
	}
	cases := map[string]struct {
		nodes   []Node
		pools   []string
		members int
		cap     int
		perPool map[string]int // expected members per pool, when it fits
		short   bool
	}{
		"four pools, each could take all: at most half each": {
			nodes: []Node{node("a0", 32), node("b0", 32), node("c0", 32), node("d0", 32)}, pools: []string{"a", "b", "c", "d"},
			members: 8, cap: 4},
		"two pools: four each": {
			nodes: []Node{node("a0", 32), node("b0", 32)}, pools: []string{"a", "b"}, members: 8, cap: 4,
			perPool: map[string]int{"a": 4, "b": 4}},
		"one pool has room for 2 only: the cap cannot hold": {
			nodes: []Node{node("a0", 32), node("b0", 8)}, pools: []string{"a", "b"}, members: 8, cap: 4, short: true},
		"uncapped nodes are free of the rule": {
			nodes: []Node{node("a0", 16), node("od", 32)}, pools: []string{"a", ""}, members: 8, cap: 4},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			plan, short := PackSpread(tc.nodes, members(tc.members), nil, Spread{Pool: tc.pools, MaxPerPool: tc.cap})
			if tc.short {
				require.NotNil(t, short)
				_, plain := Pack(tc.nodes, members(tc.members), nil)
				assert.Nil(t, plain, "without the cap it fits: the caller falls back")
				return
			}
			require.Nil(t, short)
			got := map[string]int{}
			for _, n := range plan.Node {
				if p := tc.pools[n]; p != "" {
					got[p]++
				}
			}
			for p, n := range got {
				assert.LessOrEqual(t, n, tc.cap, "pool %s", p)
			}
			if tc.perPool != nil {
				assert.Equal(t, tc.perPool, got)
			}
		})
	}
}
