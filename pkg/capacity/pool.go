package capacity

import v1 "k8s.io/api/core/v1"

// unknown stands for a pool part a node does not label.
const unknown = "unknown"

// PoolOf returns a node's spot pool, "<instance type>/<zone>", from its
// labels. A spot pool is what one interruption tends to take at once: the
// provider reclaims capacity of one instance type in one zone. Only spot
// nodes are spread over pools; an on-demand node's pool means nothing.
//
// The stable labels win over the deprecated beta ones, which older nodes (and
// some providers) still carry alone. A missing or empty part reads "unknown",
// so unlabelled nodes share one pool rather than each counting as its own:
// muster cannot tell them apart, so it must not pretend they spread a gang.
func PoolOf(labels map[string]string) string {
	return first(labels, v1.LabelInstanceTypeStable, v1.LabelInstanceType) + "/" +
		first(labels, v1.LabelTopologyZone, v1.LabelFailureDomainBetaZone)
}

// first returns the first non-empty value among keys, or unknown.
func first(labels map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return unknown
}
