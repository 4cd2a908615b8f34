package queue

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"muster.dev/muster/pkg/resources"
	"muster.dev/muster/pkg/tombstone"
)

const ledgerTree = `
queues:
  - name: team
    max: {cpu: "10", memory: 10Gi}
    queues:
      - name: a
        guaranteed: {cpu: "2"}
        max: {cpu: "6"}
      - name: b
        guaranteed: {cpu: "2"}
  - name: free
`

func cpus(n int64) resources.Vector { return resources.Vector{cpu: n * 1000} }

// step is one call on a ledger; want is what Reserve should return.
type step struct {
	op        string // reserve, allocate, pending, unreserve, remove, forget, transfer
	key, leaf string
	req       resources.Vector
	want      *LimitError
}

func run(t *testing.T, l *Ledger, steps []step) {
	t.Helper()
	for i, s := range steps {
		switch s.op {
		case "reserve":
			leaf := l.Tree().Get(s.leaf)
			require.NotNil(t, leaf, "step %d: no queue %s", i, s.leaf)
			// Check says what Reserve will do, without doing it
			assert.Equal(t, s.want, l.Check(leaf, s.req), "step %d: check %s", i, s.key)
			assert.Equal(t, s.want, l.Reserve(s.key, leaf, s.req), "step %d: reserve %s", i, s.key)
		case "allocate":
			l.Allocate(s.key, s.leaf, s.req)
		case "pending":
			l.SetPending(s.key, s.leaf, s.req)
		case "unreserve":
			l.Unreserve(s.key)
		case "remove":
			l.Remove(s.key)
		case "forget":
			l.Forget(s.key)
		case "transfer": // from the key in leaf (a gang's) to s.key
			l.Transfer(s.leaf, s.key, s.req)
		default:
			t.Fatalf("step %d: unknown op %s", i, s.op)
		}
	}
}

// used is what counts against limits, per queue path, leaving out queues
// that hold nothing.
func used(l *Ledger) map[string]resources.Vector {
	_, snap := l.Snapshot()
	out := map[string]resources.Vector{}
	for p, u := range snap {
		if v := u.Used(); !v.IsZero() {
			out[p] = v
		}
	}
	return out
}

func TestLedgerLimits(t *testing.T) {
	cases := map[string]struct {
		steps    []step
		wantUsed map[string]resources.Vector
	}{
		"leaf max": {
			steps: []step{
				{op: "reserve", key: "p1", leaf: "root.team.a", req: cpus(4)},
				{op: "reserve", key: "p2", leaf: "root.team.a", req: cpus(3),
					want: &LimitError{Queue: "root.team.a", Resource: cpu, Used: 4000, Request: 3000, Max: 6000}},
				{op: "reserve", key: "p3", leaf: "root.team.a", req: cpus(2)},
				{op: "reserve", key: "p4", leaf: "root.team.a", req: resources.Vector{cpu: 1},
					want: &LimitError{Queue: "root.team.a", Resource: cpu, Used: 6000, Request: 1, Max: 6000}},
			},
			wantUsed: map[string]resources.Vector{"root.team.a": cpus(6), "root.team": cpus(6), "root": cpus(6)},
		},
		"a request exactly at max fits": {
			steps: []step{
				{op: "reserve", key: "p1", leaf: "root.team.a", req: cpus(6)},
				{op: "reserve", key: "p2", leaf: "root.team.b", req: cpus(4)},
			},
			wantUsed: map[string]resources.Vector{"root.team.a": cpus(6), "root.team.b": cpus(4), "root.team": cpus(10), "root": cpus(10)},
		},
		"parent max shared by two leaves": {
			steps: []step{
				{op: "reserve", key: "p1", leaf: "root.team.a", req: cpus(5)},
				{op: "reserve", key: "p2", leaf: "root.team.b", req: cpus(5)},
				{op: "reserve", key: "p3", leaf: "root.team.b", req: cpus(1),
					want: &LimitError{Queue: "root.team", Resource: cpu, Used: 10000, Request: 1000, Max: 10000}},
				{op: "reserve", key: "p4", leaf: "root.team.a", req: cpus(1),
					want: &LimitError{Queue: "root.team", Resource: cpu, Used: 10000, Request: 1000, Max: 10000}},
			},
			wantUsed: map[string]resources.Vector{"root.team.a": cpus(5), "root.team.b": cpus(5), "root.team": cpus(10), "root": cpus(10)},
		},
		"the leaf refuses before its parent": {
			steps: []step{
				{op: "reserve", key: "p1", leaf: "root.team.b", req: cpus(10)},
				{op: "reserve", key: "p2", leaf: "root.team.a", req: cpus(7),
					want: &LimitError{Queue: "root.team.a", Resource: cpu, Used: 0, Request: 7000, Max: 6000}},
			},
			wantUsed: map[string]resources.Vector{"root.team.b": cpus(10), "root.team": cpus(10), "root": cpus(10)},
		},
		"guaranteed is not a cap": {
			steps: []step{
				{op: "reserve", key: "p1", leaf: "root.team.b", req: cpus(9)},
			},
			wantUsed: map[string]resources.Vector{"root.team.b": cpus(9), "root.team": cpus(9), "root": cpus(9)},
		},
		"resources without a max are unlimited": {
			steps: []step{
				{op: "reserve", key: "p1", leaf: "root.team.a", req: resources.Vector{gpu: 1000, v1.ResourcePods: 1000}},
				{op: "reserve", key: "p2", leaf: "root.free", req: cpus(1_000_000)},
			},
			wantUsed: map[string]resources.Vector{
				"root.team.a": {gpu: 1000, v1.ResourcePods: 1000}, "root.team": {gpu: 1000, v1.ResourcePods: 1000},
				"root.free": cpus(1_000_000), "root": {gpu: 1000, v1.ResourcePods: 1000, cpu: 1_000_000_000}},
		},
		"a full resource does not block requests without it": {
			steps: []step{
				{op: "reserve", key: "p1", leaf: "root.team.b", req: cpus(10)},
				{op: "reserve", key: "p2", leaf: "root.team.b", req: resources.Vector{mem: gi}},
				{op: "reserve", key: "p3", leaf: "root.team.b", req: resources.Vector{cpu: 0, mem: gi}},
			},
			wantUsed: map[string]resources.Vector{
				"root.team.b": {cpu: 10000, mem: 2 * gi}, "root.team": {cpu: 10000, mem: 2 * gi}, "root": {cpu: 10000, mem: 2 * gi}},
		},
		"several resources over: the first by name is reported": {
			steps: []step{
				{op: "reserve", key: "p1", leaf: "root.team.b", req: resources.Vector{cpu: 11000, mem: 11 * gi},
					want: &LimitError{Queue: "root.team", Resource: cpu, Used: 0, Request: 11000, Max: 10000}},
				{op: "reserve", key: "p2", leaf: "root.team.b", req: resources.Vector{cpu: 1000, mem: 11 * gi},
					want: &LimitError{Queue: "root.team", Resource: mem, Used: 0, Request: 11 * gi, Max: 10 * gi}},
			},
			wantUsed: map[string]resources.Vector{},
		},
		"allocated counts against limits": {
			steps: []step{
				{op: "allocate", key: "p1", leaf: "root.team.b", req: cpus(8)},
				{op: "reserve", key: "p2", leaf: "root.team.a", req: cpus(3),
					want: &LimitError{Queue: "root.team", Resource: cpu, Used: 8000, Request: 3000, Max: 10000}},
				{op: "reserve", key: "p3", leaf: "root.team.a", req: cpus(2)},
			},
			wantUsed: map[string]resources.Vector{"root.team.a": cpus(2), "root.team.b": cpus(8), "root.team": cpus(10), "root": cpus(10)},
		},
		"allocate is not checked: a bound pod is counted as it is": {
			steps: []step{
				{op: "allocate", key: "p1", leaf: "root.team.a", req: cpus(20)},
				{op: "reserve", key: "p2", leaf: "root.team.b", req: resources.Vector{cpu: 1},
					want: &LimitError{Queue: "root.team", Resource: cpu, Used: 20000, Request: 1, Max: 10000}},
			},
			wantUsed: map[string]resources.Vector{"root.team.a": cpus(20), "root.team": cpus(20), "root": cpus(20)},
		},
		"pending is not counted against limits": {
			steps: []step{
				{op: "pending", key: "w1", leaf: "root.team.a", req: cpus(100)},
				{op: "pending", key: "w2", leaf: "root.team.b", req: cpus(100)},
				{op: "reserve", key: "p1", leaf: "root.team.a", req: cpus(6)},
				{op: "reserve", key: "p2", leaf: "root.team.b", req: cpus(4)},
			},
			wantUsed: map[string]resources.Vector{"root.team.a": cpus(6), "root.team.b": cpus(4), "root.team": cpus(10), "root": cpus(10)},
		},
		"a pending key reserves when it fits": {
			steps: []step{
				{op: "pending", key: "p1", leaf: "root.team.a", req: cpus(4)},
				{op: "reserve", key: "p1", leaf: "root.team.a", req: cpus(7),
					want: &LimitError{Queue: "root.team.a", Resource: cpu, Used: 0, Request: 7000, Max: 6000}},
				{op: "reserve", key: "p1", leaf: "root.team.a", req: cpus(4)},
			},
			wantUsed: map[string]resources.Vector{"root.team.a": cpus(4), "root.team": cpus(4), "root": cpus(4)},
		},
		"remove frees room": {
			steps: []step{
				{op: "reserve", key: "p1", leaf: "root.team.a", req: cpus(6)},
				{op: "reserve", key: "p2", leaf: "root.team.b", req: cpus(4)},
				{op: "remove", key: "p1"},
				{op: "reserve", key: "p3", leaf: "root.team.b", req: cpus(6)},
			},
			wantUsed: map[string]resources.Vector{"root.team.b": cpus(10), "root.team": cpus(10), "root": cpus(10)},
		},
		"unreserve frees room": {
			steps: []step{
				{op: "reserve", key: "p1", leaf: "root.team.b", req: cpus(10)},
				{op: "unreserve", key: "p1"},
				{op: "reserve", key: "p2", leaf: "root.team.a", req: cpus(6)},
			},
			wantUsed: map[string]resources.Vector{"root.team.a": cpus(6), "root.team": cpus(6), "root": cpus(6)},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			l := NewLedger(mustParse(t, ledgerTree))
			run(t, l, tc.steps)
			assert.Equal(t, tc.wantUsed, used(l))
		})
	}
}

func TestLimitError(t *testing.T) {
	cases := map[string]struct {
		err       LimitError
		neverFits bool
		want      string
	}{
		"full": {LimitError{Queue: "root.team", Resource: cpu, Used: 9500, Request: 1000, Max: 10000}, false,
			"queue root.team is at its max for cpu: 9500m in use + 1 requested > max 10"},
		"exactly max alone is not never": {LimitError{Queue: "root.team", Resource: mem, Used: 1, Request: 10 * gi, Max: 10 * gi}, false,
			"queue root.team is at its max for memory: 1 in use + 10Gi requested > max 10Gi"},
		"never fits": {LimitError{Queue: "root.ml", Resource: gpu, Used: 0, Request: 9, Max: 8}, true,
			"queue root.ml: requests 9 nvidia.com/gpu, above the queue's max 8; it can never be admitted there"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.neverFits, tc.err.NeverFits())
			assert.Equal(t, tc.want, tc.err.Error())
		})
	}

	l := NewLedger(mustParse(t, ledgerTree))
	err := l.Reserve("big", l.Tree().Get("root.team.b"), cpus(11))
	require.NotNil(t, err)
	assert.True(t, err.NeverFits(), "11 cpus can never fit under max 10")
	err = l.Reserve("a", l.Tree().Get("root.team.a"), cpus(7))
	require.NotNil(t, err)
	assert.True(t, err.NeverFits(), "the leaf's own max")
	require.Nil(t, l.Reserve("c", l.Tree().Get("root.team.b"), cpus(6)))
	err = l.Reserve("d", l.Tree().Get("root.team.a"), cpus(5))
	require.NotNil(t, err)
	assert.False(t, err.NeverFits(), "5 cpus fit once others are done")
}

func TestLedgerStates(t *testing.T) {
	tree := mustParse(t, ledgerTree)
	a, b := tree.Get("root.team.a"), tree.Get("root.team.b")

	t.Run("reserve is idempotent for a key already reserved", func(t *testing.T) {
		l := NewLedger(tree)
		require.Nil(t, l.Reserve("k", a, cpus(4)))
		require.Nil(t, l.Reserve("k", a, cpus(4)))
		require.Nil(t, l.Reserve("k", b, cpus(5)), "already holds its quota")
		assert.Equal(t, map[string]resources.Vector{"root.team.a": cpus(4), "root.team": cpus(4), "root": cpus(4)}, used(l))
		s, leaf, ok := l.Lookup("k")
		require.True(t, ok)
		assert.Equal(t, Reserved, s)
		assert.Equal(t, "root.team.a", leaf)
	})

	t.Run("reserve of an allocated key changes nothing", func(t *testing.T) {
		l := NewLedger(tree)
		l.Allocate("k", "root.team.b", cpus(3))
		require.Nil(t, l.Reserve("k", a, cpus(5)))
		s, leaf, _ := l.Lookup("k")
		assert.Equal(t, Allocated, s)
		assert.Equal(t, "root.team.b", leaf)
		assert.Equal(t, cpus(3), l.Usage("root.team").Allocated)
	})

	t.Run("allocate of a reserved key keeps the admitted leaf and request", func(t *testing.T) {
		l := NewLedger(tree)
		require.Nil(t, l.Reserve("k", a, cpus(2)))
		l.Allocate("k", "root.free", cpus(5))
		s, leaf, _ := l.Lookup("k")
		assert.Equal(t, Allocated, s)
		assert.Equal(t, "root.team.a", leaf)
		u := l.Usage("root.team.a")
		assert.Equal(t, cpus(2), u.Allocated)
		assert.Empty(t, u.Reserved)
		assert.Equal(t, 1, u.Running)
		assert.Equal(t, Usage{Allocated: resources.Vector{}, Reserved: resources.Vector{}, Pending: resources.Vector{}}, l.Usage("root.free"))
		// and again: nothing moves
		l.Allocate("k", "root.free", cpus(5))
		assert.Equal(t, 1, l.Usage("root").Running)
		assert.Equal(t, cpus(2), l.Usage("root").Allocated)
	})

	t.Run("allocate of a pending key moves it where it was bound", func(t *testing.T) {
		l := NewLedger(tree)
		l.SetPending("k", "root.team.a", cpus(2))
		l.Allocate("k", "root.team.b", cpus(3))
		s, leaf, _ := l.Lookup("k")
		assert.Equal(t, Allocated, s)
		assert.Equal(t, "root.team.b", leaf)
		assert.Equal(t, map[string]resources.Vector{"root.team.b": cpus(3), "root.team": cpus(3), "root": cpus(3)}, used(l))
		assert.Empty(t, l.Usage("root.team").Pending)
		assert.Equal(t, 0, l.Usage("root.team").Waiting)
	})

	t.Run("unreserve returns to pending", func(t *testing.T) {
		l := NewLedger(tree)
		require.Nil(t, l.Reserve("k", a, cpus(2)))
		l.Unreserve("k")
		s, leaf, _ := l.Lookup("k")
		assert.Equal(t, Pending, s)
		assert.Equal(t, "root.team.a", leaf)
		for _, p := range []string{"root.team.a", "root.team", "root"} {
			u := l.Usage(p)
			assert.Empty(t, u.Used(), p)
			assert.Equal(t, cpus(2), u.Pending, p)
			assert.Equal(t, 1, u.Waiting, p)
		}
		l.Unreserve("k") // pending: nothing to do
		assert.Equal(t, 1, l.Usage("root").Waiting)
		require.Nil(t, l.Reserve("k", a, cpus(2)), "and it may be reserved again")
		assert.Equal(t, 0, l.Usage("root").Waiting)
		assert.Equal(t, cpus(2), l.Usage("root").Reserved)
	})

	t.Run("unreserve leaves allocated and unknown keys alone", func(t *testing.T) {
		l := NewLedger(tree)
		l.Allocate("k", "root.team.a", cpus(2))
		l.Unreserve("k")
		l.Unreserve("unknown")
		s, _, _ := l.Lookup("k")
		assert.Equal(t, Allocated, s)
		_, _, ok := l.Lookup("unknown")
		assert.False(t, ok)
		assert.Equal(t, cpus(2), l.Usage("root").Allocated)
	})

	t.Run("set pending leaves reserved and allocated keys alone", func(t *testing.T) {
		l := NewLedger(tree)
		require.Nil(t, l.Reserve("r", a, cpus(1)))
		l.Allocate("al", "root.team.b", cpus(1))
		l.SetPending("r", "root.free", cpus(9))
		l.SetPending("al", "root.free", cpus(9))
		assert.Equal(t, map[string]resources.Vector{
			"root.team.a": cpus(1), "root.team.b": cpus(1), "root.team": cpus(2), "root": cpus(2)}, used(l))
		assert.Equal(t, 0, l.Usage("root").Waiting)
		// a pending key may move
		l.SetPending("p", "root.team.a", cpus(1))
		l.SetPending("p", "root.free", cpus(3))
		assert.Equal(t, cpus(3), l.Usage("root").Pending)
		assert.Equal(t, 1, l.Usage("root").Waiting)
		assert.Empty(t, l.Usage("root.team.a").Pending)
	})

	t.Run("remove releases from every ancestor", func(t *testing.T) {
		l := NewLedger(tree)
		require.Nil(t, l.Reserve("r", a, cpus(1)))
		l.Allocate("al", "root.team.b", resources.Vector{cpu: 1000, mem: gi})
		l.SetPending("p", "root.team.a", cpus(3))
		_, snap := l.Snapshot()
		assert.Len(t, snap, 4)
		assert.Equal(t, Usage{Allocated: resources.Vector{cpu: 1000, mem: gi}, Reserved: cpus(1), Pending: cpus(3), Running: 1, Waiting: 1}, snap["root"])
		for _, k := range []string{"r", "al", "p"} {
			l.Remove(k)
			_, _, ok := l.Lookup(k)
			assert.False(t, ok, k)
		}
		l.Remove("unknown")
		_, snap = l.Snapshot()
		assert.Empty(t, snap, "nothing is left behind, not even zeros")
		assert.Equal(t, Usage{Allocated: resources.Vector{}, Reserved: resources.Vector{}, Pending: resources.Vector{}}, l.Usage("root"))
	})

	t.Run("the ledger keeps its own copy of a request", func(t *testing.T) {
		l := NewLedger(tree)
		req := cpus(2)
		require.Nil(t, l.Reserve("k", a, req))
		req[cpu] = 5000 // a caller reusing its vector
		req[mem] = gi
		l.Remove("k")
		_, snap := l.Snapshot()
		assert.Empty(t, snap, "what was added is what is removed")
	})
}

func TestLedgerSetTree(t *testing.T) {
	old := mustParse(t, ledgerTree)

	t.Run("usage is kept and the new limits apply", func(t *testing.T) {
		l := NewLedger(old)
		require.Nil(t, l.Reserve("r", old.Get("root.team.a"), cpus(4)))
		l.Allocate("al", "root.team.b", cpus(2))
		before := used(l)

		tighter := mustParse(t, `
queues:
  - name: team
    max: {cpu: "8"}
    queues:
      - name: a
        max: {cpu: "4"}
      - name: b
`)
		l.SetTree(tighter)
		assert.Same(t, tighter, l.Tree())
		tr, _ := l.Snapshot()
		assert.Same(t, tighter, tr)
		assert.Equal(t, before, used(l), "running and reserved work is not lost")
		s, leaf, _ := l.Lookup("r")
		assert.Equal(t, Reserved, s)
		assert.Equal(t, "root.team.a", leaf)

		assert.Equal(t, &LimitError{Queue: "root.team.a", Resource: cpu, Used: 4000, Request: 1, Max: 4000},
			l.Reserve("r2", tighter.Get("root.team.a"), resources.Vector{cpu: 1}))
		assert.Nil(t, l.Reserve("r3", tighter.Get("root.team.b"), cpus(2)))
		assert.Equal(t, &LimitError{Queue: "root.team", Resource: cpu, Used: 8000, Request: 1, Max: 8000},
			l.Reserve("r4", tighter.Get("root.team.b"), resources.Vector{cpu: 1}))
	})

	t.Run("usage of a removed queue stays with the remaining ancestors", func(t *testing.T) {
		l := NewLedger(old)
		require.Nil(t, l.Reserve("r", old.Get("root.team.a"), cpus(6)))
		l.Allocate("al", "root.team.a", resources.Vector{mem: gi})

		withoutA := mustParse(t, `
queues:
  - name: team
    max: {cpu: "10"}
    queues: [{name: b}]
`)
		l.SetTree(withoutA)
		assert.Nil(t, withoutA.Get("root.team.a"))
		assert.Equal(t, resources.Vector{cpu: 6000, mem: gi}, l.Usage("root.team").Used())
		assert.Equal(t, &LimitError{Queue: "root.team", Resource: cpu, Used: 6000, Request: 5000, Max: 10000},
			l.Reserve("r2", withoutA.Get("root.team.b"), cpus(5)), "a's usage still counts in team")
		require.Nil(t, l.Reserve("r3", withoutA.Get("root.team.b"), cpus(4)))

		withoutTeam := mustParse(t, `
queues:
  - name: other
    max: {cpu: "1"}
`)
		l.SetTree(withoutTeam)
		assert.Equal(t, resources.Vector{cpu: 10000, mem: gi}, l.Usage("root").Used())
		require.Nil(t, l.Reserve("r4", withoutTeam.Get("root.other"), cpus(1)), "root has no max")
		assert.Equal(t, resources.Vector{cpu: 11000, mem: gi}, l.Usage("root").Used())

		for _, k := range []string{"r", "al", "r3", "r4"} {
			l.Remove(k)
		}
		_, snap := l.Snapshot()
		assert.Empty(t, snap, "removing releases the old paths too")
	})
}

func TestLedgerSnapshotIsACopy(t *testing.T) {
	tree := mustParse(t, ledgerTree)
	l := NewLedger(tree)
	require.Nil(t, l.Reserve("r", tree.Get("root.team.a"), cpus(2)))
	l.Allocate("al", "root.team.b", cpus(3))
	l.SetPending("p", "root.team.b", cpus(1))

	tr, snap := l.Snapshot()
	assert.Same(t, tree, tr)
	want := Usage{Allocated: cpus(3), Reserved: cpus(2), Pending: cpus(1), Running: 1, Waiting: 1}
	require.Equal(t, want, snap["root.team"])

	// scribble on everything the snapshot handed out
	for p, u := range snap {
		u.Allocated[cpu] = 999
		u.Reserved[gpu] = 1
		u.Pending[mem] = 1
		u.Running = 42
		snap[p] = u
	}
	snap["root.nope"] = Usage{}
	delete(snap, "root")
	u := l.Usage("root.team")
	u.Allocated[cpu] = 1
	u.Reserved[cpu] = 1

	_, again := l.Snapshot()
	assert.Len(t, again, 4)
	assert.Equal(t, want, again["root.team"])
	assert.Equal(t, want, again["root"])
	assert.Equal(t, want, l.Usage("root.team"))
	require.NotNil(t, l.Reserve("x", tree.Get("root.team.a"), cpus(5)), "limits still see 2 cpus in a")
}

// TestLedgerConcurrentReserve: many goroutines reserve and remove one cpu at
// a time in a queue with max 10; a checker confirms after every admission,
// and continuously from the side, that no more than 10 cpus are ever held.
// Run with -race.
func TestLedgerConcurrentReserve(t *testing.T) {
	tree := mustParse(t, `
queues:
  - name: q
    max: {cpu: "10"}
    queues: [{name: leaf}]
`)
	leaf := tree.Get("root.q.leaf")
	l := NewLedger(tree)
	const workers, rounds = 16, 300
	var (
		admitted, refused, violations atomic.Int64
		held                          atomic.Int64 // keys holding quota right now, by our own count
		wg                            sync.WaitGroup
	)
	check := func() {
		for _, p := range []string{"root.q.leaf", "root.q", "root"} {
			u := l.Usage(p)
			if got := u.Allocated[cpu] + u.Reserved[cpu]; got > 10000 {
				violations.Add(1)
				t.Errorf("%s holds %dm cpu, above its max 10", p, got)
			}
		}
		if n := held.Load(); n > 10 {
			violations.Add(1)
			t.Errorf("%d keys hold a cpu each, above max 10", n)
		}
	}
	done := make(chan struct{})
	var side sync.WaitGroup
	side.Add(1)
	go func() { // the side checker
		defer side.Done()
		for {
			select {
			case <-done:
				return
			default:
				check()
				_, snap := l.Snapshot()
				if u, ok := snap["root.q"]; ok && u.Used()[cpu] > 10000 {
					violations.Add(1)
				}
			}
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				key := fmt.Sprintf("w%d-%d", w, i)
				if err := l.Reserve(key, leaf, cpus(1)); err != nil {
					refused.Add(1)
					if err.NeverFits() {
						t.Errorf("1 cpu always fits in 10: %v", err)
					}
					continue
				}
				held.Add(1)
				admitted.Add(1)
				check()
				if i%2 == 0 { // half of them get bound before they finish
					l.Allocate(key, leaf.Path, cpus(1))
					check()
				}
				held.Add(-1)
				l.Remove(key)
			}
		}()
	}
	wg.Wait()
	close(done)
	side.Wait()

	assert.Zero(t, violations.Load())
	assert.Equal(t, int64(workers*rounds), admitted.Load()+refused.Load())
	assert.Positive(t, admitted.Load())
	_, snap := l.Snapshot()
	assert.Empty(t, snap, "every key was removed")
	t.Logf("admitted %d, refused %d", admitted.Load(), refused.Load())
}

// A pod's entry ends with the pod, whatever order the delete and a
// scheduling cycle still holding the pod come in: every write for a
// forgotten key is refused for tombstone.Keep, and then the key is free.
func TestLedgerForget(t *testing.T) {
	tree := mustParse(t, ledgerTree)
	tests := map[string]struct {
		steps []step
		// want: what the queues hold at the end
		want map[string]resources.Vector
		// waiting: pods pending in root at the end
		waiting int
	}{
		"forget drops a reserved entry": {
			steps: []step{{op: "reserve", key: "p", leaf: "root.team.a", req: cpus(1)}, {op: "forget", key: "p"}},
			want:  map[string]resources.Vector{},
		},
		"a cycle's reserve after the delete is refused": {
			steps: []step{{op: "pending", key: "p", leaf: "root.team.a", req: cpus(1)}, {op: "forget", key: "p"},
				{op: "reserve", key: "p", leaf: "root.team.a", req: cpus(1)}, {op: "unreserve", key: "p"}},
			want: map[string]resources.Vector{},
		},
		"a new tree's re-placement after the delete is refused": {
			steps: []step{{op: "forget", key: "p"}, {op: "pending", key: "p", leaf: "root.team.b", req: cpus(1)}},
			want:  map[string]resources.Vector{},
		},
		"a bind seen after the delete is refused": {
			steps: []step{{op: "forget", key: "p"}, {op: "allocate", key: "p", leaf: "root.team.b", req: cpus(1)}},
			want:  map[string]resources.Vector{},
		},
		"a gang member's share stays with the gang when the member is gone": {
			steps: []step{{op: "reserve", key: "gang:g", leaf: "root.team.a", req: cpus(2)}, {op: "forget", key: "m1"},
				{op: "transfer", key: "m1", leaf: "gang:g", req: cpus(1)}, {op: "transfer", key: "m2", leaf: "gang:g", req: cpus(1)}},
			want: map[string]resources.Vector{"root.team.a": cpus(2), "root.team": cpus(2), "root": cpus(2)},
		},
		"remove leaves the key free to come back": {
			steps: []step{{op: "pending", key: "p", leaf: "root.team.a", req: cpus(1)}, {op: "remove", key: "p"},
				{op: "pending", key: "p", leaf: "root.team.b", req: cpus(1)}},
			want: map[string]resources.Vector{}, waiting: 1,
		},
		"other keys are not affected": {
			steps: []step{{op: "forget", key: "p"}, {op: "reserve", key: "q", leaf: "root.team.a", req: cpus(1)}},
			want:  map[string]resources.Vector{"root.team.a": cpus(1), "root.team": cpus(1), "root": cpus(1)},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := NewLedger(tree)
			run(t, l, tc.steps)
			assert.Equal(t, tc.want, used(l))
			assert.Equal(t, tc.waiting, l.Usage("root").Waiting)
		})
	}

	t.Run("the key is free again after tombstone.Keep", func(t *testing.T) {
		clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
		l := NewLedger(tree, WithClock(clk))
		l.Forget("p")
		l.SetPending("p", "root.team.a", cpus(1))
		assert.Equal(t, 0, l.Usage("root").Waiting)
		clk.SetTime(clk.Now().Add(2 * tombstone.Keep))
		l.SetPending("p", "root.team.a", cpus(1))
		assert.Equal(t, 1, l.Usage("root").Waiting)
	})
}
