// Package fairshare computes how a cluster's capacity should be divided
// between muster's queues: hierarchical, weighted dominant-resource fairness
// with guarantees served first and max as a ceiling, and the choice of
// victims when a queue reclaims its guarantee. Pure Go: no client-go, no
// metrics, no clock.
package fairshare

import (
	"math"
	"sort"

	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// Shares is the result of a computation, by queue path.
type Shares struct {
	// Fair is each queue's fair share: what it should hold given what every
	// queue wants now. It never exceeds the queue's demand or max, and the
	// children's sum never exceeds the parent's.
	Fair map[string]resources.Vector
	// Dominant is each queue's dominant share: the largest, over resources,
	// of its usage divided by the capacity it may draw on (the cluster's,
	// capped by the queue's effective max).
	Dominant map[string]float64
}

// Input is what the computation needs.
type Input struct {
	Tree *queue.Tree
	// Capacity is what muster's queues can share: the cluster's allocatable
	// minus what pods of other schedulers hold.
	Capacity resources.Vector
	// Usage (allocated + reserved) and Demand (usage + pending) of every
	// queue, by path; a parent's are its children's sums.
	Usage, Demand map[string]resources.Vector
}

// Compute divides the capacity down the tree, level by level. At each queue
// its fair share is split between its children:
//
//  1. every child first gets its guaranteed, as far as it wants it (its
//     demand, capped by its max); if guarantees exceed what the parent has,
//     they are scaled down in proportion;
//  2. the rest goes to the children that want more, by weighted dominant
//     resource fairness (progressive filling: the children's dominant shares
//     of the parent's capacity, divided by their weights, rise together
//     until a child has all it wants or a resource runs out, and then the
//     others go on).
//
// A child that wants less than its share leaves the rest to its siblings by
// weight; a child that wants nothing gets nothing. Ties are broken by path,
// so the result is deterministic.
func Compute(in Input) Shares {
	out := Shares{Fair: map[string]resources.Vector{}, Dominant: map[string]float64{}}
	if in.Tree == nil {
		return out
	}
	root := in.Tree.Root
	rootShare := capTo(want(root, in), in.Capacity)
	for r := range rootShare {
		if _, ok := in.Capacity[r]; !ok {
			delete(rootShare, r) // the cluster has none: absent is zero here, not unlimited
		}
	}
	out.Fair[root.Path] = rootShare
	split(root, rootShare, in, out.Fair)
	for _, q := range in.Tree.Queues {
		out.Dominant[q.Path] = dominant(in.Usage[q.Path], drawable(q, in.Capacity))
	}
	return out
}

// want is what a queue may usefully get: its demand, capped by its
// effective max.
func want(q *queue.Queue, in Input) resources.Vector {
	return capTo(in.Demand[q.Path], q.EffectiveMax)
}

// drawable is the capacity a queue may draw on: the cluster's, capped by the
// queue's effective max.
func drawable(q *queue.Queue, capacity resources.Vector) resources.Vector {
	return capTo(capacity, q.EffectiveMax)
}

// capTo returns v with each resource capped by limit (absent = no limit).
func capTo(v, limit resources.Vector) resources.Vector {
	out := make(resources.Vector, len(v))
	for r, a := range v {
		if a <= 0 {
			continue
		}
		if l, ok := limit[r]; ok && a > l {
			a = l
		}
		if a > 0 {
			out[r] = a
		}
	}
	return out
}

func dominant(usage, of resources.Vector) float64 {
	d := 0.0
	for r, u := range usage {
		if u <= 0 {
			continue
		}
		c := of[r]
		if c <= 0 {
			return math.Inf(1) // uses what it may not draw on at all
		}
		d = math.Max(d, float64(u)/float64(c))
	}
	return d
}

// split divides a queue's fair share between its children, recursively.
func split(parent *queue.Queue, share resources.Vector, in Input, fair map[string]resources.Vector) {
	kids := parent.Children
	if len(kids) == 0 {
		return
	}
	n := len(kids)
	wants := make([]resources.Vector, n)
	alloc := make([]resources.Vector, n)
	for i, c := range kids {
		wants[i] = want(c, in)
		alloc[i] = resources.Vector{}
	}

	// 1. Guarantees, as far as each child wants them, scaled to fit.
	gsum := resources.Vector{}
	for i, c := range kids {
		for r, g := range c.Guaranteed {
			if w := wants[i][r]; w > 0 {
				alloc[i][r] = min(g, w)
				gsum[r] += alloc[i][r]
			}
		}
	}
	for r, s := range gsum {
		if avail := share[r]; s > avail {
			for i := range kids {
				if a := alloc[i][r]; a > 0 {
					alloc[i][r] = int64(float64(a) * float64(avail) / float64(s))
				}
			}
		}
	}

	// 2. The rest by weighted DRF, measured against what the parent may
	// draw on. Not against its share: that is capped by demand, and a
	// resource few ask for would then look scarce (a queue asking for 1 of
	// 10 idle gpus would have a dominant share of 100%).
	rest := share.Clone()
	for i := range kids {
		rest.Sub(alloc[i])
	}
	extra := progressiveFill(kids, wants, alloc, rest, share, drawable(parent, in.Capacity))
	for i, c := range kids {
		f := alloc[i].Plus(extra[i])
		for r, a := range f {
			if a <= 0 {
				delete(f, r)
			}
		}
		fair[c.Path] = f
		split(c, f, in, fair)
	}
}

// progressiveFill hands out rest to the children still wanting more: each
// child's extra grows along what it still wants, at a pace that raises its
// dominant share (of of, the capacity the parent may draw on) in proportion
// to its weight, until it has all it wants or a resource it needs runs out.
func progressiveFill(kids []*queue.Queue, wants, alloc []resources.Vector, rest, share, of resources.Vector) []resources.Vector {
	n := len(kids)
	extra := make([]resources.Vector, n)
	need := make([]resources.Vector, n) // what each child still wants
	active := make([]bool, n)
	for i := range kids {
		extra[i] = resources.Vector{}
		need[i] = resources.Vector{}
		for r, w := range wants[i] {
			if d := w - alloc[i][r]; d > 0 && share[r] > 0 && of[r] > 0 {
				need[i][r] = d
			}
		}
		active[i] = len(need[i]) > 0
	}
	avail := map[v1.ResourceName]float64{}
	for r, a := range rest {
		if a > 0 {
			avail[r] = float64(a)
		}
	}
	// rate[i][r]: how much of r child i takes per unit of "level"; one unit
	// of level raises its dominant share of the parent's capacity by its weight.
	rate := make([]map[v1.ResourceName]float64, n)
	reach := make([]float64, n) // the level at which child i has all it needs
	for i, c := range kids {
		if !active[i] {
			continue
		}
		ds := 0.0
		for r, d := range need[i] {
			ds = math.Max(ds, float64(d)/float64(of[r]))
		}
		rate[i] = map[v1.ResourceName]float64{}
		for r, d := range need[i] {
			rate[i][r] = float64(d) / ds * c.Weight
		}
		reach[i] = ds / c.Weight
	}
	level := 0.0
	for {
		// The next event: a child saturates, or a resource runs out.
		use := map[v1.ResourceName]float64{}
		anyActive := false
		for i := range kids {
			if !active[i] {
				continue
			}
			anyActive = true
			for r, x := range rate[i] {
				use[r] += x
			}
		}
		if !anyActive {
			break
		}
		step := math.Inf(1)
		for i := range kids {
			if active[i] {
				step = math.Min(step, reach[i]-level)
			}
		}
		for r, u := range use {
			if u > 0 {
				step = math.Min(step, avail[r]/u)
			}
		}
		if step < 0 {
			step = 0
		}
		for r, u := range use {
			avail[r] -= u * step
		}
		level += step
		for i := range kids {
			if !active[i] {
				continue
			}
			done := reach[i]-level <= 1e-12
			for r := range rate[i] {
				if avail[r] <= 1e-9 {
					done = true // a resource it needs is gone
				}
			}
			if done {
				active[i] = false
				frac := math.Min(1, level/reach[i])
				for r, d := range need[i] {
					extra[i][r] = units(float64(d) * frac)
				}
				// It stops growing from here: freeze its level.
				reach[i] = level
			}
		}
	}
	// Children that stopped because a resource ran out took their
	// proportional part above; children not limited by the exhausted
	// resource kept going in the loop. Hand out rounding leftovers to
	// nobody: fair shares are advisory bounds, not allocations. units may
	// round up by a unit; where that would hand out more than rest, take
	// it back, last child first.
	for r, a := range rest {
		over := -a
		for i := range kids {
			over += extra[i][r]
		}
		for i := n - 1; i >= 0 && over > 0; i-- {
			cut := min(over, extra[i][r])
			extra[i][r] -= cut
			over -= cut
		}
	}
	return extra
}

// units rounds an amount down to whole units, except that an amount within
// floating-point error of a whole unit is that unit: 9 gpus split three
// ways is 3 each, not 2.9999999999999996 floored to 2.
func units(x float64) int64 {
	if r := math.Round(x); math.Abs(x-r) <= 1e-9+1e-13*math.Abs(x) {
		return int64(r)
	}
	return int64(math.Floor(x))
}

// Order lists queue paths by how far below their fair share they are (the
// smallest ratio of dominant usage to dominant fair share first), queues
// under their guaranteed before all others; ties by path. It is the order in
// which waiting work should be served.
func Order(tree *queue.Tree, s Shares, usage map[string]resources.Vector, capacity resources.Vector) []string {
	type entry struct {
		path         string
		underGuarant bool
		ratio        float64
	}
	var es []entry
	for _, q := range tree.Leaves() {
		u := usage[q.Path]
		f := s.Fair[q.Path]
		of := drawable(q, capacity)
		ratio := 0.0
		if df := dominant(f, of); df > 0 {
			ratio = dominant(u, of) / df
		} else if dominant(u, of) > 0 {
			ratio = math.Inf(1)
		}
		es = append(es, entry{path: q.Path, underGuarant: below(u, q.Guaranteed), ratio: ratio})
	}
	sort.Slice(es, func(i, j int) bool {
		if es[i].underGuarant != es[j].underGuarant {
			return es[i].underGuarant
		}
		if es[i].ratio != es[j].ratio {
			return es[i].ratio < es[j].ratio
		}
		return es[i].path < es[j].path
	})
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.path
	}
	return out
}

// below reports whether usage is under the guarantee in some guaranteed resource.
func below(usage, guaranteed resources.Vector) bool {
	for r, g := range guaranteed {
		if usage[r] < g {
			return true
		}
	}
	return false
}
