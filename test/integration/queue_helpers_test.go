package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

// setQueues writes queues.yaml into the muster-queues ConfigMap (creating it
// if needed) and removes the ConfigMap when the test ends.
func setQueues(t *testing.T, queuesYAML string) *v1.ConfigMap {
	t.Helper()
	return framework.SetQueues(t, queuesYAML)
}

// musterPods returns n muster pods of cpu each in ns, named prefix-i.
func musterPods(ns, prefix string, n int, cpu string, d time.Duration, labels map[string]string) []cluster.Pod {
	pods := make([]cluster.Pod, n)
	for i := range pods {
		pods[i] = cluster.Pod{
			Namespace: ns, Name: fmt.Sprintf("%s-%d", prefix, i), SchedulerName: scheduler.SchedulerName,
			Requests: map[v1.ResourceName]string{v1.ResourceCPU: cpu}, Duration: d, Labels: labels,
		}
	}
	return pods
}

// bindWatcher follows every change of the pods of some namespaces through a
// watch (in the apiserver's order, not by sampling) and records the most
// CPU that was ever bound to unfinished pods at once, per group of pods.
type bindWatcher struct {
	mu      sync.Mutex
	group   func(*v1.Pod) string
	holding map[string]int64 // pod key -> millicores, while bound and unfinished
	sum     map[string]int64
	peak    map[string]int64
	bound   map[string]bool // every pod ever seen bound
}

func watchBinds(t *testing.T, group func(*v1.Pod) string, namespaces ...string) *bindWatcher {
	t.Helper()
	w := &bindWatcher{group: group, holding: map[string]int64{}, sum: map[string]int64{}, peak: map[string]int64{}, bound: map[string]bool{}}
	framework.WatchPods(t, cache.ResourceEventHandlerFuncs{
		AddFunc:    w.observe,
		UpdateFunc: func(_, o any) { w.observe(o) },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if p, ok := o.(*v1.Pod); ok {
				w.release(p)
			}
		},
	}, namespaces...)
	return w
}

func (w *bindWatcher) observe(o any) {
	p, ok := o.(*v1.Pod)
	if !ok {
		return
	}
	if p.Spec.NodeName == "" || p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
		w.release(p)
		return
	}
	key := p.Namespace + "/" + p.Name
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bound[key] = true
	if _, held := w.holding[key]; held {
		return
	}
	m := p.Spec.Containers[0].Resources.Requests.Cpu().MilliValue()
	g := w.group(p)
	w.holding[key] = m
	w.sum[g] += m
	if w.sum[g] > w.peak[g] {
		w.peak[g] = w.sum[g]
	}
}

func (w *bindWatcher) release(p *v1.Pod) {
	key := p.Namespace + "/" + p.Name
	w.mu.Lock()
	defer w.mu.Unlock()
	if m, held := w.holding[key]; held {
		w.sum[w.group(p)] -= m
		delete(w.holding, key)
	}
}

// Peak returns the most millicores a group held at once.
func (w *bindWatcher) Peak(g string) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peak[g]
}

// EverBound counts pods seen bound.
func (w *bindWatcher) EverBound() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.bound)
}

// waitStatus returns the status report muster published, once it shows
// what cond wants.
func waitStatus(t *testing.T, timeout time.Duration, what string, cond func(status.Report) bool) status.Report {
	t.Helper()
	return framework.WaitStatus(t, env.cp.Client, timeout, what, func(r status.Report) (bool, error) { return cond(r), nil })
}

func queueStatus(r status.Report, path string) (status.Queue, bool) {
	for _, q := range r.Queues {
		if q.Queue == path {
			return q, true
		}
	}
	return status.Queue{}, false
}

// eventsFor lists Events about an object with the given reason.
func eventsFor(t *testing.T, ns, name, reason string) []string {
	t.Helper()
	return framework.EventsFor(t, ns, name, reason)
}

// unbound lists the pods of ns that are not bound.
func unbound(t *testing.T, ns string) []string {
	t.Helper()
	list, err := env.cp.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	var names []string
	for _, p := range list.Items {
		if p.Spec.NodeName == "" {
			names = append(names, p.Name)
		}
	}
	return names
}
