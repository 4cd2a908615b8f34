// Package tombstone remembers, for a while, the keys of objects that are
// gone for good: pods by UID, which the API never hands out twice.
//
// State kept about a pod is written from two sides that do not wait for
// each other: the informer's handlers, which learn that a pod is gone, and
// scheduling cycles, which may still be working from the pod as it was a
// moment before (kube-scheduler pops a pod, then its delete event arrives).
// A write from such a cycle after the delete was handled would bring the
// pod's state back with nothing left to remove it. A component that
// records "gone" here and refuses writes for keys that are gone ends its
// state with its pods whatever the order.
package tombstone

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Keep is how long a key is remembered by default: far longer than a
// scheduling cycle, the longest that a write can lag behind the delete.
const Keep = 2 * time.Minute

// Set remembers keys for at least keep and at most twice that. It holds two
// generations and drops the older one wholesale, so that memory is bounded
// by the keys added in two periods and no per-key timer is needed. It is
// safe for concurrent use.
type Set struct {
	mu       sync.Mutex
	clock    clock.PassiveClock
	keep     time.Duration
	since    time.Time // when cur began
	cur, old map[string]struct{}
}

// New returns an empty set that remembers keys for at least keep, telling
// time by clk.
func New(clk clock.PassiveClock, keep time.Duration) *Set {
	return &Set{clock: clk, keep: keep, since: clk.Now(), cur: map[string]struct{}{}}
}

// Add records key as gone.
func (s *Set) Add(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotate()
	s.cur[key] = struct{}{}
}

// Has reports whether key is gone.
func (s *Set) Has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotate()
	if _, ok := s.cur[key]; ok {
		return true
	}
	_, ok := s.old[key]
	return ok
}

// Len is how many keys are remembered.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotate()
	return len(s.cur) + len(s.old)
}

func (s *Set) rotate() {
	now := s.clock.Now()
	switch age := now.Sub(s.since); {
	case age >= 2*s.keep: // both generations are past keeping
		s.old, s.cur, s.since = nil, map[string]struct{}{}, now
	case age >= s.keep:
		s.old, s.cur, s.since = s.cur, map[string]struct{}{}, now
	}
}
