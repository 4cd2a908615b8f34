package queue

import (
	"errors"
	"math"
	"math/big"
	"testing"
)

// FuzzParse: Parse never panics; a refusal is a ConfigError whose every
// entry has a path and a message; an accepted tree keeps the rules of the
// queue file (docs/reference.md). The corpus in testdata/fuzz/FuzzParse adds to the seeds here.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		specExample,
		DefaultConfig,
		"",
		"queues: []",
		ledgerTree,
		"queues: [{name: a, max: {cpu: \"1\"}, queues: [{name: b, max: {cpu: \"2\"}}]}]",
		"queues: [{name: a, guaranteed: {cpu: 2}, queues: [{name: b, guaranteed: {cpu: 1}}, {name: c, guaranteed: {cpu: 2}}]}]",
		"queues: [{name: a}, {name: a}]",
		"queues: [{name: x, queues: [{name: etl}]}, {name: y, queues: [{name: etl}]}]\nnamespaceQueues: {\"*\": etl}",
		"queues: [{name: a, namespaces: [\"[\", \"team-a-*\", \"x[^a]\"]}]\nnamespaceQueues: {team-a-1: a, b: a}",
		"queues: [{name: a, max: {cpu: 10E, memory: 8Ei, pods: -1, nvidia.com/gpu: 1e30}}]",
		"queues: [{name: a, guaranteed: {memory: \"9223372036854775807\"}, queues: [{name: b, guaranteed: {memory: \"9223372036854775807\"}}, {name: c, guaranteed: {memory: 1}}]}]",
		"queues: [{name: A.b, weight: 0, capacityPolicy: spot, colour: blue}]\nextra: 1",
		"queues: [\n",
		"queues: []\nqueues: []\n",
		"- a\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tree, err := Parse(data)
		if err != nil {
			checkConfigError(t, err)
			if tree != nil {
				t.Fatalf("a tree and an error")
			}
			// refusals are stable: the same input, the same errors
			if _, again := Parse(data); again == nil || again.Error() != err.Error() {
				t.Fatalf("Parse is not deterministic:\n%v\n---\n%v", err, again)
			}
			return
		}
		checkTree(t, tree)
	})
}

func checkConfigError(t *testing.T, err error) {
	t.Helper()
	var ce ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error is %T, not a ConfigError: %v", err, err)
	}
	if len(ce) == 0 {
		t.Fatalf("an empty ConfigError")
	}
	for i, fe := range ce {
		if fe.Path == "" || fe.Msg == "" {
			t.Fatalf("error %d has no path or no message: %#v", i, fe)
		}
	}
}

func checkTree(t *testing.T, tree *Tree) {
	t.Helper()
	if tree.Root == nil || len(tree.Queues) == 0 || tree.Queues[0] != tree.Root || tree.Root.Path != RootName {
		t.Fatalf("the tree does not start at root")
	}
	seen := map[string]bool{}
	for _, q := range tree.Queues {
		if seen[q.Path] {
			t.Fatalf("two queues at %s", q.Path)
		}
		seen[q.Path] = true
		if tree.Get(q.Path) != q {
			t.Fatalf("Get(%s) does not return the queue", q.Path)
		}
		if !(q.Weight > 0) || math.IsInf(q.Weight, 0) {
			t.Fatalf("%s: weight %v", q.Path, q.Weight)
		}
		for r, a := range q.Guaranteed {
			if a < 0 {
				t.Fatalf("%s: negative guaranteed %s", q.Path, r)
			}
			// guaranteed within the queue's own effective max
			if m, ok := q.EffectiveMax[r]; ok && a > m {
				t.Fatalf("%s: guaranteed %s %d above max %d", q.Path, r, a, m)
			}
		}
		for r, m := range q.Max {
			if m < 0 {
				t.Fatalf("%s: negative max %s", q.Path, r)
			}
			if q.EffectiveMax[r] > m {
				t.Fatalf("%s: effective max %s above its own max", q.Path, r)
			}
		}
		if p := q.Parent; p != nil {
			if q.Depth != p.Depth+1 {
				t.Fatalf("%s: depth %d under depth %d", q.Path, q.Depth, p.Depth)
			}
			// every limit of the parent holds for the child, no looser
			for r, pm := range p.EffectiveMax {
				if cm, ok := q.EffectiveMax[r]; !ok || cm > pm {
					t.Fatalf("%s: effective max %s %d (set: %t) above its parent's %d", q.Path, r, cm, ok, pm)
				}
			}
			if q.CapacityPolicy == "" && p.CapacityPolicy != "" {
				t.Fatalf("%s: the capacity policy is not inherited", q.Path)
			}
		}
		// the children's guarantees sum within the parent's, where it sets
		// one (except root's); summed exactly, without wrapping
		if q.Parent != nil {
			for r, g := range q.Guaranteed {
				sum := new(big.Int)
				for _, c := range q.Children {
					sum.Add(sum, big.NewInt(c.Guaranteed[r]))
				}
				if sum.Cmp(big.NewInt(g)) > 0 {
					t.Fatalf("%s: children's guaranteed %s sum to %s, above %d", q.Path, r, sum, g)
				}
			}
		}
	}
	leaves := tree.Leaves()
	if len(leaves) == 0 {
		t.Fatalf("no leaves")
	}
	for _, l := range leaves {
		got, err := tree.Resolve(l.Path)
		if err != nil || got != l {
			t.Fatalf("leaf %s not reachable by its path: %v", l.Path, err)
		}
		if q, perr := tree.Place("fuzz", l.Path); perr != nil {
			if ok, _ := l.AdmitsNamespace("fuzz"); ok && l != tree.Root {
				t.Fatalf("leaf %s not placeable: %v", l.Path, perr)
			}
		} else if q != l {
			t.Fatalf("placing at %s gave %s", l.Path, q.Path)
		}
	}
	for ns, q := range tree.namespaceQueues {
		if !q.IsLeaf() || tree.Get(q.Path) != q {
			t.Fatalf("namespaceQueues.%s maps to %s, not a leaf of the tree", ns, q.Path)
		}
		if ns == "*" {
			continue
		}
		if ok, by := q.AdmitsNamespace(ns); !ok {
			t.Fatalf("namespaceQueues.%s maps to %s, which %s refuses", ns, q.Path, by.Path)
		}
		if placed, perr := tree.Place(ns, ""); perr != nil || placed != q {
			t.Fatalf("namespace %s is not placed in %s: %v", ns, q.Path, perr)
		}
	}
}
