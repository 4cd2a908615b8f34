package fairshare

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

var propResources = []v1.ResourceName{cpu, mem, gpu}

// treeGen writes random, valid queues.yaml: 2–3 levels below root, random
// weights, and (unless plain) random guarantees and maxes that respect the
// tree's rules (a max within the parent's, a guarantee within the queue's
// max and, where the parent guarantees the resource, within what the
// parent has left to give its children).
type treeGen struct {
	r     *rand.Rand
	plain bool // no guarantees, no maxes
	n     int  // queues so far, for names
	b     strings.Builder
}

func (g *treeGen) config() string {
	g.b.WriteString("queues:\n")
	depth := 2 + g.r.IntN(2)
	g.children(1, depth, nil, nil, true, "")
	return g.b.String()
}

func (g *treeGen) children(level, depth int, parentMax, budget resources.Vector, underRoot bool, indent string) {
	n := 1 + g.r.IntN(4)
	if level == 1 && n == 1 {
		n = 2
	}
	for range n {
		g.n++
		fmt.Fprintf(&g.b, "%s  - name: q%d\n", indent, g.n)
		weights := []string{"1", "1", "2", "3", "0.5", "0.25", "7"}
		fmt.Fprintf(&g.b, "%s    weight: %s\n", indent, weights[g.r.IntN(len(weights))])
		effMax := parentMax.Clone()
		var guaranteed resources.Vector
		if !g.plain {
			if g.r.IntN(3) == 0 {
				own := resources.Vector{}
				for _, res := range propResources {
					if g.r.IntN(2) == 0 {
						continue
					}
					hi := int64(propCap(res)) * 2
					if pm, ok := parentMax[res]; ok {
						hi = pm
					}
					own[res] = g.r.Int64N(hi + 1)
				}
				if len(own) > 0 {
					g.writeVector(indent, "max", own)
					effMax = resources.MinLimit(parentMax, own)
				}
			}
			if g.r.IntN(3) == 0 {
				guaranteed = resources.Vector{}
				for _, res := range propResources {
					if g.r.IntN(2) == 0 {
						continue
					}
					hi := int64(propCap(res)) * 3 / 2
					if m, ok := effMax[res]; ok {
						hi = min(hi, m)
					}
					if b, ok := budget[res]; ok && !underRoot {
						hi = min(hi, b)
					}
					a := g.r.Int64N(hi + 1)
					guaranteed[res] = a
					if _, ok := budget[res]; ok && !underRoot {
						budget[res] -= a
					}
				}
				if len(guaranteed) > 0 {
					g.writeVector(indent, "guaranteed", guaranteed)
				} else {
					guaranteed = nil
				}
			}
		}
		if level < depth && g.r.IntN(3) != 0 {
			fmt.Fprintf(&g.b, "%s    queues:\n", indent)
			g.children(level+1, depth, effMax, guaranteed.Clone(), false, indent+"    ")
		}
	}
}

func (g *treeGen) writeVector(indent, field string, v resources.Vector) {
	fmt.Fprintf(&g.b, "%s    %s:\n", indent, field)
	for _, res := range v.Names() {
		fmt.Fprintf(&g.b, "%s      %s: %q\n", indent, res, resources.Format(res, v[res]))
	}
}

// propCap is the scale of each resource in generated clusters.
func propCap(res v1.ResourceName) int64 {
	switch res {
	case cpu:
		return 64_000
	case mem:
		return 256 * gi
	default:
		return 16
	}
}

func randomCapacity(r *rand.Rand) resources.Vector {
	c := resources.Vector{}
	for _, res := range propResources {
		switch r.IntN(5) {
		case 0: // absent: the cluster has none
		case 1:
			c[res] = 0
		default:
			c[res] = 1 + r.Int64N(propCap(res))
		}
	}
	return c
}

// randomLoad gives every leaf a random demand (often above capacity, often
// zero, over random resources) and a usage within it.
func randomLoad(r *rand.Rand, tree *queue.Tree) (usage, demand map[string]resources.Vector) {
	usage, demand = map[string]resources.Vector{}, map[string]resources.Vector{}
	for _, q := range tree.Leaves() {
		d, u := resources.Vector{}, resources.Vector{}
		if r.IntN(5) != 0 {
			for _, res := range propResources {
				if r.IntN(3) == 0 {
					continue
				}
				a := r.Int64N(propCap(res) * 2)
				if r.IntN(6) == 0 {
					a = 0
				}
				d[res] = a
				u[res] = r.Int64N(a + 1)
			}
		}
		demand[q.Path], usage[q.Path] = d, u
	}
	return usage, demand
}

func TestPropertyFairShares(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 400 {
		g := &treeGen{r: r}
		config := g.config()
		tree, err := queue.Parse([]byte(config))
		require.NoError(t, err, "generated config:\n%s", config)
		capacity := randomCapacity(r)
		usage, demand := randomLoad(r, tree)
		in := input(tree, capacity, usage, demand)
		got := Compute(in)
		ok := t.Run(fmt.Sprintf("tree %d", i), func(t *testing.T) {
			checkShares(t, in, got)
		})
		if !ok {
			t.Logf("capacity %v\ndemand %v\nfair %v\nconfig:\n%s", capacity, in.Demand, got.Fair, config)
			return // one failure, fully described, is enough
		}
	}
}

// checkShares asserts what holds of every computation.
func checkShares(t *testing.T, in Input, got Shares) {
	t.Helper()
	root := in.Tree.Root
	for r, a := range got.Fair[root.Path] {
		assert.LessOrEqual(t, a, in.Capacity[r], "root's share of %s exceeds the capacity", r)
	}
	for _, q := range in.Tree.Queues {
		fair := got.Fair[q.Path]
		want := capTo(in.Demand[q.Path], q.EffectiveMax)
		for r, a := range fair {
			assert.GreaterOrEqual(t, a, int64(0), "%s: negative share of %s", q.Path, r)
			assert.LessOrEqual(t, a, want[r], "%s: share of %s above its demand capped by max (%v)", q.Path, r, want)
		}
		d := got.Dominant[q.Path]
		assert.False(t, math.IsNaN(d), "%s: dominant share is NaN", q.Path)
		assert.GreaterOrEqual(t, d, 0.0, "%s: negative dominant share", q.Path)
		if q.IsLeaf() {
			continue
		}
		n := int64(len(q.Children))
		sum := resources.Vector{}
		for _, c := range q.Children {
			sum.Add(got.Fair[c.Path])
		}
		for r, s := range sum {
			assert.LessOrEqual(t, s, fair[r], "%s: children's shares of %s sum above the parent's", q.Path, r)
		}
		// Guarantees: when the children's guarantees (as far as they want
		// them) fit in the parent's share, each child gets at least its own.
		for _, r := range []v1.ResourceName{cpu, mem, gpu} {
			gsum := int64(0)
			for _, c := range q.Children {
				gsum += min(c.Guaranteed[r], capTo(in.Demand[c.Path], c.EffectiveMax)[r])
			}
			if gsum > fair[r] {
				continue
			}
			for _, c := range q.Children {
				g := min(c.Guaranteed[r], capTo(in.Demand[c.Path], c.EffectiveMax)[r])
				assert.GreaterOrEqual(t, got.Fair[c.Path][r], g, "%s: below its guaranteed %s that fits", c.Path, r)
			}
		}
		// No early stop: a child short of what it wants in a resource
		// the parent has is blocked by some resource it still wants that
		// the parent has handed out (up to rounding: a unit per child for
		// the guarantees' scaling and one for the filling).
		slack := 2*n + 1
		for _, c := range q.Children {
			cw := capTo(in.Demand[c.Path], c.EffectiveMax)
			cf := got.Fair[c.Path]
			for r, w := range cw {
				if fair[r] <= 0 || w-cf[r] <= slack {
					continue
				}
				blocked := false
				for r2, w2 := range cw {
					if fair[r2] > 0 && w2 > cf[r2] && fair[r2]-sum[r2] <= slack {
						blocked = true
					}
				}
				assert.True(t, blocked, "%s: wants %v, has %v; the parent %s (%v) has %v left, nothing it needs ran out",
					c.Path, cw, cf, q.Path, fair, leftover(fair, sum))
			}
		}
	}
}

func leftover(fair, sum resources.Vector) resources.Vector {
	l := fair.Clone()
	l.Sub(sum)
	return l
}

// When every child of a parent is backlogged on one resource (demand at
// least the capacity, no guarantees, no max), the parent's share is split in
// proportion to the weights, within rounding.
func TestPropertyBackloggedWeightProportional(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		g := &treeGen{r: r, plain: true}
		config := g.config()
		tree, err := queue.Parse([]byte(config))
		require.NoError(t, err, "generated config:\n%s", config)
		capacity := resources.Vector{cpu: 1 + r.Int64N(propCap(cpu)*4)}
		demand := map[string]resources.Vector{}
		for _, q := range tree.Leaves() {
			demand[q.Path] = resources.Vector{cpu: capacity[cpu] + r.Int64N(capacity[cpu]*2)}
		}
		in := input(tree, capacity, nil, demand)
		got := Compute(in)
		ok := t.Run(fmt.Sprintf("tree %d", i), func(t *testing.T) {
			assert.Equal(t, capacity, got.Fair[tree.Root.Path], "root: backlogged, it gets all of it")
			for _, q := range tree.Queues {
				if q.IsLeaf() {
					continue
				}
				total := 0.0
				for _, c := range q.Children {
					total += c.Weight
				}
				p := float64(got.Fair[q.Path][cpu])
				tol := float64(len(q.Children)) + 1e-9*p
				for _, c := range q.Children {
					exact := p * c.Weight / total
					assert.InDelta(t, exact, float64(got.Fair[c.Path][cpu]), tol,
						"%s: weight %v of %v under %s (%v)", c.Path, c.Weight, total, q.Path, p)
				}
			}
			checkShares(t, in, got)
		})
		if !ok {
			t.Logf("capacity %v\nfair %v\nconfig:\n%s", capacity, got.Fair, config)
			return
		}
	}
}

// The same input gives the same result, whatever the order Go happens to
// walk the maps in.
func TestPropertyDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 100 {
		g := &treeGen{r: r}
		config := g.config()
		tree, err := queue.Parse([]byte(config))
		require.NoError(t, err, "generated config:\n%s", config)
		capacity := randomCapacity(r)
		usage, demand := randomLoad(r, tree)
		in := input(tree, capacity, usage, demand)
		first := Compute(in)
		for range 3 {
			require.Equal(t, first, Compute(in), "tree %d:\n%s", i, config)
		}
	}
}

// Weighted DRF: a child that gets less than it wants was stopped by a
// resource that ran out, and no sibling holding some of that resource got
// further than it: every such sibling's dominant share (of what the parent
// may draw on) per unit of weight is at most the child's. Plain trees (no
// guarantees, no maxes) with demands over three resources.
func TestPropertyDRFStopsTogether(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 300 {
		g := &treeGen{r: r, plain: true}
		config := g.config()
		tree, err := queue.Parse([]byte(config))
		require.NoError(t, err, "generated config:\n%s", config)
		// large amounts of every resource, so that one unit of rounding
		// is a small part of a dominant share
		capacity := resources.Vector{cpu: 10_000 + r.Int64N(100_000), mem: 10*gi + r.Int64N(500*gi), gpu: 1000 + r.Int64N(10_000)}
		_, demand := randomLoad(r, tree)
		for _, d := range demand {
			for res := range d {
				d[res] = int64(float64(d[res]) * float64(capacity[res]) / float64(propCap(res))) // to this capacity's scale
			}
		}
		in := input(tree, capacity, nil, demand)
		got := Compute(in)
		ok := t.Run(fmt.Sprintf("tree %d", i), func(t *testing.T) {
			checkShares(t, in, got)
			for _, p := range tree.Queues {
				if p.IsLeaf() {
					continue
				}
				of := drawable(p, capacity)
				n := int64(len(p.Children))
				slack := 2*n + 1
				pf := got.Fair[p.Path]
				sum := resources.Vector{}
				for _, c := range p.Children {
					sum.Add(got.Fair[c.Path])
				}
				level := func(c *queue.Queue) float64 { return dominant(got.Fair[c.Path], of) / c.Weight }
				// one unit of each resource, per unit of weight, is rounding
				tol := func(c *queue.Queue) float64 {
					return 4 * float64(len(p.Children)) / float64(min(of[cpu], of[gpu])) / c.Weight
				}
				for _, c := range p.Children {
					cw, cf := capTo(in.Demand[c.Path], c.EffectiveMax), got.Fair[c.Path]
					short := false
					for res, w := range cw {
						if pf[res] > 0 && w-cf[res] > slack {
							short = true
						}
					}
					if !short {
						continue
					}
					// some resource it still wants ran out and bounds everyone using it
					explained := false
					for res, w := range cw {
						if pf[res] <= 0 || w <= cf[res] || pf[res]-sum[res] > slack {
							continue
						}
						bounded := true
						for _, o := range p.Children {
							if got.Fair[o.Path][res] > 0 && level(o) > level(c)+tol(c)+tol(o) {
								bounded = false
							}
						}
						explained = explained || bounded
					}
					assert.True(t, explained, "%s (weight %v) has %v of %v, level %.6f; siblings under %s: %v",
						c.Path, c.Weight, cf, cw, level(c), p.Path, siblingLevels(p, got, of))
				}
			}
		})
		if !ok {
			t.Logf("capacity %v\ndemand %v\nfair %v\nconfig:\n%s", capacity, in.Demand, got.Fair, config)
			return
		}
	}
}

func siblingLevels(p *queue.Queue, got Shares, of resources.Vector) map[string]string {
	out := map[string]string{}
	for _, c := range p.Children {
		out[c.Path] = fmt.Sprintf("%v level %.6f", got.Fair[c.Path], dominant(got.Fair[c.Path], of)/c.Weight)
	}
	return out
}

// A share that is a whole number of units comes out whole: floating point
// must not turn 9 gpus split three ways into 2 each.
func TestPropertyWholeSharesStayWhole(t *testing.T) {
	weights := []string{"1", "2", "3", "0.1", "0.3", "0.7"}
	for _, a := range weights {
		for _, b := range weights {
			for _, c := range weights {
				tree := mustTree(t, fmt.Sprintf("queues:\n  - name: a\n    weight: %s\n  - name: b\n    weight: %s\n  - name: c\n    weight: %s\n", a, b, c))
				total := 0.0
				for _, q := range tree.Root.Children {
					total += q.Weight
				}
				for capacity := int64(1); capacity <= 60; capacity++ {
					in := input(tree, resources.Vector{gpu: capacity}, nil, map[string]resources.Vector{
						"root.a": {gpu: 1000}, "root.b": {gpu: 1000}, "root.c": {gpu: 1000}})
					got := Compute(in)
					for _, q := range tree.Root.Children {
						exact := float64(capacity) * q.Weight / total
						if whole := math.Round(exact); math.Abs(exact-whole) < 1e-9 {
							require.Equal(t, int64(whole), got.Fair[q.Path][gpu], "weights %s:%s:%s, %d gpus, %s", a, b, c, capacity, q.Path)
						} else {
							require.Equal(t, int64(math.Floor(exact)), got.Fair[q.Path][gpu], "weights %s:%s:%s, %d gpus, %s", a, b, c, capacity, q.Path)
						}
					}
				}
			}
		}
	}
}

// TestPropertyUncontendedAdmits: whenever Uncontended holds, Admit admits,
// for every leaf and request, so skipping the shares is safe.
func TestPropertyUncontendedAdmits(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	checked := 0
	for i := range 600 {
		g := &treeGen{r: r}
		tree, err := queue.Parse([]byte(g.config()))
		require.NoError(t, err)
		capacity := randomCapacity(r)
		usage, demand := randomLoad(r, tree)
		// Scale the load down half of the time so that it often fits.
		if r.IntN(2) == 0 {
			for _, m := range []map[string]resources.Vector{usage, demand} {
				for _, v := range m {
					for res := range v {
						v[res] /= int64(5 + r.IntN(100))
					}
				}
			}
			for p := range usage {
				for res, a := range usage[p] {
					if a > demand[p][res] {
						usage[p][res] = demand[p][res]
					}
				}
			}
		}
		in := input(tree, capacity, usage, demand)
		shares := Compute(in)
		for _, leaf := range tree.Leaves() {
			req := resources.Vector{}
			for _, res := range propResources {
				if r.IntN(2) == 0 {
					req[res] = r.Int64N(propCap(res)/4 + 1)
				}
			}
			if !Uncontended(capacity, in.Demand[tree.Root.Path], req) {
				continue
			}
			checked++
			require.Nil(t, Admit(leaf, req, shares, in), "tree %d leaf %s req %v: uncontended, yet refused", i, leaf.Path, req)
		}
	}
	require.Greater(t, checked, 100, "the generator must produce uncontended cases")
}
