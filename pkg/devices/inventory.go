package devices

import (
	"context"
	"fmt"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
	dracel "k8s.io/dynamic-resource-allocation/cel"

	"muster.dev/muster/pkg/resources"
)

// ID names one device: driver, pool and device name, as allocation
// results do.
type ID struct{ Driver, Pool, Device string }

// Catalog is every device a node can be given, with the DeviceClasses it
// belongs to: what the ResourceSlices of the newest generation of each pool
// publish for single nodes (spec.nodeName, or a device's own nodeName).
// Devices reachable from many nodes (nodeSelector, allNodes) are left out:
// they belong to no one node, so a node-by-node fit cannot count them.
// Devices with a NoSchedule or NoExecute taint are left out too: the
// allocator gives them only to claims that tolerate the taint.
type Catalog struct {
	devices map[ID]device
	total   map[string]resources.Vector // node -> deviceclass/<class> -> devices
}

type device struct {
	node    string
	classes []string
}

// Matcher tells whether a device belongs to a DeviceClass, by the class's
// CEL selectors (all must match), compiling each expression once.
type Matcher struct {
	cache *dracel.Cache
}

// NewMatcher returns a Matcher.
func NewMatcher() *Matcher {
	return &Matcher{cache: dracel.NewCache(256, dracel.Features{EnableConsumableCapacity: true, EnableListTypeAttributes: true})}
}

// Matches reports whether the device of driver belongs to class. A selector
// that does not compile or fails on the device does not match, as for the
// allocator.
func (m *Matcher) Matches(ctx context.Context, class *resourceapi.DeviceClass, driver string, d *resourceapi.Device) bool {
	for _, sel := range class.Spec.Selectors {
		if sel.CEL == nil {
			continue
		}
		res := m.cache.GetOrCompile(sel.CEL.Expression)
		if res.Error != nil {
			return false
		}
		ok, _, err := res.DeviceMatches(ctx, dracel.Device{Driver: driver, Attributes: d.Attributes, Capacity: d.Capacity,
			AllowMultipleAllocations: d.AllowMultipleAllocations})
		if err != nil || !ok {
			return false
		}
	}
	return true
}

// NewCatalog builds the catalog from every ResourceSlice and DeviceClass.
func NewCatalog(ctx context.Context, slices []*resourceapi.ResourceSlice, classes []*resourceapi.DeviceClass, m *Matcher) *Catalog {
	newest := map[[2]string]int64{}
	for _, s := range slices {
		k := [2]string{s.Spec.Driver, s.Spec.Pool.Name}
		if g, ok := newest[k]; !ok || s.Spec.Pool.Generation > g {
			newest[k] = s.Spec.Pool.Generation
		}
	}
	c := &Catalog{devices: map[ID]device{}, total: map[string]resources.Vector{}}
	for _, s := range slices {
		if s.Spec.Pool.Generation != newest[[2]string{s.Spec.Driver, s.Spec.Pool.Name}] {
			continue
		}
		for i := range s.Spec.Devices {
			d := &s.Spec.Devices[i]
			node := deviceNode(s, d)
			if node == "" || tainted(d) {
				continue
			}
			var in []string
			for _, class := range classes {
				if m.Matches(ctx, class, s.Spec.Driver, d) {
					in = append(in, class.Name)
				}
			}
			if len(in) == 0 {
				continue
			}
			c.devices[ID{s.Spec.Driver, s.Spec.Pool.Name, d.Name}] = device{node: node, classes: in}
			t := c.total[node]
			if t == nil {
				t = resources.Vector{}
				c.total[node] = t
			}
			for _, class := range in {
				t[ResourceName(class)]++
			}
		}
	}
	return c
}

func deviceNode(s *resourceapi.ResourceSlice, d *resourceapi.Device) string {
	switch {
	case s.Spec.NodeName != nil:
		return *s.Spec.NodeName
	case s.Spec.PerDeviceNodeSelection != nil && *s.Spec.PerDeviceNodeSelection && d.NodeName != nil:
		return *d.NodeName
	}
	return ""
}

func tainted(d *resourceapi.Device) bool {
	for _, t := range d.Taints {
		if t.Effect == resourceapi.DeviceTaintEffectNoSchedule || t.Effect == resourceapi.DeviceTaintEffectNoExecute {
			return true
		}
	}
	return false
}

// Released reports whether an allocated claim's devices are as good as
// free: it was reserved for pods only, and none of them is live (exists
// with that UID and has not finished); live tells. A claim reserved for
// nothing (allocated ahead of use) or for another kind of consumer keeps
// its devices.
func Released(claim *resourceapi.ResourceClaim, live func(namespace, name string, uid types.UID) bool) bool {
	if len(claim.Status.ReservedFor) == 0 {
		return false
	}
	for _, r := range claim.Status.ReservedFor {
		if r.APIGroup != "" || r.Resource != "pods" || live(claim.Namespace, r.Name, r.UID) {
			return false
		}
	}
	return true
}

// Inventory is, per node, how many devices of each class it has and how
// many of those are allocated to claims.
type Inventory struct {
	total     map[string]resources.Vector
	used      map[string]resources.Vector
	releasing map[string]resources.Vector
}

// NewInventory counts the catalog's devices that claims hold (a device
// given to several claims, as devices with allowMultipleAllocations can be,
// counts once). released, when set, names claims whose devices are coming
// free: every pod they were reserved for is gone, and the resource claim
// controller is about to deallocate them. Their devices count as used (the
// allocator will not give them before that) and as releasing.
func NewInventory(c *Catalog, claims []*resourceapi.ResourceClaim, released func(*resourceapi.ResourceClaim) bool) *Inventory {
	inv := &Inventory{total: c.total, used: map[string]resources.Vector{}, releasing: map[string]resources.Vector{}}
	seen := map[ID]bool{}
	for _, claim := range claims {
		if claim.Status.Allocation == nil {
			continue
		}
		goingFree := released != nil && released(claim)
		for _, r := range claim.Status.Allocation.Devices.Results {
			id := ID{r.Driver, r.Pool, r.Device}
			d, ok := c.devices[id]
			if !ok || seen[id] || r.AdminAccess != nil && *r.AdminAccess {
				continue
			}
			seen[id] = true
			countOn(inv.used, d)
			if goingFree {
				countOn(inv.releasing, d)
			}
		}
	}
	return inv
}

func countOn(m map[string]resources.Vector, d device) {
	u := m[d.node]
	if u == nil {
		u = resources.Vector{}
		m[d.node] = u
	}
	for _, class := range d.classes {
		u[ResourceName(class)]++
	}
}

// Releasing returns the node's allocated devices, by class, whose claims
// are coming free (see NewInventory); nil when none. Shared: callers must
// not change it.
func (inv *Inventory) Releasing(name string) resources.Vector {
	if inv == nil {
		return nil
	}
	return inv.releasing[name]
}

// Node returns the node's devices by class and those allocated (nil when it
// has none). The vectors are shared: callers must not change them.
func (inv *Inventory) Node(name string) (total, used resources.Vector) {
	if inv == nil {
		return nil, nil
	}
	return inv.total[name], inv.used[name]
}

// Total returns every node's devices by class, added up.
func (inv *Inventory) Total() resources.Vector {
	out := resources.Vector{}
	if inv == nil {
		return out
	}
	for _, t := range inv.total {
		out.Add(t)
	}
	return out
}

// Devices is the number of devices the catalog holds, for logs.
func (c *Catalog) Devices() int { return len(c.devices) }

// String summarises the catalog, for logs.
func (c *Catalog) String() string {
	return fmt.Sprintf("%d devices on %d nodes", len(c.devices), len(c.total))
}
