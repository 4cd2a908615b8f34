package fairshare

import (
	"fmt"
	"sort"
	"strings"

	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// Refusal says why a request must wait for fairness' sake.
type Refusal struct {
	Queue string
	Msg   string
	// Waiting lists the queues below their fair share whose pending work
	// has first claim on the free capacity.
	Waiting []string
}

func (r *Refusal) Error() string { return r.Msg }

// Admit decides, under fair sharing, whether a request of a leaf queue may
// take capacity now. It may when the queue is below its fair share (in its
// dominant resource), or when what is free beyond the unfilled fair shares
// of every other queue still covers it: a queue may borrow idle capacity,
// but not capacity that queues below their share are waiting for.
//
// Fair shares follow demand, so when nobody else wants anything every
// queue's share grows to its demand (up to its max): no contention, nothing
// refused. The queue's max is checked elsewhere (the ledger).
func Admit(leaf *queue.Queue, req resources.Vector, s Shares, in Input) *Refusal {
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

func fmtRes(v resources.Vector, r string) string {
	for k, a := range v {
		if string(k) == r {
			return resources.Format(k, a)
		}
	}
	return "0"
}

// Uncontended reports whether the request and every queue's demand (root's
// usage plus everything waiting, rootDemand) fit in the capacity together,
// in every resource the request or the demand names. Then Admit admits the
// request whatever the fair shares are, so the caller may skip computing
// them (the whole tree's water-filling) for every pod of an uncontended
// cluster.
//
// Why: a fair share never exceeds its queue's demand, so what the other
// queues are owed (fair share minus usage, where positive) is at most what
// they wait for, and the headroom Admit computes is at least
// capacity - rootDemand - req + (the request's own leaf's pending) >= 0 per
// resource: the request fits in it and Admit returns nil
// (TestPropertyUncontendedAdmits checks this on random trees).
func Uncontended(capacity, rootDemand, req resources.Vector) bool {
	for r, a := range req {
		if a > 0 && rootDemand[r]+a > capacity[r] {
			return false
		}
	}
	for r, a := range rootDemand {
		if a > capacity[r] {
			return false
		}
	}
	return true
}
