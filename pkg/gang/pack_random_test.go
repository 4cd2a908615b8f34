package gang

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/resources"
)

// randomInstance draws a small instance with the awkward parts: absent,
// zero and negative amounts, resources nobody has, classes with few or no
// nodes, and, now and then, amounts near MaxInt64.
func randomInstance(rng *rand.Rand) ([]Node, []Member, func(class, node int) bool) {
	names := []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, gpu, v1.ResourcePods}
	huge := rng.IntN(10) == 0
	amount := func(lo, hi int64) int64 {
		if huge && rng.IntN(3) == 0 {
			return math.MaxInt64 - rng.Int64N(3)
		}
		return lo + rng.Int64N(hi-lo+1)
	}
	nodes := make([]Node, rng.IntN(7))
	for i := range nodes {
		free := resources.Vector{}
		for _, r := range names {
			if rng.IntN(5) > 0 {
				free[r] = amount(-2, 12)
			}
		}
		nodes[i] = Node{Name: fmt.Sprintf("n%d", i), Free: free}
	}
	classes := 1 + rng.IntN(3)
	members := make([]Member, rng.IntN(9))
	for i := range members {
		req := resources.Vector{}
		for _, r := range names {
			if rng.IntN(3) > 0 {
				req[r] = amount(-1, 6)
			}
		}
		members[i] = Member{Name: fmt.Sprintf("m%d", rng.IntN(4)), Request: req, Class: rng.IntN(classes)}
	}
	table := make([]bool, classes*len(nodes))
	for i := range table {
		table[i] = rng.IntN(4) > 0
	}
	eligible := func(class, node int) bool { return table[class*len(nodes)+node] }
	if rng.IntN(4) == 0 {
		eligible = nil
	}
	return nodes, members, eligible
}

// shortInTotal reports whether the members that in selects request more of
// some resource than the nodes that may run one of them have free in total.
func shortInTotal(nodes []Node, members []Member, eligible func(class, node int) bool, in func(Member) bool) bool {
	need, avail := map[v1.ResourceName]*big.Int{}, map[v1.ResourceName]*big.Int{}
	for _, m := range members {
		if !in(m) {
			continue
		}
		for r, q := range m.Request {
			if q > 0 {
				if need[r] == nil {
					need[r], avail[r] = new(big.Int), new(big.Int)
				}
				need[r].Add(need[r], big.NewInt(q))
			}
		}
	}
	for n, node := range nodes {
		ok := false
		for _, m := range members {
			ok = ok || in(m) && (eligible == nil || eligible(m.Class, n))
		}
		if !ok {
			continue
		}
		for r, sum := range avail {
			if f := node.Free[r]; f > 0 {
				sum.Add(sum, big.NewInt(f))
			}
		}
	}
	for r := range need {
		if need[r].Cmp(avail[r]) > 0 {
			return true
		}
	}
	return false
}

// feasible searches every placement: the truth for small instances.
func feasible(nodes []Node, members []Member, eligible func(class, node int) bool) bool {
	free := cloneNodes(nodes)
	var try func(m int) bool
	try = func(m int) bool {
		if m == len(members) {
			return true
		}
		for n := range free {
			if eligible != nil && !eligible(members[m].Class, n) || !fitsAll(members[m].Request, free[n].Free) {
				continue
			}
			for r, q := range members[m].Request {
				if q > 0 {
					free[n].Free[r] -= q
				}
			}
			ok := try(m + 1)
			for r, q := range members[m].Request {
				if q > 0 {
					free[n].Free[r] += q
				}
			}
			if ok {
				return true
			}
		}
		return false
	}
	return try(0)
}

// TestPackRandom: any Plan is valid; every shortfall's Kind is true of the
// instance; and against exhaustive search, Pack never claims a plan that
// does not exist and rarely misses one that does.
func TestPackRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	const rounds = 5000
	fits, missed := 0, 0
	for i := range rounds {
		nodes, members, eligible := randomInstance(rng)
		plan, short := Pack(nodes, members, eligible)
		truth := feasible(nodes, members, eligible)
		if short == nil {
			requireValidPlan(t, nodes, members, eligible, plan)
			require.True(t, truth, "round %d: a plan where exhaustive search finds none", i)
			fits++
			continue
		}
		require.NotEmpty(t, short.Reason, "round %d", i)
		require.Equal(t, len(members), short.Needed, "round %d", i)
		require.Less(t, short.Placed, short.Needed, "round %d", i)
		everyone := func(Member) bool { return true }
		switch short.Kind {
		case NoEligibleNode:
			noNode := false
			for _, m := range members {
				any := false
				for n := range nodes {
					any = any || eligible == nil || eligible(m.Class, n)
				}
				noNode = noNode || !any
			}
			require.True(t, noNode, "round %d: %s, but every member has a node", i, short.Reason)
		case Capacity:
			short2 := shortInTotal(nodes, members, eligible, everyone)
			for _, c := range members {
				short2 = short2 || shortInTotal(nodes, members, eligible, func(m Member) bool { return m.Class == c.Class })
			}
			require.True(t, short2, "round %d: %s, but the totals suffice", i, short.Reason)
			require.False(t, truth, "round %d: %s, but a plan exists", i, short.Reason)
		case Fragmented:
			require.False(t, shortInTotal(nodes, members, eligible, everyone), "round %d: %s, but the totals are short", i, short.Reason)
			if truth {
				missed++
			}
		default:
			t.Fatalf("round %d: kind %q", i, short.Kind)
		}
	}
	t.Logf("%d of %d instances fit; best-fit decreasing missed %d feasible ones", fits, rounds, missed)
	assert.Greater(t, fits, rounds/10, "the generator must produce fitting instances")
	assert.Less(t, missed, rounds/50, "best-fit decreasing misses too many feasible instances")
}
