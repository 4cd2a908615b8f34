package fairshare

import (
	"fmt"
	"sort"
	"time"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// Reasons a victim is preempted (the label of muster_preemptions_total).
const (
	ReasonReclaim  = "reclaim"
	ReasonPriority = "priority"
)

// Victim is a running pod that may be preempted.
type Victim struct {
	Key, Namespace, Name string
	// Queue is the leaf queue it was admitted to.
	Queue string
	// Node is the index of its node in ReclaimInput.Nodes.
	Node     int
	Request  resources.Vector
	Priority int32
	Started  time.Time
	// Gang names the victim's gang ("" for none). Members of a gang that
	// would drop below its quorum go together.
	Gang string
	// DisruptionAllowed is false when a PodDisruptionBudget forbids evicting
	// it now; such victims are taken only when nothing else will do.
	DisruptionAllowed bool
}

// GangQuorum is a running gang's quorum and bound member count.
type GangQuorum struct {
	Min, Bound int
}

// ReclaimInput is what Reclaim decides on.
type ReclaimInput struct {
	Tree  *queue.Tree
	Usage map[string]resources.Vector // allocated + reserved, by queue path
	// Preemptor's leaf queue, priority and members (one pod, or a gang's
	// members) with the nodes they may use.
	Queue    *queue.Queue
	Priority int32
	Members  []gang.Member
	Eligible func(class, node int) bool
	// Nodes with what is free on them now.
	Nodes   []gang.Node
	Victims []Victim
	Gangs   map[string]GangQuorum
}

// ReclaimPlan is the chosen victims and where the preemptor's members go.
type ReclaimPlan struct {
	Victims []Victim
	// Reason per victim, same index.
	Reasons []string
	Plan    gang.Plan
}

// Reclaim chooses the fewest, least important victims whose removal lets
// the preemptor's members fit node by node, under these rules:
//
//   - Across queues, only reclaim: the preemptor's queue must stay at or
//     under its guaranteed with the members admitted, and a victim's queue
//     must stay at or above its guaranteed after losing the victim.
//   - Within the preemptor's own queue, only lower-priority pods (priority).
//   - Lowest priority first, then the newest; victims whose
//     PodDisruptionBudget forbids it last.
//   - A gang is taken whole if taking a member would leave it below its
//     quorum.
//   - Never more than needed: after the greedy choice, every victim whose
//     removal is not needed any more is spared.
//
// Why reclaim cannot ping-pong: after it, the preemptor's queue is at or
// under its guaranteed, and every victim's queue at or above its own. A
// queue reclaims only while below its guaranteed, and only from queues that
// stay at or above theirs; so the victim queue cannot take back from the
// preemptor's queue (that would take the preemptor below its guaranteed),
// and the preemptor, once at its guaranteed, cannot reclaim any further.
func Reclaim(in ReclaimInput) (*ReclaimPlan, string) {
	total := resources.Vector{}
	for _, m := range in.Members {
		total.Add(m.Request)
	}
	reclaimOK := withinGuarantee(in.Usage[in.Queue.Path], total, in.Queue.Guaranteed)

	// Candidate units: single pods, or whole gangs that must go together.
	type unit struct {
		victims []Victim
		reason  string
		prio    int32
		started time.Time
		pdb     bool // all disruptions allowed
		key     string
	}
	var units []unit
	byGang := map[string][]Victim{}
	for _, v := range in.Victims {
		var reason string
		switch {
		case v.Queue == in.Queue.Path:
			if v.Priority >= in.Priority {
				continue
			}
			reason = ReasonPriority
		case reclaimOK:
			reason = ReasonReclaim
		default:
			continue
		}
		if v.Gang != "" {
			if q := in.Gangs[v.Gang]; q.Bound <= q.Min {
				byGang[v.Gang] = append(byGang[v.Gang], v)
				continue
			}
		}
		units = append(units, unit{victims: []Victim{v}, reason: reason, prio: v.Priority, started: v.Started, pdb: v.DisruptionAllowed, key: v.Key})
	}
	for g, vs := range byGang {
		u := unit{victims: vs, reason: ReasonReclaim, prio: vs[0].Priority, started: vs[0].Started, pdb: true, key: "gang:" + g}
		for _, v := range vs {
			if v.Queue == in.Queue.Path {
				u.reason = ReasonPriority
			}
			u.prio = max(u.prio, v.Priority)
			if v.Started.After(u.started) {
				u.started = v.Started
			}
			u.pdb = u.pdb && v.DisruptionAllowed
		}
		units = append(units, u)
	}
	sort.Slice(units, func(i, j int) bool {
		a, b := units[i], units[j]
		if a.pdb != b.pdb {
			return a.pdb
		}
		if a.prio != b.prio {
			return a.prio < b.prio
		}
		if !a.started.Equal(b.started) {
			return a.started.After(b.started)
		}
		return a.key < b.key
	})

	free := make([]gang.Node, len(in.Nodes))
	for i, n := range in.Nodes {
		free[i] = gang.Node{Name: n.Name, Free: n.Free.Clone()}
	}
	usage := map[string]resources.Vector{}
	for p, u := range in.Usage {
		usage[p] = u.Clone()
	}
	// take applies (sign -1: takes back) a unit's removal to nodes and
	// queue usage, and reports whether every victim queue stays at or above
	// its guarantee.
	take := func(u unit, sign int64) bool {
		ok := true
		for _, v := range u.victims {
			for r, a := range v.Request {
				free[v.Node].Free[r] += sign * a
			}
			for q := in.Tree.Get(v.Queue); q != nil; q = q.Parent {
				uq := usage[q.Path]
				if uq == nil {
					uq = resources.Vector{}
					usage[q.Path] = uq
				}
				for r, a := range v.Request {
					uq[r] -= sign * a
				}
			}
			if q := in.Tree.Get(v.Queue); q != nil && u.reason == ReasonReclaim && !atOrAbove(usage[q.Path], q.Guaranteed) {
				ok = false
			}
		}
		return ok
	}
	fits := func() (gang.Plan, bool) {
		p, short := gang.Pack(free, in.Members, in.Eligible)
		return p, short == nil
	}
	if _, ok := fits(); ok {
		return nil, "the pod fits without preempting anything"
	}
	var chosen []unit
	var plan gang.Plan
	found := false
	for _, u := range units {
		if !take(u, +1) {
			take(u, -1) // would take its queue below its guarantee
			continue
		}
		chosen = append(chosen, u)
		if p, ok := fits(); ok {
			plan, found = p, true
			break
		}
	}
	if !found {
		if !reclaimOK {
			return nil, fmt.Sprintf("queue %s is not below its guaranteed with this request, so it may not reclaim from other queues", in.Queue.Path)
		}
		return nil, "preempting every eligible pod would not make room (victim queues keep their guarantees)"
	}
	// Spare every victim that turns out not to be needed, newest choice first.
	for i := len(chosen) - 1; i >= 0; i-- {
		take(chosen[i], -1)
		if p, ok := fits(); ok {
			plan = p
			chosen = append(chosen[:i], chosen[i+1:]...)
			continue
		}
		take(chosen[i], +1)
	}
	out := &ReclaimPlan{Plan: plan}
	for _, u := range chosen {
		for _, v := range u.victims {
			out.Victims = append(out.Victims, v)
			out.Reasons = append(out.Reasons, u.reason)
		}
	}
	return out, ""
}

// withinGuarantee reports whether usage plus req stays at or under the
// guarantee in every guaranteed resource the request uses, and the queue
// guarantees something the request uses.
func withinGuarantee(usage, req, guaranteed resources.Vector) bool {
	any := false
	for r, a := range req {
		g, ok := guaranteed[r]
		if !ok || a <= 0 {
			continue
		}
		any = true
		if usage[r]+a > g {
			return false
		}
	}
	return any
}

// atOrAbove reports whether usage is at or above the guarantee in every
// guaranteed resource.
func atOrAbove(usage, guaranteed resources.Vector) bool {
	for r, g := range guaranteed {
		if usage[r] < g {
			return false
		}
	}
	return true
}
