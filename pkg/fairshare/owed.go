package fairshare

import (
	"fmt"
	"sort"
	"strings"

	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// Gate is the fair-share gate (Admit) kept current incrementally: for
// fixed fair shares and capacity, what every leaf is owed (its fair share
// less its usage, where positive) and their total, updated leaf by leaf as
// usage changes. A decision then costs O(resources), not O(queues); when
// demand, capacity or the tree change, the fair shares change and a new
// Gate is built.
type Gate struct {
	tree     *queue.Tree
	capacity resources.Vector
	fair     map[string]resources.Vector
	usage    map[string]resources.Vector // leaves' and the root's
	owed     map[string]resources.Vector // leaves', positive amounts only
	total    resources.Vector            // the sum of owed
}

// NewGate builds the gate for the shares s computed from in.
func NewGate(in Input, s Shares) *Gate {
	g := &Gate{tree: in.Tree, capacity: in.Capacity, fair: s.Fair,
		usage: map[string]resources.Vector{}, owed: map[string]resources.Vector{}, total: resources.Vector{}}
	if in.Tree == nil {
		return g
	}
	g.usage[in.Tree.Root.Path] = in.Usage[in.Tree.Root.Path]
	for _, q := range in.Tree.Leaves() {
		g.SetUsage(q.Path, in.Usage[q.Path])
	}
	return g
}

// Tree is the tree the gate was built for.
func (g *Gate) Tree() *queue.Tree { return g.tree }

// SetUsage records the usage of a leaf or the root (by path); other paths
// are ignored.
func (g *Gate) SetUsage(path string, used resources.Vector) {
	if g.tree == nil {
		return
	}
	if path == g.tree.Root.Path {
		g.usage[path] = used
		return
	}
	q := g.tree.Get(path)
	if q == nil || !q.IsLeaf() {
		return
	}
	g.usage[path] = used
	g.total.Sub(g.owed[path])
	owed := resources.Vector{}
	for r, f := range g.fair[path] {
		if a := f - used[r]; a > 0 {
			owed[r] = a
		}
	}
	if len(owed) == 0 {
		delete(g.owed, path)
		return
	}
	g.owed[path] = owed
	g.total.Add(owed)
}

// Admit decides, under fair sharing, whether a request of a leaf queue may
// take capacity now. It may when the queue is below its fair share (in its
// dominant resource), or when what is free beyond the unfilled fair shares
// of every other queue still covers it: a queue may borrow idle capacity,
// but not capacity that queues below their share are waiting for.
//
// Fair shares follow demand, so when nobody else wants anything every
// queue's share grows to its demand (up to its max): no contention, nothing
// refused. The queue's max is checked elsewhere (the ledger).
func (g *Gate) Admit(leaf *queue.Queue, req resources.Vector) *Refusal {
	of := drawable(leaf, g.capacity)
	usage := g.usage[leaf.Path]
	fair := g.fair[leaf.Path]
	if dominant(usage, of) < dominant(fair, of)-1e-9 {
		return nil
	}
	// Free capacity, and the headroom: the free capacity less what other
	// queues below their share are entitled to and still wait for.
	free := g.capacity.Clone()
	free.Sub(g.usage[g.tree.Root.Path])
	head := free.Clone()
	head.Sub(g.total)
	head.Add(g.owed[leaf.Path]) // the leaf's own is not owed to others
	// Refuse only when what others are owed makes the difference: a request
	// that does not fit in the free capacity at all is for the nodes to turn
	// down (and for reclaim to solve), not for fair sharing.
	short := ""
	for _, r := range req.Names() {
		if req[r] > 0 && req[r] > head[r] && req[r] <= free[r] {
			short = string(r)
			break
		}
	}
	if short == "" {
		return nil
	}
	var waiting []string
	for path := range g.owed {
		if path != leaf.Path {
			waiting = append(waiting, path)
		}
	}
	sort.Strings(waiting)
	shown := waiting
	if len(shown) > 3 {
		shown = append(append([]string{}, shown[:3]...), fmt.Sprintf("%d more", len(waiting)-3))
	}
	return &Refusal{
		Queue:   leaf.Path,
		Waiting: waiting,
		Msg: fmt.Sprintf("queue %s holds its fair share (%s of fair %s) and the free %s is owed to queues below theirs: %s",
			leaf.Path, fmtRes(usage, short), fmtRes(fair, short), short, strings.Join(shown, ", ")),
	}
}
