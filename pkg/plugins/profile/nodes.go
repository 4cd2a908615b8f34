package profile

import (
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	"muster.dev/muster/pkg/resources"
)

// NodeUsage is a node's allocatable and what its pods (bound and assumed)
// request, as vectors; "pods" counts the pods on it.
func NodeUsage(ni fwk.NodeInfo) (allocatable, used resources.Vector) {
	allocatable = ResourceOf(ni.GetAllocatable())
	used = ResourceOf(ni.GetRequested())
	used[v1.ResourcePods] = int64(len(ni.GetPods()))
	return allocatable, used
}

// ResourceOf converts the framework's resource view to a vector.
func ResourceOf(r fwk.Resource) resources.Vector {
	v := resources.Vector{
		v1.ResourceCPU:              r.GetMilliCPU(),
		v1.ResourceMemory:           r.GetMemory(),
		v1.ResourceEphemeralStorage: r.GetEphemeralStorage(),
		v1.ResourcePods:             int64(r.GetAllowedPodNumber()),
	}
	for name, a := range r.GetScalarResources() {
		v[name] = a
	}
	return v
}
