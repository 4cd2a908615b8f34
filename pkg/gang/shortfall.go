package gang

import (
	"fmt"
	"math"
	"math/bits"

	"muster.dev/muster/pkg/resources"
)

// wording adapts the reasons to what the nodes' amounts mean: free now
// (Pack), or allocatable on an empty cluster (NeverFits).
type wording struct {
	prefix string // starts the sentence
	free   string // what the amounts are
	tail   string // what a Fragmented shortfall means
}

var (
	inFree         = wording{"", "free", "the free capacity is fragmented"}
	inEmptyCluster = wording{"even on an empty cluster, ", "allocatable", "the nodes are too small or too few for the gang's members"}
)

// explain says why place left members out, checking the plainest reasons
// first: a member no node may run, then totals that cannot suffice (which no
// placement could overcome), and only then fragmentation.
func (p *problem) explain(assign []int, placed, firstFailed int, w wording) *Shortfall {
	s := &Shortfall{Placed: placed, Needed: len(p.members)}

	for m, n := range assign {
		if n >= 0 || p.nElig[p.classOf[m]] > 0 {
			continue
		}
		s.Kind = NoEligibleNode
		if p.nn == 0 {
			s.Reason = fmt.Sprintf("%sthere are no nodes to run the gang's %s on", w.prefix, countOf(len(p.members)))
		} else {
			s.Reason = fmt.Sprintf("%sno node can run member %s (taints, node selector or affinity exclude every node)",
				w.prefix, p.memberName(m))
		}
		return s
	}

	everyClass := func(n int) bool {
		for c := range p.classes {
			if p.elig[c*p.nn+n] {
				return true
			}
		}
		return false
	}
	all := func(int) bool { return true }
	need, avail := p.sumRequests(all), p.sumFree(everyClass)
	if short := shortOf(need, avail); len(short) > 0 {
		s.Kind = Capacity
		s.Reason = fmt.Sprintf("%sthe gang needs %s for %s; the nodes its members may use have only %s %s in total",
			w.prefix, p.vector(printable(need), nil), countOf(len(p.members)), p.vector(printable(avail), short), w.free)
		return s
	}

	// With several classes, one class alone can lack room that the others' nodes have.
	if len(p.classes) > 1 {
		for c := range p.classes {
			inClass := func(m int) bool { return p.classOf[m] == c }
			needC, availC := p.sumRequests(inClass), p.sumFree(func(n int) bool { return p.elig[c*p.nn+n] })
			short := shortOf(needC, availC)
			if len(short) == 0 {
				continue
			}
			first, count := -1, 0
			for m := range p.members {
				if inClass(m) {
					count++
					if first < 0 {
						first = m
					}
				}
			}
			s.Kind = Capacity
			if count == 1 {
				s.Reason = fmt.Sprintf("%smember %s needs %s; the nodes it may use have only %s %s in total",
					w.prefix, p.memberName(first), p.vector(printable(needC), nil), p.vector(printable(availC), short), w.free)
			} else {
				s.Reason = fmt.Sprintf("%smember %s and the %d others with the same node constraints need %s in total; the nodes they may use have only %s %s in total",
					w.prefix, p.memberName(first), count-1, p.vector(printable(needC), nil), p.vector(printable(availC), short), w.free)
			}
			return s
		}
	}

	s.Kind = Fragmented
	fit := fmt.Sprintf("only %d of %d members fit", placed, len(p.members))
	switch {
	case len(p.members) == 1:
		fit = "the member does not fit"
	case placed == 0:
		fit = fmt.Sprintf("none of the %d members fits", len(p.members))
	}
	s.Reason = fmt.Sprintf("%senough is %s in total (%s), but %s node by node (%s): %s",
		w.prefix, w.free, p.vector(printable(avail), nil), fit, p.failedDetail(firstFailed, placed, w), w.tail)
	return s
}

// failedDetail describes the first member that did not fit: against the
// roomiest single node where no node could ever hold it, else against what the
// placed members left.
func (p *problem) failedDetail(m, placed int, w wording) string {
	req := p.req[m*p.nr : m*p.nr+p.nr]
	before := func(n, r int) int64 { return p.nodes[n].Free[p.names[r]] }
	if most, short := p.mostOnOneNode(m, before); len(short) > 0 {
		return fmt.Sprintf("member %s needs %s; the most %s on one node is %s",
			p.memberName(m), p.vector(req, nil), w.free, p.vector(most, short))
	}
	after := func(n, r int) int64 { return p.free[n*p.nr+r] }
	if most, short := p.mostOnOneNode(m, after); len(short) > 0 {
		return fmt.Sprintf("member %s needs %s; with %d placed, the most left on one node is %s",
			p.memberName(m), p.vector(req, nil), placed, p.vector(most, short))
	}
	// Each resource has room somewhere, but never all on one node.
	if placed == 0 {
		return fmt.Sprintf("member %s needs %s, and no node has all of it %s",
			p.memberName(m), p.vector(req, nil), w.free)
	}
	return fmt.Sprintf("member %s needs %s; with %d placed, no node has all of it left",
		p.memberName(m), p.vector(req, nil), placed)
}

// mostOnOneNode returns, per resource member m requests, the largest amount
// on a single node it may use, and the resources where that is too little.
func (p *problem) mostOnOneNode(m int, amount func(n, r int) int64) (most []int64, short []int) {
	most = make([]int64, p.nr)
	for r, q := range p.req[m*p.nr : m*p.nr+p.nr] {
		if q == 0 {
			continue
		}
		most[r] = math.MinInt64
		for n := range p.nn {
			if p.elig[p.classOf[m]*p.nn+n] {
				most[r] = max(most[r], amount(n, r))
			}
		}
		if most[r] < q {
			short = append(short, r)
		}
	}
	return most, short
}

// sumRequests adds up the requests of the members that in says, per resource.
func (p *problem) sumRequests(in func(m int) bool) []wide {
	sum := make([]wide, p.nr)
	for m := range p.members {
		if in(m) {
			for r, q := range p.req[m*p.nr : m*p.nr+p.nr] {
				sum[r].add(q)
			}
		}
	}
	return sum
}

// sumFree adds up, per resource, the positive free amounts of the nodes that
// in says (as they were before placement): an overcommitted node lends nothing
// to the others.
func (p *problem) sumFree(in func(n int) bool) []wide {
	sum := make([]wide, p.nr)
	for n, node := range p.nodes {
		if in(n) {
			for r, name := range p.names {
				if f := node.Free[name]; f > 0 {
					sum[r].add(f)
				}
			}
		}
	}
	return sum
}

// wide is a sum of non-negative int64 amounts in 128 bits: exact where an
// int64 would wrap, so that Capacity is said exactly when the totals are short.
type wide struct{ hi, lo uint64 }

func (w *wide) add(a int64) {
	var carry uint64
	w.lo, carry = bits.Add64(w.lo, uint64(a), 0)
	w.hi += carry
}

func (w wide) less(o wide) bool { return w.hi < o.hi || w.hi == o.hi && w.lo < o.lo }

// capped returns w, or MaxInt64 if it is larger: for printing only.
func (w wide) capped() int64 {
	if w.hi > 0 || w.lo > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(w.lo)
}

// shortOf returns the resources where need exceeds avail.
func shortOf(need, avail []wide) []int {
	var short []int
	for r := range need {
		if avail[r].less(need[r]) {
			short = append(short, r)
		}
	}
	return short
}

// printable turns sums into amounts for vector, capped at MaxInt64.
func printable(sums []wide) []int64 {
	out := make([]int64, len(sums))
	for r, s := range sums {
		out[r] = s.capped()
	}
	return out
}

// vector turns dense amounts into a Vector for printing: the resources in
// only, or when only is nil those with a non-zero amount.
func (p *problem) vector(amounts []int64, only []int) resources.Vector {
	v := resources.Vector{}
	if only != nil {
		for _, r := range only {
			v[p.names[r]] = amounts[r]
		}
		return v
	}
	for r, a := range amounts {
		if a != 0 {
			v[p.names[r]] = a
		}
	}
	return v
}

// countOf says "1 member" or "8 members".
func countOf(n int) string {
	if n == 1 {
		return "1 member"
	}
	return fmt.Sprintf("%d members", n)
}

func (p *problem) memberName(m int) string {
	if name := p.members[m].Name; name != "" {
		return name
	}
	return fmt.Sprintf("#%d", m)
}
