package profile

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes/fake"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// TestIndexPodsByNamespace: kube-scheduler's pod informer has no indexers;
// muster adds the namespace index, once, so that listing a namespace's
// pods does not scan the cluster.
func TestIndexPodsByNamespace(t *testing.T) {
	inf := coreinformers.NewFilteredPodInformer(fake.NewClientset(), metav1.NamespaceAll, 0, cache.Indexers{}, nil)
	indexPodsByNamespace(context.Background(), inf)
	indexPodsByNamespace(context.Background(), inf) // a second profile: no error, nothing changes
	require.Contains(t, inf.GetIndexer().GetIndexers(), cache.NamespaceIndex)

	for _, p := range []*v1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "x"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "y"}},
	} {
		require.NoError(t, inf.GetIndexer().Add(p))
	}
	keys, err := inf.GetIndexer().IndexKeys(cache.NamespaceIndex, "a")
	require.NoError(t, err)
	assert.Equal(t, []string{"a/x"}, keys)
	pods, err := listersv1.NewPodLister(inf.GetIndexer()).Pods("b").List(labels.Everything())
	require.NoError(t, err)
	require.Len(t, pods, 1)
	assert.Equal(t, "y", pods[0].Name)
}
