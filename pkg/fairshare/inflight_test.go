package fairshare

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/resources"
)

func cpuVec(milli int64) resources.Vector { return resources.Vector{v1.ResourceCPU: milli} }

// TestInFlight follows one reclaim (preemptor p of root.a.x takes victims
// v1, v2 of root.b) through the ways it can end, checking after each step
// what Adjust adds to the usage, whether p still waits for its victims, and
// whether the step reported a change (so that held-back pods are retried).
func TestInFlight(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	const grace = 30 * time.Second
	type step struct {
		do      func(f *InFlight) bool // nil: nothing
		at      time.Duration          // since t0
		changed bool
		// held: keys the ledger holds as admitted; counted: keys it counts.
		held, counted []string
		wantA, wantB  int64 // cpu adjustment of root.a and root.b
		waiting       bool
		evicted       []string
		len           int
	}
	inLedger := []string{"v1", "v2"}
	tests := map[string][]step{
		"admitted, then the victims go": {
			{counted: inLedger, wantA: 4000, wantB: -4000, waiting: true, evicted: []string{"v1", "v2"}, len: 3},
			{do: func(f *InFlight) bool { return f.Admitted("p") }, changed: true, held: []string{"p"}, counted: inLedger, wantB: -4000, waiting: true, evicted: []string{"v1", "v2"}, len: 3},
			{do: func(f *InFlight) bool { return f.Admitted("p") }, changed: false, counted: inLedger, wantB: -4000, waiting: true, evicted: []string{"v1", "v2"}, len: 3},
			{do: func(f *InFlight) bool { return f.Gone("v1") }, changed: true, counted: []string{"v2"}, wantB: -2000, waiting: true, evicted: []string{"v2"}, len: 2},
			{do: func(f *InFlight) bool { return f.Gone("v2") }, changed: true, len: 0},
		},
		"the victims go first: the preemptor still claims until admitted": {
			{do: func(f *InFlight) bool { return f.Gone("v1") }, changed: true, wantA: 4000, waiting: true, evicted: []string{"v2"}, len: 2},
			{do: func(f *InFlight) bool { return f.Gone("v2") }, changed: true, wantA: 4000, len: 1},
			// The ledger holds it before Admitted is called: not counted twice.
			{held: []string{"p"}, len: 1},
			{do: func(f *InFlight) bool { return f.Admitted("p") }, changed: true, len: 0},
		},
		"the preemptor is deleted: its claim ends at once, its victims go on exiting": {
			{do: func(f *InFlight) bool { return f.Gone("p") }, changed: true, counted: inLedger, wantB: -4000, evicted: []string{"v1", "v2"}, len: 2},
			{do: func(f *InFlight) bool { return f.Gone("p") }, changed: false, counted: inLedger, wantB: -4000, evicted: []string{"v1", "v2"}, len: 2},
			{do: func(f *InFlight) bool { return f.Gone("v1") }, changed: true, counted: []string{"v2"}, wantB: -2000, evicted: []string{"v2"}, len: 1},
		},
		"a deleted preemptor that no ledger holds is never counted again": {
			{do: func(f *InFlight) bool { return f.Gone("p") && f.Gone("v1") && f.Gone("v2") }, changed: true, len: 0},
			{at: time.Second, len: 0},
		},
		"nothing seen: all of it ends at the grace period": {
			{at: grace - time.Millisecond, counted: inLedger, wantA: 4000, wantB: -4000, waiting: true, evicted: []string{"v1", "v2"}, len: 3},
			// Past the grace period nothing counts, even before Expire.
			{at: grace, counted: inLedger, len: 3},
			{do: func(f *InFlight) bool { return f.Expire(t0.Add(grace - time.Second)) }, at: grace, changed: false, counted: inLedger, len: 3},
			{do: func(f *InFlight) bool { return f.Expire(t0.Add(grace)) }, at: grace, changed: true, len: 0},
		},
	}
	for name, steps := range tests {
		t.Run(name, func(t *testing.T) {
			f := NewInFlight(grace)
			until := f.Record("p", "root.a.x", cpuVec(4000), []InFlightVictim{
				{Key: "v1", Queue: "root.b", Request: cpuVec(2000)},
				{Key: "v2", Queue: "root.b", Request: cpuVec(2000)},
			}, t0)
			require.Equal(t, t0.Add(grace), until)
			for i, s := range steps {
				if s.do != nil {
					assert.Equal(t, s.changed, s.do(f), "step %d: changed", i)
				}
				now := t0.Add(s.at)
				usage := map[string]resources.Vector{}
				f.Adjust(usage, "", now, in(s.held), in(s.counted))
				assert.Equal(t, s.wantA, usage["root.a.x"][v1.ResourceCPU], "step %d: root.a.x", i)
				assert.Equal(t, s.wantA, usage["root.a"][v1.ResourceCPU], "step %d: root.a (ancestors too)", i)
				assert.Equal(t, s.wantA+s.wantB, usage["root"][v1.ResourceCPU], "step %d: root", i)
				assert.Equal(t, s.wantB, usage["root.b"][v1.ResourceCPU], "step %d: root.b", i)
				assert.Equal(t, s.waiting, f.Waiting("p", now), "step %d: waiting", i)
				for _, v := range []string{"v1", "v2"} {
					assert.Equal(t, contains(s.evicted, v), f.Evicted(v, now), "step %d: %s evicted", i, v)
				}
				assert.Equal(t, s.len, f.Len(), "step %d: entries", i)
			}
		})
	}
}

// TestInFlightClaims: Adjust counts other preemptors' claims apart from the
// caller's own, and a preemptor recorded again keeps its victims still exiting.
func TestInFlightClaims(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	f := NewInFlight(time.Minute)
	f.Record("p", "root.a", cpuVec(1000), []InFlightVictim{{Key: "v1", Queue: "root.b", Request: cpuVec(1000)}}, t0)
	f.Record("q", "root.a", cpuVec(1000), nil, t0)
	none := in(nil)
	assert.Equal(t, 1, f.Adjust(map[string]resources.Vector{}, "p", t0, none, none))
	assert.Equal(t, 2, f.Adjust(map[string]resources.Vector{}, "other", t0, none, none))

	f.Record("p", "root.a", cpuVec(1000), []InFlightVictim{{Key: "v2", Queue: "root.b", Request: cpuVec(1000)}}, t0.Add(time.Second))
	assert.True(t, f.Evicted("v1", t0), "v1 still exiting")
	require.True(t, f.Gone("v2"))
	assert.True(t, f.Waiting("p", t0.Add(time.Second)), "p still waits for v1")
	require.True(t, f.Gone("v1"))
	assert.False(t, f.Waiting("p", t0.Add(time.Second)))
}

func in(keys []string) func(string) bool {
	return func(k string) bool { return contains(keys, k) }
}

func contains(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}
