package queue

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"muster.dev/muster/pkg/resources"
)

// TestLedgerDemandVersion: a change of state alone (pending, reserved,
// bound, unreserved) leaves demand, and so the demand version, alone; a new
// entry, another request, another leaf or a removal moves it.
func TestLedgerDemandVersion(t *testing.T) {
	a := "root.team.a"
	cases := map[string]struct {
		setup  func(l *Ledger)
		change func(l *Ledger)
		moves  bool
	}{
		"pending to reserved": {
			setup:  func(l *Ledger) { l.SetPending("p", a, cpus(1)) },
			change: func(l *Ledger) { require.Nil(t, l.Reserve("p", l.Tree().Get(a), cpus(1))) },
		},
		"reserved to allocated": {
			setup:  func(l *Ledger) { require.Nil(t, l.Reserve("p", l.Tree().Get(a), cpus(1))) },
			change: func(l *Ledger) { l.Allocate("p", a, cpus(1)) },
		},
		"unreserved": {
			setup:  func(l *Ledger) { require.Nil(t, l.Reserve("p", l.Tree().Get(a), cpus(1))) },
			change: func(l *Ledger) { l.Unreserve("p") },
		},
		"new pending pod": {
			change: func(l *Ledger) { l.SetPending("p", a, cpus(1)) },
			moves:  true,
		},
		"another request": {
			setup:  func(l *Ledger) { l.SetPending("p", a, cpus(1)) },
			change: func(l *Ledger) { require.Nil(t, l.Reserve("p", l.Tree().Get(a), cpus(2))) },
			moves:  true,
		},
		"another leaf": {
			setup:  func(l *Ledger) { l.SetPending("p", a, cpus(1)) },
			change: func(l *Ledger) { require.Nil(t, l.Reserve("p", l.Tree().Get("root.team.b"), cpus(1))) },
			moves:  true,
		},
		"removed": {
			setup:  func(l *Ledger) { l.Allocate("p", a, cpus(1)) },
			change: func(l *Ledger) { l.Forget("p") },
			moves:  true,
		},
		"new tree": {
			change: func(l *Ledger) { l.SetTree(mustParse(t, ledgerTree)) },
			moves:  true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			l := NewLedger(mustParse(t, ledgerTree))
			if tc.setup != nil {
				tc.setup(l)
			}
			before := l.Versions()
			tc.change(l)
			after := l.Versions()
			assert.NotEqual(t, before.Usage, after.Usage, "every change moves the usage version")
			assert.Equal(t, tc.moves, before.Demand != after.Demand, "demand version moved")
		})
	}
}

// TestLedgerUsageChanges: the journal gives exactly the leaves changed
// since a version, with their usage and the root's as a Snapshot would; it
// refuses a reader older than it remembers or from before a new tree.
func TestLedgerUsageChanges(t *testing.T) {
	l := NewLedger(mustParse(t, ledgerTree))
	a, b := "root.team.a", "root.team.b"
	l.Allocate("x", a, cpus(1))
	since := l.Versions().Usage

	changed, v, ok := l.UsageChanges(since)
	require.True(t, ok)
	assert.Empty(t, changed, "nothing changed since")
	assert.Equal(t, since, v.Usage)

	l.SetPending("y", b, cpus(2))
	require.Nil(t, l.Reserve("y", l.Tree().Get(b), cpus(2)))
	changed, v, ok = l.UsageChanges(since)
	require.True(t, ok)
	_, usage := l.Snapshot()
	assert.Equal(t, map[string]Usage{b: usage[b], RootName: usage[RootName]}, changed)
	assert.Equal(t, l.Versions(), v)
	assert.Equal(t, cpus(3), changed[RootName].Used())

	// A leaf emptied is reported, with zero usage.
	l.Remove("y")
	changed, _, ok = l.UsageChanges(v.Usage)
	require.True(t, ok)
	assert.True(t, changed[b].Used().IsZero())

	// Too far back: the journal was trimmed.
	old := l.Versions().Usage
	for i := range journalMax {
		l.Allocate(fmt.Sprintf("k%d", i), a, cpus(1))
	}
	_, _, ok = l.UsageChanges(old)
	assert.False(t, ok, "older than the journal reaches")
	recent := l.Versions().Usage
	l.Allocate("last", a, cpus(1))
	changed, _, ok = l.UsageChanges(recent)
	require.True(t, ok)
	assert.Equal(t, resources.Vector{cpu: (journalMax + 2) * 1000}, changed[a].Allocated)

	// A new tree: readers start over.
	now := l.Versions().Usage
	l.SetTree(mustParse(t, ledgerTree))
	_, _, ok = l.UsageChanges(now)
	assert.False(t, ok, "a new tree came in")
}
