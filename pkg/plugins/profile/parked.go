package profile

import (
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// Parked are pods refused for a reason no cluster event reports the end of
// (reclaims under way, room held at the head of a queue): they are moved
// back to the active queue when that reason ends, instead of waiting for
// kube-scheduler's periodic flush. Safe for concurrent use; the zero value
// is ready.
type Parked struct {
	mu   sync.Mutex
	pods map[types.UID]*v1.Pod
}

// Add parks the pod.
func (p *Parked) Add(pod *v1.Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pods == nil {
		p.pods = map[types.UID]*v1.Pod{}
	}
	p.pods[pod.UID] = pod
}

// Forget drops a pod that is gone.
func (p *Parked) Forget(uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.pods, uid)
}

// Activate moves every parked pod back to the active queue, saying why.
func (p *Parked) Activate(logger klog.Logger, h fwk.Handle, why string) {
	p.mu.Lock()
	if len(p.pods) == 0 {
		p.mu.Unlock()
		return
	}
	pods := make(map[string]*v1.Pod, len(p.pods))
	for _, pod := range p.pods {
		pods[pod.Namespace+"/"+pod.Name] = pod
	}
	p.pods = nil
	p.mu.Unlock()
	logger.V(4).Info(why, "pods", len(pods))
	h.Activate(logger, pods)
}
