package queue

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// genTree3 writes queues.yaml for a 3-level tree, orgs x teams x leaves,
// with max, guaranteed (summing exactly to the parent's) and namespace globs
// at every level, and a namespaceQueues entry per team plus a fallback.
func genTree3(orgs, teams, leaves int) string {
	var b strings.Builder
	b.WriteString("queues:\n")
	for o := range orgs {
		fmt.Fprintf(&b, `  - name: org-%d
    weight: %d
    guaranteed: {cpu: "%d", memory: %dGi}
    max: {cpu: "%d", memory: %dGi, nvidia.com/gpu: 64}
    namespaces: ["org-%d-*", "shared-?"]
    queues:
`, o, o%3+1, 10*teams*leaves, 40*teams*leaves, 20*teams*leaves, 80*teams*leaves, o)
		for t := range teams {
			fmt.Fprintf(&b, `      - name: team-%d-%d
        guaranteed: {cpu: "%d", memory: %dGi}
        max: {cpu: "%d", memory: %dGi}
        namespaces: ["org-%d-team-%d-*", "shared-[0-9]"]
        capacityPolicy: prefer-spot
        queues:
`, o, t, 10*leaves, 40*leaves, 20*leaves, 80*leaves, o, t)
			for l := range leaves {
				fmt.Fprintf(&b, `          - name: leaf-%d-%d-%d
            guaranteed: {cpu: "10", memory: 40Gi}
            max: {cpu: "20", memory: 80Gi, nvidia.com/gpu: 8}
`, o, t, l)
			}
		}
	}
	b.WriteString("namespaceQueues:\n")
	for o := range orgs {
		for t := range teams {
			fmt.Fprintf(&b, "  org-%d-team-%d-main: root.org-%d.team-%d-%d.leaf-%d-%d-0\n", o, t, o, o, t, o, t)
		}
	}
	b.WriteString("  \"*\": leaf-0-0-0\n")
	return b.String()
}

var config1000Leaves = genTree3(10, 10, 10)

// raceDetector is set under -race (race_test.go), which slows Parse ten-fold.
var raceDetector bool

func TestGenTree3(t *testing.T) {
	tree := mustParse(t, config1000Leaves)
	assert.Len(t, tree.Queues, 1+10+100+1000)
	assert.Len(t, tree.Leaves(), 1000)
	q, perr := tree.Place("org-3-team-4-main", "")
	require.Nil(t, perr)
	assert.Equal(t, "root.org-3.team-3-4.leaf-3-4-0", q.Path)
	q, perr = tree.Place("shared-7", "leaf-9-9-9")
	require.Nil(t, perr)
	assert.Equal(t, 3, q.Depth)
	_, perr = tree.Place("org-3-team-4-x", "leaf-9-9-9")
	require.NotNil(t, perr, "org-9 does not admit org-3's namespaces")
}

func BenchmarkParse1000Leaves(b *testing.B) {
	data := []byte(config1000Leaves)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParse1000LeavesIsFast: a large tree parses and validates well within a
// reload interval. The bound is generous so that it never flakes; the
// typical time is logged.
func TestParse1000LeavesIsFast(t *testing.T) {
	data := []byte(config1000Leaves)
	best := time.Duration(1<<63 - 1)
	for range 3 {
		start := time.Now()
		_, err := Parse(data)
		d := time.Since(start)
		require.NoError(t, err)
		best = min(best, d)
	}
	t.Logf("Parse of 1,000 leaves (%d KiB): %v (race detector: %t)", len(data)/1024, best, raceDetector)
	bound := time.Second
	if raceDetector {
		bound *= 10
	}
	assert.Less(t, best, bound)
}

// checkSetup is a ledger over a tree of n queues (root included) in which a
// leaf sits at depth d under a path of queues that all have a max, and every
// leaf holds some usage, so that the ledger's map has an entry for every
// queue.
type checkSetup struct {
	ledger *Ledger
	leaf   *Queue
}

func newCheckSetup(tb testing.TB, depth, n int) checkSetup {
	var b strings.Builder
	b.WriteString("queues:\n")
	path := []string{RootName}
	// the other queues are leaves beside the path, spread over its levels
	filler := max(n-1-depth, 0)
	for level := 1; level <= depth; level++ {
		pad := strings.Repeat("  ", 2*level-1)
		here := filler / depth
		if level == 1 {
			here += filler % depth
		}
		for i := range here {
			fmt.Fprintf(&b, "%s- {name: fill-%d-%d, max: {cpu: \"10\"}}\n", pad, level, i)
		}
		fmt.Fprintf(&b, "%s- name: path-%d\n%s  max: {cpu: \"%d\", memory: %dGi}\n", pad, level, pad, 100000-level, 100000-level)
		if level < depth {
			fmt.Fprintf(&b, "%s  queues:\n", pad)
		}
		path = append(path, fmt.Sprintf("path-%d", level))
	}
	tree := mustParse(tb, b.String())
	l := NewLedger(tree)
	for i, q := range tree.Leaves() {
		require.Nil(tb, l.Reserve(fmt.Sprintf("k%d", i), q, cpus(1)))
	}
	leaf := tree.Get(strings.Join(path, "."))
	require.NotNil(tb, leaf)
	require.True(tb, leaf.IsLeaf())
	require.Equal(tb, depth, leaf.Depth)
	require.Len(tb, tree.Queues, max(n, depth+1))
	return checkSetup{ledger: l, leaf: leaf}
}

func (s checkSetup) bench(b *testing.B) {
	req := cpus(1)
	req[mem] = gi
	b.ReportAllocs()
	for b.Loop() {
		if err := s.ledger.Check(s.leaf, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheck: admission is O(depth) and does not depend on how many
// queues the tree has.
func BenchmarkCheck(b *testing.B) {
	for _, depth := range []int{2, 4, 8} {
		for _, n := range []int{10, 1000, 10000} {
			b.Run(fmt.Sprintf("depth=%d/queues=%d", depth, n), newCheckSetup(b, depth, n).bench)
		}
	}
}

// TestCheckCostIndependentOfQueues compares Check on trees of 10 and 10,000
// queues at the same depth. The bound is generous (3x); it takes the best of
// three alternating runs so that a busy machine does not fail it.
func TestCheckCostIndependentOfQueues(t *testing.T) {
	if testing.Short() {
		t.Skip("runs benchmarks")
	}
	small, large := newCheckSetup(t, 4, 10), newCheckSetup(t, 4, 10000)
	assert.Len(t, small.ledger.Tree().Queues, 10)
	assert.Len(t, large.ledger.Tree().Queues, 10000)
	nsPerOp := func(s checkSetup) float64 {
		r := testing.Benchmark(s.bench)
		return float64(r.T.Nanoseconds()) / float64(r.N)
	}
	bestSmall, bestLarge := 1e18, 1e18
	for range 3 {
		bestSmall = min(bestSmall, nsPerOp(small))
		bestLarge = min(bestLarge, nsPerOp(large))
	}
	t.Logf("Check at depth 4: %.0f ns/op with 10 queues, %.0f ns/op with 10,000", bestSmall, bestLarge)
	assert.Less(t, bestLarge/bestSmall, 3.0)
}
