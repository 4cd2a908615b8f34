package ecosystem

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"muster.dev/muster/test/framework"
)

// testdata reads the YAML documents of testdata/NAME: the objects a user
// writes, which docs/integrations shows as they are.
func testdata(t *testing.T, name string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return decodeYAML(t, data)
}

// decodeYAML splits a multi-document YAML stream into objects.
func decodeYAML(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}

// dyn is a dynamic client with a REST mapper that learns CRDs installed
// after it was made.
type dyn struct {
	client dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newDyn(t *testing.T) *dyn {
	t.Helper()
	client, err := dynamic.NewForConfig(framework.CP.Config)
	require.NoError(t, err)
	disco, err := discovery.NewDiscoveryClientForConfig(framework.CP.Config)
	require.NoError(t, err)
	return &dyn{client: client, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))}
}

// resource is the client of obj's kind, in ns when the kind is namespaced.
func (d *dyn) resource(t *testing.T, gvk schema.GroupVersionKind, ns string) dynamic.ResourceInterface {
	t.Helper()
	m, err := d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		d.mapper.Reset()
		m, err = d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	require.NoError(t, err, "mapping %s", gvk)
	if m.Scope.Name() == meta.RESTScopeNameRoot {
		return d.client.Resource(m.Resource)
	}
	return d.client.Resource(m.Resource).Namespace(ns)
}

// create creates obj in ns (cluster-scoped kinds ignore ns) and returns it as stored.
func (d *dyn) create(t *testing.T, ns string, obj *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	out, err := d.resource(t, obj.GroupVersionKind(), ns).Create(context.Background(), obj, metav1.CreateOptions{})
	require.NoError(t, err, "creating %s %s", obj.GetKind(), obj.GetName())
	return out
}

// deleteAtEnd deletes the object when the test ends, while the operator
// that may hold a finalizer on it still runs (register it after starting
// the operator).
func (d *dyn) deleteAtEnd(t *testing.T, ns string, obj *unstructured.Unstructured) {
	t.Helper()
	r := d.resource(t, obj.GroupVersionKind(), ns)
	name := obj.GetName()
	t.Cleanup(func() { _ = r.Delete(context.Background(), name, metav1.DeleteOptions{}) })
}
