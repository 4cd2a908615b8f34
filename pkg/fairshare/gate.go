package fairshare

import (
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

// Admit is the fair-share gate's decision from scratch: NewGate(in,
// s).Admit(leaf, req), in O(queues). See Gate.Admit.
func Admit(leaf *queue.Queue, req resources.Vector, s Shares, in Input) *Refusal {
	return NewGate(in, s).Admit(leaf, req)
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
