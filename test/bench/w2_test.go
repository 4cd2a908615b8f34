package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/test/bench/internal/benchkit"
	"muster.dev/muster/test/framework"
)

// BenchmarkW2Queues: pods spread evenly over a three-level queue tree
// (1,000 leaves: 10 × 10 × 10, weights 1 to 3), on nodes with room for all,
// muster against kube-scheduler's default profile (which ignores the
// queues) and the raw bind limit. Pods name their leaf with the
// muster.dev/queue label.
func BenchmarkW2Queues(b *testing.B) {
	shape, pods, nodes := [3]int{10, 10, 10}, 10000, 1000
	if testing.Short() {
		shape, pods, nodes = [3]int{5, 5, 2}, 500, 100
	}
	leaves := queueTree(b, shape)
	b.Run(fmt.Sprintf("leaves=%d/pods=%d/nodes=%d", len(leaves), pods, nodes), func(b *testing.B) {
		names := benchkit.Nodes(b, "w2", nodes, "32", nil)
		label := func(i int) map[string]string { return map[string]string{queue.LabelQueue: leaves[i%len(leaves)]} }
		results := map[string][]benchkit.Result{}
		for _, side := range benchkit.Order(rounds(), benchkit.Default, benchkit.Muster) {
			b.Run(side.Name, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					r := runPods(b, side, names, pods, label, benchkit.RunOptions{})
					r.Report(b)
					results[side.Name] = append(results[side.Name], r)
				}
			})
		}
		ratios(b, results, benchkit.Default.Name)
	})
}

// BenchmarkW2Contended is W2 with twice the cluster's capacity in demand:
// the same tree and pods, on nodes with room for half of them, so that
// muster's fair-share gate decides every pod (fairshare.Uncontended never
// applies). Each side runs until the cluster is full (half the pods bound);
// the default profile fills it in arrival order, muster by fair share.
func BenchmarkW2Contended(b *testing.B) {
	shape, pods, nodes := [3]int{10, 10, 10}, 10000, 1000
	if testing.Short() {
		shape, pods, nodes = [3]int{5, 5, 2}, 500, 100
	}
	perNode := pods / nodes / 2 // 100m pods: half of them fit
	leaves := queueTree(b, shape)
	b.Run(fmt.Sprintf("leaves=%d/pods=%d/nodes=%d/demand=2x", len(leaves), pods, nodes), func(b *testing.B) {
		names := benchkit.Nodes(b, "w2c", nodes, fmt.Sprintf("%dm", 100*perNode), nil)
		label := func(i int) map[string]string { return map[string]string{queue.LabelQueue: leaves[i%len(leaves)]} }
		results := map[string][]benchkit.Result{}
		for _, side := range benchkit.Order(rounds(), benchkit.Default, benchkit.Muster) {
			b.Run(side.Name, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					r := runPodsUntil(b, side, names, pods, perNode*nodes, label, benchkit.RunOptions{})
					r.Report(b)
					results[side.Name] = append(results[side.Name], r)
				}
			})
		}
		ratios(b, results, benchkit.Default.Name)
	})
}

// queueTree installs muster's queue ConfigMap with a tree of the shape
// (children per level) for the benchmark, and returns its leaves' names.
func queueTree(b *testing.B, shape [3]int) []string {
	b.Helper()
	var (
		sb     strings.Builder
		leaves []string
	)
	sb.WriteString("queues:\n")
	for i := range shape[0] {
		fmt.Fprintf(&sb, "  - name: d%d\n    weight: %d\n    queues:\n", i, 1+i%3)
		for j := range shape[1] {
			fmt.Fprintf(&sb, "      - name: d%d-t%d\n        weight: %d\n        queues:\n", i, j, 1+j%3)
			for k := range shape[2] {
				leaf := fmt.Sprintf("d%d-t%d-l%d", i, j, k)
				leaves = append(leaves, leaf)
				fmt.Fprintf(&sb, "          - {name: %s, weight: %d}\n", leaf, 1+k%3)
			}
		}
	}
	ctx := context.Background()
	cms := framework.CP.Client.CoreV1().ConfigMaps(framework.MusterNamespace)
	if _, err := cms.Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "muster-queues", Namespace: framework.MusterNamespace},
		Data: map[string]string{queue.ConfigKey: sb.String()}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cms.Delete(context.Background(), "muster-queues", metav1.DeleteOptions{}) })
	return leaves
}
