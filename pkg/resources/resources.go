// Package resources holds resource vectors: amounts of any resource name
// (cpu in millicores, everything else in its base unit), with the arithmetic
// quotas and fair share need. Pure Go: no client-go.
package resources

import (
	"fmt"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
)

// Vector maps resource names to amounts: cpu in millicores, all other
// resources in their base unit (bytes, devices, pods). A resource absent from
// a Vector is zero; as a limit, absent means "no limit".
type Vector map[v1.ResourceName]int64

// DeviceClassPrefix starts the resource names that count Dynamic Resource
// Allocation devices by DeviceClass: deviceclass/<DeviceClass name>.
const DeviceClassPrefix = "deviceclass/"

// DeviceClassName is the resource that counts the devices of a DeviceClass.
func DeviceClassName(class string) v1.ResourceName { return v1.ResourceName(DeviceClassPrefix + class) }

// FromQuantity converts a quantity of the named resource to its amount.
func FromQuantity(name v1.ResourceName, q resource.Quantity) int64 {
	if name == v1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

// ToQuantity converts an amount of the named resource back to a quantity.
func ToQuantity(name v1.ResourceName, amount int64) resource.Quantity {
	switch {
	case name == v1.ResourceCPU:
		return *resource.NewMilliQuantity(amount, resource.DecimalSI)
	case name == v1.ResourceMemory || name == v1.ResourceEphemeralStorage || strings.HasPrefix(string(name), v1.ResourceHugePagesPrefix):
		return *resource.NewQuantity(amount, resource.BinarySI)
	default:
		return *resource.NewQuantity(amount, resource.DecimalSI)
	}
}

// FromList converts a ResourceList.
func FromList(l v1.ResourceList) Vector {
	v := make(Vector, len(l))
	for name, q := range l {
		v[name] = FromQuantity(name, q)
	}
	return v
}

// Clone returns a copy.
func (v Vector) Clone() Vector {
	out := make(Vector, len(v))
	for k, a := range v {
		out[k] = a
	}
	return out
}

// Add adds o to v in place (v must not be nil).
func (v Vector) Add(o Vector) {
	for k, a := range o {
		v[k] += a
	}
}

// Sub subtracts o from v in place, dropping resources that reach zero.
func (v Vector) Sub(o Vector) {
	for k, a := range o {
		if n := v[k] - a; n != 0 {
			v[k] = n
		} else {
			delete(v, k)
		}
	}
}

// Plus returns v + o.
func (v Vector) Plus(o Vector) Vector {
	out := v.Clone()
	out.Add(o)
	return out
}

// Equal reports whether v and o hold the same amounts (absent is zero).
func (v Vector) Equal(o Vector) bool {
	for r, a := range v {
		if o[r] != a {
			return false
		}
	}
	for r, a := range o {
		if v[r] != a {
			return false
		}
	}
	return true
}

// IsZero reports whether every amount is zero.
func (v Vector) IsZero() bool {
	for _, a := range v {
		if a != 0 {
			return false
		}
	}
	return true
}

// Names returns the resource names in v, sorted.
func (v Vector) Names() []v1.ResourceName {
	names := make([]v1.ResourceName, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// Covers reports whether v holds at least req of every resource req names
// (negative requests count as zero; a resource absent from v is zero).
func (v Vector) Covers(req Vector) bool {
	for r, a := range req {
		if a > 0 && v[r] < a {
			return false
		}
	}
	return true
}

// Exceeds returns the first resource (in name order) for which v is above
// limit; limit's absent resources are unlimited. ok is false when v fits.
func (v Vector) Exceeds(limit Vector) (name v1.ResourceName, ok bool) {
	for _, k := range limit.Names() {
		if v[k] > limit[k] {
			return k, true
		}
	}
	return "", false
}

// MinLimit returns, per resource present in both, the smaller amount; a resource
// present in only one is kept as it is there (absent = unlimited).
func MinLimit(a, b Vector) Vector {
	if a == nil {
		return b.Clone()
	}
	out := a.Clone()
	for k, bv := range b {
		if av, ok := out[k]; !ok || bv < av {
			out[k] = bv
		}
	}
	return out
}

// Format renders an amount of a resource as a Kubernetes quantity.
func Format(name v1.ResourceName, amount int64) string {
	q := ToQuantity(name, amount)
	return q.String()
}

// String renders v as "cpu=4, memory=16Gi", sorted by name.
func (v Vector) String() string {
	parts := make([]string, 0, len(v))
	for _, k := range v.Names() {
		parts = append(parts, fmt.Sprintf("%s=%s", k, Format(k, v[k])))
	}
	return strings.Join(parts, ", ")
}

// Quantities renders v as resource name -> quantity string, for status output.
func (v Vector) Quantities() map[string]string {
	out := make(map[string]string, len(v))
	for k, a := range v {
		out[string(k)] = Format(k, a)
	}
	return out
}

// PodRequest is what a pod counts for in its queue: its effective requests
// (containers, init containers, overhead) plus one "pods".
func PodRequest(p *v1.Pod) Vector {
	v := FromList(resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{}))
	v[v1.ResourcePods] = 1
	return v
}
