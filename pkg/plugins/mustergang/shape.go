package mustergang

import (
	"encoding/json"
	"hash/fnv"
	"strconv"

	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/profile"
)

// shapeOf renders what a pod asks of a node, as far as a gang's plan reads
// it: its capacity policy and the constraints eligibility checks (node
// selector, required node affinity, tolerations). Members of one shape are
// interchangeable; a gang of unlike members (a Ray head and its workers, a
// launcher and its workers) is planned member by member, and each member
// claims a slot planned for its shape.
func (pl *Plugin) shapeOf(p *v1.Pod) string {
	pol, _, err := pl.rt.PolicyOf(p)
	if err != nil {
		pol = "invalid"
	}
	var required *v1.NodeSelector
	if a := p.Spec.Affinity; a != nil && a.NodeAffinity != nil {
		required = a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	}
	if len(p.Spec.NodeSelector) == 0 && required == nil && len(p.Spec.Tolerations) == 0 {
		return string(pol)
	}
	b, err := json.Marshal(struct {
		S map[string]string `json:"s,omitempty"`
		A *v1.NodeSelector  `json:"a,omitempty"`
		T []v1.Toleration   `json:"t,omitempty"`
	}{p.Spec.NodeSelector, required, p.Spec.Tolerations})
	if err != nil { // these types always marshal
		return string(pol)
	}
	h := fnv.New64a()
	_, _ = h.Write(b)
	return string(pol) + "/" + strconv.FormatUint(h.Sum64(), 36)
}

// memberPod is a member pod as the registry records it.
func (pl *Plugin) memberPod(p *v1.Pod) gang.Pod {
	var gates []string
	for _, g := range p.Spec.SchedulingGates {
		gates = append(gates, g.Name)
	}
	return gang.Pod{Key: profile.Key(p), Name: p.Name, Request: pl.rt.PodRequest(p), Created: p.CreationTimestamp.Time,
		Bound: p.Spec.NodeName != "", Gates: gates, Shape: pl.shapeOf(p), Lead: capacity.RoleOf(p.Labels) == capacity.RoleDriver}
}
