package capacity

import (
	"sync"

	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/capacity"
)

// viewCache remembers each node's capacity view by resourceVersion:
// scoring asks for it for every node of every pod, and nodes change rarely.
type viewCache struct {
	mu    sync.RWMutex
	views map[string]cachedView
}

type cachedView struct {
	rv   string
	view capacity.NodeView
}

func (c *viewCache) get(n *v1.Node) capacity.NodeView {
	c.mu.RLock()
	cv, ok := c.views[n.Name]
	c.mu.RUnlock()
	if ok && cv.rv == n.ResourceVersion && n.ResourceVersion != "" {
		return cv.view
	}
	view := capacity.ViewOf(n)
	c.mu.Lock()
	if c.views == nil {
		c.views = map[string]cachedView{}
	}
	c.views[n.Name] = cachedView{rv: n.ResourceVersion, view: view}
	c.mu.Unlock()
	return view
}
