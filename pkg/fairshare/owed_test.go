package fairshare

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// TestPropertyGateIncremental: the gate built from scratch (Admit) and a
// gate whose usage is changed leaf by leaf (SetUsage) both decide every
// request exactly as the original whole-tree algorithm (admitOracle),
// refusal messages included. It fails if SetUsage forgets to take a leaf's
// old debt off the total, or the root's usage is not followed.
func TestPropertyGateIncremental(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	refused := 0
	for i := range 300 {
		g := &treeGen{r: r}
		tree, err := queue.Parse([]byte(g.config()))
		require.NoError(t, err)
		capacity := randomCapacity(r)
		usage, demand := randomLoad(r, tree)
		in := input(tree, capacity, usage, demand)
		shares := Compute(in)
		gate := NewGate(in, shares)
		leaves := tree.Leaves()
		for step := range 20 {
			// Move usage within demand in a few leaves, as binds and
			// finished pods do (demand, and so the shares, unchanged).
			for range 1 + r.IntN(3) {
				leaf := leaves[r.IntN(len(leaves))]
				u := resources.Vector{}
				for res, d := range demand[leaf.Path] {
					u[res] = r.Int64N(d + 1)
				}
				usage[leaf.Path] = u
			}
			in = input(tree, capacity, usage, demand)
			for path, u := range in.Usage {
				gate.SetUsage(path, u)
			}
			for _, leaf := range leaves {
				req := resources.Vector{}
				for _, res := range propResources {
					if r.IntN(2) == 0 {
						req[res] = 1 + r.Int64N(propCap(res)/4+1)
					}
				}
				want := admitOracle(leaf, req, shares, in)
				require.Equal(t, want, Admit(leaf, req, shares, in), "tree %d step %d leaf %s req %v: from scratch", i, step, leaf.Path, req)
				require.Equal(t, want, gate.Admit(leaf, req), "tree %d step %d leaf %s req %v: incremental", i, step, leaf.Path, req)
				if want != nil {
					refused++
				}
			}
		}
	}
	require.Greater(t, refused, 100, "the generator must produce refusals")
}

// admitOracle is the gate's decision as first written, leaf by leaf over
// the whole tree (before Gate): the reference the incremental gate is
// checked against.
func admitOracle(leaf *queue.Queue, req resources.Vector, s Shares, in Input) *Refusal {
	of := drawable(leaf, in.Capacity)
	usage := in.Usage[leaf.Path]
	fair := s.Fair[leaf.Path]
	if dominant(usage, of) < dominant(fair, of)-1e-9 {
		return nil
	}
	// Headroom: free capacity minus what other queues below their share
	// are entitled to and still wait for.
	head := in.Capacity.Clone()
	head.Sub(in.Usage[in.Tree.Root.Path])
	var waiting []string
	for _, q := range in.Tree.Leaves() {
		if q == leaf {
			continue
		}
		owed := s.Fair[q.Path].Clone()
		owed.Sub(in.Usage[q.Path])
		positive := false
		for r, a := range owed {
			if a > 0 {
				head[r] -= a
				positive = true
			}
		}
		if positive {
			waiting = append(waiting, q.Path)
		}
	}
	// Refuse only when what others are owed makes the difference: a request
	// that does not fit in the free capacity at all is for the nodes to turn
	// down (and for reclaim to solve), not for fair sharing.
	free := in.Capacity.Clone()
	free.Sub(in.Usage[in.Tree.Root.Path])
	short := ""
	for _, r := range req.Names() {
		if req[r] > 0 && req[r] > head[r] && req[r] <= free[r] {
			short = string(r)
			break
		}
	}
	if short == "" {
		return nil
	}
	sort.Strings(waiting)
	shown := waiting
	if len(shown) > 3 {
		shown = append(append([]string{}, shown[:3]...), fmt.Sprintf("%d more", len(waiting)-3))
	}
	return &Refusal{
		Queue:   leaf.Path,
		Waiting: waiting,
		Msg: fmt.Sprintf("queue %s holds its fair share (%s of fair %s) and the free %s is owed to queues below theirs: %s",
			leaf.Path, fmtRes(usage, short), fmtRes(fair, short), short, strings.Join(shown, ", ")),
	}
}

// BenchmarkGate: one admission decision with 1,000 leaves under
// contention, after one leaf's usage changed (a bind): the gate kept
// current leaf by leaf, against the whole tree from scratch (Compute and
// Admit, as before the gate).
func BenchmarkGate(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("queues:\n")
	for i := range 10 {
		fmt.Fprintf(&sb, "  - name: d%d\n    weight: %d\n    queues:\n", i, 1+i%3)
		for j := range 10 {
			fmt.Fprintf(&sb, "      - name: d%d-t%d\n        weight: %d\n        queues:\n", i, j, 1+j%3)
			for k := range 10 {
				fmt.Fprintf(&sb, "          - {name: d%d-t%d-l%d, weight: %d}\n", i, j, k, 1+k%3)
			}
		}
	}
	tree, err := queue.Parse([]byte(sb.String()))
	require.NoError(b, err)
	leaves := tree.Leaves()
	usage, demand := map[string]resources.Vector{}, map[string]resources.Vector{}
	for i, q := range leaves {
		demand[q.Path] = resources.Vector{cpu: 1000, mem: 1 << 30}
		usage[q.Path] = resources.Vector{cpu: int64(100 * (i % 6)), mem: int64(i%6) << 27}
	}
	capacity := resources.Vector{cpu: 500_000, mem: 1 << 40}
	in := input(tree, capacity, usage, demand)
	req := resources.Vector{cpu: 100, mem: 1 << 27}
	b.Run("incremental", func(b *testing.B) {
		gate := NewGate(in, Compute(in))
		for i := 0; b.Loop(); i++ {
			leaf := leaves[i%len(leaves)]
			gate.SetUsage(leaf.Path, usage[leaf.Path])
			gate.SetUsage(tree.Root.Path, in.Usage[tree.Root.Path])
			_ = gate.Admit(leaf, req)
		}
	})
	b.Run("whole-tree", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			_ = Admit(leaves[i%len(leaves)], req, Compute(in), in)
		}
	})
}
