package mustergang

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/tools/cache"

	"muster.dev/muster/pkg/gang"
)

// TestListMembersByIndex: through the index, a gang's members are exactly
// the namespace's pods the selector matches; selectors the index cannot
// answer are left to the namespace listing.
func TestListMembersByIndex(t *testing.T) {
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{
		cache.NamespaceIndex: cache.MetaNamespaceIndexFunc, memberIndex: indexMemberLabels})
	add := func(ns, name string, l map[string]string) {
		require.NoError(t, indexer.Add(&v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l}}))
	}
	add("a", "pg-0", map[string]string{gang.LabelPodGroup: "pg"})
	add("a", "pg-1", map[string]string{gang.LabelPodGroup: "pg", "x": "y"})
	add("b", "pg-0", map[string]string{gang.LabelPodGroup: "pg"}) // another namespace
	add("a", "other", map[string]string{gang.LabelPodGroup: "other"})
	add("a", "ray-head", map[string]string{gang.LabelRayCluster: "rc", gang.LabelRayNodeType: "head"})
	add("a", "ray-worker", map[string]string{gang.LabelRayCluster: "rc", gang.LabelRayNodeType: "worker"})
	add("a", "plain", nil)

	rayWorkers := labels.NewSelector()
	for _, r := range []struct {
		k  string
		op selection.Operator
		v  string
	}{{gang.LabelRayCluster, selection.Equals, "rc"}, {gang.LabelRayNodeType, selection.Equals, "worker"}} {
		req, err := labels.NewRequirement(r.k, r.op, []string{r.v})
		require.NoError(t, err)
		rayWorkers = rayWorkers.Add(*req)
	}
	tests := map[string]struct {
		selector labels.Selector
		handled  bool
	}{
		"a PodGroup's members":      {selector: labels.SelectorFromSet(labels.Set{gang.LabelPodGroup: "pg"}), handled: true},
		"and another label":         {selector: labels.SelectorFromSet(labels.Set{gang.LabelPodGroup: "pg", "x": "y"}), handled: true},
		"a RayCluster's workers":    {selector: rayWorkers, handled: true},
		"no such gang":              {selector: labels.SelectorFromSet(labels.Set{gang.LabelGang: "none"}), handled: true},
		"not a member label":        {selector: labels.SelectorFromSet(labels.Set{"x": "y"})},
		"everything (Workload API)": {selector: labels.Everything()},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, handled, err := listMembers(indexer, "a", tc.selector)
			require.NoError(t, err)
			assert.Equal(t, tc.handled, handled)
			if !handled {
				return
			}
			var want []string
			require.NoError(t, cache.ListAllByNamespace(indexer, "a", tc.selector, func(o any) { want = append(want, o.(*v1.Pod).Name) }))
			var names []string
			for _, p := range got {
				names = append(names, p.Name)
			}
			assert.ElementsMatch(t, want, names)
		})
	}
}
