package gang

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/resources"
)

// benchNodes returns count nodes of 32 cpu, 128Gi and 110 pod slots, a
// varying part of each already in use, as a busy cluster looks.
func benchNodes(count int) []Node {
	nodes := make([]Node, count)
	for i := range nodes {
		usedCPU := int64(i*7%25) * 1000 // 0..24 cpu in use
		nodes[i] = Node{Name: fmt.Sprintf("node-%d", i), Free: resources.Vector{
			v1.ResourceCPU:    32000 - usedCPU,
			v1.ResourceMemory: (128 - int64(i*13%97)) << 30,
			v1.ResourcePods:   110 - int64(i%40),
		}}
	}
	return nodes
}

// benchMembers returns a training job's shape: one larger coordinator and
// workers of 4 cpu / 16Gi, in two classes (as tolerations would make them).
func benchMembers(count int) []Member {
	members := make([]Member, count)
	for i := range members {
		req := resources.Vector{v1.ResourceCPU: 4000, v1.ResourceMemory: 16 << 30, v1.ResourcePods: 1}
		if i == 0 {
			req = resources.Vector{v1.ResourceCPU: 8000, v1.ResourceMemory: 32 << 30, v1.ResourcePods: 1}
		}
		members[i] = Member{Name: fmt.Sprintf("worker-%d", i), Request: req, Class: i % 2}
	}
	return members
}

func BenchmarkPack(b *testing.B) {
	for _, nodeCount := range []int{1000, 5000} {
		nodes := benchNodes(nodeCount)
		// class 1 may not use every tenth node, as a taint would exclude them
		eligible := func(class, node int) bool { return class == 0 || node%10 != 0 }
		for _, memberCount := range []int{8, 32, 128, 256} {
			members := benchMembers(memberCount)
			b.Run(fmt.Sprintf("members=%d/nodes=%d", memberCount, nodeCount), func(b *testing.B) {
				_, short := Pack(nodes, members, eligible)
				require.Nil(b, short)
				b.ReportAllocs()
				for b.Loop() {
					Pack(nodes, members, eligible)
				}
			})
		}
	}
}

// BenchmarkPackFragmented measures the refusal path, which also explains.
func BenchmarkPackFragmented(b *testing.B) {
	nodes := make([]Node, 5000)
	for i := range nodes {
		nodes[i] = Node{Name: fmt.Sprintf("node-%d", i), Free: resources.Vector{v1.ResourceCPU: 2000, v1.ResourcePods: 10}}
	}
	members := make([]Member, 256)
	for i := range members {
		members[i] = Member{Name: fmt.Sprintf("worker-%d", i), Request: resources.Vector{v1.ResourceCPU: 4000, v1.ResourcePods: 1}}
	}
	_, short := Pack(nodes, members, nil)
	require.NotNil(b, short)
	require.Equal(b, Fragmented, short.Kind)
	b.ReportAllocs()
	for b.Loop() {
		Pack(nodes, members, nil)
	}
}
