package gang

import (
	"sort"
	"sync"
	"time"

	"muster.dev/muster/pkg/resources"
)

// KindPod is the kind of a Ref naming a single pod (outside gangs) that
// holds room at the head of its queue.
const KindPod Kind = "Pod"

// PodRef names a single pod as a holder.
func PodRef(namespace, name string) Ref { return Ref{Kind: KindPod, Namespace: namespace, Name: name} }

// Hold is the room the gang or pod at the head of a leaf queue waits for,
// while it does not fit yet: on each node of its plan, what its members
// need there (a single pod: its request, on one node). Pods behind it in
// its queue, and pods of queues above their fair share while its own queue
// is below its share, may not take that room; they may take what is free
// beyond it. One holds per leaf queue.
type Hold struct {
	Ref  Ref
	Leaf string
	// Where the holder stands in its queue: fewer timeouts first (one that
	// waited past its timeout yields its place), then higher priority (0 in
	// a fifo queue), then earlier arrival.
	Timeouts int
	Priority int32
	Arrived  time.Time
	// Need is the room held on each node, by node name.
	Need map[string]resources.Vector
	// Since is when the holder began to hold (kept across new plans).
	Since time.Time
}

// Total is the room held on all nodes together.
func (h *Hold) Total() resources.Vector {
	out := resources.Vector{}
	for _, need := range h.Need {
		out.Add(need)
	}
	return out
}

// ahead reports whether h stands before o in their queue.
func (h *Hold) ahead(o *Hold) bool {
	if h.Timeouts != o.Timeouts {
		return h.Timeouts < o.Timeouts
	}
	if h.Priority != o.Priority {
		return h.Priority > o.Priority
	}
	if !h.Arrived.Equal(o.Arrived) {
		return h.Arrived.Before(o.Arrived)
	}
	return h.Ref.String() < o.Ref.String()
}

// Holds are the holds in force, one per leaf queue. Safe for concurrent use.
type Holds struct {
	mu     sync.Mutex
	byLeaf map[string]*Hold
	// yielded counts, for single pods, the holds they gave up past their
	// timeout (a gang's registry counts its own timeouts).
	yielded map[Ref]int
	// onRelease is called (outside the lock) whenever room held before is
	// held no more: pods kept off it must be retried, as no cluster event
	// says so.
	onRelease func()
}

// OnRelease sets the function called whenever held room is released (a
// hold dropped, yielded, forgotten, or replaced by another holder's).
func (s *Holds) OnRelease(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRelease = f
}

// unlockReleasing unlocks s and, if released, calls onRelease.
func (s *Holds) unlockReleasing(released bool) {
	f := s.onRelease
	s.mu.Unlock()
	if released && f != nil {
		f()
	}
}

// NewHolds returns an empty set of holds.
func NewHolds() *Holds { return &Holds{byLeaf: map[string]*Hold{}, yielded: map[Ref]int{}} }

// Offer makes h its leaf's hold if the leaf has none, if h is the same
// holder's (a new plan), or if h stands before the holder; it reports
// whether h holds now.
func (s *Holds) Offer(h Hold) bool {
	s.mu.Lock()
	cur := s.byLeaf[h.Leaf]
	if cur != nil && cur.Ref != h.Ref && !h.ahead(cur) {
		s.mu.Unlock()
		return false
	}
	released := cur != nil // another holder's room, or this one's old plan
	if cur != nil && cur.Ref == h.Ref {
		h.Since = cur.Since
	}
	for leaf, o := range s.byLeaf { // one holds in one leaf at most
		if o.Ref == h.Ref && leaf != h.Leaf {
			delete(s.byLeaf, leaf)
			released = true
		}
	}
	s.byLeaf[h.Leaf] = &h
	s.unlockReleasing(released && !(cur != nil && cur.Ref == h.Ref && sameNeed(cur.Need, h.Need)))
	return true
}

func sameNeed(a, b map[string]resources.Vector) bool {
	if len(a) != len(b) {
		return false
	}
	for n, v := range a {
		w, ok := b[n]
		if !ok || len(v) != len(w) {
			return false
		}
		for r, q := range v {
			if w[r] != q {
				return false
			}
		}
	}
	return true
}

// Ahead reports whether h would take its leaf's hold now (Offer would
// accept it): planning a hold that Offer refuses is wasted work.
func (s *Holds) Ahead(h Hold) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.byLeaf[h.Leaf]
	return cur == nil || cur.Ref == h.Ref || h.ahead(cur)
}

// Yield ends a single pod's hold past its timeout: it stands behind the
// pods that never yielded from now on (Yielded).
func (s *Holds) Yield(ref Ref) {
	s.mu.Lock()
	released := s.dropLocked(ref)
	s.yielded[ref]++
	s.unlockReleasing(released)
}

// dropLocked ends ref's hold; it reports whether it had one.
func (s *Holds) dropLocked(ref Ref) bool {
	for leaf, h := range s.byLeaf {
		if h.Ref == ref {
			delete(s.byLeaf, leaf)
			return true
		}
	}
	return false
}

// Yielded is how many holds the single pod gave up past its timeout.
func (s *Holds) Yielded(ref Ref) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.yielded[ref]
}

// Forget ends the holder's hold and forgets it (a pod deleted).
func (s *Holds) Forget(ref Ref) {
	s.mu.Lock()
	released := s.dropLocked(ref)
	delete(s.yielded, ref)
	s.unlockReleasing(released)
}

// Drop ends the gang's hold, if it has one; it reports whether it had.
func (s *Holds) Drop(ref Ref) bool {
	s.mu.Lock()
	released := s.dropLocked(ref)
	s.unlockReleasing(released)
	return released
}

// Keep drops every hold keep refuses (its holder gone, admitted, no longer
// waiting for room).
func (s *Holds) Keep(keep func(Hold) bool) {
	s.mu.Lock()
	released := false
	for leaf, h := range s.byLeaf {
		if !keep(*h) {
			delete(s.byLeaf, leaf)
			released = true
		}
	}
	s.unlockReleasing(released)
}

// Of returns the gang's hold.
func (s *Holds) Of(ref Ref) (Hold, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.byLeaf {
		if h.Ref == ref {
			return *h, true
		}
	}
	return Hold{}, false
}

// List returns the holds in force, by leaf.
func (s *Holds) List() []Hold {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Hold, 0, len(s.byLeaf))
	for _, h := range s.byLeaf {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Leaf < out[j].Leaf })
	return out
}

// Len is the number of holds in force.
func (s *Holds) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byLeaf)
}

// Subject is a pod or gang about to take room: which holds it must leave
// alone.
type Subject struct {
	Ref      Ref // its gang, or itself (PodRef)
	Leaf     string
	Priority int32 // 0 in a fifo queue
	Arrived  time.Time
	// AboveFairShare: its queue holds more than its fair share.
	AboveFairShare bool
	// Served: a member of a gang already admitted or bound (beyond its
	// reservation): its gang was served before any holder of its second.
	Served bool
}

// behind reports whether the subject stands after the holder in their
// queue: lower priority, or a later arrival. Arrivals are creation times,
// to the second; within one second, as Offer ranks holders (by name),
// except that a gang already served stands first.
func (sub Subject) behind(h *Hold) bool {
	if sub.Priority != h.Priority {
		return sub.Priority < h.Priority
	}
	if !sub.Arrived.Equal(h.Arrived) {
		return sub.Arrived.After(h.Arrived)
	}
	return !sub.Served && sub.Ref.String() > h.Ref.String()
}

// For sums, by node, the room the holds keep from the subject: a hold of
// its own queue that stands before it, and another queue's hold when the
// subject's queue is above its fair share and the holder's is owed room
// (below its own share: a queue already above its share has no claim on
// the others' room). Nil when none does.
func (s *Holds) For(sub Subject, owed func(leaf string) bool) map[string]resources.Vector {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out map[string]resources.Vector
	for _, h := range s.byLeaf {
		if h.Ref == sub.Ref && sub.Ref != (Ref{}) {
			continue
		}
		if h.Leaf == sub.Leaf {
			if !sub.behind(h) {
				continue
			}
		} else if !sub.AboveFairShare || !owed(h.Leaf) {
			continue
		}
		if out == nil {
			out = map[string]resources.Vector{}
		}
		for node, need := range h.Need {
			v := out[node]
			if v == nil {
				v = resources.Vector{}
				out[node] = v
			}
			v.Add(need)
		}
	}
	return out
}
