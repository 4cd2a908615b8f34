// Package capacity holds muster's pure placement logic for spot and
// on-demand capacity (docs/reference.md): what kind of capacity a node is, which
// spot pool it belongs to, whether it is being taken away, a pod's placement
// policy, the spread rule for a gang's spot members, and the node score that
// combines them. Core API types are plain data here; no client-go.
package capacity

import "strings"

// Type is a node's capacity type.
type Type string

// Capacity types.
const (
	Spot     Type = "spot"
	OnDemand Type = "on-demand"
)

// Labels that say what capacity a node is, in the order muster consults them.
const (
	LabelMuster         = "muster.dev/capacity-type"
	LabelKarpenter      = "karpenter.sh/capacity-type"
	LabelEKS            = "eks.amazonaws.com/capacityType"
	LabelGKESpot        = "cloud.google.com/gke-spot"
	LabelGKEPreemptible = "cloud.google.com/gke-preemptible"
	LabelAKSPriority    = "kubernetes.azure.com/scalesetpriority"
)

// scheme is one capacity-type label and the value that means spot.
type scheme struct {
	label, spot string
}

// schemes in the order they are consulted (docs/reference.md, "Node labels and taints").
var schemes = []scheme{
	{LabelMuster, "spot"},
	{LabelKarpenter, "spot"},
	{LabelEKS, "SPOT"},
	{LabelGKESpot, "true"},
	{LabelGKEPreemptible, "true"},
	{LabelAKSPriority, "spot"},
}

// TypeOf returns the capacity type of a node from its labels. The first of
// the known labels that is present decides: spot when it carries its
// scheme's spot value, on-demand otherwise (karpenter's "reserved", EKS's
// "ON_DEMAND", AKS's "regular", ...). A node with none of them is on-demand.
func TypeOf(labels map[string]string) Type {
	for _, s := range schemes {
		if v, ok := labels[s.label]; ok {
			if strings.TrimSpace(v) == s.spot {
				return Spot
			}
			return OnDemand
		}
	}
	return OnDemand
}
