package gang

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"muster.dev/muster/pkg/resources"
)

const gpu v1.ResourceName = "nvidia.com/gpu"

// vec builds a Vector from "cpu=4, memory=16Gi"; unlike the annotation
// parser it takes zero and negative amounts, which Free can hold.
func vec(s string) resources.Vector {
	v := resources.Vector{}
	if s == "" {
		return v
	}
	for _, e := range strings.Split(s, ",") {
		k, q, _ := strings.Cut(strings.TrimSpace(e), "=")
		name := v1.ResourceName(k)
		v[name] = resources.FromQuantity(name, resource.MustParse(q))
	}
	return v
}

// nodesOf returns count nodes named prefix-0.. with the same free amounts.
func nodesOf(prefix string, count int, free string) []Node {
	out := make([]Node, count)
	for i := range out {
		out[i] = Node{Name: fmt.Sprintf("%s-%d", prefix, i), Free: vec(free)}
	}
	return out
}

// membersOf returns count members named prefix-0.. with the same request and class.
func membersOf(prefix string, count int, req string, class int) []Member {
	out := make([]Member, count)
	for i := range out {
		out[i] = Member{Name: fmt.Sprintf("%s-%d", prefix, i), Request: vec(req), Class: class}
	}
	return out
}

func concat[T any](parts ...[]T) []T {
	var out []T
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// requireValidPlan checks a Plan the hard way: every member on an eligible
// node, and per node and resource the positive requests summed (exactly, in
// big.Int) within the node's free amount.
func requireValidPlan(t *testing.T, nodes []Node, members []Member, eligible func(class, node int) bool, plan Plan) {
	t.Helper()
	require.Len(t, plan.Node, len(members), "one node per member")
	used := make([]map[v1.ResourceName]*big.Int, len(nodes))
	for m, n := range plan.Node {
		require.True(t, n >= 0 && n < len(nodes), "member %d on node %d of %d", m, n, len(nodes))
		if eligible != nil {
			require.True(t, eligible(members[m].Class, n), "member %d (class %d) on ineligible node %d", m, members[m].Class, n)
		}
		if used[n] == nil {
			used[n] = map[v1.ResourceName]*big.Int{}
		}
		for r, q := range members[m].Request {
			if q <= 0 {
				continue
			}
			if used[n][r] == nil {
				used[n][r] = new(big.Int)
			}
			used[n][r].Add(used[n][r], big.NewInt(q))
		}
	}
	for n, u := range used {
		for r, sum := range u {
			require.True(t, sum.Cmp(big.NewInt(nodes[n].Free[r])) <= 0,
				"node %d: %s requested %s, free %d", n, r, sum, nodes[n].Free[r])
		}
	}
}

// distinct reports whether every member is on its own node.
func distinct(plan Plan) bool {
	seen := map[int]bool{}
	for _, n := range plan.Node {
		if seen[n] {
			return false
		}
		seen[n] = true
	}
	return true
}

// firstFit places members in arrival order, each on the first node it fits:
// the naive planner best-fit decreasing must beat.
func firstFit(nodes []Node, members []Member) bool {
	free := make([]resources.Vector, len(nodes))
	for i, n := range nodes {
		free[i] = n.Free.Clone()
	}
next:
	for _, m := range members {
		for _, f := range free {
			if _, over := m.Request.Exceeds(f); !over && fitsAll(m.Request, f) {
				f.Sub(m.Request)
				continue next
			}
		}
		return false
	}
	return true
}

func fitsAll(req, free resources.Vector) bool {
	for r, q := range req {
		if q > 0 && q > free[r] {
			return false
		}
	}
	return true
}

// byRange makes an eligibility function from per-class node index ranges [lo, hi).
func byRange(ranges map[int][2]int) func(class, node int) bool {
	return func(class, node int) bool {
		r, ok := ranges[class]
		return ok && node >= r[0] && node < r[1]
	}
}

func TestPack(t *testing.T) {
	cases := map[string]struct {
		nodes    []Node
		members  []Member
		eligible func(class, node int) bool
		// want is the shortfall kind, "" for a plan
		want    ShortfallKind
		placed  int
		reason  []string // substrings of the Reason
		checkFn func(t *testing.T, plan Plan)
	}{
		"fragmented: 8 pods of 4 cpu on 16 nodes with 2 free, although 32 cpu are free": {
			nodes:   nodesOf("n", 16, "cpu=2, memory=8Gi, pods=10"),
			members: membersOf("w", 8, "cpu=4, memory=1Gi, pods=1", 0),
			want:    Fragmented,
			placed:  0,
			reason: []string{"enough is free in total (cpu=32, memory=128Gi, pods=160)", "none of the 8 members fits node by node",
				"member w-0 needs cpu=4, memory=1Gi, pods=1; the most free on one node is cpu=2", "the free capacity is fragmented"},
		},
		"fragmented after some are placed: 5 nodes with 4 free, 7 with 2": {
			nodes:   concat(nodesOf("big", 5, "cpu=4"), nodesOf("small", 7, "cpu=2")),
			members: membersOf("w", 8, "cpu=4", 0),
			want:    Fragmented,
			placed:  5,
			reason:  []string{"(cpu=34)", "only 5 of 8 members fit node by node", "member w-5 needs cpu=4; with 5 placed, the most left on one node is cpu=2"},
		},
		"fragmented across resources: cpu on one node, gpu on another": {
			nodes:   []Node{{Name: "cpu-node", Free: vec("cpu=8, nvidia.com/gpu=0")}, {Name: "gpu-node", Free: vec("cpu=1, nvidia.com/gpu=4")}},
			members: membersOf("w", 1, "cpu=4, nvidia.com/gpu=1", 0),
			want:    Fragmented,
			reason:  []string{"but the member does not fit node by node (member w-0 needs cpu=4, nvidia.com/gpu=1, and no node has all of it free)"},
		},
		"exact fit: 8 pods of 4 cpu on 8 nodes with 4 free, one each": {
			nodes:   nodesOf("n", 8, "cpu=4, memory=16Gi"),
			members: membersOf("w", 8, "cpu=4, memory=16Gi", 0),
			checkFn: func(t *testing.T, plan Plan) { assert.True(t, distinct(plan), "one member per node: %v", plan.Node) },
		},
		"best-fit decreasing places 1 big and 7 small where first fit in arrival order fails": {
			nodes:   []Node{{Name: "eight", Free: vec("cpu=8")}, {Name: "seven", Free: vec("cpu=7")}},
			members: concat(membersOf("small", 7, "cpu=1", 0), membersOf("big", 1, "cpu=8", 0)),
			checkFn: func(t *testing.T, plan Plan) {
				assert.Equal(t, 0, plan.Node[7], "the big member on the node it fills exactly")
				for m := range 7 {
					assert.Equal(t, 1, plan.Node[m], "small member %d", m)
				}
			},
		},
		"pod slots: one per node": {
			nodes:   nodesOf("n", 4, "cpu=16, pods=1"),
			members: membersOf("w", 4, "cpu=1, pods=1", 0),
			checkFn: func(t *testing.T, plan Plan) { assert.True(t, distinct(plan), "one member per node: %v", plan.Node) },
		},
		"pod slots: one member too many": {
			nodes:   nodesOf("n", 4, "cpu=16, pods=1"),
			members: membersOf("w", 5, "cpu=1, pods=1", 0),
			want:    Capacity,
			placed:  4,
			reason:  []string{"the gang needs cpu=5, pods=5 for 5 members; the nodes its members may use have only pods=4 free in total"},
		},
		"pod slots: free pods absent is zero": {
			nodes:   nodesOf("n", 4, "cpu=16"),
			members: membersOf("w", 1, "cpu=1, pods=1", 0),
			want:    Capacity,
			reason:  []string{"only pods=0 free"},
		},
		"not enough cpu in total": {
			nodes:   nodesOf("n", 10, "cpu=2, memory=64Gi"),
			members: membersOf("w", 8, "cpu=4, memory=8Gi", 0),
			want:    Capacity,
			reason:  []string{"the gang needs cpu=32, memory=64Gi for 8 members; the nodes its members may use have only cpu=20 free in total"},
		},
		"cpu fits, gpu does not": {
			nodes:   nodesOf("n", 4, "cpu=32, nvidia.com/gpu=1"),
			members: membersOf("w", 4, "cpu=4, nvidia.com/gpu=2", 0),
			want:    Capacity,
			reason:  []string{"needs cpu=16, nvidia.com/gpu=8", "have only nvidia.com/gpu=4 free in total"},
		},
		"gpus enough in total, fragmented over nodes": {
			nodes:   nodesOf("n", 8, "cpu=32, nvidia.com/gpu=1"),
			members: membersOf("w", 4, "cpu=4, nvidia.com/gpu=2", 0),
			want:    Fragmented,
			reason:  []string{"the most free on one node is nvidia.com/gpu=1"},
		},
		"a resource no node has": {
			nodes:   nodesOf("n", 3, "cpu=32"),
			members: membersOf("w", 2, "cpu=1, nvidia.com/gpu=1", 0),
			want:    Capacity,
			reason:  []string{"only nvidia.com/gpu=0 free"},
		},
		"two classes on disjoint nodes": {
			nodes:    nodesOf("n", 8, "cpu=4"),
			members:  concat(membersOf("a", 4, "cpu=4", 0), membersOf("b", 4, "cpu=4", 1)),
			eligible: byRange(map[int][2]int{0: {0, 4}, 1: {4, 8}}),
			checkFn: func(t *testing.T, plan Plan) {
				assert.True(t, distinct(plan))
				for m, n := range plan.Node {
					assert.Equal(t, m < 4, n < 4, "member %d on node %d", m, n)
				}
			},
		},
		"one class short although the gang fits in total": {
			nodes:    nodesOf("n", 8, "cpu=4"),
			members:  concat(membersOf("a", 2, "cpu=4", 0), membersOf("b", 5, "cpu=4", 1)),
			eligible: byRange(map[int][2]int{0: {0, 4}, 1: {4, 8}}),
			want:     Capacity,
			placed:   6,
			reason:   []string{"member b-0 and the 4 others with the same node constraints need cpu=20 in total; the nodes they may use have only cpu=16 free in total"},
		},
		"one member alone in its class, short": {
			nodes:    nodesOf("n", 3, "cpu=4"),
			members:  concat(membersOf("a", 1, "cpu=1", 0), membersOf("b", 1, "cpu=8", 1)),
			eligible: byRange(map[int][2]int{0: {0, 3}, 1: {2, 3}}),
			want:     Capacity,
			placed:   1,
			reason:   []string{"member b-0 needs cpu=8; the nodes it may use have only cpu=4 free in total"},
		},
		"a class with no node": {
			nodes:    nodesOf("n", 4, "cpu=4"),
			members:  concat(membersOf("a", 2, "cpu=1", 0), membersOf("tainted", 2, "cpu=1", 7)),
			eligible: byRange(map[int][2]int{0: {0, 4}}),
			want:     NoEligibleNode,
			placed:   2,
			reason:   []string{"no node can run member tainted-0 (taints, node selector or affinity exclude every node)"},
		},
		"no nodes at all": {
			members: membersOf("w", 3, "cpu=1", 0),
			want:    NoEligibleNode,
			reason:  []string{"there are no nodes to run the gang's 3 members on"},
		},
		"no members": {
			nodes:   nodesOf("n", 2, "cpu=1"),
			checkFn: func(t *testing.T, plan Plan) { assert.Empty(t, plan.Node) },
		},
		"empty requests fit anywhere": {
			nodes:   nodesOf("n", 2, ""),
			members: membersOf("w", 3, "", 0),
		},
		"an overcommitted node takes members that do not request what it lacks": {
			nodes:   []Node{{Name: "over", Free: vec("cpu=-2, memory=8Gi")}},
			members: concat(membersOf("mem", 1, "memory=4Gi", 0), membersOf("cpu", 1, "cpu=0, memory=1Gi", 0)),
		},
		"an overcommitted node takes nothing of what it lacks": {
			nodes:   []Node{{Name: "over", Free: vec("cpu=-2, memory=8Gi")}, {Name: "ok", Free: vec("cpu=1")}},
			members: membersOf("w", 1, "cpu=1, memory=1Gi", 0),
			want:    Fragmented,
			reason:  []string{"member w-0 needs cpu=1, memory=1Gi, and no node has all of it free"},
		},
		"negative requests count as zero": {
			nodes:   nodesOf("n", 1, "cpu=1"),
			members: []Member{{Name: "neg", Request: vec("cpu=-5")}, {Name: "one", Request: vec("cpu=1")}},
		},
		"unnamed members are numbered": {
			nodes:   nodesOf("n", 1, "cpu=1"),
			members: []Member{{Request: vec("cpu=1")}, {Request: vec("cpu=1")}},
			want:    Capacity,
			placed:  1,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			plan, short := Pack(tc.nodes, tc.members, tc.eligible)
			if tc.want == "" {
				require.Nil(t, short, "want a plan, got: %v", short)
				requireValidPlan(t, tc.nodes, tc.members, tc.eligible, plan)
				if tc.checkFn != nil {
					tc.checkFn(t, plan)
				}
				return
			}
			require.NotNil(t, short, "want %s, got plan %v", tc.want, plan.Node)
			assert.Equal(t, tc.want, short.Kind, short.Reason)
			assert.Equal(t, tc.placed, short.Placed, short.Reason)
			assert.Equal(t, len(tc.members), short.Needed)
			assert.Empty(t, plan.Node, "no plan with a shortfall")
			assert.Equal(t, short.Reason, short.Error())
			for _, want := range tc.reason {
				assert.Contains(t, short.Reason, want)
			}
		})
	}
}

func TestPackBeatsFirstFit(t *testing.T) {
	nodes := []Node{{Name: "eight", Free: vec("cpu=8")}, {Name: "seven", Free: vec("cpu=7")}}
	members := concat(membersOf("small", 7, "cpu=1", 0), membersOf("big", 1, "cpu=8", 0))
	require.False(t, firstFit(nodes, members), "the case must defeat first fit in arrival order")
	_, short := Pack(nodes, members, nil)
	require.Nil(t, short)
}

func TestNeverFits(t *testing.T) {
	cluster := nodesOf("n", 4, "cpu=32, memory=128Gi, pods=110")
	cases := map[string]struct {
		members []Member
		want    ShortfallKind
		reason  []string
	}{
		"fits an empty cluster": {members: membersOf("w", 8, "cpu=16, memory=64Gi, pods=1", 0)},
		"larger than the whole cluster": {
			members: membersOf("w", 9, "cpu=16, pods=1", 0),
			want:    Capacity,
			reason:  []string{"even on an empty cluster, the gang needs cpu=144, pods=9 for 9 members; the nodes its members may use have only cpu=128 allocatable in total"},
		},
		"a member larger than any node": {
			members: membersOf("w", 2, "cpu=40", 0),
			want:    Fragmented,
			reason: []string{"even on an empty cluster, enough is allocatable in total (cpu=128)", "member w-0 needs cpu=40; the most allocatable on one node is cpu=32",
				"the nodes are too small or too few for the gang's members"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			short := NeverFits(cluster, tc.members, nil)
			if tc.want == "" {
				require.Nil(t, short, "%v", short)
				return
			}
			require.NotNil(t, short)
			assert.Equal(t, tc.want, short.Kind)
			for _, want := range tc.reason {
				assert.Contains(t, short.Reason, want)
			}
		})
	}
}

func cloneNodes(nodes []Node) []Node {
	out := make([]Node, len(nodes))
	for i, n := range nodes {
		out[i] = Node{Name: n.Name, Free: n.Free.Clone()}
	}
	return out
}

func cloneMembers(members []Member) []Member {
	out := make([]Member, len(members))
	for i, m := range members {
		out[i] = Member{Name: m.Name, Request: m.Request.Clone(), Class: m.Class}
	}
	return out
}

func TestPackDoesNotMutateItsInputs(t *testing.T) {
	nodes := concat(nodesOf("a", 3, "cpu=4, memory=8Gi, pods=2"), nodesOf("b", 2, "cpu=-1, memory=1Gi"))
	members := concat(membersOf("x", 4, "cpu=2, memory=2Gi, pods=1", 0), membersOf("y", 3, "cpu=1, pods=1", 1))
	wantNodes, wantMembers := cloneNodes(nodes), cloneMembers(members)
	for _, eligible := range []func(class, node int) bool{nil, byRange(map[int][2]int{0: {0, 3}, 1: {1, 5}})} {
		_, _ = Pack(nodes, members, eligible)
		_ = NeverFits(nodes, members, eligible)
		assert.Equal(t, wantNodes, nodes)
		assert.Equal(t, wantMembers, members)
	}
}

func TestPackIsDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	nodes := make([]Node, 64)
	for i := range nodes {
		nodes[i] = Node{Name: fmt.Sprintf("n-%d", i), Free: resources.Vector{
			v1.ResourceCPU: 16000 - rng.Int64N(12000), v1.ResourceMemory: (64 - rng.Int64N(48)) << 30, v1.ResourcePods: 10,
		}}
	}
	var members []Member
	for i := range 40 {
		members = append(members, Member{Name: fmt.Sprintf("w-%d", i%7), Class: i % 2, Request: resources.Vector{
			v1.ResourceCPU: 500 * (1 + rng.Int64N(6)), v1.ResourceMemory: (1 + rng.Int64N(8)) << 30, v1.ResourcePods: 1,
		}})
	}
	eligible := func(class, node int) bool { return class == 0 || node%3 != 0 }

	first, short := Pack(nodes, members, eligible)
	require.Nil(t, short, "the instance must fit: %v", short)
	for range 5 {
		again, short := Pack(nodes, members, eligible)
		require.Nil(t, short)
		require.Equal(t, first, again, "the same inputs, the same plan")
	}

	// Shuffled nodes: a plan for the shuffled nodes, valid for them.
	for range 5 {
		perm := rng.Perm(len(nodes))
		shuffled := make([]Node, len(nodes))
		for i, p := range perm {
			shuffled[i] = nodes[p]
		}
		elig := func(class, node int) bool { return eligible(class, perm[node]) }
		plan, short := Pack(shuffled, members, elig)
		require.Nil(t, short)
		requireValidPlan(t, shuffled, members, elig, plan)
	}
}
