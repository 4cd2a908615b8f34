package profile

import (
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"

	"muster.dev/muster/pkg/resources"
)

// Ranks indexes the profile's running pods by leaf queue with their
// priority and request, so that a pod or gang refused at its queue's max can
// tell at once whether lower-priority pods of its own queue hold enough to
// make room: only then is preemption tried, and a queue at its max full of
// pods as important as the newcomer costs nothing more than before.
type Ranks struct {
	mu     sync.Mutex
	byLeaf map[string]map[types.UID]rank
	leafOf map[types.UID]string
}

type rank struct {
	priority int32
	request  resources.Vector
}

func newRanks() *Ranks {
	return &Ranks{byLeaf: map[string]map[types.UID]rank{}, leafOf: map[types.UID]string{}}
}

// Set records a running pod in its leaf (leaf "": not running or not
// placeable: forgotten).
func (r *Ranks) Set(p *v1.Pod, leaf string, request resources.Vector) {
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

// Forget drops a pod that is gone.
func (r *Ranks) Forget(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if leaf, ok := r.leafOf[uid]; ok {
		r.dropLocked(uid, leaf)
	}
}

func (r *Ranks) dropLocked(uid types.UID, leaf string) {
	delete(r.leafOf, uid)
	if pods := r.byLeaf[leaf]; pods != nil {
		delete(pods, uid)
		if len(pods) == 0 {
			delete(r.byLeaf, leaf)
		}
	}
}

// Below is what the leaf's running pods of lower priority than prio hold
// together.
func (r *Ranks) Below(leaf string, prio int32) resources.Vector {
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

// Len is the number of pods indexed.
func (r *Ranks) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.leafOf)
}
