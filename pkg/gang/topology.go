package gang

import (
	"fmt"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"muster.dev/muster/pkg/capacity"
)

// Annotations that keep a gang's members in one domain of a node label (a
// zone, a rack, an NVLink block), on a PodGroup, the pods of an annotation
// gang, or a Spark driver. The value is one label key, or several
// comma-separated from the widest to the narrowest domain: the narrowest
// domain that fits the whole gang wins.
const (
	AnnotationTopologyRequired  = "muster.dev/topology-required"
	AnnotationTopologyPreferred = "muster.dev/topology-preferred"
)

// Topology is a gang's topology constraint: all its members in one domain
// of a node label. Keys run from the widest domain to the narrowest; with
// Required, a gang that fits in no domain of the widest key waits; else it
// is spread over domains when no single one fits.
type Topology struct {
	Keys     []string
	Required bool
}

// IsZero reports whether the gang has no topology constraint.
func (t Topology) IsZero() bool { return len(t.Keys) == 0 }

// String renders the constraint as its annotation would.
func (t Topology) String() string {
	if t.IsZero() {
		return ""
	}
	kind := "preferred"
	if t.Required {
		kind = "required"
	}
	return kind + " " + strings.Join(t.Keys, ",")
}

// ParseTopology reads the topology annotations; both at once, an empty
// key or a key that is not a label key is an error naming the annotation.
func ParseTopology(annotations map[string]string) (Topology, error) {
	req, hasReq := annotations[AnnotationTopologyRequired]
	pref, hasPref := annotations[AnnotationTopologyPreferred]
	switch {
	case hasReq && hasPref:
		return Topology{}, fmt.Errorf("annotations %s and %s: set one, not both", AnnotationTopologyRequired, AnnotationTopologyPreferred)
	case hasReq:
		keys, err := topologyKeys(AnnotationTopologyRequired, req)
		return Topology{Keys: keys, Required: true}, err
	case hasPref:
		keys, err := topologyKeys(AnnotationTopologyPreferred, pref)
		return Topology{Keys: keys}, err
	}
	return Topology{}, nil
}

func topologyKeys(annotation, value string) ([]string, error) {
	var keys []string
	for _, k := range strings.Split(value, ",") {
		k = strings.TrimSpace(k)
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, fmt.Errorf("annotation %s=%q: %q is not a node label key: %s", annotation, value, k, strings.Join(errs, "; "))
		}
		if slices.Contains(keys, k) {
			return nil, fmt.Errorf("annotation %s=%q: key %q appears twice", annotation, value, k)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// Domain is where a topology plan put the gang: the label key and value of
// its domain, empty when it spread (a preferred constraint no domain fits).
type Domain struct {
	Key, Value string
}

// PlanInTopology places the gang as PlanWithPolicies does, inside one domain
// of its topology: the narrowest key first, and among that key's domains
// the one with the least free room that fits (the others stay whole for
// larger gangs). A required constraint that no domain of any key fits is a
// shortfall that says how close the best domain came; a preferred one
// falls back to the whole cluster. labels gives each node's labels (same
// index as nodes).
func PlanInTopology(nodes []Node, members []Member, base func(class, node int) bool,
	views []capacity.NodeView, policies []capacity.Policy, labels []map[string]string, topo Topology) (Plan, Domain, *Shortfall) {
	if topo.IsZero() {
		plan, short := PlanWithPolicies(nodes, members, base, views, policies)
		return plan, Domain{}, short
	}
	var best *Shortfall
	bestDomain := Domain{}
	for level := len(topo.Keys) - 1; level >= 0; level-- {
		key := topo.Keys[level]
		for _, d := range domainsOf(nodes, labels, key) {
			sub, subViews := make([]Node, len(d.nodes)), make([]capacity.NodeView, len(d.nodes))
			for i, n := range d.nodes {
				sub[i], subViews[i] = nodes[n], views[n]
			}
			subBase := func(class, node int) bool { return base == nil || base(class, d.nodes[node]) }
			plan, short := PlanWithPolicies(sub, members, subBase, subViews, policies)
			if short == nil {
				for i, n := range plan.Node {
					plan.Node[i] = d.nodes[n]
				}
				return plan, Domain{Key: key, Value: d.value}, nil
			}
			if level == 0 && (best == nil || short.Placed > best.Placed) {
				best, bestDomain = short, Domain{Key: key, Value: d.value}
			}
		}
	}
	if !topo.Required {
		plan, short := PlanWithPolicies(nodes, members, base, views, policies)
		return plan, Domain{}, short
	}
	widest := topo.Keys[0]
	short := &Shortfall{Needed: len(members), Kind: Capacity}
	if best == nil {
		short.Kind = NoEligibleNode
		short.Reason = fmt.Sprintf("no node has the label %s that the gang's topology constraint requires", widest)
		return Plan{}, Domain{}, short
	}
	short.Placed = best.Placed
	short.Reason = fmt.Sprintf("no %s has room for all %d members (topology %s); the best, %s=%s, has room for %d",
		widest, len(members), topo, widest, bestDomain.Value, best.Placed)
	if best.Kind == NoEligibleNode {
		short.Kind = NoEligibleNode
	}
	return Plan{}, Domain{}, short
}

type domain struct {
	value string
	nodes []int
	free  int64 // milli-CPU free, to try the tightest domains first
}

// domainsOf groups the nodes by their value of key (nodes without it are in
// no domain), tightest first.
func domainsOf(nodes []Node, labels []map[string]string, key string) []domain {
	byValue := map[string]*domain{}
	var out []*domain
	for i := range nodes {
		v, ok := labels[i][key]
		if !ok {
			continue
		}
		d := byValue[v]
		if d == nil {
			d = &domain{value: v}
			byValue[v] = d
			out = append(out, d)
		}
		d.nodes = append(d.nodes, i)
		d.free += max(nodes[i].Free[v1.ResourceCPU], 0)
	}
	slices.SortFunc(out, func(a, b *domain) int {
		if a.free != b.free {
			return int(min(max(a.free-b.free, -1), 1))
		}
		return strings.Compare(a.value, b.value)
	})
	res := make([]domain, len(out))
	for i, d := range out {
		res[i] = *d
	}
	return res
}

// DomainNodes lists the domains of the topology's keys as node indexes, in
// the order PlanInTopology tries them: the narrowest key first, the
// tightest domains first.
func DomainNodes(nodes []Node, labels []map[string]string, topo Topology) [][]int {
	var out [][]int
	for level := len(topo.Keys) - 1; level >= 0; level-- {
		for _, d := range domainsOf(nodes, labels, topo.Keys[level]) {
			out = append(out, d.nodes)
		}
	}
	return out
}
