package musterqueue

import (
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"

	"muster.dev/muster/pkg/resources"
)

// ranks indexes the profile's running pods by leaf queue with their
// priority and request, so that a pod refused at its queue's max can tell
// at once whether lower-priority pods of its own queue hold enough to make
// room: only then is preemption tried (PostFilter), and a queue at its max
// full of pods as important as the newcomer costs nothing more than before.
type ranks struct {
	mu     sync.Mutex
	byLeaf map[string]map[types.UID]rank
	leafOf map[types.UID]string
}

type rank struct {
	priority int32
	request  resources.Vector
}

func newRanks() *ranks {
	return &ranks{byLeaf: map[string]map[types.UID]rank{}, leafOf: map[types.UID]string{}}
}

// set records a running pod in its leaf (leaf "": not running or not
// placeable: forgotten).
func (r *ranks) set(p *v1.Pod, leaf string, request resources.Vector) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.leafOf[p.UID]; ok && old != leaf {
		r.dropLocked(p.UID, old)
	}
	if leaf == "" {
		return
	}
	pods := r.byLeaf[leaf]
	if pods == nil {
		pods = map[types.UID]rank{}
		r.byLeaf[leaf] = pods
	}
	pods[p.UID] = rank{priority: corev1helpers.PodPriority(p), request: request}
	r.leafOf[p.UID] = leaf
}

// forget drops a pod that is gone.
func (r *ranks) forget(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if leaf, ok := r.leafOf[uid]; ok {
		r.dropLocked(uid, leaf)
	}
}

func (r *ranks) dropLocked(uid types.UID, leaf string) {
	delete(r.leafOf, uid)
	if pods := r.byLeaf[leaf]; pods != nil {
		delete(pods, uid)
		if len(pods) == 0 {
			delete(r.byLeaf, leaf)
		}
	}
}

// below is what the leaf's running pods of lower priority than prio hold
// together.
func (r *ranks) below(leaf string, prio int32) resources.Vector {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := resources.Vector{}
	for _, rk := range r.byLeaf[leaf] {
		if rk.priority < prio {
			out.Add(rk.request)
		}
	}
	return out
}

// len is the number of pods indexed (for tests).
func (r *ranks) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.leafOf)
}
