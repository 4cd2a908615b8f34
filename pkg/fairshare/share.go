// Package fairshare computes how a cluster's capacity should be divided
// between muster's queues: hierarchical, weighted dominant-resource fairness
// with guarantees served first and max as a ceiling, and the choice of
// victims when a queue reclaims its guarantee. Pure Go: no client-go, no
// metrics, no clock.
package fairshare

import (
	"math"

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
	out.Dominant = Dominants(in)
	return out
}

// Dominants is every queue's dominant share (Shares.Dominant): usage alone
// decides it, so it may be recomputed without the fair shares.
func Dominants(in Input) map[string]float64 {
	out := map[string]float64{}
	if in.Tree == nil {
		return out
	}
	for _, q := range in.Tree.Queues {
		out[q.Path] = dominant(in.Usage[q.Path], drawable(q, in.Capacity))
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
	f := newFilling(kids, wants, alloc, rest, share, of)
	for f.rise() {
		// each round, a child has all it wants or a resource runs out
	}
	trimToRest(f.extra, rest)
	return f.extra
}

// filling is a progressive fill under way. Its level is the children's
// common weighted dominant share (of the parent's capacity) above what they
// were allocated; a child grows with it until it stops.
type filling struct {
	need   []resources.Vector // what each child still wants
	active []bool             // still growing
	// rate[i][r]: how much of r child i takes per unit of level; one unit
	// of level raises its dominant share of the parent's capacity by its
	// weight.
	rate []map[v1.ResourceName]float64
	// reach[i]: the level at which child i has all it needs (once it has
	// stopped, the level at which it stopped).
	reach []float64
	avail map[v1.ResourceName]float64 // what is left of rest
	level float64
	extra []resources.Vector // what each child gets, set when it stops
}

func newFilling(kids []*queue.Queue, wants, alloc []resources.Vector, rest, share, of resources.Vector) *filling {
	n := len(kids)
	f := &filling{need: make([]resources.Vector, n), active: make([]bool, n),
		rate: make([]map[v1.ResourceName]float64, n), reach: make([]float64, n),
		avail: map[v1.ResourceName]float64{}, extra: make([]resources.Vector, n)}
	for i, c := range kids {
		f.extra[i] = resources.Vector{}
		f.need[i] = resources.Vector{}
		for r, w := range wants[i] {
			if d := w - alloc[i][r]; d > 0 && share[r] > 0 && of[r] > 0 {
				f.need[i][r] = d
			}
		}
		f.active[i] = len(f.need[i]) > 0
		if f.active[i] {
			f.rate[i], f.reach[i] = pace(f.need[i], of, c.Weight)
		}
	}
	for r, a := range rest {
		if a > 0 {
			f.avail[r] = float64(a)
		}
	}
	return f
}

// pace is how fast a child of that weight takes what it needs, per unit of
// level, and the level at which it has it all.
func pace(need, of resources.Vector, weight float64) (map[v1.ResourceName]float64, float64) {
	ds := 0.0 // the dominant share of what it needs
	for r, d := range need {
		ds = math.Max(ds, float64(d)/float64(of[r]))
	}
	rate := map[v1.ResourceName]float64{}
	for r, d := range need {
		rate[r] = float64(d) / ds * weight
	}
	return rate, ds / weight
}

// rise raises the level to the next event, where a child has all it wants
// or a resource runs out, and stops the children that event stops. It
// reports false when no child grows any more.
func (f *filling) rise() bool {
	use := map[v1.ResourceName]float64{} // taken per unit of level, by all
	anyActive := false
	for i, a := range f.active {
		if !a {
			continue
		}
		anyActive = true
		for r, x := range f.rate[i] {
			use[r] += x
		}
	}
	if !anyActive {
		return false
	}
	step := math.Inf(1)
	for i, a := range f.active {
		if a {
			step = math.Min(step, f.reach[i]-f.level)
		}
	}
	for r, u := range use {
		if u > 0 {
			step = math.Min(step, f.avail[r]/u)
		}
	}
	if step < 0 {
		step = 0
	}
	for r, u := range use {
		f.avail[r] -= u * step
	}
	f.level += step
	f.stopDone()
	return true
}

// stopDone stops the children that have all they need, or need a resource
// that is gone, at the level reached: each gets that part of what it
// needed. Children not limited by an exhausted resource go on.
func (f *filling) stopDone() {
	for i, a := range f.active {
		if !a {
			continue
		}
		done := f.reach[i]-f.level <= 1e-12
		for r := range f.rate[i] {
			if f.avail[r] <= 1e-9 {
				done = true // a resource it needs is gone
			}
		}
		if !done {
			continue
		}
		f.active[i] = false
		frac := math.Min(1, f.level/f.reach[i])
		for r, d := range f.need[i] {
			f.extra[i][r] = units(float64(d) * frac)
		}
		f.reach[i] = f.level // it stops growing from here: freeze its level
	}
}

// trimToRest makes the extras add up to no more than rest. Rounding
// leftovers go to nobody (fair shares are advisory bounds, not
// allocations); but units may round up by a unit, and where that would hand
// out more than rest it is taken back, last child first.
func trimToRest(extra []resources.Vector, rest resources.Vector) {
	for r, a := range rest {
		over := -a
		for i := range extra {
			over += extra[i][r]
		}
		for i := len(extra) - 1; i >= 0 && over > 0; i-- {
			cut := min(over, extra[i][r])
			extra[i][r] -= cut
			over -= cut
		}
	}
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

// Standing is a queue's usage measured against its fair share: the
// largest, over resources, of usage divided by fair share. Below 1 the
// queue holds less than it should; a queue that uses what its fair share
// has none of stands at +Inf.
func (s Shares) Standing(path string, usage resources.Vector) float64 {
	return dominant(usage, s.Fair[path])
}
