package fairshare

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// sim is a cluster of identical pods queued in leaf queues, admitted one at
// a time through the gate, with the shares recomputed before every attempt
// from the usage and demand of that moment.
type sim struct {
	t        *testing.T
	tree     *queue.Tree
	capacity resources.Vector
	pod      resources.Vector
	usage    map[string]resources.Vector // by leaf
	pending  map[string]int              // pods waiting, by leaf
	trace    []string                    // the leaf of each admitted pod, in order
}

func newSim(t *testing.T, config string, capacity, pod resources.Vector) *sim {
	s := &sim{t: t, tree: mustTree(t, config), capacity: capacity, pod: pod,
		usage: map[string]resources.Vector{}, pending: map[string]int{}}
	for _, q := range s.tree.Leaves() {
		s.usage[q.Path] = resources.Vector{}
	}
	return s
}

func (s *sim) input() Input {
	demand := map[string]resources.Vector{}
	for p, u := range s.usage {
		d := u.Clone()
		for range s.pending[p] {
			d.Add(s.pod)
		}
		demand[p] = d
	}
	return input(s.tree, s.capacity, s.usage, demand)
}

// attempt tries to admit one pending pod of the leaf: the gate must let it
// through and it must fit in what is free (the scheduler's own check).
func (s *sim) attempt(path string) (bool, *Refusal) {
	if s.pending[path] == 0 {
		return false, nil
	}
	in := s.input()
	leaf := s.tree.Get(path)
	require.NotNil(s.t, leaf, path)
	ref := Admit(leaf, s.pod, Compute(in), in)
	free := s.capacity.Clone()
	free.Sub(in.Usage[s.tree.Root.Path])
	for r, a := range s.pod {
		if a > free[r] { // (not Exceeds: there, absent from free would be unlimited)
			return false, ref
		}
	}
	if ref != nil {
		return false, ref
	}
	s.usage[path].Add(s.pod)
	s.pending[path]--
	s.trace = append(s.trace, strings.TrimPrefix(path, "root."))
	return true, nil
}

// run makes attempts in the given order, round after round, until a whole
// round admits nothing.
func (s *sim) run(order ...string) {
	for {
		admitted := false
		for _, p := range order {
			ok, _ := s.attempt(p)
			admitted = admitted || ok
		}
		if !admitted {
			return
		}
	}
}

func (s *sim) used(res resources.Vector) map[string]int64 {
	out := map[string]int64{}
	for p, u := range s.usage {
		for r := range res {
			out[p] = u[r] / res[r]
		}
	}
	return out
}

func TestAdmitSimulation(t *testing.T) {
	oneCPU := resources.Vector{cpu: cores(1)}
	oneGPU := resources.Vector{gpu: 1}
	cases := map[string]struct {
		config   string
		capacity resources.Vector
		pod      resources.Vector
		pending  map[string]int
		order    []string // attempts in each round
		want     map[string]int64
		trace    string // admissions in order, when checked
	}{
		"1:1 on 8 cpu, both pending: 4 and 4, pod by pod in turn": {
			config:   twoLeaves,
			capacity: resources.Vector{cpu: cores(8)},
			pod:      oneCPU,
			pending:  map[string]int{"root.a": 8, "root.b": 8},
			order:    []string{"root.a", "root.b"},
			want:     map[string]int64{"root.a": 4, "root.b": 4},
			trace:    "a b a b a b a b",
		},
		// a reaches its share of 2 and then waits: the rest is b's.
		"1:3 on 8 cpu, both pending: 2 and 6": {
			config: `
queues:
  - name: a
  - name: b
    weight: 3
`,
			capacity: resources.Vector{cpu: cores(8)},
			pod:      oneCPU,
			pending:  map[string]int{"root.a": 8, "root.b": 8},
			order:    []string{"root.a", "root.b"},
			want:     map[string]int64{"root.a": 2, "root.b": 6},
			trace:    "a b a b b b b b",
		},
		"1:3, b tried first: the same end": {
			config: `
queues:
  - name: a
  - name: b
    weight: 3
`,
			capacity: resources.Vector{cpu: cores(8)},
			pod:      oneCPU,
			pending:  map[string]int{"root.a": 8, "root.b": 8},
			order:    []string{"root.b", "root.a"},
			want:     map[string]int64{"root.a": 2, "root.b": 6},
		},
		"1:1, a tried three times as often: still 4 and 4": {
			config:   twoLeaves,
			capacity: resources.Vector{cpu: cores(8)},
			pod:      oneCPU,
			pending:  map[string]int{"root.a": 8, "root.b": 8},
			order:    []string{"root.a", "root.a", "root.a", "root.b"},
			want:     map[string]int64{"root.a": 4, "root.b": 4},
		},
		"borrowing: b wants nothing, a may use all of it": {
			config:   twoLeaves,
			capacity: resources.Vector{cpu: cores(8)},
			pod:      oneCPU,
			pending:  map[string]int{"root.a": 20},
			order:    []string{"root.a", "root.b"},
			want:     map[string]int64{"root.a": 8, "root.b": 0},
		},
		"b wants only 1: a gets the other 7": {
			config:   twoLeaves,
			capacity: resources.Vector{cpu: cores(8)},
			pod:      oneCPU,
			pending:  map[string]int{"root.a": 20, "root.b": 1},
			order:    []string{"root.a", "root.b"},
			want:     map[string]int64{"root.a": 7, "root.b": 1},
		},
		// 9 gpus 1:1:1 are 3 each. The one tried most often must not get
		// more than its third (the shares must not round 3 down to 2, which
		// would leave 3 gpus free for whoever asks first).
		"1:1:1 on 9 gpus, a tried most often: 3 each": {
			config: `
queues:
  - name: a
  - name: b
  - name: c
`,
			capacity: resources.Vector{gpu: 9},
			pod:      oneGPU,
			pending:  map[string]int{"root.a": 9, "root.b": 9, "root.c": 9},
			order:    []string{"root.a", "root.a", "root.a", "root.b", "root.c"},
			want:     map[string]int64{"root.a": 3, "root.b": 3, "root.c": 3},
		},
		// 10 gpus 1:1:1: shares are 3 each and the tenth gpu, a rounding
		// leftover, is nobody's: the first to ask borrows it.
		"1:1:1 on 10 gpus: the rounding leftover goes to whoever asks first": {
			config: `
queues:
  - name: a
  - name: b
  - name: c
`,
			capacity: resources.Vector{gpu: 10},
			pod:      oneGPU,
			pending:  map[string]int{"root.a": 9, "root.b": 9, "root.c": 9},
			order:    []string{"root.c", "root.b", "root.a"},
			want:     map[string]int64{"root.a": 3, "root.b": 3, "root.c": 4},
		},
		// p and q split 8 cpu 1:1; inside p, x and y split p's 4 1:3.
		"nested: 1:1 at the top, 1:3 inside p": {
			config: `
queues:
  - name: p
    queues:
      - name: x
      - name: "y"
        weight: 3
  - name: q
`,
			capacity: resources.Vector{cpu: cores(8)},
			pod:      oneCPU,
			pending:  map[string]int{"root.p.x": 8, "root.p.y": 8, "root.q": 8},
			order:    []string{"root.p.x", "root.p.y", "root.q"},
			want:     map[string]int64{"root.p.x": 1, "root.p.y": 3, "root.q": 4},
		},
		"guaranteed 6 of 8 with weight 1 against weight 3: 6.5 in cpu, 6 in whole pods": {
			config: `
queues:
  - name: a
    guaranteed: {cpu: "6"}
  - name: b
    weight: 3
`,
			capacity: resources.Vector{cpu: cores(8)},
			pod:      oneCPU,
			pending:  map[string]int{"root.a": 8, "root.b": 8},
			order:    []string{"root.b", "root.a"},
			// a's share is 6.5 cpu: its 7th pod would go above it while b,
			// below its 1.5, waits; b's 2nd pod takes b to 2 > 1.5 but
			// nothing else is waiting for that cpu.
			want: map[string]int64{"root.a": 6, "root.b": 2},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := newSim(t, tc.config, tc.capacity, tc.pod)
			for p, n := range tc.pending {
				require.NotNil(t, s.tree.Get(p), p)
				s.pending[p] = n
			}
			s.run(tc.order...)
			assert.Equal(t, tc.want, s.used(tc.pod))
			if tc.trace != "" {
				assert.Equal(t, tc.trace, strings.Join(s.trace, " "))
			}
		})
	}
}

// A queue that borrowed while its sibling was idle is refused as soon as
// the sibling has pending work, and the refusal says for whom; the sibling
// takes what is free.
func TestAdmitBorrowThenRefuse(t *testing.T) {
	s := newSim(t, twoLeaves, resources.Vector{cpu: cores(8)}, resources.Vector{cpu: cores(1)})
	s.pending["root.a"] = 6
	s.run("root.a", "root.b")
	require.Equal(t, map[string]int64{"root.a": 6, "root.b": 0}, s.used(s.pod), "a borrows what b does not want")

	s.pending["root.a"] = 14
	s.pending["root.b"] = 4
	in := s.input()
	shares := Compute(in)
	assert.Equal(t, resources.Vector{cpu: cores(4)}, shares.Fair["root.a"])
	assert.Equal(t, resources.Vector{cpu: cores(4)}, shares.Fair["root.b"])

	ref := Admit(s.tree.Get("root.a"), s.pod, shares, in)
	require.NotNil(t, ref, "a is over its share while b waits below its own")
	assert.Equal(t, "root.a", ref.Queue)
	assert.Equal(t, []string{"root.b"}, ref.Waiting)
	assert.Equal(t, "queue root.a holds its fair share (6 of fair 4) and the free cpu is owed to queues below theirs: root.b", ref.Msg)
	assert.Equal(t, ref.Msg, ref.Error())
	assert.Nil(t, Admit(s.tree.Get("root.b"), s.pod, shares, in), "b is below its share")

	// a keeps what it borrowed (taking it back is reclaim's business); b
	// gets the 2 that are free, a nothing more.
	s.run("root.a", "root.b")
	assert.Equal(t, map[string]int64{"root.a": 6, "root.b": 2}, s.used(s.pod))
	assert.Equal(t, "a a a a a a b b", strings.Join(s.trace, " "))
}

func TestAdmit(t *testing.T) {
	const five = `
queues:
  - name: a
  - name: b
  - name: c
  - name: d
  - name: e
`
	cases := map[string]struct {
		config   string
		capacity resources.Vector
		usage    map[string]resources.Vector // by leaf
		demand   map[string]resources.Vector // by leaf
		leaf     string
		req      resources.Vector
		wantMsg  string   // empty: admitted
		waiting  []string // when refused
	}{
		"below its fair share": {
			config: twoLeaves, capacity: resources.Vector{cpu: cores(8)},
			usage:  map[string]resources.Vector{"root.a": {cpu: cores(3)}, "root.b": {cpu: cores(4)}},
			demand: map[string]resources.Vector{"root.a": {cpu: cores(8)}, "root.b": {cpu: cores(8)}},
			leaf:   "root.a", req: resources.Vector{cpu: cores(1)},
		},
		"below its fair share, even for a pod that takes it above": {
			config: twoLeaves, capacity: resources.Vector{cpu: cores(8)},
			usage:  map[string]resources.Vector{"root.a": {cpu: cores(3)}},
			demand: map[string]resources.Vector{"root.a": {cpu: cores(8)}, "root.b": {cpu: cores(8)}},
			leaf:   "root.a", req: resources.Vector{cpu: cores(4)},
		},
		"at its fair share, the other below and pending": {
			config: twoLeaves, capacity: resources.Vector{cpu: cores(8)},
			usage:  map[string]resources.Vector{"root.a": {cpu: cores(4)}, "root.b": {cpu: cores(2)}},
			demand: map[string]resources.Vector{"root.a": {cpu: cores(8)}, "root.b": {cpu: cores(8)}},
			leaf:   "root.a", req: resources.Vector{cpu: cores(1)},
			wantMsg: "queue root.a holds its fair share (4 of fair 4) and the free cpu is owed to queues below theirs: root.b",
			waiting: []string{"root.b"},
		},
		// 10 gpus 1:1:1: fair 3 each, b owed 2 of the 3 free; 1 is nobody's
		"at its fair share, what is free beyond what others are owed covers it": {
			config: `
queues:
  - name: a
  - name: b
  - name: c
`,
			capacity: resources.Vector{gpu: 10},
			usage:    map[string]resources.Vector{"root.a": {gpu: 3}, "root.b": {gpu: 1}, "root.c": {gpu: 3}},
			demand:   map[string]resources.Vector{"root.a": {gpu: 9}, "root.b": {gpu: 9}, "root.c": {gpu: 9}},
			leaf:     "root.a", req: resources.Vector{gpu: 1},
		},
		"at its fair share, asking for more than is free beyond what others are owed": {
			config: `
queues:
  - name: a
  - name: b
  - name: c
`,
			capacity: resources.Vector{gpu: 10},
			usage:    map[string]resources.Vector{"root.a": {gpu: 3}, "root.b": {gpu: 1}, "root.c": {gpu: 3}},
			demand:   map[string]resources.Vector{"root.a": {gpu: 9}, "root.b": {gpu: 9}, "root.c": {gpu: 9}},
			leaf:     "root.a", req: resources.Vector{gpu: 2},
			wantMsg: "queue root.a holds its fair share (3 of fair 3) and the free nvidia.com/gpu is owed to queues below theirs: root.b",
			waiting: []string{"root.b"},
		},
		// Nothing is free: the nodes turn the pod down, not fair sharing
		// (and reclaim, not the gate, gets b its share).
		"over its share, the other waiting, but the request does not fit anyway": {
			config: twoLeaves, capacity: resources.Vector{cpu: cores(8)},
			usage:  map[string]resources.Vector{"root.a": {cpu: cores(6)}, "root.b": {cpu: cores(2)}},
			demand: map[string]resources.Vector{"root.a": {cpu: cores(8)}, "root.b": {cpu: cores(8)}},
			leaf:   "root.a", req: resources.Vector{cpu: cores(1)},
		},
		"over its share, the others want nothing more": {
			config: twoLeaves, capacity: resources.Vector{cpu: cores(8)},
			usage:  map[string]resources.Vector{"root.a": {cpu: cores(6)}, "root.b": {cpu: cores(1)}},
			demand: map[string]resources.Vector{"root.a": {cpu: cores(8)}, "root.b": {cpu: cores(1)}},
			leaf:   "root.a", req: resources.Vector{cpu: cores(1)},
		},
		"many waiting: three named, the rest counted": {
			config: five, capacity: resources.Vector{cpu: cores(12)},
			usage: map[string]resources.Vector{"root.a": {cpu: cores(10)}},
			demand: map[string]resources.Vector{
				"root.a": {cpu: cores(12)}, "root.b": {cpu: cores(2)}, "root.c": {cpu: cores(2)},
				"root.d": {cpu: cores(2)}, "root.e": {cpu: cores(2)},
			},
			leaf: "root.a", req: resources.Vector{cpu: cores(1)},
			wantMsg: "queue root.a holds its fair share (10 of fair 4) and the free cpu is owed to queues below theirs: root.b, root.c, root.d, 1 more",
			waiting: []string{"root.b", "root.c", "root.d", "root.e"},
		},
		// a's share is cpu only; b is owed memory, none of the cpu
		"the short resource is the one named": {
			config: twoLeaves, capacity: resources.Vector{cpu: cores(8), mem: 8 * gi},
			usage:  map[string]resources.Vector{"root.a": {cpu: cores(4)}, "root.b": {mem: 2 * gi}},
			demand: map[string]resources.Vector{"root.a": {cpu: cores(4)}, "root.b": {mem: 8 * gi}},
			leaf:   "root.a", req: resources.Vector{cpu: cores(1), mem: gi},
			wantMsg: "queue root.a holds its fair share (0 of fair 0) and the free memory is owed to queues below theirs: root.b",
			waiting: []string{"root.b"},
		},
		"the same request without the memory": {
			config: twoLeaves, capacity: resources.Vector{cpu: cores(8), mem: 8 * gi},
			usage:  map[string]resources.Vector{"root.a": {cpu: cores(4)}, "root.b": {mem: 2 * gi}},
			demand: map[string]resources.Vector{"root.a": {cpu: cores(4)}, "root.b": {mem: 8 * gi}},
			leaf:   "root.a", req: resources.Vector{cpu: cores(1)},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tree := mustTree(t, tc.config)
			in := input(tree, tc.capacity, tc.usage, tc.demand)
			leaf := tree.Get(tc.leaf)
			require.NotNil(t, leaf)
			ref := Admit(leaf, tc.req, Compute(in), in)
			if tc.wantMsg == "" {
				assert.Nil(t, ref)
				return
			}
			require.NotNil(t, ref)
			assert.Equal(t, tc.leaf, ref.Queue)
			assert.Equal(t, tc.wantMsg, ref.Msg)
			assert.Equal(t, tc.waiting, ref.Waiting)
		})
	}
}

// TestAdmitServesQueuesBelowTheirShare: the order in which waiting work is
// served (queues under their guaranteed, then those furthest below their
// fair share) comes from Admit, on every attempt: a queue below its fair
// share is admitted, one at or above it waits while others are owed the
// free capacity; a queue using what it has no fair share of is never below
// it. (These are the cases of the former fairshare.Order, which nothing
// but its test called.)
func TestAdmitServesQueuesBelowTheirShare(t *testing.T) {
	tree := mustTree(t, `
queues:
  - name: a
  - name: b
  - name: c
    guaranteed: {cpu: "1"}
  - name: d
`)
	capacity := resources.Vector{cpu: cores(8)}
	oneCPU := resources.Vector{cpu: cores(1)}
	cases := map[string]struct {
		usage, demand map[string]resources.Vector
		want          map[string]string // by leaf: "" admitted, else the refusal
	}{
		// fair: c its guaranteed 1 and, like the others, a quarter of the
		// other 7: c 2750m, a, b and d 1750m. c (0.5) is under its
		// guarantee, d (0) and b (1) below their share, a (2) above it.
		"under its guarantee or below its fair share: admitted; above it: waits": {
			usage: map[string]resources.Vector{
				"root.a": {cpu: cores(2)}, "root.b": {cpu: cores(1)}, "root.c": {cpu: cores(0.5)},
			},
			demand: map[string]resources.Vector{
				"root.a": {cpu: cores(8)}, "root.b": {cpu: cores(8)}, "root.c": {cpu: cores(8)}, "root.d": {cpu: cores(8)},
			},
			want: map[string]string{
				"root.a": "queue root.a holds its fair share (2 of fair 1750m) and the free cpu is owed to queues below theirs: root.b, root.c, root.d",
				"root.b": "", "root.c": "", "root.d": "",
			},
		},
		// The cluster has no gpu: a's fair share is zero and its usage puts
		// it above. c gets its guaranteed 1 and, like b and d, a third of
		// the other 7: fair b 2333m, c 3333m, d 2333m.
		"using something with no fair share: never below it": {
			usage: map[string]resources.Vector{
				"root.a": {gpu: 1}, "root.b": {cpu: cores(1)}, "root.c": {cpu: cores(1)},
			},
			demand: map[string]resources.Vector{
				"root.a": {gpu: 1}, "root.b": {cpu: cores(8)}, "root.c": {cpu: cores(8)}, "root.d": {cpu: cores(8)},
			},
			want: map[string]string{
				"root.a": "queue root.a holds its fair share (0 of fair 0) and the free cpu is owed to queues below theirs: root.b, root.c, root.d",
				"root.b": "", "root.c": "", "root.d": "",
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := input(tree, capacity, tc.usage, tc.demand)
			s := Compute(in)
			got := map[string]string{}
			for _, q := range tree.Leaves() {
				got[q.Path] = ""
				if ref := Admit(q, oneCPU, s, in); ref != nil {
					got[q.Path] = ref.Msg
				}
			}
			assert.Equal(t, tc.want, got)
		})
	}
}
