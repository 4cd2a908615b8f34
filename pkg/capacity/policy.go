package capacity

import (
	"fmt"
	"strings"
)

// Policy is where a pod may or would rather run (annotation
// muster.dev/capacity-policy, or its queue's capacityPolicy).
type Policy string

// Policies. require-* filter nodes, prefer-* score them.
const (
	RequireSpot     Policy = "require-spot"
	PreferSpot      Policy = "prefer-spot"
	PreferOnDemand  Policy = "prefer-on-demand"
	RequireOnDemand Policy = "require-on-demand"
	Any             Policy = "any"
)

// Policies lists every policy, in the order the documentation gives them.
var Policies = []Policy{RequireSpot, PreferSpot, PreferOnDemand, RequireOnDemand, Any}

// ParsePolicy returns the policy s names, or an error that lists the valid ones.
func ParsePolicy(s string) (Policy, error) {
	for _, p := range Policies {
		if string(p) == s {
			return p, nil
		}
	}
	names := make([]string, len(Policies))
	for i, p := range Policies {
		names[i] = string(p)
	}
	return "", fmt.Errorf("%q is not a capacity policy; use one of %s", s, strings.Join(names, ", "))
}
