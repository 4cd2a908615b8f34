package queue

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/resources"
)

const (
	cpu = v1.ResourceCPU
	mem = v1.ResourceMemory
	gpu = v1.ResourceName("nvidia.com/gpu")
	gi  = int64(1) << 30
)

// specExample is the README's queue example, with the root.default queue
// its "*" fallback names.
const specExample = `
queues:
  - name: analytics
    weight: 2                 # share of idle capacity relative to siblings; default 1
    guaranteed:               # always available to this subtree; lent out while idle, reclaimed by preemption
      cpu: "64"
      memory: 256Gi
    max:                      # hard ceiling for this subtree; absent = the parent's
      cpu: "128"
      memory: 512Gi
    namespaces: ["spark-etl", "team-a-*"]   # who may submit (globs); children inherit when absent
    queues:
      - name: etl
        guaranteed: {cpu: "32", memory: 128Gi}
      - name: adhoc
        max: {cpu: "16"}
  - name: ml
    guaranteed: {nvidia.com/gpu: "8"}
    capacityPolicy: prefer-on-demand        # default placement of this queue's pods (section 5)
  - name: default
namespaceQueues:              # where a pod goes that names no queue
  spark-etl: root.analytics.etl
  "*": root.default           # "*" is the fallback; without it such a pod is rejected
`

func mustParse(t testing.TB, config string) *Tree {
	t.Helper()
	tree, err := Parse([]byte(config))
	require.NoError(t, err)
	require.NotNil(t, tree)
	return tree
}

// node is what a test expects of one queue of a built tree.
type node struct {
	Parent          string
	Depth           int
	Leaf            bool
	Weight          float64
	Guaranteed, Max resources.Vector
	EffectiveMax    resources.Vector
	Namespaces      []string
	Policy          capacity.Policy
}

// nodes describes every queue of the tree by path, with empty vectors as nil
// so that "not set" and "set to nothing" compare alike.
func nodes(t *Tree) map[string]node {
	norm := func(v resources.Vector) resources.Vector {
		if len(v) == 0 {
			return nil
		}
		return v
	}
	out := map[string]node{}
	for _, q := range t.Queues {
		n := node{Depth: q.Depth, Leaf: q.IsLeaf(), Weight: q.Weight,
			Guaranteed: norm(q.Guaranteed), Max: norm(q.Max), EffectiveMax: norm(q.EffectiveMax),
			Namespaces: q.Namespaces, Policy: q.CapacityPolicy}
		if q.Parent != nil {
			n.Parent = q.Parent.Path
		}
		out[q.Path] = n
	}
	return out
}

func paths(qs []*Queue) []string {
	out := make([]string, len(qs))
	for i, q := range qs {
		out[i] = q.Path
	}
	return out
}

func TestParseValidTrees(t *testing.T) {
	root := node{Weight: 1}
	cases := map[string]struct {
		config string
		want   map[string]node
		// order of Tree.Queues: root first, parents before children
		wantOrder []string
	}{
		"the README example": {
			config: specExample,
			want: map[string]node{
				"root": root,
				"root.analytics": {Parent: "root", Depth: 1, Weight: 2,
					Guaranteed:   resources.Vector{cpu: 64000, mem: 256 * gi},
					Max:          resources.Vector{cpu: 128000, mem: 512 * gi},
					EffectiveMax: resources.Vector{cpu: 128000, mem: 512 * gi},
					Namespaces:   []string{"spark-etl", "team-a-*"}},
				"root.analytics.etl": {Parent: "root.analytics", Depth: 2, Leaf: true, Weight: 1,
					Guaranteed:   resources.Vector{cpu: 32000, mem: 128 * gi},
					EffectiveMax: resources.Vector{cpu: 128000, mem: 512 * gi}},
				"root.analytics.adhoc": {Parent: "root.analytics", Depth: 2, Leaf: true, Weight: 1,
					Max:          resources.Vector{cpu: 16000},
					EffectiveMax: resources.Vector{cpu: 16000, mem: 512 * gi}},
				"root.ml": {Parent: "root", Depth: 1, Leaf: true, Weight: 1,
					Guaranteed: resources.Vector{gpu: 8}, Policy: capacity.PreferOnDemand},
				"root.default": {Parent: "root", Depth: 1, Leaf: true, Weight: 1},
			},
			wantOrder: []string{"root", "root.analytics", "root.analytics.etl", "root.analytics.adhoc", "root.ml", "root.default"},
		},
		"effective max: the tightest of every ancestor, per resource": {
			config: `
queues:
  - name: a
    max: {cpu: "100", memory: 64Gi}
    queues:
      - name: b
        max: {memory: 10Gi}
        queues:
          - name: c
            max: {cpu: "50", nvidia.com/gpu: 2}
            queues:
              - name: d
          - name: e
            max: {cpu: "100"}
`,
			want: map[string]node{
				"root": root,
				"root.a": {Parent: "root", Depth: 1, Weight: 1,
					Max: resources.Vector{cpu: 100000, mem: 64 * gi}, EffectiveMax: resources.Vector{cpu: 100000, mem: 64 * gi}},
				"root.a.b": {Parent: "root.a", Depth: 2, Weight: 1,
					Max: resources.Vector{mem: 10 * gi}, EffectiveMax: resources.Vector{cpu: 100000, mem: 10 * gi}},
				"root.a.b.c": {Parent: "root.a.b", Depth: 3, Weight: 1,
					Max: resources.Vector{cpu: 50000, gpu: 2}, EffectiveMax: resources.Vector{cpu: 50000, mem: 10 * gi, gpu: 2}},
				"root.a.b.c.d": {Parent: "root.a.b.c", Depth: 4, Leaf: true, Weight: 1,
					EffectiveMax: resources.Vector{cpu: 50000, mem: 10 * gi, gpu: 2}},
				"root.a.b.e": {Parent: "root.a.b", Depth: 3, Leaf: true, Weight: 1,
					Max: resources.Vector{cpu: 100000}, EffectiveMax: resources.Vector{cpu: 100000, mem: 10 * gi}},
			},
			wantOrder: []string{"root", "root.a", "root.a.b", "root.a.b.c", "root.a.b.c.d", "root.a.b.e"},
		},
		"capacity policy: inherited from the nearest ancestor that sets one": {
			config: `
queues:
  - name: spot
    capacityPolicy: prefer-spot
    queues:
      - name: inherits
      - name: overrides
        capacityPolicy: require-on-demand
        queues:
          - name: inherits-override
  - name: none
`,
			want: map[string]node{
				"root":                                  {Weight: 1},
				"root.spot":                             {Parent: "root", Depth: 1, Weight: 1, Policy: capacity.PreferSpot},
				"root.spot.inherits":                    {Parent: "root.spot", Depth: 2, Leaf: true, Weight: 1, Policy: capacity.PreferSpot},
				"root.spot.overrides":                   {Parent: "root.spot", Depth: 2, Weight: 1, Policy: capacity.RequireOnDemand},
				"root.spot.overrides.inherits-override": {Parent: "root.spot.overrides", Depth: 3, Leaf: true, Weight: 1, Policy: capacity.RequireOnDemand},
				"root.none":                             {Parent: "root", Depth: 1, Leaf: true, Weight: 1},
			},
			wantOrder: []string{"root", "root.spot", "root.spot.inherits", "root.spot.overrides", "root.spot.overrides.inherits-override", "root.none"},
		},
		"weights: default 1, fractions and integers": {
			config: `
queues:
  - name: default-weight
  - name: half
    weight: 0.5
  - name: ten
    weight: 10
  - name: quoted-yaml-float
    weight: 1.0e1
`,
			want: map[string]node{
				"root":                   root,
				"root.default-weight":    {Parent: "root", Depth: 1, Leaf: true, Weight: 1},
				"root.half":              {Parent: "root", Depth: 1, Leaf: true, Weight: 0.5},
				"root.ten":               {Parent: "root", Depth: 1, Leaf: true, Weight: 10},
				"root.quoted-yaml-float": {Parent: "root", Depth: 1, Leaf: true, Weight: 10},
			},
			wantOrder: []string{"root", "root.default-weight", "root.half", "root.ten", "root.quoted-yaml-float"},
		},
		"guaranteed: sums exactly at the parent's, at max, numbers and quantities": {
			config: `
queues:
  - name: p
    guaranteed: {cpu: 4, memory: 2Gi, pods: 10}
    max: {cpu: "4"}
    queues:
      - name: a
        guaranteed: {cpu: 1500m, memory: 1Gi}
      - name: b
        guaranteed: {cpu: 2.5, memory: 1Gi, pods: 10}
`,
			want: map[string]node{
				"root": root,
				"root.p": {Parent: "root", Depth: 1, Weight: 1,
					Guaranteed: resources.Vector{cpu: 4000, mem: 2 * gi, v1.ResourcePods: 10},
					Max:        resources.Vector{cpu: 4000}, EffectiveMax: resources.Vector{cpu: 4000}},
				"root.p.a": {Parent: "root.p", Depth: 2, Leaf: true, Weight: 1,
					Guaranteed: resources.Vector{cpu: 1500, mem: gi}, EffectiveMax: resources.Vector{cpu: 4000}},
				"root.p.b": {Parent: "root.p", Depth: 2, Leaf: true, Weight: 1,
					Guaranteed: resources.Vector{cpu: 2500, mem: gi, v1.ResourcePods: 10}, EffectiveMax: resources.Vector{cpu: 4000}},
			},
			wantOrder: []string{"root", "root.p", "root.p.a", "root.p.b"},
		},
		"root's children are not held to a root guarantee": {
			config: `
queues:
  - name: a
    guaranteed: {cpu: "1000000"}
  - name: b
    guaranteed: {cpu: "1000000"}
`,
			want: map[string]node{
				"root":   root,
				"root.a": {Parent: "root", Depth: 1, Leaf: true, Weight: 1, Guaranteed: resources.Vector{cpu: 1e9}},
				"root.b": {Parent: "root", Depth: 1, Leaf: true, Weight: 1, Guaranteed: resources.Vector{cpu: 1e9}},
			},
			wantOrder: []string{"root", "root.a", "root.b"},
		},
		"the same name in different branches": {
			config: `
queues:
  - name: x
    queues: [{name: etl}]
  - name: "y"
    queues: [{name: etl}]
`,
			want: map[string]node{
				"root":       root,
				"root.x":     {Parent: "root", Depth: 1, Weight: 1},
				"root.x.etl": {Parent: "root.x", Depth: 2, Leaf: true, Weight: 1},
				"root.y":     {Parent: "root", Depth: 1, Weight: 1},
				"root.y.etl": {Parent: "root.y", Depth: 2, Leaf: true, Weight: 1},
			},
			wantOrder: []string{"root", "root.x", "root.x.etl", "root.y", "root.y.etl"},
		},
		"empty namespaces list, largest quantities": {
			config: `
queues:
  - name: closed
    namespaces: []
    max: {cpu: 9223372036854775807m, memory: "9223372036854775807"}
`,
			want: map[string]node{
				"root": root,
				"root.closed": {Parent: "root", Depth: 1, Leaf: true, Weight: 1, Namespaces: []string{},
					Max:          resources.Vector{cpu: 1<<63 - 1, mem: 1<<63 - 1},
					EffectiveMax: resources.Vector{cpu: 1<<63 - 1, mem: 1<<63 - 1}},
			},
			wantOrder: []string{"root", "root.closed"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tree := mustParse(t, tc.config)
			assert.Equal(t, tc.want, nodes(tree))
			assert.Equal(t, tc.wantOrder, paths(tree.Queues))
			assert.Same(t, tree.Queues[0], tree.Root)
			for _, q := range tree.Queues {
				assert.Same(t, q, tree.Get(q.Path))
				for _, c := range q.Children {
					assert.Same(t, q, c.Parent)
				}
			}
		})
	}
}

func TestParseEmpty(t *testing.T) {
	cases := map[string]string{
		"nothing":        "",
		"blank lines":    "\n\n   \n",
		"only comments":  "# no queues yet\n",
		"empty mapping":  "{}",
		"null document":  "null",
		"no queues":      "queues:\n",
		"empty list":     "queues: []",
		"empty mappings": "queues: []\nnamespaceQueues: {}\n",
	}
	for name, config := range cases {
		t.Run(name, func(t *testing.T) {
			tree := mustParse(t, config)
			assert.Equal(t, []string{"root"}, paths(tree.Queues))
			assert.Equal(t, []string{"root"}, paths(tree.Leaves()), "root alone is a leaf")
			assert.Empty(t, tree.Root.EffectiveMax)
			_, perr := tree.Place("default", "")
			require.NotNil(t, perr, "nothing maps any namespace")
		})
	}
}

func TestDefault(t *testing.T) {
	tree := Default()
	assert.Equal(t, []string{"root", "root.default"}, paths(tree.Queues))
	assert.Equal(t, []string{"root.default"}, paths(tree.Leaves()))
	d := tree.Get("root.default")
	require.NotNil(t, d)
	assert.Empty(t, d.EffectiveMax, "no limits")
	assert.Nil(t, d.Namespaces, "for everyone")
	for _, ns := range []string{"default", "kube-system", "team-a"} {
		q, perr := tree.Place(ns, "")
		require.Nil(t, perr)
		assert.Same(t, d, q)
	}
	assert.NotSame(t, tree, Default(), "a new tree each time")
}

func TestAdmitsNamespace(t *testing.T) {
	tree := mustParse(t, `
queues:
  - name: analytics
    namespaces: ["spark-etl", "team-a-*"]
    queues:
      - name: etl                    # inherits its parent's list
      - name: narrow
        namespaces: ["team-a-1"]
      - name: widen                  # tries to add other: the parent still refuses it
        namespaces: ["spark-etl", "other", "team-*"]
      - name: closed
        namespaces: []
  - name: open
  - name: globs
    namespaces: ["ns-?", "x[0-9]", "y[^a]", "*-prod"]
`)
	cases := map[string]struct {
		queue, ns string
		want      bool
		refusedBy string
	}{
		"listed":                           {"root.analytics.etl", "spark-etl", true, ""},
		"glob":                             {"root.analytics.etl", "team-a-web", true, ""},
		"glob needs the prefix":            {"root.analytics.etl", "team-b-web", false, "root.analytics"},
		"glob is anchored":                 {"root.analytics.etl", "x-team-a-web", false, "root.analytics"},
		"a parent is checked too":          {"root.analytics", "spark-etl", true, ""},
		"narrowed by the child":            {"root.analytics.narrow", "team-a-1", true, ""},
		"the child's own list refuses":     {"root.analytics.narrow", "team-a-2", false, "root.analytics.narrow"},
		"the child's refusal comes first":  {"root.analytics.narrow", "other", false, "root.analytics.narrow"},
		"a child cannot widen":             {"root.analytics.widen", "other", false, "root.analytics"},
		"a child's wider glob is cut back": {"root.analytics.widen", "team-b-x", false, "root.analytics"},
		"both lists admit":                 {"root.analytics.widen", "team-a-x", true, ""},
		"empty list admits nobody":         {"root.analytics.closed", "spark-etl", false, "root.analytics.closed"},
		"no list anywhere admits all":      {"root.open", "anything", true, ""},
		"root admits all":                  {"root", "anything", true, ""},
		"? matches one character":          {"root.globs", "ns-1", true, ""},
		"? matches exactly one":            {"root.globs", "ns-12", false, "root.globs"},
		"character class":                  {"root.globs", "x7", true, ""},
		"character class refuses":          {"root.globs", "xa", false, "root.globs"},
		"negated class":                    {"root.globs", "yb", true, ""},
		"negated class refuses":            {"root.globs", "ya", false, "root.globs"},
		"leading star":                     {"root.globs", "shop-prod", true, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			q := tree.Get(tc.queue)
			require.NotNil(t, q)
			ok, by := q.AdmitsNamespace(tc.ns)
			assert.Equal(t, tc.want, ok)
			if tc.refusedBy == "" {
				assert.Nil(t, by)
			} else {
				require.NotNil(t, by)
				assert.Equal(t, tc.refusedBy, by.Path)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	tree := mustParse(t, `
queues:
  - name: analytics
    queues: [{name: etl}, {name: adhoc}]
  - name: ml
    queues: [{name: etl}, {name: train}]
  - name: solo
`)
	cases := map[string]struct {
		ref     string
		want    string
		wantErr string
	}{
		"full path of a leaf":        {ref: "root.analytics.etl", want: "root.analytics.etl"},
		"full path of a parent":      {ref: "root.analytics", want: "root.analytics"},
		"root":                       {ref: "root", want: "root"},
		"unique leaf name":           {ref: "adhoc", want: "root.analytics.adhoc"},
		"unique parent name":         {ref: "ml", want: "root.ml"},
		"unique top-level leaf name": {ref: "solo", want: "root.solo"},
		"ambiguous name":             {ref: "etl", wantErr: "queue name etl is ambiguous (root.analytics.etl, root.ml.etl); use the full path"},
		"full path of an ambiguous":  {ref: "root.ml.etl", want: "root.ml.etl"},
		"nonexistent name":           {ref: "nope", wantErr: "queue nope does not exist"},
		"nonexistent path":           {ref: "root.analytics.nope", wantErr: "queue root.analytics.nope does not exist"},
		"a path without root":        {ref: "analytics.etl", wantErr: "queue analytics.etl does not exist"},
		"empty":                      {ref: "", wantErr: "queue  does not exist"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			q, err := tree.Resolve(tc.ref)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				assert.Nil(t, q)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, q.Path)
		})
	}
}

func TestLeavesAndGet(t *testing.T) {
	tree := mustParse(t, specExample)
	assert.Equal(t, []string{"root.analytics.etl", "root.analytics.adhoc", "root.ml", "root.default"}, paths(tree.Leaves()))
	for _, l := range tree.Leaves() {
		assert.True(t, l.IsLeaf())
		assert.Equal(t, []*Queue{l}, l.Ancestors()[:1])
	}
	assert.Nil(t, tree.Get("etl"), "Get takes full paths only")
	assert.Nil(t, tree.Get("root.nope"))
	assert.Equal(t, []string{"root.analytics.adhoc", "root.analytics", "root"}, paths(tree.Get("root.analytics.adhoc").Ancestors()))
	assert.Equal(t, []string{"root"}, paths(tree.Root.Ancestors()))
}
