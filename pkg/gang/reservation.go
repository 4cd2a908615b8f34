package gang

import (
	"slices"
	"sort"
	"time"

	"muster.dev/muster/pkg/resources"
)

// This file holds what happens to reserved slots after their gang's
// admission: slots moved off a node that is being taken away, and a Spark
// driver's executor reservation rebuilt after a restart.

// Displace takes every free slot off node (a node given an interruption
// notice, or deleted): the slots no longer hold room there, but their
// gangs keep them, displaced, until they are placed again on other nodes
// (Replace) or given up (DropDisplaced). It returns the gangs that had
// slots there, sorted.
func (r *Registry) Displace(node string) []Ref {
	r.mu.Lock()
	defer r.mu.Unlock()
	byGang := r.reserved[node]
	if len(byGang) == 0 {
		return nil
	}
	refs := make([]Ref, 0, len(byGang))
	for ref := range byGang {
		refs = append(refs, ref)
	}
	sortRefs(refs)
	for _, ref := range refs {
		g := r.gangs[ref]
		if g == nil {
			delete(byGang, ref)
			continue
		}
		for i := len(g.slots) - 1; i >= 0; i-- {
			if g.slots[i].node == node {
				g.displaced = append(g.displaced, g.slots[i].request)
				r.removeSlot(g, i)
			}
		}
	}
	delete(r.reserved, node)
	return refs
}

// HasSlotsOn reports whether any gang holds a free slot on node.
func (r *Registry) HasSlotsOn(node string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reserved[node]) > 0
}

// NodesWithSlots returns the nodes where some gang holds a free slot, sorted.
func (r *Registry) NodesWithSlots() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.reserved))
	for node, byGang := range r.reserved {
		if len(byGang) > 0 {
			out = append(out, node)
		}
	}
	slices.Sort(out)
	return out
}

// Displaced returns the gangs holding displaced slots, sorted, and whether
// there are any (a fast path for every scheduling cycle).
func (r *Registry) Displaced() []Ref {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Ref
	for ref, g := range r.gangs {
		if len(g.displaced) > 0 {
			out = append(out, ref)
		}
	}
	sortRefs(out)
	return out
}

// DisplacedSlots returns the requests of the gang's displaced slots.
func (r *Registry) DisplacedSlots(ref Ref) []resources.Vector {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.gangs[ref]
	if g == nil {
		return nil
	}
	out := make([]resources.Vector, len(g.displaced))
	for i, v := range g.displaced {
		out[i] = v.Clone()
	}
	return out
}

// Replace puts the gang's displaced slots on nodes, one node per slot in
// the order DisplacedSlots returned them. It refuses (false) when the gang
// no longer holds that many displaced slots (a member took one meanwhile,
// or the gang was released): the caller plans again.
func (r *Registry) Replace(ref Ref, nodes []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.gangs[ref]
	if g == nil || len(g.displaced) != len(nodes) || len(nodes) == 0 {
		return false
	}
	for i, n := range nodes {
		r.addSlot(g, slot{node: n, request: g.displaced[i]})
	}
	g.displaced = nil
	return true
}

// DropDisplaced gives up the gang's displaced slots (no other node has room
// for them) and returns what they held, for the caller to free in the queue.
func (r *Registry) DropDisplaced(ref Ref) resources.Vector {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.gangs[ref]
	if g == nil {
		return nil
	}
	total := resources.Vector{}
	for _, v := range g.displaced {
		total.Add(v)
	}
	g.displaced = nil
	return total
}

// ExecutorsToRestore says how many executor slots a Spark driver's
// reservation must be rebuilt with after a restart, from the gang's state
// and the time its driver was bound (when the reservation was made): 0 when
// there is nothing to rebuild. A reservation exists only for a bound driver
// that asked for one and holds no slots (they lived in the memory of the
// process that is gone); it is rebuilt for the executors not bound yet,
// and not at all once the gang's timeout, counted from the driver's bind,
// has passed: the reservation would have been released by then.
func ExecutorsToRestore(in Info, driverBound, now time.Time) int {
	if in.Ref.Kind != KindSpark || in.Phase != PhaseBound || in.Spec.Executors <= 0 || in.FreeSlots > 0 {
		return 0
	}
	if in.Spec.Timeout > 0 && !now.Before(driverBound.Add(in.Spec.Timeout)) {
		return 0
	}
	// Bound counts the driver: the quorum of a Spark gang.
	missing := int(in.Spec.Executors) - (in.Bound + in.Assumed - 1)
	if missing < 0 {
		return 0
	}
	return missing
}

// Restore rebuilds a bound gang's reservation (a Spark driver's executors
// after a restart): slots on nodes (one per request), held since since,
// from which its timeout counts. It refuses (false) a gang that is not
// bound or already holds slots.
func (r *Registry) Restore(ref Ref, since time.Time, nodes []string, reqs []resources.Vector) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.gangs[ref]
	if g == nil || g.Phase != PhaseBound || len(g.slots)+len(g.displaced) > 0 || len(nodes) == 0 || len(nodes) != len(reqs) {
		return false
	}
	for i, n := range nodes {
		r.addSlot(g, slot{node: n, request: reqs[i]})
	}
	g.AdmittedAt = since
	return true
}

func sortRefs(refs []Ref) {
	sort.Slice(refs, func(i, j int) bool { return refs[i].String() < refs[j].String() })
}
