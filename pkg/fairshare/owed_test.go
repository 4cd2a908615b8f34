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
