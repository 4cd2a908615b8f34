package fairshare

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

const (
	cpu = v1.ResourceCPU
	mem = v1.ResourceMemory
	gpu = v1.ResourceName("nvidia.com/gpu")
	gi  = int64(1) << 30
)

// mustTree builds a tree from queues.yaml text.
func mustTree(t testing.TB, config string) *queue.Tree {
	t.Helper()
	tree, err := queue.Parse([]byte(config))
	require.NoError(t, err)
	require.NotNil(t, tree)
	return tree
}

// rollUp turns per-leaf amounts into per-queue amounts: every queue gets the
// sum of its leaves, as Input requires of a parent.
func rollUp(tree *queue.Tree, leaves map[string]resources.Vector) map[string]resources.Vector {
	out := map[string]resources.Vector{}
	for _, q := range tree.Queues {
		out[q.Path] = resources.Vector{}
	}
	for p, v := range leaves {
		q := tree.Get(p)
		if q == nil {
			panic("no queue " + p)
		}
		for _, a := range q.Ancestors() {
			out[a.Path].Add(v)
		}
	}
	return out
}

// input builds an Input from per-leaf usage and demand.
func input(tree *queue.Tree, capacity resources.Vector, usage, demand map[string]resources.Vector) Input {
	return Input{Tree: tree, Capacity: capacity, Usage: rollUp(tree, usage), Demand: rollUp(tree, demand)}
}

// cores is n whole CPUs, in millicores.
func cores(n float64) int64 { return int64(n * 1000) }

const twoLeaves = `
queues:
  - name: a
  - name: b
`

func TestComputeHandWorked(t *testing.T) {
	cases := map[string]struct {
		config   string
		capacity resources.Vector
		demand   map[string]resources.Vector // by leaf
		want     map[string]resources.Vector // fair share, by path; paths not listed are not checked
	}{
		"1:1, both backlogged: half each": {
			config:   twoLeaves,
			capacity: resources.Vector{cpu: cores(8)},
			demand:   map[string]resources.Vector{"root.a": {cpu: cores(8)}, "root.b": {cpu: cores(8)}},
			want: map[string]resources.Vector{
				"root":   {cpu: cores(8)},
				"root.a": {cpu: cores(4)},
				"root.b": {cpu: cores(4)},
			},
		},
		"1:3, both backlogged: a quarter and three quarters": {
			config: `
queues:
  - name: a
  - name: b
    weight: 3
`,
			capacity: resources.Vector{cpu: cores(8)},
			demand:   map[string]resources.Vector{"root.a": {cpu: cores(8)}, "root.b": {cpu: cores(8)}},
			want: map[string]resources.Vector{
				"root.a": {cpu: cores(2)},
				"root.b": {cpu: cores(6)},
			},
		},
		"weights apply only to what is contended: demands below capacity are met": {
			config: `
queues:
  - name: a
  - name: b
    weight: 3
`,
			capacity: resources.Vector{cpu: cores(8)},
			demand:   map[string]resources.Vector{"root.a": {cpu: cores(3)}, "root.b": {cpu: cores(4)}},
			want: map[string]resources.Vector{
				"root":   {cpu: cores(7)},
				"root.a": {cpu: cores(3)},
				"root.b": {cpu: cores(4)},
			},
		},
		// DRF on capacity cpu=100, gpu=10, weights 1:1. train asks for 25 cpu
		// and 10 gpu (a job shaped 2.5 cpu per gpu), etl for 100 cpu.
		// train's dominant resource is gpu (10/10 > 25/100), etl's is cpu.
		// Progressive filling gives train t·(25 cpu, 10 gpu) and etl
		// s·(100 cpu) with equal dominant shares t = s; cpu runs out first:
		// 25t + 100t = 100, t = 0.8. train: 20 cpu, 8 gpu (dominant 8/10);
		// etl: 80 cpu (dominant 80/100). Both at 0.8; the last 2 gpu stay
		// unassigned because train cannot use them without cpu.
		"DRF: a gpu-heavy and a cpu-heavy queue reach equal dominant shares": {
			config: `
queues:
  - name: train
  - name: etl
`,
			capacity: resources.Vector{cpu: cores(100), gpu: 10},
			demand: map[string]resources.Vector{
				"root.train": {cpu: cores(25), gpu: 10},
				"root.etl":   {cpu: cores(100)},
			},
			want: map[string]resources.Vector{
				"root":       {cpu: cores(100), gpu: 10},
				"root.train": {cpu: cores(20), gpu: 8},
				"root.etl":   {cpu: cores(80)},
			},
		},
		// DRF measures shares against the capacity, not against what happens
		// to be demanded. On cpu=100, gpu=10, train asks for 10 cpu and 4
		// gpu: its dominant share is gpu, 4/10 = 0.4 when fully served. etl
		// asks for 100 cpu. Equal dominant shares would be 0.4t = s with
		// 10t + 100s = 100, t = 2: train is satisfied first (t = 1 at
		// dominant share 0.4), and etl takes the remaining 90 cpu (0.9).
		"DRF: a light gpu user is served in full while idle gpus remain": {
			config: `
queues:
  - name: train
  - name: etl
`,
			capacity: resources.Vector{cpu: cores(100), gpu: 10},
			demand: map[string]resources.Vector{
				"root.train": {cpu: cores(10), gpu: 4},
				"root.etl":   {cpu: cores(100)},
			},
			want: map[string]resources.Vector{
				"root":       {cpu: cores(100), gpu: 4},
				"root.train": {cpu: cores(10), gpu: 4},
				"root.etl":   {cpu: cores(90)},
			},
		},
		// a weighs 1, b 1 with max cpu=2: b's share stops at its max and the
		// rest of the 8 cpu goes to a.
		"max caps a share, the rest goes to the sibling": {
			config: `
queues:
  - name: a
  - name: b
    max: {cpu: "2"}
`,
			capacity: resources.Vector{cpu: cores(8)},
			demand:   map[string]resources.Vector{"root.a": {cpu: cores(8)}, "root.b": {cpu: cores(8)}},
			want: map[string]resources.Vector{
				"root.a": {cpu: cores(6)},
				"root.b": {cpu: cores(2)},
			},
		},
		"a parent's max caps its subtree": {
			config: `
queues:
  - name: p
    max: {cpu: "3"}
    queues:
      - name: x
      - name: "y"
  - name: b
`,
			capacity: resources.Vector{cpu: cores(8)},
			demand:   map[string]resources.Vector{"root.p.x": {cpu: cores(8)}, "root.p.y": {cpu: cores(8)}, "root.b": {cpu: cores(8)}},
			want: map[string]resources.Vector{
				"root.p":   {cpu: cores(3)},
				"root.p.x": {cpu: cores(1.5)},
				"root.p.y": {cpu: cores(1.5)},
				"root.b":   {cpu: cores(5)},
			},
		},
		// a is guaranteed 6 of 8 cpu; both want everything. a gets its 6
		// first; the idle rest (2 cpu) is split by weight 1:3, as docs/reference.md
		// says of idle capacity: a 6 + 0.5, b 1.5. A guarantee is a floor,
		// not a replacement for the weighted share of what is left.
		"guaranteed is served first, the rest by weight": {
			config: `
queues:
  - name: a
    guaranteed: {cpu: "6"}
  - name: b
    weight: 3
`,
			capacity: resources.Vector{cpu: cores(8)},
			demand:   map[string]resources.Vector{"root.a": {cpu: cores(8)}, "root.b": {cpu: cores(8)}},
			want: map[string]resources.Vector{
				"root.a": {cpu: cores(6.5)},
				"root.b": {cpu: cores(1.5)},
			},
		},
		"guaranteed beats a much larger weight": {
			config: `
queues:
  - name: a
    weight: 0.001
    guaranteed: {cpu: "6"}
  - name: b
    weight: 1000
`,
			capacity: resources.Vector{cpu: cores(8)},
			demand:   map[string]resources.Vector{"root.a": {cpu: cores(8)}, "root.b": {cpu: cores(8)}},
			want: map[string]resources.Vector{
				// 6 guaranteed + 2 cpu · 0.001/1000.001 ≈ 0.002 millicores, floored away
				"root.a": {cpu: cores(6)},
				"root.b": {cpu: cores(2) - 1}, // 2 cpu · 1000/1000.001, floored
			},
		},
		"a guarantee counts only as far as the queue wants it": {
			config: `
queues:
  - name: a
    guaranteed: {cpu: "6"}
  - name: b
`,
			capacity: resources.Vector{cpu: cores(8)},
			demand:   map[string]resources.Vector{"root.a": {cpu: cores(1)}, "root.b": {cpu: cores(8)}},
			want: map[string]resources.Vector{
				"root.a": {cpu: cores(1)},
				"root.b": {cpu: cores(7)},
			},
		},
		// 6 + 3 guaranteed on 6 cpu: scaled by 6/9 to 4 and 2.
		"guarantees above capacity are scaled down in proportion": {
			config: `
queues:
  - name: a
    guaranteed: {cpu: "6"}
  - name: b
    guaranteed: {cpu: "3"}
`,
			capacity: resources.Vector{cpu: cores(6)},
			demand:   map[string]resources.Vector{"root.a": {cpu: cores(8)}, "root.b": {cpu: cores(8)}},
			want: map[string]resources.Vector{
				"root.a": {cpu: cores(4)},
				"root.b": {cpu: cores(2)},
			},
		},
		// Weights 1:1:3 on 8 cpu; a wants only 1. Water level x per unit of
		// weight: a min(1, x), b x, c 3x; a saturates, 1 + 4x = 8, x = 1.75.
		"a queue that wants less leaves the rest to its siblings by weight": {
			config: `
queues:
  - name: a
  - name: b
  - name: c
    weight: 3
`,
			capacity: resources.Vector{cpu: cores(8)},
			demand: map[string]resources.Vector{
				"root.a": {cpu: cores(1)}, "root.b": {cpu: cores(8)}, "root.c": {cpu: cores(8)},
			},
			want: map[string]resources.Vector{
				"root.a": {cpu: cores(1)},
				"root.b": {cpu: cores(1.75)},
				"root.c": {cpu: cores(5.25)},
			},
		},
		"zero demand is a zero share, the sibling takes everything": {
			config:   twoLeaves,
			capacity: resources.Vector{cpu: cores(8)},
			demand:   map[string]resources.Vector{"root.b": {cpu: cores(20)}},
			want: map[string]resources.Vector{
				"root.a": {},
				"root.b": {cpu: cores(8)},
			},
		},
		"no demand anywhere: every share is zero": {
			config:   twoLeaves,
			capacity: resources.Vector{cpu: cores(8)},
			want: map[string]resources.Vector{
				"root":   {},
				"root.a": {},
				"root.b": {},
			},
		},
		// a asks for cpu and gpu only, b for cpu and memory only. a's dominant
		// resource is gpu (2/4 = 0.5 when served in full), b's cpu (8/8).
		// Equal dominant shares 0.5t = s with cpu 2t + 8s = 8 give t = 4/3:
		// a is served in full (2 cpu, 2 gpu) and b takes the remaining 6
		// cpu with memory in the proportion it asks for (12Gi). Nobody gets
		// memory or gpu it did not ask for.
		"resources only some queues ask for": {
			config: `
queues:
  - name: a
  - name: b
`,
			capacity: resources.Vector{cpu: cores(8), mem: 64 * gi, gpu: 4},
			demand: map[string]resources.Vector{
				"root.a": {cpu: cores(2), gpu: 2},
				"root.b": {cpu: cores(8), mem: 16 * gi},
			},
			want: map[string]resources.Vector{
				"root":   {cpu: cores(8), mem: 16 * gi, gpu: 2},
				"root.a": {cpu: cores(2), gpu: 2},
				"root.b": {cpu: cores(6), mem: 12 * gi},
			},
		},
		"a resource the cluster does not have is no one's share": {
			config:   twoLeaves,
			capacity: resources.Vector{cpu: cores(8)},
			demand: map[string]resources.Vector{
				"root.a": {cpu: cores(8), gpu: 2},
				"root.b": {cpu: cores(8)},
			},
			want: map[string]resources.Vector{
				"root":   {cpu: cores(8)},
				"root.a": {cpu: cores(4)},
				"root.b": {cpu: cores(4)},
			},
		},
		"a resource with zero capacity is no one's share": {
			config:   twoLeaves,
			capacity: resources.Vector{cpu: cores(8), gpu: 0},
			demand: map[string]resources.Vector{
				"root.a": {cpu: cores(8), gpu: 2},
				"root.b": {cpu: cores(8)},
			},
			want: map[string]resources.Vector{
				"root":   {cpu: cores(8)},
				"root.a": {cpu: cores(4)},
				"root.b": {cpu: cores(4)},
			},
		},
		"just root: it gets its demand up to capacity": {
			config:   ``,
			capacity: resources.Vector{cpu: cores(8)},
			want:     map[string]resources.Vector{"root": {}},
		},
		// root splits 16 cpu 1:1 between p and q (8 each); p splits its 8
		// again 1:3 (2 and 6), q its 8 again 1:1 (4 and 4). y under p gets
		// more than z under q: weights compare siblings only.
		"nested: a parent's share is split again among its children": {
			config: `
queues:
  - name: p
    queues:
      - name: x
      - name: "y"
        weight: 3
  - name: q
    queues:
      - name: z
      - name: w
`,
			capacity: resources.Vector{cpu: cores(16)},
			demand: map[string]resources.Vector{
				"root.p.x": {cpu: cores(16)}, "root.p.y": {cpu: cores(16)},
				"root.q.z": {cpu: cores(16)}, "root.q.w": {cpu: cores(16)},
			},
			want: map[string]resources.Vector{
				"root.p":   {cpu: cores(8)},
				"root.p.x": {cpu: cores(2)},
				"root.p.y": {cpu: cores(6)},
				"root.q":   {cpu: cores(8)},
				"root.q.z": {cpu: cores(4)},
				"root.q.w": {cpu: cores(4)},
			},
		},
		// q wants only 2 (all of it z's): p gets the other 14 and splits it
		// 1:3 between x and y.
		"nested: what one subtree does not want flows to the other": {
			config: `
queues:
  - name: p
    queues:
      - name: x
      - name: "y"
        weight: 3
  - name: q
    weight: 5
    queues:
      - name: z
      - name: w
`,
			capacity: resources.Vector{cpu: cores(16)},
			demand: map[string]resources.Vector{
				"root.p.x": {cpu: cores(16)}, "root.p.y": {cpu: cores(16)},
				"root.q.z": {cpu: cores(2)},
			},
			want: map[string]resources.Vector{
				"root.p":   {cpu: cores(14)},
				"root.p.x": {cpu: cores(3.5)},
				"root.p.y": {cpu: cores(10.5)},
				"root.q":   {cpu: cores(2)},
				"root.q.z": {cpu: cores(2)},
				"root.q.w": {},
			},
		},
		// Guarantees apply level by level: p is guaranteed 12 of 16, of
		// which x is guaranteed 9. root: p 12 + its weighted half of the
		// idle 4 = 14, q 2. p: x 9 + half of the idle 5 = 11.5, y 2.5.
		"nested guarantees": {
			config: `
queues:
  - name: p
    guaranteed: {cpu: "12"}
    queues:
      - name: x
        guaranteed: {cpu: "9"}
      - name: "y"
  - name: q
`,
			capacity: resources.Vector{cpu: cores(16)},
			demand: map[string]resources.Vector{
				"root.p.x": {cpu: cores(16)}, "root.p.y": {cpu: cores(16)}, "root.q": {cpu: cores(16)},
			},
			want: map[string]resources.Vector{
				"root.p":   {cpu: cores(14)},
				"root.p.x": {cpu: cores(11.5)},
				"root.p.y": {cpu: cores(2.5)},
				"root.q":   {cpu: cores(2)},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tree := mustTree(t, tc.config)
			in := input(tree, tc.capacity, nil, tc.demand)
			got := Compute(in)
			for path, want := range tc.want {
				require.NotNil(t, tree.Get(path), "test names a queue the tree lacks: %s", path)
				assert.Equal(t, want, got.Fair[path], "fair share of %s", path)
			}
			for _, q := range tree.Queues {
				assert.Contains(t, got.Fair, q.Path, "every queue has a fair share")
				assert.Contains(t, got.Dominant, q.Path, "every queue has a dominant share")
			}
			// and the same again: the result does not depend on map order
			for range 5 {
				assert.Equal(t, got, Compute(in))
			}
		})
	}
}

func TestComputeNilTree(t *testing.T) {
	got := Compute(Input{Capacity: resources.Vector{cpu: 1000}})
	assert.Empty(t, got.Fair)
	assert.Empty(t, got.Dominant)
	assert.NotNil(t, got.Fair, "callers may index the maps")
	assert.NotNil(t, got.Dominant)
}

func TestComputeDoesNotModifyInput(t *testing.T) {
	tree := mustTree(t, `
queues:
  - name: a
    guaranteed: {cpu: "6"}
  - name: b
`)
	demand := map[string]resources.Vector{"root.a": {cpu: cores(8), gpu: 1}, "root.b": {cpu: cores(8)}}
	usage := map[string]resources.Vector{"root.a": {cpu: cores(2)}}
	capacity := resources.Vector{cpu: cores(6)}
	in := input(tree, capacity, usage, demand)
	before := input(tree, capacity.Clone(), usage, demand)
	Compute(in)
	assert.Equal(t, before.Capacity, in.Capacity)
	assert.Equal(t, before.Usage, in.Usage)
	assert.Equal(t, before.Demand, in.Demand)
}

func TestComputeDeterministic(t *testing.T) {
	tree := mustTree(t, `
queues:
  - name: p
    weight: 1.7
    queues:
      - name: x
        weight: 0.3
        guaranteed: {cpu: "1"}
      - name: "y"
        weight: 2.9
  - name: q
    weight: 3.1
    max: {nvidia.com/gpu: "5"}
  - name: r
    weight: 0.7
`)
	in := input(tree, resources.Vector{cpu: 97_531, mem: 123 * gi, gpu: 7},
		map[string]resources.Vector{"root.q": {cpu: 3000}},
		map[string]resources.Vector{
			"root.p.x": {cpu: 33_333, mem: 7 * gi},
			"root.p.y": {cpu: 77_777, gpu: 3},
			"root.q":   {cpu: 12_345, gpu: 9, mem: 50 * gi},
			"root.r":   {mem: 200 * gi, cpu: 1},
		})
	first := Compute(in)
	for range 20 {
		require.Equal(t, first, Compute(in))
	}
}

func TestDominant(t *testing.T) {
	tree := mustTree(t, `
queues:
  - name: a
  - name: small
    max: {cpu: "2"}
  - name: p
    max: {cpu: "4"}
    queues:
      - name: x
`)
	capacity := resources.Vector{cpu: cores(8), mem: 32 * gi}
	cases := map[string]struct {
		path  string
		usage resources.Vector
		want  float64
	}{
		"nothing used":                             {"root.a", nil, 0},
		"a share of the cluster":                   {"root.a", resources.Vector{cpu: cores(2)}, 0.25},
		"the largest over resources":               {"root.a", resources.Vector{cpu: cores(2), mem: 16 * gi}, 0.5},
		"against the queue's own max":              {"root.small", resources.Vector{cpu: cores(1)}, 0.5},
		"against an ancestor's max":                {"root.p.x", resources.Vector{cpu: cores(1)}, 0.25},
		"a resource the cluster lacks is infinite": {"root.a", resources.Vector{gpu: 1}, math.Inf(1)},
		"zero amounts do not count":                {"root.a", resources.Vector{gpu: 0, cpu: cores(4)}, 0.5},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := Input{Tree: tree, Capacity: capacity,
				Usage:  rollUp(tree, map[string]resources.Vector{tc.path: tc.usage}),
				Demand: rollUp(tree, nil)}
			got := Compute(in)
			assert.InDelta(t, tc.want, got.Dominant[tc.path], 1e-12)
			if math.IsInf(tc.want, 1) {
				assert.True(t, math.IsInf(got.Dominant[tc.path], 1))
			}
		})
	}
}
