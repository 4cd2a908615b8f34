package fairshare

import (
	"fmt"
	"sort"
	"strings"
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
//   - Across queues, only reclaim: the preemptor's queue, or an ancestor
//     of it that the victim's queue does not share, must guarantee a
//     resource the members use and stay at or under that guarantee with the
//     members admitted (a leaf that guarantees nothing reclaims for its
//     parent's guarantee); and a victim's queue, with each ancestor the
//     preemptor does not share, must stay at or above its guaranteed after
//     losing the victim.
//   - Within the preemptor's own queue, only lower-priority pods (priority).
//   - Lowest priority first, then the newest; victims whose
//     PodDisruptionBudget forbids it last.
//   - A gang is never left below its quorum: members beyond it may go one
//     by one; taking more takes the whole gang, which needs every member to
//     be a candidate (otherwise its members are not taken).
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
	// The preemptor and its ancestors, by path.
	shared := map[string]bool{}
	for q := in.Queue; q != nil; q = q.Parent {
		shared[q.Path] = true
	}
	// reclaimOK reports whether the preemptor may reclaim from a queue:
	// some queue on its path below their lowest common ancestor is owed
	// the request (capacity moving inside a common ancestor leaves that
	// one's usage as it was). Once that queue holds the request it is at
	// or under its guarantee, so the victim's side may not take it back.
	within := map[string]bool{} // by common ancestor
	reclaimOK := func(victimQueue string) bool {
		lca := victimQueue
		for lca != "" && !shared[lca] {
			lca = queue.ParentPath(lca)
		}
		ok, seen := within[lca]
		if seen {
			return ok
		}
		for q := in.Queue; q != nil && q.Path != lca; q = q.Parent {
			if withinGuarantee(in.Usage[q.Path], total, q.Guaranteed) {
				ok = true
				break
			}
		}
		within[lca] = ok
		return ok
	}

	// Candidates: every pod the preemptor may take, each with its reason.
	// A gang's members beyond its quorum (its spare members) may go one by
	// one; taking more takes the whole gang, which is possible only when
	// every member is a candidate.
	type unit struct {
		victims []Victim
		reasons []string
		prio    int32
		started time.Time
		pdb     bool // all disruptions allowed
		key     string
		gang    string
		whole   bool // the rest of a gang
	}
	type gangState struct {
		spare, bound int
		members      []unit // its candidate members, as single units
		eligible     bool   // every member seen is a candidate
		taken        int    // spare members taken
		whole        bool   // the whole gang is taken
	}
	gangs := map[string]*gangState{}
	gangOf := func(name string) *gangState {
		gs := gangs[name]
		if gs == nil {
			q, known := in.Gangs[name]
			gs = &gangState{eligible: true, bound: -1} // unknown: as many as are seen, no spares
			if known {
				gs.spare, gs.bound = max(0, q.Bound-q.Min), q.Bound
			}
			gangs[name] = gs
		}
		return gs
	}
	var units []unit
	notOwed := map[string]bool{} // victim queues the preemptor may not reclaim from
	for _, v := range in.Victims {
		var reason string
		switch {
		case v.Queue == in.Queue.Path && v.Priority < in.Priority:
			reason = ReasonPriority
		case v.Queue != in.Queue.Path && reclaimOK(v.Queue):
			reason = ReasonReclaim
		case v.Queue != in.Queue.Path:
			notOwed[v.Queue] = true
		}
		if reason == "" {
			if v.Gang != "" {
				gangOf(v.Gang).eligible = false
			}
			continue
		}
		u := unit{victims: []Victim{v}, reasons: []string{reason}, prio: v.Priority, started: v.Started, pdb: v.DisruptionAllowed, key: v.Key, gang: v.Gang}
		if v.Gang != "" {
			gs := gangOf(v.Gang)
			gs.members = append(gs.members, u)
		}
		units = append(units, u)
	}
	// A gang with no spare members can only go whole: one unit, as
	// important as its most important member, protected if any member is.
	complete := func(gs *gangState) bool {
		return gs.eligible && (gs.bound < 0 || len(gs.members) == gs.bound)
	}
	kept := units[:0]
	for _, u := range units {
		if u.gang == "" || gangs[u.gang].spare > 0 {
			kept = append(kept, u)
		}
	}
	units = kept
	for name, gs := range gangs {
		if gs.spare > 0 || !complete(gs) || len(gs.members) == 0 {
			continue
		}
		w := unit{gang: name, whole: true, key: "gang:" + name, pdb: true, prio: gs.members[0].prio, started: gs.members[0].started}
		for _, m := range gs.members {
			w.victims = append(w.victims, m.victims...)
			w.reasons = append(w.reasons, m.reasons...)
			w.prio = max(w.prio, m.prio)
			if m.started.After(w.started) {
				w.started = m.started
			}
			w.pdb = w.pdb && m.pdb
		}
		units = append(units, w)
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
	taken := map[string]bool{} // victim keys taken
	// Queues whose guarantee kept a pod in the way, for the refusal.
	where := make([]bool, len(in.Nodes)) // nodes some member may use
	for n := range in.Nodes {
		for _, m := range in.Members {
			if in.Eligible == nil || in.Eligible(m.Class, n) {
				where[n] = true
				break
			}
		}
	}
	protected := map[string]bool{}
	// take applies (sign -1: takes back) a unit's removal to nodes and
	// queue usage, and reports whether every reclaim victim's queue stays
	// at or above its guarantee.
	take := func(u unit, sign int64) bool {
		ok := true
		for i, v := range u.victims {
			taken[v.Key] = sign > 0
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
			// The victim's queue, and each of its ancestors that the
			// preemptor does not share, must keep its guarantee: capacity
			// moving inside a common ancestor leaves that one's usage as it
			// was.
			if u.reasons[i] != ReasonReclaim {
				continue
			}
			for q := in.Tree.Get(v.Queue); q != nil && !shared[q.Path]; q = q.Parent {
				if !atOrAbove(usage[q.Path], q.Guaranteed) {
					ok = false
					if sign > 0 && v.Node >= 0 && v.Node < len(where) && where[v.Node] {
						protected[q.Path] = true
					}
				}
			}
		}
		return ok
	}
	fits := func() (gang.Plan, bool) {
		if len(in.Members) == 1 { // a single pod: a scan, not a packing
			return gang.FitOne(free, in.Members[0], in.Eligible)
		}
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
		if taken[u.key] {
			continue // went with its whole gang
		}
		var gs *gangState
		if u.gang != "" && !u.whole {
			gs = gangs[u.gang]
			switch {
			case gs.whole:
				continue
			case gs.taken < gs.spare:
				// a spare member: its gang keeps its quorum
			case complete(gs):
				// Beyond the spares the whole gang goes, as one unit: the
				// spare members taken so far join it, so that sparing can
				// never leave part of the gang taken.
				for i := len(chosen) - 1; i >= 0; i-- {
					if chosen[i].gang == u.gang {
						take(chosen[i], -1)
						chosen = append(chosen[:i], chosen[i+1:]...)
					}
				}
				rest := unit{gang: u.gang, whole: true, key: "gang:" + u.gang}
				for _, m := range gs.members {
					rest.victims = append(rest.victims, m.victims...)
					rest.reasons = append(rest.reasons, m.reasons...)
				}
				gs.taken = 0
				u = rest
			default:
				continue // taking it would break a gang that cannot go whole
			}
		} else if u.gang != "" {
			gs = gangs[u.gang]
		}
		if !take(u, +1) {
			take(u, -1) // would take its queue below its guarantee
			continue
		}
		if gs != nil {
			if u.whole {
				gs.whole = true
			} else {
				gs.taken++
			}
		}
		chosen = append(chosen, u)
		if p, ok := fits(); ok {
			plan, found = p, true
			break
		}
	}
	if !found {
		if !reclaimOK("") {
			return nil, fmt.Sprintf("queue %s is not below its guaranteed with this request, so it may not reclaim from other queues", in.Queue.Path)
		}
		msg := "preempting every eligible pod would not make room (victim queues keep their guarantees)"
		if len(protected) > 0 {
			msg += fmt.Sprintf("; pods on the nodes it may use are kept because their queues would drop below their guaranteed: %s", sortedSet(protected))
		}
		if len(notOwed) > 0 {
			msg += fmt.Sprintf("; it may not reclaim from %s: below their common ancestor with %s no queue is owed this request by its guaranteed", sortedSet(notOwed), in.Queue.Path)
		}
		return nil, msg
	}
	// Spare every victim that turns out not to be needed, newest choice
	// first. Sparing never breaks a gang: a spare member or the whole rest
	// of a gang is spared as a unit, leaving at most its spares taken.
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
		out.Victims = append(out.Victims, u.victims...)
		out.Reasons = append(out.Reasons, u.reasons...)
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

func sortedSet(set map[string]bool) string {
	names := make([]string, 0, len(set))
	for q := range set {
		names = append(names, q)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
