package mustercapacity

import (
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"muster.dev/muster/pkg/capacity"
)

// nodeIndex keeps every node's capacity view, kept current by the node
// informer, and counts nodes by what matters for scoring: scoring asks for a
// view for every node of every pod, and can be skipped entirely when its
// answer would be the same everywhere.
type nodeIndex struct {
	mu        sync.RWMutex
	views     map[string]indexed
	spot      int
	onDemand  int
	disrupted int
}

type indexed struct {
	node *v1.Node // the object the view was computed from
	view capacity.NodeView
}

func newNodeIndex(informer cache.SharedIndexInformer) (*nodeIndex, error) {
	idx := &nodeIndex{views: map[string]indexed{}}
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { idx.set(o) },
		UpdateFunc: func(_, o any) { idx.set(o) },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if n, ok := o.(*v1.Node); ok {
				idx.mu.Lock()
				idx.remove(n.Name)
				idx.mu.Unlock()
			}
		},
	})
	return idx, err
}

func (idx *nodeIndex) set(o any) {
	n, ok := o.(*v1.Node)
	if !ok {
		return
	}
	view := capacity.ViewOf(n)
	idx.mu.Lock()
	defer idx.mu.Unlock()
	idx.remove(n.Name)
	idx.views[n.Name] = indexed{node: n, view: view}
	idx.count(view, +1)
}

func (idx *nodeIndex) remove(name string) {
	if old, ok := idx.views[name]; ok {
		idx.count(old.view, -1)
		delete(idx.views, name)
	}
}

func (idx *nodeIndex) count(v capacity.NodeView, d int) {
	if v.Type == capacity.Spot {
		idx.spot += d
	} else {
		idx.onDemand += d
	}
	if v.Disrupted {
		idx.disrupted += d
	}
}

// get returns the view of a node; the snapshot's node object may be newer
// than the informer's event, so a different object is described afresh.
func (idx *nodeIndex) get(n *v1.Node) capacity.NodeView {
	idx.mu.RLock()
	e, ok := idx.views[n.Name]
	idx.mu.RUnlock()
	if ok && (e.node == n || e.node.ResourceVersion == n.ResourceVersion) {
		return e.view
	}
	return capacity.ViewOf(n)
}

// uniform reports whether a pod with policy p would score every node the
// same: no node is being taken away, and p prefers nothing, or only one
// capacity type exists.
func (idx *nodeIndex) uniform(p capacity.Policy) bool {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	if idx.disrupted > 0 {
		return false
	}
	return p.Preferred() == "" || idx.spot == 0 || idx.onDemand == 0
}
