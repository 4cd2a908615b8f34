// Package benchkit is the harness shared by muster's benchmarks (test/bench
// and its packages with control planes of their own): the schedulers compared,
// nodes, a watch of binds and gangs, the scheduler's own latency histogram,
// process CPU and heap, and the raw bind limit.
package benchkit

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/test/framework"
)

// Nodes creates n nodes of cpu each (256Gi of memory), named prefix-i, until
// the benchmark ends.
func Nodes(b testing.TB, prefix string, n int, cpu string, labels func(i int) map[string]string) []string {
	b.Helper()
	nodes := make([]cluster.Node, n)
	names := make([]string, n)
	for i := range nodes {
		var l map[string]string
		if labels != nil {
			l = labels(i)
		}
		names[i] = fmt.Sprintf("%s-%d", prefix, i)
		nodes[i] = cluster.Node{Name: names[i],
			Capacity: map[v1.ResourceName]string{v1.ResourceCPU: cpu, v1.ResourceMemory: "256Gi"}, Labels: l}
	}
	framework.CreateNodes(b, nodes...)
	return names
}

// Gang names the gang a pod belongs to and the gang's quorum; "" for a pod
// of no gang.
type Gang func(*v1.Pod) (name string, quorum int)

// Watch follows the pods of a namespace by watch: when each was first seen
// bound, how many hold capacity per key, and per gang when it was partly
// bound (some but not all of its quorum) and when it was whole.
type Watch struct {
	mu    sync.Mutex
	bound map[string]time.Time
	first time.Time
	last  time.Time
	byKey func(*v1.Pod) string
	count map[string]int // running (bound, unfinished) pods per key
	held  map[string]string

	gangOf  Gang
	gangs   map[string]*gangState
	created time.Time
}

type gangState struct {
	quorum       int
	ever         map[string]bool
	partialSince time.Time
	longest      time.Duration
	whole        time.Time // first time the quorum was bound
	firstBind    time.Time
}

// WatchPods starts a watch of ns; byKey and gangOf may be nil.
func WatchPods(b testing.TB, ns string, byKey func(*v1.Pod) string, gangOf Gang) *Watch {
	b.Helper()
	w := &Watch{bound: map[string]time.Time{}, byKey: byKey, count: map[string]int{}, held: map[string]string{},
		gangOf: gangOf, gangs: map[string]*gangState{}, created: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	f := informers.NewSharedInformerFactoryWithOptions(framework.CP.Client, 0, informers.WithNamespace(ns))
	_, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { w.observe(o, false) },
		UpdateFunc: func(_, o any) { w.observe(o, false) },
		DeleteFunc: func(o any) { w.observe(o, true) },
	})
	if err != nil {
		b.Fatal(err)
	}
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	return w
}

func (w *Watch) observe(o any, gone bool) {
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
			w.observeGang(p, now)
		}
	}
	k, had := w.held[p.Name]
	switch {
	case running && !had:
		k = ""
		if w.byKey != nil {
			k = w.byKey(p)
		}
		w.held[p.Name] = k
		w.count[k]++
	case !running && had:
		delete(w.held, p.Name)
		w.count[k]--
	}
}

// observeGang records a member's first bind: a gang is partial from its
// first member's bind until its quorum is bound.
func (w *Watch) observeGang(p *v1.Pod, now time.Time) {
	if w.gangOf == nil {
		return
	}
	name, quorum := w.gangOf(p)
	if name == "" {
		return
	}
	g := w.gangs[name]
	if g == nil {
		g = &gangState{quorum: quorum, ever: map[string]bool{}}
		w.gangs[name] = g
	}
	g.ever[p.Name] = true
	n := len(g.ever)
	switch {
	case n == 1 && n < g.quorum:
		g.partialSince, g.firstBind = now, now
	case n == 1:
		g.firstBind = now
	}
	if n == g.quorum {
		g.whole = now
		if !g.partialSince.IsZero() {
			g.longest = max(g.longest, now.Sub(g.partialSince))
			g.partialSince = time.Time{}
		}
	}
}

// WaitBound waits until n pods were seen bound and returns the time from the
// first bind to the last.
func (w *Watch) WaitBound(b testing.TB, n int, timeout time.Duration) time.Duration {
	b.Helper()
	framework.WaitFor(b, timeout, fmt.Sprintf("%d pods bound", n), func(context.Context) (bool, error) {
		return w.Bound() >= n, nil
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last.Sub(w.first)
}

// Bound returns how many pods were ever seen bound.
func (w *Watch) Bound() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.bound)
}

// BoundWithPrefix counts the pods ever bound whose name starts with prefix.
func (w *Watch) BoundWithPrefix(prefix string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for name := range w.bound {
		if len(name) >= len(prefix) && name[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}

// Created returns when the watch started.
func (w *Watch) Created() time.Time { return w.created }

// Span returns the first and last bind seen.
func (w *Watch) Span() (first, last time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first, w.last
}

// Running returns how many pods per key hold capacity now.
func (w *Watch) Running() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.count))
	for k, n := range w.count {
		out[k] = n
	}
	return out
}

// GangStats sums up the gangs seen so far.
type GangStats struct {
	// Whole is how many gangs had their quorum bound.
	Whole int
	// PartialNow is how many gangs have some but not all of their quorum
	// bound now.
	PartialNow int
	// MaxPartial is the longest time any gang spent partly bound (open
	// stretches count up to now).
	MaxPartial time.Duration
	// ToWhole is, per whole gang, the time from since to its quorum bound,
	// sorted.
	ToWhole []time.Duration
	// Spread is, per whole gang, the time from its first member's bind to
	// its quorum bound, sorted.
	Spread []time.Duration
}

// Gangs returns the gang statistics, with ToWhole measured from since.
func (w *Watch) Gangs(since time.Time) GangStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	var s GangStats
	now := time.Now()
	for _, g := range w.gangs {
		s.MaxPartial = max(s.MaxPartial, g.longest)
		if !g.partialSince.IsZero() {
			s.PartialNow++
			s.MaxPartial = max(s.MaxPartial, now.Sub(g.partialSince))
		}
		if !g.whole.IsZero() {
			s.Whole++
			s.ToWhole = append(s.ToWhole, g.whole.Sub(since))
			s.Spread = append(s.Spread, g.whole.Sub(g.firstBind))
		}
	}
	slices.Sort(s.ToWhole)
	slices.Sort(s.Spread)
	return s
}

// Percentile returns the p-th percentile (0..100) of sorted durations, by
// nearest rank; 0 for none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
