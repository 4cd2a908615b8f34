package gang

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/resources"
)

// TestFitOneAgreesWithPack: for a gang of one, FitOne and Pack agree on
// whether it fits, and FitOne's node takes the member.
func TestFitOneAgreesWithPack(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	fitted := 0
	for i := range 2000 {
		nodes, members, eligible := randomInstance(rng)
		if len(members) == 0 {
			continue
		}
		m := members[rng.IntN(len(members))]
		_, short := Pack(nodes, []Member{m}, eligible)
		plan, ok := FitOne(nodes, m, eligible)
		require.Equal(t, short == nil, ok, "instance %d: Pack says %v", i, short)
		if !ok {
			continue
		}
		fitted++
		n := plan.Node[0]
		require.True(t, eligible == nil || eligible(m.Class, n), "instance %d: an eligible node", i)
		require.True(t, covers(nodes[n].Free, m.Request), "instance %d: a node with room", i)
	}
	require.Greater(t, fitted, 100)
}

func TestFitOneKeepsOffIdleGPUs(t *testing.T) {
	gpu := v1.ResourceName("nvidia.com/gpu")
	nodes := []Node{
		{Name: "gpu", Free: resources.Vector{v1.ResourceCPU: 8000, gpu: 1}},
		{Name: "cpu", Free: resources.Vector{v1.ResourceCPU: 8000}},
	}
	plan, ok := FitOne(nodes, Member{Request: resources.Vector{v1.ResourceCPU: 1000}}, nil)
	require.True(t, ok)
	require.Equal(t, []int{1}, plan.Node, "a CPU pod goes to the CPU node")
	plan, ok = FitOne(nodes[:1], Member{Request: resources.Vector{v1.ResourceCPU: 1000}}, nil)
	require.True(t, ok)
	require.Equal(t, []int{0}, plan.Node, "and to the GPU node when nothing else fits")
	plan, ok = FitOne(nodes, Member{Request: resources.Vector{v1.ResourceCPU: 1000, gpu: 1}}, nil)
	require.True(t, ok)
	require.Equal(t, []int{0}, plan.Node)
}
