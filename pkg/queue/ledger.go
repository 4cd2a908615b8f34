package queue

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"muster.dev/muster/pkg/resources"
	"muster.dev/muster/pkg/tombstone"
	"muster.dev/muster/pkg/waitreason"
)

// State is where a ledger entry stands.
type State int

// Entry states. Reserved and Allocated count against limits; Pending does not.
const (
	// Pending: a pod waiting to be scheduled.
	Pending State = iota
	// Reserved: admitted by the scheduler and holding its quota (assumed,
	// waiting at Permit, binding), not yet seen bound.
	Reserved
	// Allocated: bound to a node and not finished.
	Allocated
)

// Usage is what a queue's subtree holds.
type Usage struct {
	Allocated, Reserved, Pending resources.Vector
	// Running counts allocated pods, Waiting pending ones.
	Running, Waiting int
}

func newUsage() *Usage {
	return &Usage{Allocated: resources.Vector{}, Reserved: resources.Vector{}, Pending: resources.Vector{}}
}

// Used is what counts against the queue's max: allocated plus reserved.
func (u Usage) Used() resources.Vector { return u.Allocated.Plus(u.Reserved) }

func (u *Usage) clone() Usage {
	return Usage{Allocated: u.Allocated.Clone(), Reserved: u.Reserved.Clone(), Pending: u.Pending.Clone(), Running: u.Running, Waiting: u.Waiting}
}

type entry struct {
	leaf  string // the leaf queue's path
	req   resources.Vector
	state State
}

// LimitError is a request that would take a queue above its max.
type LimitError struct {
	Queue    string
	Resource v1.ResourceName
	// Used is what the queue's subtree holds now, Request what is asked for,
	// Max the queue's limit, all of Resource.
	Used, Request, Max int64
}

// NeverFits reports whether the request alone exceeds the max, so waiting
// cannot help.
func (e *LimitError) NeverFits() bool { return e.Request > e.Max }

// Code is the wait reason: NeverFitsQueue when waiting cannot help, else
// QueueAtMax.
func (e *LimitError) Code() waitreason.Code {
	if e.NeverFits() {
		return waitreason.NeverFitsQueue
	}
	return waitreason.QueueAtMax
}

func (e *LimitError) Error() string {
	r := e.Resource
	if e.NeverFits() {
		return fmt.Sprintf("queue %s: requests %s %s, above the queue's max %s; it can never be admitted there",
			e.Queue, resources.Format(r, e.Request), r, resources.Format(r, e.Max))
	}
	return fmt.Sprintf("queue %s is at its max for %s: %s in use + %s requested > max %s",
		e.Queue, r, resources.Format(r, e.Used), resources.Format(r, e.Request), resources.Format(r, e.Max))
}

// Ledger accounts the usage of every queue and its ancestors and admits
// requests against their limits. It is safe for concurrent use. Entries are
// keyed by the caller (a pod's UID, a gang reservation's name) and remember
// the leaf they were admitted to, so a new tree keeps the usage of running
// and reserved work; usage of a queue that a new tree no longer has stays
// with the ancestors that remain.
//
// A key forgotten with Forget (a pod that is gone) is refused for a while
// after (tombstone.Keep): a scheduling cycle working from the pod as it was
// before its deletion cannot bring its entry back.
type Ledger struct {
	mu      sync.Mutex
	version uint64 // bumped on every change, for caches of derived values
	// demandVersion is bumped when some queue's demand (usage + pending)
	// may have changed: not when an entry only changes state (a pod
	// reserved, bound or unreserved), so caches of what depends on demand
	// alone (fair shares) survive every bind.
	demandVersion uint64
	// journal lists the leaves whose usage changed, by version, oldest
	// first; it has every change after journalFrom.
	journal     []journalEntry
	journalFrom uint64
	tree        *Tree
	entries     map[string]*entry
	usage       map[string]*Usage // by queue path, the leaf and every ancestor
	gone        *tombstone.Set
}

type journalEntry struct {
	version uint64
	leaf    string
}

// journalMax bounds the journal; a reader further behind starts over from
// a Snapshot.
const journalMax = 4096

// LedgerOption configures a Ledger.
type LedgerOption func(*ledgerOptions)

type ledgerOptions struct{ clock clock.PassiveClock }

// WithClock sets the clock that tells how long forgotten keys are refused.
func WithClock(c clock.PassiveClock) LedgerOption {
	return func(o *ledgerOptions) { o.clock = c }
}

// NewLedger returns an empty ledger for the tree.
func NewLedger(t *Tree, opts ...LedgerOption) *Ledger {
	o := ledgerOptions{clock: clock.RealClock{}}
	for _, opt := range opts {
		opt(&o)
	}
	return &Ledger{tree: t, entries: map[string]*entry{}, usage: map[string]*Usage{}, gone: tombstone.New(o.clock, tombstone.Keep)}
}

// Tree returns the tree the ledger admits against.
func (l *Ledger) Tree() *Tree {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tree
}

// SetTree switches to a new tree atomically; entries keep their leaves.
func (l *Ledger) SetTree(t *Tree) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tree = t
	l.version++
	l.demandVersion++
	l.journal, l.journalFrom = l.journal[:0], l.version // readers start over
}

// Check reports whether req fits in the leaf and every ancestor's max, with
// what is allocated and reserved now. It is O(depth x resources in max).
func (l *Ledger) Check(leaf *Queue, req resources.Vector) *LimitError {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.check(leaf, req)
}

func (l *Ledger) check(leaf *Queue, req resources.Vector) *LimitError {
	for q := leaf; q != nil; q = q.Parent {
		if len(q.Max) == 0 {
			continue
		}
		u := l.usage[q.Path]
		var over *LimitError
		for r, max := range q.Max {
			used := int64(0)
			if u != nil {
				used = u.Allocated[r] + u.Reserved[r]
			}
			// of several resources over, report the first by name, so the
			// same request gets the same refusal every time
			if req[r] > 0 && used+req[r] > max && (over == nil || r < over.Resource) {
				over = &LimitError{Queue: q.Path, Resource: r, Used: used, Request: req[r], Max: max}
			}
		}
		if over != nil {
			return over
		}
	}
	return nil
}

// Reserve admits req under key in the leaf if it fits, atomically with the
// check, so concurrent callers can never together overshoot a max.
func (l *Ledger) Reserve(key string, leaf *Queue, req resources.Vector) *LimitError {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.entries[key]; ok && e.state != Pending {
		return nil // already holds its quota
	}
	if err := l.check(leaf, req); err != nil {
		return err
	}
	l.set(key, leaf.Path, req, Reserved)
	return nil
}

// Allocate records key as bound in the leaf (by path). It is a fact
// observed in the cluster, so it is not checked against limits: a pod bound
// before a restart or a config change is counted as it is.
func (l *Ledger) Allocate(key, leafPath string, req resources.Vector) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.entries[key]; ok && e.state == Allocated {
		return
	} else if ok && e.state == Reserved {
		leafPath, req = e.leaf, e.req // keep what was admitted
	}
	l.set(key, leafPath, req, Allocated)
}

// SetPending records key as waiting in the leaf (by path), for status; it
// does not count against limits. A reserved or allocated key is left alone.
func (l *Ledger) SetPending(key, leafPath string, req resources.Vector) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.entries[key]; ok && e.state != Pending {
		return
	}
	l.set(key, leafPath, req, Pending)
}

// Transfer moves req from the reservation under from (a gang's) to a new
// reserved entry under to (one of its members), without a limit check: the
// quota was admitted with the gang. from shrinks (never below zero per
// resource) and disappears when nothing is left.
func (l *Ledger) Transfer(from, to string, req resources.Vector) {
	l.mu.Lock()
	defer l.mu.Unlock()
	src, ok := l.entries[from]
	if !ok || src.state != Reserved || l.gone.Has(to) {
		return // a pod that is gone leaves the gang's share with the gang
	}
	if e, ok := l.entries[to]; ok && e.state != Pending {
		return
	}
	rest := src.req.Clone()
	for r, a := range req {
		if rest[r] -= a; rest[r] <= 0 {
			delete(rest, r)
		}
	}
	leaf := src.leaf
	if rest.IsZero() {
		l.remove(from)
	} else {
		l.set(from, leaf, rest, Reserved)
	}
	l.set(to, leaf, req.Clone(), Reserved)
}

// Shrink takes req off the reservation under key (a gang's), never below
// zero per resource; the entry disappears when nothing is left. For a
// member bound by someone else: its share is no longer held for it.
func (l *Ledger) Shrink(key string, req resources.Vector) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[key]
	if !ok || e.state != Reserved {
		return
	}
	rest := e.req.Clone()
	for r, a := range req {
		if rest[r] -= a; rest[r] <= 0 {
			delete(rest, r)
		}
	}
	if rest.IsZero() {
		l.remove(key)
		return
	}
	l.set(key, e.leaf, rest, Reserved)
}

// Unreserve returns a reserved key to pending (the scheduling attempt
// failed); allocated keys are left alone.
func (l *Ledger) Unreserve(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.entries[key]; ok && e.state == Reserved {
		l.set(key, e.leaf, e.req, Pending)
	}
}

// Remove drops key's entry. The key may be used again (a gang's
// reservation, a pod placed anew under a new tree).
func (l *Ledger) Remove(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.remove(key)
}

// Forget drops key's entry for good: its pod finished or was deleted. Every
// write for the key is refused from now on (for tombstone.Keep, longer
// than any scheduling cycle that may still hold the pod).
func (l *Ledger) Forget(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gone.Add(key)
	l.remove(key)
}

func (l *Ledger) remove(key string) {
	if e, ok := l.entries[key]; ok {
		l.demandVersion++
		l.apply(e, -1)
		delete(l.entries, key)
	}
}

// Lookup returns the state and leaf of key.
func (l *Ledger) Lookup(key string) (State, string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[key]
	if !ok {
		return 0, "", false
	}
	return e.state, e.leaf, true
}

// Request returns a copy of what key counts for, as the ledger holds it.
func (l *Ledger) Request(key string) (resources.Vector, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[key]
	if !ok {
		return nil, false
	}
	return e.req.Clone(), true
}

// Usage returns a copy of the usage of the queue at path (zero if none).
func (l *Ledger) Usage(path string) Usage {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u, ok := l.usage[path]; ok {
		return u.clone()
	}
	return newUsage().clone()
}

// Snapshot returns the tree and a copy of every queue's usage, consistently.
func (l *Ledger) Snapshot() (*Tree, map[string]Usage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tree, l.snapshot()
}

func (l *Ledger) snapshot() map[string]Usage {
	out := make(map[string]Usage, len(l.usage))
	for p, u := range l.usage {
		out[p] = u.clone()
	}
	return out
}

// Version changes whenever usage, demand or the tree changes.
func (l *Ledger) Version() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.version
}

// Versions are a ledger's versions at one moment.
type Versions struct {
	// Usage changes whenever usage, demand or the tree changes (Version).
	Usage uint64
	// Demand changes when a queue's demand (usage + pending) or the tree
	// may have changed; an entry that only changes state (reserved, bound,
	// unreserved) leaves it alone.
	Demand uint64
}

// Versions returns the ledger's versions.
func (l *Ledger) Versions() Versions {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Versions{Usage: l.version, Demand: l.demandVersion}
}

// SnapshotVersions is Snapshot with the versions it was taken at.
func (l *Ledger) SnapshotVersions() (*Tree, map[string]Usage, Versions) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tree, l.snapshot(), Versions{Usage: l.version, Demand: l.demandVersion}
}

// UsageChanges returns the usage of every leaf whose usage changed after
// version since, and of the root when any did, with the versions they are
// current at; ok is false when the ledger no longer remembers that far back
// (or the tree changed since), and the caller must start over from a
// Snapshot. The cost is that of the changes, not of the tree.
func (l *Ledger) UsageChanges(since uint64) (changed map[string]Usage, v Versions, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v = Versions{Usage: l.version, Demand: l.demandVersion}
	if since < l.journalFrom || since > l.version {
		return nil, v, false
	}
	i := sort.Search(len(l.journal), func(i int) bool { return l.journal[i].version > since })
	if i == len(l.journal) {
		return nil, v, true
	}
	changed = map[string]Usage{}
	add := func(path string) {
		if u, ok := l.usage[path]; ok {
			changed[path] = u.clone()
		} else {
			changed[path] = newUsage().clone()
		}
	}
	for _, e := range l.journal[i:] {
		if _, seen := changed[e.leaf]; !seen {
			add(e.leaf)
		}
	}
	add(RootName)
	return changed, v, true
}

// set records key's entry, unless key is forgotten (see Forget).
func (l *Ledger) set(key, leaf string, req resources.Vector, s State) {
	old, ok := l.entries[key]
	if !ok && l.gone.Has(key) {
		return
	}
	if !ok || old.leaf != leaf || !old.req.Equal(req) {
		l.demandVersion++ // not a mere change of state
	}
	if ok {
		l.apply(old, -1)
	}
	e := &entry{leaf: leaf, req: req.Clone(), state: s} // the caller may reuse req
	l.entries[key] = e
	l.apply(e, +1)
}

// apply adds (sign +1) or removes (-1) an entry from its leaf and every
// ancestor, by path, whether or not the current tree still has them.
func (l *Ledger) apply(e *entry, sign int) {
	l.version++
	if len(l.journal) >= journalMax {
		drop := len(l.journal) / 2
		l.journalFrom = l.journal[drop-1].version
		l.journal = append(l.journal[:0], l.journal[drop:]...)
	}
	l.journal = append(l.journal, journalEntry{version: l.version, leaf: e.leaf})
	for p := e.leaf; p != ""; p = ParentPath(p) {
		u, ok := l.usage[p]
		if !ok {
			u = newUsage()
			l.usage[p] = u
		}
		var v resources.Vector
		switch e.state {
		case Pending:
			v, u.Waiting = u.Pending, u.Waiting+sign
		case Reserved:
			v = u.Reserved
		case Allocated:
			v, u.Running = u.Allocated, u.Running+sign
		}
		if sign > 0 {
			v.Add(e.req)
		} else {
			v.Sub(e.req)
		}
		if sign < 0 && u.Running == 0 && u.Waiting == 0 && u.Allocated.IsZero() && u.Reserved.IsZero() && u.Pending.IsZero() {
			delete(l.usage, p)
		}
	}
}

// ParentPath is the path of a queue's parent, from its path ("" for the
// root).
func ParentPath(p string) string {
	i := strings.LastIndexByte(p, '.')
	if i < 0 {
		return ""
	}
	return p[:i]
}
