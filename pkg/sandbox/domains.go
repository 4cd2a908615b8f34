package sandbox

import (
	"fmt"
	"sort"
	"strings"
)

// GangDomains is where a training gang's workers ran: the racks and blocks
// of the nodes they were bound to.
type GangDomains struct {
	Gang string `json:"gang"`
	// Placement is what the training asked for: its topology constraint
	// and DRA GPUs per worker.
	Placement string `json:"placement"`
	// Workers counts the workers ever bound.
	Workers int      `json:"workersBound"`
	Racks   []string `json:"racks"`
	Blocks  []string `json:"blocks"`
}

// placement describes a training's topology constraint and DRA GPUs;
// empty when it has neither.
func (t *Training) placement() string {
	var parts []string
	switch {
	case t.TopologyRequired != "":
		parts = append(parts, "required "+shortKeys(t.TopologyRequired))
	case t.TopologyPreferred != "":
		parts = append(parts, "preferred "+shortKeys(t.TopologyPreferred))
	}
	if t.Devices > 0 {
		parts = append(parts, fmt.Sprintf("%d DRA GPU/worker", t.Devices))
	}
	return strings.Join(parts, ", ")
}

// shortKeys drops the sandbox's label prefix: "block,rack".
func shortKeys(keys string) string {
	return strings.ReplaceAll(keys, "sandbox.muster.dev/", "")
}

// domainsLocked lists, for every training with a placement, the racks and
// blocks its workers were bound in. o.mu is held.
func (o *observer) domainsLocked() []GangDomains {
	var out []GangDomains
	for _, g := range o.gangs {
		if g.placement == "" {
			continue
		}
		d := GangDomains{Gang: g.key, Placement: g.placement}
		racks, blocks := map[string]bool{}, map[string]bool{}
		for _, p := range o.pods {
			if p.app != g.key || p.bound.IsZero() {
				continue
			}
			d.Workers++
			racks[p.rack], blocks[p.block] = true, true
		}
		d.Racks, d.Blocks = domainNames(racks), domainNames(blocks)
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Gang < out[j].Gang })
	return out
}

func domainNames(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k == "" {
			k = "(none)"
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// domainsOf renders one gang's domains in a report: "1 / 1 (8 bound)".
func domainsOf(r Report, gang string) string {
	for _, d := range r.Domains {
		if d.Gang != gang {
			continue
		}
		if d.Workers == 0 {
			return "never bound"
		}
		return fmt.Sprintf("%d / %d (%d bound)", len(d.Racks), len(d.Blocks), d.Workers)
	}
	return "-"
}
