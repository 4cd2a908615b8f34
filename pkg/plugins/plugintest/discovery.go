package plugintest

import (
	"context"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
)

// servingClientset is the fake clientset as the plugins see it: its
// discovery can serve more resources while they run (Env.Serve), as the
// apiserver does when a CRD is installed. The fake's own list of served
// resources is read without its lock, so it cannot be changed then.
type servingClientset struct {
	*fake.Clientset
	discovery *servingDiscovery
}

var _ kubernetes.Interface = &servingClientset{}

func newServingClientset(cs *fake.Clientset) *servingClientset {
	return &servingClientset{Clientset: cs, discovery: &servingDiscovery{FakeDiscovery: cs.Discovery().(*fakediscovery.FakeDiscovery)}}
}

// Discovery implements kubernetes.Interface.
func (c *servingClientset) Discovery() discovery.DiscoveryInterfaces { return c.discovery }

// servingDiscovery is the fake discovery plus the resources served later.
type servingDiscovery struct {
	*fakediscovery.FakeDiscovery
	mu    sync.RWMutex
	added []*metav1.APIResourceList
}

// ServerResourcesForGroupVersion implements discovery.DiscoveryInterface.
func (d *servingDiscovery) ServerResourcesForGroupVersion(groupVersion string) (*metav1.APIResourceList, error) {
	return d.ServerResourcesForGroupVersionWithContext(context.Background(), groupVersion)
}

// ServerResourcesForGroupVersionWithContext implements discovery.DiscoveryInterface.
func (d *servingDiscovery) ServerResourcesForGroupVersionWithContext(ctx context.Context, groupVersion string) (*metav1.APIResourceList, error) {
	d.mu.RLock()
	for _, l := range d.added {
		if l.GroupVersion == groupVersion {
			d.mu.RUnlock()
			return l, nil
		}
	}
	d.mu.RUnlock()
	return d.FakeDiscovery.ServerResourcesForGroupVersionWithContext(ctx, groupVersion)
}

// Serve makes the fake apiserver's discovery list more resources from now
// on, as it does when a CRD is installed.
func (e *Env) Serve(lists ...*metav1.APIResourceList) {
	d := e.clientset.discovery
	d.mu.Lock()
	defer d.mu.Unlock()
	d.added = append(d.added, lists...)
}
