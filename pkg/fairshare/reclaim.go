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
	// Young is set when the victim has run less than its queue's
	// minRuntimeSeconds: it is taken only when nothing else frees the room
	// (after every older candidate, before PodDisruptionBudgets).
	Young bool
	// Lead marks the member its gang cannot run without (a Spark driver,
	// a Ray head): it goes only with its whole gang, never as a spare.
	Lead bool
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
	// UnderMax is set when the preemptor's queue (or an ancestor) is at
	// its max: only lower-priority pods of its own queue may go, and enough
	// of them that UnderMax holds for what they free; capacity reclaimed
	// from other queues would not lower the max's count.
	UnderMax func(freed resources.Vector) bool
}

// ReclaimPlan is the chosen victims and where the preemptor's members go.
type ReclaimPlan struct {
	Victims []Victim
	// Reason per victim, same index.
	Reasons []string
	Plan    gang.Plan
}

// RefusalCode says, for programs, why Reclaim found no plan. The values are
// stable: they may be written where users and tools read them.
type RefusalCode string

const (
	// RefusalNotNeeded: the members fit without preempting anything.
	RefusalNotNeeded RefusalCode = "NotNeeded"
	// RefusalNotBelowGuarantee: no queue on the preemptor's path is owed
	// the request by its guaranteed, so it may reclaim from no other queue
	// (and lower-priority pods of its own queue did not make room).
	RefusalNotBelowGuarantee RefusalCode = "NotBelowGuarantee"
	// RefusalProtectedByGuarantee: preempting every candidate would not make
	// room, and pods on nodes the members may use are kept because their
	// queues would drop below their guaranteed (ReclaimRefusal.Protected).
	// It wins over RefusalNotOwed when both hold.
	RefusalProtectedByGuarantee RefusalCode = "ProtectedByGuarantee"
	// RefusalNotOwed: preempting every candidate would not make room, and
	// some queues' pods are no candidates because, below the common
	// ancestor with them, no queue of the preemptor's is owed the request
	// (ReclaimRefusal.NotOwed).
	RefusalNotOwed RefusalCode = "NotOwed"
	// RefusalNoRoom: preempting every candidate would not make room, for
	// none of the reasons above.
	RefusalNoRoom RefusalCode = "NoRoom"
)

// ReclaimRefusal says why Reclaim found no plan: a code for programs, and
// for people a sentence (Msg, the error's text).
type ReclaimRefusal struct {
	Code RefusalCode
	Msg  string
	// Protected lists, in order, the queues whose guarantee kept pods on
	// nodes the members may use; NotOwed the queues the preemptor may not
	// reclaim from. Both are set only when preempting every candidate
	// would not make room.
	Protected, NotOwed []string
}

func (r *ReclaimRefusal) Error() string { return r.Msg }

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
//   - Within the preemptor's own queue, only lower-priority pods (priority),
//     and none in a queue whose ordering is fifo.
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
//
// Without a plan it says why (a *ReclaimRefusal). The steps, in order:
// candidates, gangUnits, order, take (the greedy choice) and spare.
func Reclaim(in ReclaimInput) (*ReclaimPlan, *ReclaimRefusal) {
	r := newReclaimer(in)
	if _, ok := r.fits(); ok && in.UnderMax == nil {
		return nil, &ReclaimRefusal{Code: RefusalNotNeeded, Msg: "the pod fits without preempting anything"}
	}
	chosen, plan, ok := r.take(r.order(r.gangUnits(r.candidates())))
	if !ok {
		return nil, r.refusal()
	}
	chosen, plan = r.spare(chosen, plan)
	out := &ReclaimPlan{Plan: plan}
	for _, u := range chosen {
		out.Victims = append(out.Victims, u.victims...)
		out.Reasons = append(out.Reasons, u.reasons...)
	}
	return out, nil
}

// reclaimer is one Reclaim decision: the input, what its steps learn about
// the candidates, and the cluster as victims are tried (free room by node,
// usage by queue), changed by remove and put back by giveBack.
type reclaimer struct {
	in    ReclaimInput
	total resources.Vector // the members' requests together
	// shared holds the preemptor's queue and its ancestors, by path.
	shared map[string]bool
	// owed caches mayReclaimFrom, by common ancestor.
	owed  map[string]bool
	gangs map[string]*gangState
	// usable marks the nodes some member may use.
	usable []bool

	free  []gang.Node
	usage map[string]resources.Vector
	taken map[string]bool // victim keys taken
	// For a single member: on which nodes it fits now (nil until first
	// asked), and on how many; kept current as victims are taken and given
	// back, so that trying victim after victim costs one node's check each,
	// not a scan of every node.
	fitOn []bool
	nFit  int

	// For the refusal: victim queues it may not reclaim from, and queues
	// whose guarantee kept a pod on a usable node.
	notOwed, protected map[string]bool
}

// reclaimUnit is what is taken or spared at once: one pod, or the whole
// (rest of a) gang.
type reclaimUnit struct {
	victims []Victim
	reasons []string // per victim
	prio    int32
	started time.Time
	pdb     bool // every disruption allowed
	young   bool // some victim ran less than its queue's minRuntimeSeconds
	lead    bool // a gang's lead member: it goes with its whole gang only
	key     string
	gang    string
	whole   bool // the rest of a gang
}

// gangState is what a reclaim knows of a victim gang.
type gangState struct {
	spare, bound int // bound -1: unknown, as many as are seen, no spares
	members      []reclaimUnit
	eligible     bool // every member seen is a candidate
	taken        int  // spare members taken
	whole        bool // the whole gang is taken
}

// complete reports whether the gang may go whole: every member is a
// candidate.
func (g *gangState) complete() bool {
	return g.eligible && (g.bound < 0 || len(g.members) == g.bound)
}

func newReclaimer(in ReclaimInput) *reclaimer {
	r := &reclaimer{
		in: in, total: resources.Vector{}, shared: map[string]bool{}, owed: map[string]bool{},
		gangs: map[string]*gangState{}, usable: make([]bool, len(in.Nodes)),
		free: make([]gang.Node, len(in.Nodes)), usage: map[string]resources.Vector{},
		taken: map[string]bool{}, notOwed: map[string]bool{}, protected: map[string]bool{},
	}
	for _, m := range in.Members {
		r.total.Add(m.Request)
	}
	for q := in.Queue; q != nil; q = q.Parent {
		r.shared[q.Path] = true
	}
	for i, n := range in.Nodes {
		r.free[i] = gang.Node{Name: n.Name, Free: n.Free.Clone()}
		for _, m := range in.Members {
			if in.Eligible == nil || in.Eligible(m.Class, i) {
				r.usable[i] = true
				break
			}
		}
	}
	for p, u := range in.Usage {
		r.usage[p] = u.Clone()
	}
	return r
}

// mayReclaimFrom reports whether the preemptor may reclaim from a queue
// (from every queue outside its own path, for ""): some queue on its path
// below their lowest common ancestor is owed the request (capacity moving
// inside a common ancestor leaves that one's usage as it was). Once that
// queue holds the request it is at or under its guarantee, so the victim's
// side may not take it back.
func (r *reclaimer) mayReclaimFrom(victimQueue string) bool {
	lca := victimQueue
	for lca != "" && !r.shared[lca] {
		lca = queue.ParentPath(lca)
	}
	ok, seen := r.owed[lca]
	if seen {
		return ok
	}
	for q := r.in.Queue; q != nil && q.Path != lca; q = q.Parent {
		if withinGuarantee(r.in.Usage[q.Path], r.total, q.Guaranteed) {
			ok = true
			break
		}
	}
	r.owed[lca] = ok
	return ok
}

// reason says why the preemptor may take a pod: ReasonPriority in its own
// queue, ReasonReclaim across queues; "" when it may not.
func (r *reclaimer) reason(v Victim) string {
	switch {
	case r.in.UnderMax != nil && v.Queue != r.in.Queue.Path:
		r.notOwed[v.Queue] = true
		return ""
	case v.Queue == r.in.Queue.Path && v.Priority < r.in.Priority && r.in.Queue.Ordering != queue.OrderFIFO:
		return ReasonPriority // a fifo queue serves by arrival: priority takes nothing there
	case v.Queue != r.in.Queue.Path && r.mayReclaimFrom(v.Queue):
		return ReasonReclaim
	}
	return ""
}

// gang is the state of a victim gang, made on first sight.
func (r *reclaimer) gang(name string) *gangState {
	gs := r.gangs[name]
	if gs == nil {
		gs = &gangState{eligible: true, bound: -1}
		if q, known := r.in.Gangs[name]; known {
			gs.spare, gs.bound = max(0, q.Bound-q.Min), q.Bound
		}
		r.gangs[name] = gs
	}
	return gs
}

// candidates lists every pod the preemptor may take, each as a unit of its
// own with its reason, in input order. On the way it notes each gang's
// candidate members (a gang with a member that is not one cannot go whole)
// and the queues it may not reclaim from.
func (r *reclaimer) candidates() []reclaimUnit {
	var units []reclaimUnit
	for _, v := range r.in.Victims {
		reason := r.reason(v)
		if reason == "" {
			if v.Queue != r.in.Queue.Path {
				r.notOwed[v.Queue] = true
			}
			if v.Gang != "" {
				r.gang(v.Gang).eligible = false
			}
			continue
		}
		u := reclaimUnit{victims: []Victim{v}, reasons: []string{reason}, prio: v.Priority,
			started: v.Started, pdb: v.DisruptionAllowed, young: v.Young, lead: v.Lead && v.Gang != "", key: v.Key, gang: v.Gang}
		if v.Gang != "" {
			gs := r.gang(v.Gang)
			gs.members = append(gs.members, u)
		}
		units = append(units, u)
	}
	return units
}

// gangUnits turns the candidates into the units they may be taken in. A
// pod of no gang, and a member of a gang with spare members (beyond its
// quorum), stays a unit of its own: take decides when such a gang must go
// whole. A gang with no spare members can only go whole: its members make
// one unit, as important as its most important member, protected if any
// member is, and only if every member is a candidate.
func (r *reclaimer) gangUnits(cands []reclaimUnit) []reclaimUnit {
	var units []reclaimUnit
	for _, u := range cands {
		if u.gang == "" || r.gangs[u.gang].spare > 0 {
			units = append(units, u)
		}
	}
	names := make([]string, 0, len(r.gangs))
	for name := range r.gangs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		gs := r.gangs[name]
		if gs.spare > 0 || !gs.complete() || len(gs.members) == 0 {
			continue
		}
		units = append(units, wholeGang(name, gs.members))
	}
	return units
}

// wholeGang is one unit of a gang's candidate members (at least one).
func wholeGang(name string, members []reclaimUnit) reclaimUnit {
	w := reclaimUnit{gang: name, whole: true, key: "gang:" + name, pdb: true,
		prio: members[0].prio, started: members[0].started}
	for _, m := range members {
		w.victims = append(w.victims, m.victims...)
		w.reasons = append(w.reasons, m.reasons...)
		w.prio = max(w.prio, m.prio)
		if m.started.After(w.started) {
			w.started = m.started
		}
		w.pdb = w.pdb && m.pdb
		w.young = w.young || m.young
	}
	return w
}

// order sorts the units in the order they are tried: those whose
// PodDisruptionBudgets allow it first, then those that have run their
// queue's minRuntimeSeconds, then the lowest priority, then the newest, a
// gang's lead member after its other members; ties by key.
func (r *reclaimer) order(units []reclaimUnit) []reclaimUnit {
	sort.Slice(units, func(i, j int) bool { return units[i].before(units[j]) })
	return units
}

func (u reclaimUnit) before(o reclaimUnit) bool {
	if u.pdb != o.pdb {
		return u.pdb
	}
	if u.young != o.young {
		return o.young
	}
	if u.prio != o.prio {
		return u.prio < o.prio
	}
	if u.lead != o.lead {
		return o.lead
	}
	if !u.started.Equal(o.started) {
		return u.started.After(o.started)
	}
	return u.key < o.key
}

// take is the greedy choice: it takes the units in order until the
// members fit, and returns those taken and where the members go; false
// when taking every unit it may still leaves no room. A unit is skipped
// when it would take a victim queue below its guarantee or break a gang.
func (r *reclaimer) take(units []reclaimUnit) ([]reclaimUnit, gang.Plan, bool) {
	var chosen []reclaimUnit
	for _, u := range units {
		if r.taken[u.key] {
			continue // went with its whole gang
		}
		var ok bool
		if u, chosen, ok = r.forGang(u, chosen); !ok {
			continue
		}
		if !r.remove(u) {
			r.giveBack(u) // would take its queue below its guarantee
			continue
		}
		if u.gang != "" {
			if gs := r.gangs[u.gang]; u.whole {
				gs.whole = true
			} else {
				gs.taken++
			}
		}
		chosen = append(chosen, u)
		if p, ok := r.fits(); ok {
			return chosen, p, true
		}
	}
	return chosen, gang.Plan{}, false
}

// forGang is what taking u amounts to for its gang: u itself for a pod of
// no gang, a whole gang or a spare member. Beyond the spares, the whole
// rest of the gang goes, as one unit: the spare members chosen so far are
// given back and join it, so that sparing can never leave part of the gang
// taken; so does a lead member, never a spare. false: u may not be taken
// (its gang went whole already, or taking
// it would break a gang that cannot go whole).
func (r *reclaimer) forGang(u reclaimUnit, chosen []reclaimUnit) (reclaimUnit, []reclaimUnit, bool) {
	if u.gang == "" || u.whole {
		return u, chosen, true
	}
	gs := r.gangs[u.gang]
	switch {
	case gs.whole:
		return u, chosen, false
	case gs.taken < gs.spare && !u.lead:
		return u, chosen, true // its gang keeps its quorum
	case !gs.complete():
		return u, chosen, false
	}
	for i := len(chosen) - 1; i >= 0; i-- {
		if chosen[i].gang == u.gang {
			r.giveBack(chosen[i])
			chosen = append(chosen[:i], chosen[i+1:]...)
		}
	}
	gs.taken = 0
	return wholeGang(u.gang, gs.members), chosen, true
}

// spare gives back every chosen unit that turns out not to be needed,
// newest choice first, and returns those left and where the members go.
// Sparing never breaks a gang: a spare member or the whole rest of a gang
// is spared as a unit, leaving at most its spares taken.
func (r *reclaimer) spare(chosen []reclaimUnit, plan gang.Plan) ([]reclaimUnit, gang.Plan) {
	for i := len(chosen) - 1; i >= 0; i-- {
		r.giveBack(chosen[i])
		if p, ok := r.fits(); ok {
			plan = p
			chosen = append(chosen[:i], chosen[i+1:]...)
			continue
		}
		r.remove(chosen[i])
	}
	return chosen, plan
}

// fits reports whether the members fit in what is free now, and where;
// at a max, the victims taken must also free enough of it.
func (r *reclaimer) fits() (gang.Plan, bool) {
	if r.in.UnderMax != nil {
		own, freed := r.in.Queue.Path, resources.Vector{}
		freed.Add(r.in.Usage[own])
		freed.Sub(r.usage[own])
		if !r.in.UnderMax(freed) {
			return gang.Plan{}, false
		}
	}
	if len(r.in.Members) == 1 { // a single pod: a scan, not a packing
		if r.fitOn == nil {
			r.fitOn = make([]bool, len(r.free))
			for n := range r.free {
				r.refit(n)
			}
		}
		if r.nFit == 0 {
			return gang.Plan{}, false
		}
		return gang.FitOneWhere(r.free, r.in.Members[0], r.fitOn)
	}
	p, short := gang.Pack(r.free, r.in.Members, r.in.Eligible)
	return p, short == nil
}

// refit records whether the single member fits on node n now.
func (r *reclaimer) refit(n int) {
	m := r.in.Members[0]
	ok := (r.in.Eligible == nil || r.in.Eligible(m.Class, n)) && r.free[n].Free.Covers(m.Request)
	if ok != r.fitOn[n] {
		r.fitOn[n] = ok
		if ok {
			r.nFit++
		} else {
			r.nFit--
		}
	}
}

// remove takes a unit's victims off their nodes and out of their queues'
// usage, and reports whether every reclaim victim's queue keeps its
// guarantee.
func (r *reclaimer) remove(u reclaimUnit) bool { return r.apply(u, +1) }

// giveBack undoes remove.
func (r *reclaimer) giveBack(u reclaimUnit) { r.apply(u, -1) }

func (r *reclaimer) apply(u reclaimUnit, sign int64) bool {
	ok := true
	for i, v := range u.victims {
		r.taken[v.Key] = sign > 0
		for res, a := range v.Request {
			r.free[v.Node].Free[res] += sign * a
		}
		if r.fitOn != nil {
			r.refit(v.Node)
		}
		for q := r.in.Tree.Get(v.Queue); q != nil; q = q.Parent {
			uq := r.usage[q.Path]
			if uq == nil {
				uq = resources.Vector{}
				r.usage[q.Path] = uq
			}
			for res, a := range v.Request {
				uq[res] -= sign * a
			}
		}
		if u.reasons[i] == ReasonReclaim && !r.keepsGuarantees(v, sign > 0) {
			ok = false
		}
	}
	return ok
}

// keepsGuarantees reports whether the victim's queue, and each of its
// ancestors that the preemptor does not share, is at or above its
// guarantee as things stand (capacity moving inside a common ancestor
// leaves that one's usage as it was). When taking, it records for the
// refusal the queues that fall short, if the victim is on a usable node.
func (r *reclaimer) keepsGuarantees(v Victim, taking bool) bool {
	ok := true
	for q := r.in.Tree.Get(v.Queue); q != nil && !r.shared[q.Path]; q = q.Parent {
		if atOrAbove(r.usage[q.Path], q.Guaranteed) {
			continue
		}
		ok = false
		if taking && v.Node >= 0 && v.Node < len(r.usable) && r.usable[v.Node] {
			r.protected[q.Path] = true
		}
	}
	return ok
}

// refusal says why taking every unit it may did not make room.
func (r *reclaimer) refusal() *ReclaimRefusal {
	if r.in.UnderMax != nil {
		return &ReclaimRefusal{Code: RefusalNoRoom, Msg: fmt.Sprintf(
			"queue %s is at its max, and preempting every lower-priority pod of it would not make room", r.in.Queue.Path)}
	}
	if !r.mayReclaimFrom("") {
		return &ReclaimRefusal{Code: RefusalNotBelowGuarantee, Msg: fmt.Sprintf(
			"queue %s is not below its guaranteed with this request, so it may not reclaim from other queues", r.in.Queue.Path)}
	}
	ref := &ReclaimRefusal{Code: RefusalNoRoom, Protected: sortedSet(r.protected), NotOwed: sortedSet(r.notOwed),
		Msg: "preempting every eligible pod would not make room (victim queues keep their guarantees)"}
	if len(ref.Protected) > 0 {
		ref.Code = RefusalProtectedByGuarantee
		ref.Msg += fmt.Sprintf("; pods on the nodes it may use are kept because their queues would drop below their guaranteed: %s",
			strings.Join(ref.Protected, ", "))
	}
	if len(ref.NotOwed) > 0 {
		if ref.Code == RefusalNoRoom {
			ref.Code = RefusalNotOwed
		}
		ref.Msg += fmt.Sprintf("; it may not reclaim from %s: below their common ancestor with %s no queue is owed this request by its guaranteed",
			strings.Join(ref.NotOwed, ", "), r.in.Queue.Path)
	}
	return ref
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

// sortedSet lists a set's members in order (nil for none).
func sortedSet(set map[string]bool) []string {
	if len(set) == 0 {
		return nil
	}
	names := make([]string, 0, len(set))
	for q := range set {
		names = append(names, q)
	}
	sort.Strings(names)
	return names
}
