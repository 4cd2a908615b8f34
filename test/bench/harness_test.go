package bench

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"muster.dev/muster/manifests"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/test/framework"
)

// Schedulers compared side by side.
const (
	muster         = "muster"
	defaultProfile = "default"
)

// schedulerConfig returns the configuration and schedulerName of one side.
func schedulerConfig(which string) ([]byte, string) {
	if which == muster {
		return manifests.SchedulerConfig, scheduler.SchedulerName
	}
	return scheduler.DefaultProfileConfig("default-scheduler"), "default-scheduler"
}

// benchNodes creates n nodes of cpu each, named prefix-i, for the benchmark.
func benchNodes(b *testing.B, prefix string, n int, cpu string, labels func(i int) map[string]string) {
	b.Helper()
	nodes := make([]cluster.Node, n)
	for i := range nodes {
		var l map[string]string
		if labels != nil {
			l = labels(i)
		}
		nodes[i] = cluster.Node{Name: fmt.Sprintf("%s-%d", prefix, i),
			Capacity: map[v1.ResourceName]string{v1.ResourceCPU: cpu, v1.ResourceMemory: "256Gi"}, Labels: l}
	}
	framework.CreateNodes(b, nodes...)
}

// binds follows the pods of a namespace by watch and records when each was
// first seen bound.
type binds struct {
	mu    sync.Mutex
	bound map[string]time.Time
	first time.Time
	last  time.Time
	byKey func(*v1.Pod) string
	count map[string]int // running (bound, unfinished) pods per key
}

func watchBinds(b *testing.B, ns string, byKey func(*v1.Pod) string) *binds {
	b.Helper()
	w := &binds{bound: map[string]time.Time{}, byKey: byKey, count: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	f := informers.NewSharedInformerFactoryWithOptions(framework.CP.Client, 0, informers.WithNamespace(ns))
	held := map[string]string{} // pod -> key while it holds capacity
	observe := func(o any, gone bool) {
		if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		p, ok := o.(*v1.Pod)
		if !ok {
			return
		}
		now := time.Now()
		w.mu.Lock()
		defer w.mu.Unlock()
		running := !gone && p.Spec.NodeName != "" && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed
		if p.Spec.NodeName != "" {
			if _, seen := w.bound[p.Name]; !seen {
				w.bound[p.Name] = now
				if w.first.IsZero() {
					w.first = now
				}
				w.last = now
			}
		}
		k, had := held[p.Name]
		switch {
		case running && !had:
			k = ""
			if w.byKey != nil {
				k = w.byKey(p)
			}
			held[p.Name] = k
			w.count[k]++
		case !running && had:
			delete(held, p.Name)
			w.count[k]--
		}
	}
	_, _ = f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { observe(o, false) },
		UpdateFunc: func(_, o any) { observe(o, false) },
		DeleteFunc: func(o any) { observe(o, true) },
	})
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	return w
}

// waitBound waits until n pods were seen bound and returns the time from the
// first bind to the last.
func (w *binds) waitBound(b *testing.B, n int, timeout time.Duration) time.Duration {
	b.Helper()
	framework.WaitFor(b, timeout, fmt.Sprintf("%d pods bound", n), func(context.Context) (bool, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.bound) >= n, nil
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last.Sub(w.first)
}

// running returns how many pods per key hold capacity now.
func (w *binds) running() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.count))
	for k, n := range w.count {
		out[k] = n
	}
	return out
}
