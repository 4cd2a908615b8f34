// Package devices counts Dynamic Resource Allocation (DRA) devices for
// muster's queue quotas and gang fit: what a pod's ResourceClaims take, by
// DeviceClass, and how many devices of each class every node has and has
// free, from ResourceSlices and allocated claims. Amounts are resources
// named deviceclass/<DeviceClass name>, so quotas, fair share, the gang
// planner and reclaim treat them as any other resource. Pure Go over the
// resource.k8s.io/v1 objects: no client-go.
package devices

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"

	"muster.dev/muster/pkg/resources"
)

// Prefix starts the resource names that count devices by DeviceClass.
const Prefix = resources.DeviceClassPrefix

// ResourceName is the resource that counts the devices of a DeviceClass.
func ResourceName(class string) v1.ResourceName { return resources.DeviceClassName(class) }

// ClassOf returns the DeviceClass a deviceclass/<name> resource counts.
func ClassOf(name v1.ResourceName) (string, bool) {
	return strings.CutPrefix(string(name), Prefix)
}

// Claims finds the ResourceClaims and ResourceClaimTemplates pods name.
// A nil result means not found.
type Claims interface {
	Claim(namespace, name string) *resourceapi.ResourceClaim
	Template(namespace, name string) *resourceapi.ResourceClaimTemplate
}

// PodDevices returns the devices the pod's ResourceClaims take, as
// deviceclass/<class> amounts (nil when it has none):
//   - a claim that is allocated counts the devices it was given, by the
//     class of the request each came from;
//   - a claim not allocated yet counts what it asks for: an exact request
//     its count (one for allocationMode All, which takes at least one), a
//     request with alternatives (firstAvailable) its first, preferred one;
//   - a claim from a template that the resource claim controller has not
//     created yet counts the template's requests.
//
// Requests with adminAccess take no device away from others and count
// nothing. A claim several pods share counts in full for each of them.
func PodDevices(p *v1.Pod, c Claims) resources.Vector {
	if len(p.Spec.ResourceClaims) == 0 || c == nil {
		return nil
	}
	var out resources.Vector
	add := func(class string, n int64) {
		if class == "" || n <= 0 {
			return
		}
		if out == nil {
			out = resources.Vector{}
		}
		out[ResourceName(class)] += n
	}
	for _, pc := range p.Spec.ResourceClaims {
		spec, claim := claimSpec(p, pc, c)
		if spec == nil {
			continue
		}
		if claim != nil && claim.Status.Allocation != nil {
			for _, r := range claim.Status.Allocation.Devices.Results {
				if r.AdminAccess != nil && *r.AdminAccess {
					continue
				}
				add(requestClass(spec, r.Request), 1)
			}
			continue
		}
		for _, req := range spec.Devices.Requests {
			class, n := requested(req)
			add(class, n)
		}
	}
	return out
}

// claimSpec returns the spec of the claim behind one of the pod's claim
// entries, and the claim when it exists.
func claimSpec(p *v1.Pod, pc v1.PodResourceClaim, c Claims) (*resourceapi.ResourceClaimSpec, *resourceapi.ResourceClaim) {
	name := ""
	switch {
	case pc.ResourceClaimName != nil:
		name = *pc.ResourceClaimName
	case pc.ResourceClaimTemplateName != nil:
		for _, st := range p.Status.ResourceClaimStatuses {
			if st.Name == pc.Name && st.ResourceClaimName != nil {
				name = *st.ResourceClaimName
			}
		}
	}
	if name != "" {
		if claim := c.Claim(p.Namespace, name); claim != nil {
			return &claim.Spec, claim
		}
		if pc.ResourceClaimName != nil {
			return nil, nil
		}
	}
	if pc.ResourceClaimTemplateName != nil {
		if t := c.Template(p.Namespace, *pc.ResourceClaimTemplateName); t != nil {
			return &t.Spec.Spec, nil
		}
	}
	return nil, nil
}

// requested is the class and number of devices a request asks for before
// allocation.
func requested(req resourceapi.DeviceRequest) (string, int64) {
	switch {
	case req.Exactly != nil:
		if req.Exactly.AdminAccess != nil && *req.Exactly.AdminAccess {
			return "", 0
		}
		return req.Exactly.DeviceClassName, count(req.Exactly.AllocationMode, req.Exactly.Count)
	case len(req.FirstAvailable) > 0:
		sub := req.FirstAvailable[0]
		return sub.DeviceClassName, count(sub.AllocationMode, sub.Count)
	}
	return "", 0
}

func count(mode resourceapi.DeviceAllocationMode, n int64) int64 {
	if mode == resourceapi.DeviceAllocationModeAll || n <= 0 {
		return 1
	}
	return n
}

// requestClass is the DeviceClass of the request an allocation result names:
// "gpu", or "gpu/large" for the alternative of a firstAvailable request.
func requestClass(spec *resourceapi.ResourceClaimSpec, request string) string {
	main, sub, _ := strings.Cut(request, "/")
	for _, req := range spec.Devices.Requests {
		if req.Name != main {
			continue
		}
		if req.Exactly != nil {
			return req.Exactly.DeviceClassName
		}
		for _, s := range req.FirstAvailable {
			if s.Name == sub {
				return s.DeviceClassName
			}
		}
	}
	return ""
}
