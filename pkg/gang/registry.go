package gang

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/resources"
	"muster.dev/muster/pkg/tombstone"
	"muster.dev/muster/pkg/waitreason"
)

// Phase is where a gang stands in muster's admission.
type Phase string

// Phases, in order. A gang moves forward one step at a time, and back to
// Pending when an admission fails (a member could not be placed, the Permit
// wait timed out) or times out.
const (
	// PhaseWaiting: fewer than minMember pods exist yet that may be
	// scheduled (pods held by scheduling gates do not count).
	PhaseWaiting Phase = "Waiting"
	// PhasePending: the gang is complete and waits for room (or backs off
	// after a timeout). It holds nothing.
	PhasePending Phase = "Pending"
	// PhaseAdmitted: room for the whole gang is reserved, node by node and
	// in its queue; its members are being bound into it.
	PhaseAdmitted Phase = "Admitted"
	// PhaseBound: the quorum is bound. Further members are scheduled one by one.
	PhaseBound Phase = "Bound"
)

// Spec is what a gang's source says about it.
type Spec struct {
	// MinMember is the quorum: no member binds until this many can.
	MinMember int32
	// Timeout bounds the wait for the quorum, from the first member's arrival.
	Timeout time.Duration
	// MinResources, if set, must be free in total before the gang is admitted
	// (scheduler-plugins PodGroup spec.minResources).
	MinResources resources.Vector
	// Executors and ExecutorRequest describe a reservation for members
	// that come after the quorum is bound: room for that many pods of that
	// size, held for them (a Spark driver's executors; an MPIJob's
	// launcher, created once its workers run). ExecutorRole is their role,
	// whose default capacity policy they are planned with; "" for
	// executors.
	Executors       int32
	ExecutorRequest resources.Vector
	ExecutorRole    capacity.Role
	// Topology keeps the members (and the reservation) in one domain of a
	// node label.
	Topology Topology
}

type memberState int

const (
	memberPending memberState = iota
	memberAssumed             // reserved by the scheduler, waiting at Permit or binding
	memberBound
)

type member struct {
	key     string
	name    string // for messages
	request resources.Vector
	state   memberState
	created time.Time
	// gates are the pod's scheduling gates: while it has any, the pod is
	// not ready to be scheduled and does not count toward the quorum.
	gates []string
	shape string
	lead  bool
}

// Pod is a member pod as the plugin observes it.
type Pod struct {
	// Key identifies the pod (its UID); Name is for messages.
	Key, Name string
	Request   resources.Vector
	Created   time.Time
	// Bound: the pod has a node.
	Bound bool
	// Gates are the pod's scheduling gates (spec.schedulingGates). A gated
	// pod cannot be scheduled until they are lifted, so it does not count
	// toward its gang's quorum: a gang is not admitted, and holds nothing,
	// while fewer than minMember of its pods may be scheduled.
	Gates []string
	// Shape names what the pod asks of a node (its capacity policy and
	// constraints, as the plugin renders them): members of one shape are
	// interchangeable, and an admitted gang's slots are planned for, and
	// claimed by, members of their shape. "" is a member of no particular
	// shape.
	Shape string
	// Lead marks the pod its application cannot start without (a Spark
	// driver, a Ray head, a launcher or a master): it is placed first, so
	// a gang admitted with fewer members than it has includes it.
	Lead bool
}

// slot is capacity reserved on a node for one member of an admitted gang,
// planned for a member of shape ("" for any member).
type slot struct {
	node    string
	request resources.Vector
	shape   string
}

// Gang is muster's record of one gang.
type Gang struct {
	Ref   Ref
	Spec  Spec
	Queue string
	Phase Phase
	// FirstSeen is when the first member arrived (the PodGroup's
	// scheduleStartTime); the timeout counts from it.
	FirstSeen    time.Time
	AdmittedAt   time.Time
	BackoffUntil time.Time
	// ReasonCode says why the gang waits, for programs; Reason says it in a
	// sentence, for conditions and the status. Both are empty once the
	// gang is admitted.
	ReasonCode waitreason.Code
	Reason     string
	Timeouts   int

	members map[string]*member
	slots   []slot
	// displaced are slots taken off a node being taken away (or deleted),
	// still held in the gang's queue, to be placed again on other nodes
	// (Replace) or given up (DropDisplaced).
	displaced []resources.Vector
}

// Registry holds every gang muster knows and the capacity reserved for
// admitted ones. It is safe for concurrent use; its clock is injected.
type Registry struct {
	mu    sync.Mutex
	clock clock.PassiveClock
	gangs map[Ref]*Gang
	// reserved sums the unclaimed slots per node and gang.
	reserved map[string]map[Ref]resources.Vector
	// gone: members forgotten for good. A scheduling cycle still working
	// from such a pod as it was may neither observe it again (a member
	// that would never be forgotten, holding its gang for ever) nor claim
	// a slot for it.
	gone *tombstone.Set
}

// NewRegistry returns an empty registry.
func NewRegistry(clk clock.PassiveClock) *Registry {
	return &Registry{clock: clk, gangs: map[Ref]*Gang{}, reserved: map[string]map[Ref]resources.Vector{},
		gone: tombstone.New(clk, tombstone.Keep)}
}

// Info is a copy of a gang's state.
type Info struct {
	Ref          Ref
	Spec         Spec
	Queue        string
	Phase        Phase
	FirstSeen    time.Time
	AdmittedAt   time.Time
	BackoffUntil time.Time
	ReasonCode   waitreason.Code
	Reason       string
	Timeouts     int
	// Members counts the pods that exist; Assumed those reserved and not
	// yet bound; Bound those bound; Gated those held by scheduling gates
	// (never bound or assumed), whose gate names are Gates (sorted, once each).
	Members, Assumed, Bound, Gated int
	Gates                          []string
	// FreeSlots counts the reserved slots not yet taken by a member,
	// displaced ones included; Displaced counts those (off their node,
	// waiting to be placed again).
	FreeSlots, Displaced int
}

func (g *Gang) info() Info {
	in := Info{Ref: g.Ref, Spec: g.Spec, Queue: g.Queue, Phase: g.Phase, FirstSeen: g.FirstSeen, AdmittedAt: g.AdmittedAt,
		BackoffUntil: g.BackoffUntil, ReasonCode: g.ReasonCode, Reason: g.Reason, Timeouts: g.Timeouts, Members: len(g.members),
		FreeSlots: len(g.slots) + len(g.displaced), Displaced: len(g.displaced)}
	for _, m := range g.members {
		switch m.state {
		case memberAssumed:
			in.Assumed++
		case memberBound:
			in.Bound++
		}
	}
	in.Gated, in.Gates = g.gated()
	return in
}

// gated counts the members held by scheduling gates, and names the gates.
func (g *Gang) gated() (int, []string) {
	n := 0
	names := map[string]bool{}
	for _, m := range g.members {
		if len(m.gates) > 0 && m.state == memberPending {
			n++
			for _, gate := range m.gates {
				names[gate] = true
			}
		}
	}
	if n == 0 {
		return 0, nil
	}
	out := make([]string, 0, len(names))
	for gate := range names {
		out = append(out, gate)
	}
	sort.Strings(out)
	return n, out
}

// ready counts the members that may be scheduled: not held by a gate.
func (g *Gang) ready() int {
	n, _ := g.gated()
	return len(g.members) - n
}

// waitingReason says why a gang short of members waits, with numbers: how
// many exist and, when some are gated, how many may be scheduled and which
// gates hold the rest.
func (g *Gang) waitingReason() (waitreason.Code, string) {
	gated, gates := g.gated()
	if gated == 0 {
		return waitreason.MembersMissing, fmt.Sprintf("%d of %d members exist; waiting for the rest before any is bound", len(g.members), g.Spec.MinMember)
	}
	exist := ""
	if len(g.members) < int(g.Spec.MinMember) {
		exist = fmt.Sprintf(" (%d exist)", len(g.members))
	}
	verb := "are"
	if gated == 1 {
		verb = "is"
	}
	return waitreason.MembersGated, fmt.Sprintf("%d of %d members may be scheduled%s; %d %s held by scheduling gate(s) %s; none is bound until %d may be",
		len(g.members)-gated, g.Spec.MinMember, exist, gated, verb, strings.Join(gates, ", "), g.Spec.MinMember)
}

// Get returns a copy of the gang's state.
func (r *Registry) Get(ref Ref) (Info, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.gangs[ref]
	if !ok {
		return Info{}, false
	}
	return g.info(), true
}

// List returns every gang, ordered by first arrival.
func (r *Registry) List() []Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Info, 0, len(r.gangs))
	for _, g := range r.gangs {
		out = append(out, g.info())
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].FirstSeen.Equal(out[j].FirstSeen) {
			return out[i].FirstSeen.Before(out[j].FirstSeen)
		}
		return out[i].Ref.String() < out[j].Ref.String()
	})
	return out
}

// Observe records a member pod. spec and queue are the gang's current
// parameters (its source may change them, e.g. a PodGroup edit). A pod's
// gates are taken as observed: they can only be lifted, never added.
func (r *Registry) Observe(ref Ref, spec Spec, queue string, p Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone.Has(p.Key) { // checked under the lock Forget takes after adding it
		return
	}
	g := r.gangs[ref]
	if g == nil {
		g = &Gang{Ref: ref, Phase: PhaseWaiting, FirstSeen: p.Created, members: map[string]*member{}}
		r.gangs[ref] = g
	}
	g.Spec, g.Queue = spec, queue
	if p.Created.Before(g.FirstSeen) {
		g.FirstSeen = p.Created
	}
	m := g.members[p.Key]
	if m == nil {
		m = &member{key: p.Key, name: p.Name, request: p.Request, created: p.Created}
		g.members[p.Key] = m
	}
	m.gates = append(m.gates[:0], p.Gates...)
	m.shape, m.lead = p.Shape, p.Lead
	if p.Bound {
		m.state, m.gates = memberBound, nil
	}
	r.advance(g)
}

// Gone reports whether the member key was forgotten for good (within
// tombstone.Keep).
func (r *Registry) Gone(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gone.Has(key)
}

// Forget removes a member for good (deleted, or finished): the key is
// refused from now on (tombstone.Keep). A gang without members is dropped,
// releasing what it held.
func (r *Registry) Forget(ref Ref, key string) {
	r.gone.Add(key)
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.gangs[ref]
	if g == nil {
		return
	}
	delete(g.members, key)
	if len(g.members) == 0 {
		r.dropSlots(g)
		delete(r.gangs, ref)
		return
	}
	r.advance(g)
}

// advance moves a gang between Waiting, Pending and Bound as its members
// change; admission and release are explicit.
func (r *Registry) advance(g *Gang) {
	bound := 0
	for _, m := range g.members {
		if m.state == memberBound {
			bound++
		}
	}
	// Only members that may be scheduled count: a gated pod is not ready,
	// and a gang admitted for it would hold its room until the gate is
	// lifted or the gang times out.
	ready := g.ready()
	if g.Phase == PhaseWaiting && ready >= int(g.Spec.MinMember) {
		g.Phase, g.ReasonCode, g.Reason = PhasePending, "", ""
	}
	switch {
	// Pending too: a quorum bound before muster saw it (a scheduler restart
	// replays running gangs) or while its admission was released is bound;
	// left Pending, it would time out again and again.
	case (g.Phase == PhaseAdmitted || g.Phase == PhasePending) && bound >= int(quorum(g)):
		g.Phase, g.ReasonCode, g.Reason = PhaseBound, "", ""
	case g.Phase == PhasePending && ready < int(g.Spec.MinMember) && bound == 0:
		g.Phase = PhaseWaiting
	}
	if g.Phase == PhaseWaiting {
		g.ReasonCode, g.Reason = g.waitingReason()
	}
}

// quorum is how many real pods must be bound for the gang to count as bound:
// a Spark driver's executors are reserved capacity, not pods that must exist.
func quorum(g *Gang) int32 {
	if g.Spec.Executors > 0 {
		return max(g.Spec.MinMember, 1) // the driver, or an MPIJob's workers
	}
	return g.Spec.MinMember
}

// PendingMembers returns the names and requests of the members not yet
// bound or assumed and not gated, leads first and then oldest first, up to
// the number the admission must place.
func (r *Registry) PendingMembers(ref Ref) (names []string, reqs []resources.Vector) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.gangs[ref]
	if g == nil {
		return nil, nil
	}
	ms := make([]*member, 0, len(g.members))
	held := 0
	for _, m := range g.members {
		switch {
		case m.state != memberPending:
			held++
		case len(m.gates) == 0: // a gated member cannot be placed yet
			ms = append(ms, m)
		}
	}
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].lead != ms[j].lead {
			return ms[i].lead
		}
		if !ms[i].created.Equal(ms[j].created) {
			return ms[i].created.Before(ms[j].created)
		}
		return ms[i].key < ms[j].key
	})
	need := int(quorum(g)) - held
	if need < 0 {
		need = 0
	}
	if need < len(ms) {
		ms = ms[:need]
	}
	for _, m := range ms {
		names = append(names, m.name)
		reqs = append(reqs, m.request)
	}
	return names, reqs
}

// Admit reserves the slots (node, request and the shape of the member it
// was planned for each; shapes may be nil) for the gang and marks it
// admitted. It refuses (false) a gang that is not pending.
func (r *Registry) Admit(ref Ref, nodes []string, reqs []resources.Vector, shapes []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.gangs[ref]
	if g == nil || g.Phase != PhasePending {
		return false
	}
	r.dropSlots(g)
	for i, n := range nodes {
		s := slot{node: n, request: reqs[i]}
		if i < len(shapes) {
			s.shape = shapes[i]
		}
		r.addSlot(g, s)
	}
	g.Phase, g.AdmittedAt, g.ReasonCode, g.Reason = PhaseAdmitted, r.clock.Now(), "", ""
	return true
}

// SlotNodes returns the nodes holding a free slot of the gang, sorted. A
// member may take a slot smaller than itself: its node filters check that
// the node really has room for it, counting the gang's own slots as free.
func (r *Registry) SlotNodes(ref Ref) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.gangs[ref]
	if g == nil {
		return nil
	}
	seen := map[string]bool{}
	for _, s := range g.slots {
		seen[s.node] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// SlotNodesFor returns the nodes holding a free slot of the gang planned for
// the member key's shape or for any member, sorted; all the gang's slot
// nodes when none is (the member is claimed by the slot that fits it best
// there).
func (r *Registry) SlotNodesFor(ref Ref, key string) []string {
	r.mu.Lock()
	g := r.gangs[ref]
	var shape string
	if g != nil && g.members[key] != nil {
		shape = g.members[key].shape
	}
	var out []string
	if g != nil {
		seen := map[string]bool{}
		for _, s := range g.slots {
			if !seen[s.node] && (s.shape == shape || s.shape == "") {
				seen[s.node] = true
				out = append(out, s.node)
			}
		}
	}
	r.mu.Unlock()
	if len(out) == 0 {
		return r.SlotNodes(ref)
	}
	sort.Strings(out)
	return out
}

// HasSlots reports whether the gang holds free slots.
func (r *Registry) HasSlots(ref Ref) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.gangs[ref]
	return g != nil && len(g.slots) > 0
}

// Claim gives a slot of the gang on node to the member key, marking it
// assumed: among the slots there planned for its shape (else for any
// member, else for others) the smallest that can take req, else the largest
// (the member passed the node's filters, so the node has room for it). false
// when the gang holds no slot on the node: the member is beyond the
// reservation.
func (r *Registry) Claim(ref Ref, key, node string, req resources.Vector) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone.Has(key) {
		return false // the slot stays for a member that exists
	}
	g := r.gangs[ref]
	if g == nil {
		return false
	}
	shape := ""
	if m := g.members[key]; m != nil {
		shape = m.shape
	}
	// The slots planned for the member's shape first, then those for any
	// member, then any other.
	tier := func(s slot) int {
		switch s.shape {
		case shape:
			return 0
		case "":
			return 1
		}
		return 2
	}
	best, largest, bestTier := -1, -1, 3
	for _, s := range g.slots {
		if s.node == node && tier(s) < bestTier {
			bestTier = tier(s)
		}
	}
	for i, s := range g.slots {
		if s.node != node || tier(s) != bestTier {
			continue
		}
		if largest < 0 || weight(s.request) > weight(g.slots[largest].request) {
			largest = i
		}
		if _, over := req.Exceeds(s.request); over {
			continue
		}
		if best < 0 || weight(s.request) < weight(g.slots[best].request) {
			best = i
		}
	}
	if best < 0 {
		best = largest
	}
	if best < 0 {
		return false
	}
	r.removeSlot(g, best)
	if m := g.members[key]; m != nil && m.state == memberPending {
		m.state = memberAssumed
	}
	return true
}

// weight orders slots of different sizes; any consistent total order works.
func weight(v resources.Vector) int64 {
	var w int64
	for _, a := range v {
		w += a
	}
	return w
}

// Assume marks a member assumed without a slot (a member beyond the
// reservation, admitted on its own).
func (r *Registry) Assume(ref Ref, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g := r.gangs[ref]; g != nil {
		if m := g.members[key]; m != nil && m.state == memberPending {
			m.state = memberAssumed
		}
	}
}

// Held returns how many members are assumed or bound, and the quorum.
func (r *Registry) Held(ref Ref) (held, quorumSize int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.gangs[ref]
	if g == nil {
		return 0, 0
	}
	for _, m := range g.members {
		if m.state != memberPending {
			held++
		}
	}
	return held, int(quorum(g))
}

// Release undoes an admission: the slots are freed, assumed members return
// to pending, and the gang is Pending with the reason (code and sentence),
// backing off until backoffUntil (zero: no backoff). It returns the keys of
// the members that were assumed, for the caller to reject at Permit.
func (r *Registry) Release(ref Ref, code waitreason.Code, reason string, backoffUntil time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.gangs[ref]
	if g == nil {
		return nil
	}
	r.dropSlots(g)
	var assumed []string
	for _, m := range g.members {
		if m.state == memberAssumed {
			m.state = memberPending
			assumed = append(assumed, m.key)
		}
	}
	sort.Strings(assumed)
	if g.Phase == PhaseAdmitted {
		g.Phase = PhasePending
	}
	g.ReasonCode, g.Reason, g.BackoffUntil = code, reason, backoffUntil
	r.advance(g)
	return assumed
}

// Unassume returns one member to pending (its scheduling attempt failed).
func (r *Registry) Unassume(ref Ref, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g := r.gangs[ref]; g != nil {
		if m := g.members[key]; m != nil && m.state == memberAssumed {
			m.state = memberPending
		}
	}
}

// SetWaiting records why a gang waits (not admitted): the code and the
// sentence.
func (r *Registry) SetWaiting(ref Ref, code waitreason.Code, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g := r.gangs[ref]; g != nil {
		g.ReasonCode, g.Reason = code, reason
	}
}

// TimedOut reports the gangs whose wait passed their timeout at now: pending
// or admitted gangs short of their quorum, counted from their first member
// (or from their last backoff), and bound gangs still holding reserved slots
// (a Spark driver's executors that did not come), counted from admission. It
// records the timeout (the caller releases).
func (r *Registry) TimedOut(now time.Time) []Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Info
	for _, g := range r.gangs {
		if g.Spec.Timeout <= 0 {
			continue
		}
		switch g.Phase {
		case PhaseWaiting, PhasePending, PhaseAdmitted:
			if now.Before(waitDeadline(g.FirstSeen, g.BackoffUntil, g.Spec.Timeout)) {
				continue
			}
		case PhaseBound:
			if len(g.slots)+len(g.displaced) == 0 || now.Sub(g.AdmittedAt) < g.Spec.Timeout {
				continue
			}
		default:
			continue
		}
		g.Timeouts++
		out = append(out, g.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref.String() < out[j].Ref.String() })
	return out
}

// ReleaseSlots frees a bound gang's remaining slots (its executors did not
// come in time, or its driver is gone).
func (r *Registry) ReleaseSlots(ref Ref) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g := r.gangs[ref]; g != nil {
		r.dropSlots(g)
	}
}

// Settle reports whether a gang is bound whole (every member bound, no
// executors to come), dropping any slots it still holds: no member is left
// to claim them. The caller releases the gang's quota: what the gang holds
// is its pods' from then on. Slots are left when a member was bound on a
// node without one: by another replica, on a node of its own plan, while
// this one had the member assumed; or by this one where Reserve found no
// slot on the chosen node.
func (r *Registry) Settle(ref Ref) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.gangs[ref]
	if g == nil || g.Phase != PhaseBound || g.Spec.Executors > 0 {
		return false
	}
	for _, m := range g.members {
		if m.state != memberBound {
			return false
		}
	}
	r.dropSlots(g)
	return true
}

// ReservedOnNode is the capacity gangs other than except hold unclaimed on
// the node: what other pods must leave free there.
func (r *Registry) ReservedOnNode(node string, except Ref) resources.Vector {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out resources.Vector
	for ref, v := range r.reserved[node] {
		if ref == except {
			continue
		}
		if out == nil {
			out = resources.Vector{}
		}
		out.Add(v)
	}
	return out
}

// AnyReserved reports whether any gang holds capacity anywhere (a fast
// path for filters).
func (r *Registry) AnyReserved() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reserved) > 0
}

func (r *Registry) addSlot(g *Gang, s slot) {
	g.slots = append(g.slots, s)
	byGang := r.reserved[s.node]
	if byGang == nil {
		byGang = map[Ref]resources.Vector{}
		r.reserved[s.node] = byGang
	}
	v := byGang[g.Ref]
	if v == nil {
		v = resources.Vector{}
		byGang[g.Ref] = v
	}
	v.Add(s.request)
}

func (r *Registry) removeSlot(g *Gang, i int) {
	s := g.slots[i]
	g.slots = append(g.slots[:i], g.slots[i+1:]...)
	if byGang := r.reserved[s.node]; byGang != nil {
		if v := byGang[g.Ref]; v != nil {
			v.Sub(s.request)
			if v.IsZero() {
				delete(byGang, g.Ref)
			}
		}
		if len(byGang) == 0 {
			delete(r.reserved, s.node)
		}
	}
}

func (r *Registry) dropSlots(g *Gang) {
	for len(g.slots) > 0 {
		r.removeSlot(g, len(g.slots)-1)
	}
	g.displaced = nil
}

// BoundElsewhere records that a member this scheduler never placed is bound
// to node (bound by another replica during a leadership change, or before a
// restart): if the gang still holds slots, the one the member would have
// claimed is released, and true says that the caller should release the
// member's share of the gang's quota too. A member this scheduler placed
// (it claimed its slot in Reserve) returns false.
func (r *Registry) BoundElsewhere(ref Ref, key, node string, req resources.Vector) bool {
	r.mu.Lock()
	g := r.gangs[ref]
	placed := g == nil || len(g.slots)+len(g.displaced) == 0
	if !placed {
		if m := g.members[key]; m != nil && m.state != memberPending {
			placed = true
		}
	}
	r.mu.Unlock()
	if placed {
		return false
	}
	return r.Claim(ref, key, node, req) || r.claimAny(ref, key, req)
}

// claimAny takes the gang's slot that best fits req on any node, or one
// of its displaced slots.
func (r *Registry) claimAny(ref Ref, key string, req resources.Vector) bool {
	r.mu.Lock()
	g := r.gangs[ref]
	if g == nil {
		r.mu.Unlock()
		return false
	}
	if len(g.slots) == 0 {
		defer r.mu.Unlock()
		if len(g.displaced) == 0 {
			return false
		}
		g.displaced = g.displaced[:len(g.displaced)-1]
		if m := g.members[key]; m != nil && m.state == memberPending {
			m.state = memberAssumed
		}
		return true
	}
	node := g.slots[0].node
	for _, s := range g.slots {
		if _, over := req.Exceeds(s.request); !over {
			node = s.node
			break
		}
	}
	r.mu.Unlock()
	return r.Claim(ref, key, node, req)
}

// Members returns every gang's members, pod UID (key) to pod name.
func (r *Registry) Members() map[Ref]map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[Ref]map[string]string, len(r.gangs))
	for ref, g := range r.gangs {
		m := make(map[string]string, len(g.members))
		for key, mem := range g.members {
			m[key] = mem.name
		}
		out[ref] = m
	}
	return out
}

// Order returns what a gang is ordered by in its queue: the queue, and when
// its first member arrived.
func (r *Registry) Order(ref Ref) (queue string, first time.Time, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.gangs[ref]
	if g == nil {
		return "", time.Time{}, false
	}
	return g.Queue, g.FirstSeen, true
}
