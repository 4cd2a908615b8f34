package profile

import (
	"context"
	"sync"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"
	resourcelisters "k8s.io/client-go/listers/resource/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"muster.dev/muster/pkg/devices"
	"muster.dev/muster/pkg/resources"
)

// deviceView keeps the Dynamic Resource Allocation objects muster counts:
// claims and their templates for what pods take (devices.PodDevices), and
// ResourceSlices, DeviceClasses and allocated claims for what nodes have
// (devices.Inventory). The catalog is rebuilt after a slice or class
// changes, the allocated counts after a claim does; both lazily, when next
// asked.
type deviceView struct {
	ctx       context.Context
	claims    resourcelisters.ResourceClaimLister
	templates resourcelisters.ResourceClaimTemplateLister
	slices    resourcelisters.ResourceSliceLister
	classes   resourcelisters.DeviceClassLister
	pods      corelisters.PodLister
	matcher   *devices.Matcher

	mu           sync.Mutex
	catalog      *devices.Catalog
	inventory    *devices.Inventory
	catalogStale bool
	claimsStale  bool
	// changed is called after a ResourceSlice or DeviceClass changes.
	changed []func()
	// any: the cluster has at least one ResourceSlice; until then nodes
	// carry no devices and nothing is counted.
	any bool
}

// newDeviceView asks kube-scheduler's informer factory for the DRA
// informers (the DynamicResources plugin shares them) and watches them.
func newDeviceView(ctx context.Context, h fwk.Handle) *deviceView {
	f := h.SharedInformerFactory().Resource().V1()
	dv := &deviceView{ctx: ctx, claims: f.ResourceClaims().Lister(), templates: f.ResourceClaimTemplates().Lister(),
		slices: f.ResourceSlices().Lister(), classes: f.DeviceClasses().Lister(), matcher: devices.NewMatcher(),
		pods: h.SharedInformerFactory().Core().V1().Pods().Lister(), catalogStale: true, claimsStale: true}
	stale := func(catalog bool) cache.ResourceEventHandler {
		mark := func(any) {
			dv.mu.Lock()
			dv.claimsStale = true
			if catalog {
				dv.catalogStale = true
			}
			changed := dv.changed
			dv.mu.Unlock()
			if catalog {
				for _, fn := range changed {
					fn()
				}
			}
		}
		return cache.ResourceEventHandlerFuncs{AddFunc: mark, UpdateFunc: func(_, o any) { mark(o) }, DeleteFunc: mark}
	}
	logger := klog.FromContext(ctx)
	for _, w := range []struct {
		inf     cache.SharedIndexInformer
		catalog bool
	}{
		{f.ResourceSlices().Informer(), true},
		{f.DeviceClasses().Informer(), true},
		{f.ResourceClaims().Informer(), false},
	} {
		if _, err := w.inf.AddEventHandler(stale(w.catalog)); err != nil {
			logger.Error(err, "Could not watch DRA objects; devices are not counted on nodes")
		}
	}
	_ = f.ResourceClaimTemplates().Informer() // asked for now: informers asked for after start never sync
	return dv
}

// onCatalogChange calls fn after every change of a ResourceSlice or a
// DeviceClass.
func (dv *deviceView) onCatalogChange(fn func()) {
	dv.mu.Lock()
	defer dv.mu.Unlock()
	dv.changed = append(dv.changed, fn)
}

// released: a claim whose pods are all gone or finished holds its devices
// only until the resource claim controller deallocates it. The allocator
// does not give them before, so the gang fit counts them used; reclaim
// counts them coming free (releasing), as it does an exiting pod's room:
// otherwise it would go after more victims while its victims' claims are
// being given back.
func (dv *deviceView) released(c *resourceapi.ResourceClaim) bool {
	return devices.Released(c, func(ns, name string, uid types.UID) bool {
		p, err := dv.pods.Pods(ns).Get(name)
		return err == nil && p.UID == uid && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed
	})
}

// podChanged: a pod with claims that is gone or finished gives its claims'
// devices back (released).
func (dv *deviceView) podChanged(p *v1.Pod, gone bool) {
	if len(p.Spec.ResourceClaims) == 0 || !gone && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
		return
	}
	dv.mu.Lock()
	dv.claimsStale = true
	dv.mu.Unlock()
}

// Claim implements devices.Claims.
func (dv *deviceView) Claim(ns, name string) *resourceapi.ResourceClaim {
	c, err := dv.claims.ResourceClaims(ns).Get(name)
	if err != nil {
		return nil
	}
	return c
}

// Template implements devices.Claims.
func (dv *deviceView) Template(ns, name string) *resourceapi.ResourceClaimTemplate {
	t, err := dv.templates.ResourceClaimTemplates(ns).Get(name)
	if err != nil {
		return nil
	}
	return t
}

// inventoryNow returns the current inventory, rebuilding what changed.
func (dv *deviceView) inventoryNow() *devices.Inventory {
	dv.mu.Lock()
	defer dv.mu.Unlock()
	if dv.catalogStale {
		slices, err := dv.slices.List(labels.Everything())
		if err != nil {
			return dv.inventory
		}
		dv.any = len(slices) > 0
		classes, _ := dv.classes.List(labels.Everything())
		dv.catalog = devices.NewCatalog(dv.ctx, slices, classes, dv.matcher)
		dv.catalogStale, dv.claimsStale = false, true
		klog.FromContext(dv.ctx).V(4).Info("Device catalog rebuilt", "catalog", dv.catalog.String())
	}
	if dv.claimsStale && dv.any {
		claims, err := dv.claims.List(labels.Everything())
		if err != nil {
			return dv.inventory
		}
		dv.inventory = devices.NewInventory(dv.catalog, claims, dv.released)
		dv.claimsStale = false
	}
	if !dv.any {
		return nil
	}
	return dv.inventory
}

// PodRequest is what a pod counts for in its queue: its effective requests
// (containers, init containers, overhead), one "pods", and the devices its
// ResourceClaims take, as deviceclass/<DeviceClass> amounts.
func (rt *Runtime) PodRequest(p *v1.Pod) resources.Vector {
	v := resources.PodRequest(p)
	if rt.devices != nil && len(p.Spec.ResourceClaims) > 0 {
		v.Add(devices.PodDevices(p, rt.devices))
	}
	return v
}

// NodeUsage is NodeUsage with the node's DRA devices: by class, those it has
// as allocatable and those allocated to claims as used.
func (rt *Runtime) NodeUsage(ni fwk.NodeInfo) (allocatable, used resources.Vector) {
	allocatable, used = NodeUsage(ni)
	if rt.devices == nil || ni.Node() == nil {
		return allocatable, used
	}
	total, taken := rt.devices.inventoryNow().Node(ni.Node().Name)
	allocatable.Add(total)
	used.Add(taken)
	return allocatable, used
}

// releasingOn is what of the node's devices is coming free: allocated to
// claims whose pods are gone.
func (rt *Runtime) releasingOn(node string) resources.Vector {
	if rt.devices == nil {
		return nil
	}
	return rt.devices.inventoryNow().Releasing(node)
}
