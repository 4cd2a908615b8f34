package sandbox

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/cluster"
)

// podRecord is what the tracker knows of one submitted pod.
type podRecord struct {
	namespace, name string
	submitted       time.Time
	bound           time.Time // zero until the pod is seen with a node
	node            string
	phase           v1.PodPhase
}

// tracker follows the submitted pods through the API (an informer, not
// polling) and times their binding by the sandbox's clock.
type tracker struct {
	clock clock.Clock
	nodes corelisters.NodeLister

	mu   sync.Mutex
	pods map[types.NamespacedName]*podRecord
}

func newTracker(factory informers.SharedInformerFactory, clk clock.Clock) (*tracker, error) {
	t := &tracker{clock: clk, nodes: factory.Core().V1().Nodes().Lister(), pods: map[types.NamespacedName]*podRecord{}}
	_ = factory.Core().V1().Nodes().Informer()
	_, err := factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    t.observe,
		UpdateFunc: func(_, obj any) { t.observe(obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("pod informer: %w", err)
	}
	return t, nil
}

// submitted records that the pods are about to be created, now.
func (t *tracker) submitted(pods []cluster.Pod) {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range pods {
		t.pods[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = &podRecord{
			namespace: p.Namespace, name: p.Name, submitted: now, phase: v1.PodPending,
		}
	}
}

func (t *tracker) observe(obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.pods[types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}]
	if !ok {
		return // not ours
	}
	if pod.Spec.NodeName != "" && r.bound.IsZero() {
		r.bound, r.node = now, pod.Spec.NodeName
	}
	if pod.Status.Phase != "" {
		r.phase = pod.Status.Phase
	}
}

// counts is a snapshot for the progress line.
type counts struct {
	submitted, bound, running, succeeded, failed int
}

func (c counts) String() string {
	return fmt.Sprintf("submitted %3d  bound %3d  running %3d  succeeded %3d  pending %3d",
		c.submitted, c.bound, c.running, c.succeeded, c.submitted-c.bound)
}

func (t *tracker) counts() counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	var c counts
	for _, r := range t.pods {
		c.submitted++
		if !r.bound.IsZero() {
			c.bound++
		}
		switch r.phase {
		case v1.PodRunning:
			c.running++
		case v1.PodSucceeded:
			c.succeeded++
		case v1.PodFailed:
			c.failed++
		}
	}
	return c
}

// Summary is what a sandbox run reports at the end.
type Summary struct {
	// Pods is the number of pods submitted; Bound of them were bound to a
	// node and Succeeded ran to completion.
	Pods, Bound, Succeeded int
	// Elapsed is the wall-clock time from the first submission to the end.
	Elapsed time.Duration
	// TimeToBind is the distribution, over bound pods, of the time from
	// submission to the sandbox seeing the pod bound.
	TimeToBind Distribution
	// ByCapacityType, ByZone and ByNode count bound pods by where they went.
	ByCapacityType, ByZone, ByNode map[string]int
	// ByTenant counts bound pods per namespace; TenantPods counts submitted ones.
	ByTenant, TenantPods map[string]int
}

// Distribution summarises durations.
type Distribution struct {
	P50, P95, Max time.Duration
}

func distribution(ds []time.Duration) Distribution {
	if len(ds) == 0 {
		return Distribution{}
	}
	slices.Sort(ds)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(ds))+0.5) - 1
		return ds[max(0, min(i, len(ds)-1))]
	}
	return Distribution{P50: at(0.50), P95: at(0.95), Max: ds[len(ds)-1]}
}

func (t *tracker) summary(start time.Time) Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Summary{
		Elapsed:        t.clock.Since(start),
		ByCapacityType: map[string]int{}, ByZone: map[string]int{}, ByNode: map[string]int{},
		ByTenant: map[string]int{}, TenantPods: map[string]int{},
	}
	var waits []time.Duration
	for _, r := range t.pods {
		s.Pods++
		s.TenantPods[r.namespace]++
		if r.phase == v1.PodSucceeded {
			s.Succeeded++
		}
		if r.bound.IsZero() {
			continue
		}
		s.Bound++
		s.ByTenant[r.namespace]++
		waits = append(waits, r.bound.Sub(r.submitted))
		s.ByNode[r.node]++
		if n, err := t.nodes.Get(r.node); err == nil {
			s.ByCapacityType[string(capacity.TypeOf(n.Labels))]++
			s.ByZone[n.Labels[cluster.LabelZone]]++
		}
	}
	s.TimeToBind = distribution(waits)
	return s
}

// String renders the summary for a terminal.
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pods           %d submitted, %d bound, %d succeeded, in %s\n", s.Pods, s.Bound, s.Succeeded, s.Elapsed.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "time to bind   p50 %s  p95 %s  max %s\n", fmtDur(s.TimeToBind.P50), fmtDur(s.TimeToBind.P95), fmtDur(s.TimeToBind.Max))
	fmt.Fprintf(&b, "capacity type  %s\n", fmtCounts(s.ByCapacityType, nil))
	fmt.Fprintf(&b, "zones          %s\n", fmtCounts(s.ByZone, nil))
	fmt.Fprintf(&b, "tenants        %s\n", fmtCounts(s.ByTenant, s.TenantPods))
	return b.String()
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func fmtCounts(m, of map[string]int) string {
	keys := make([]string, 0, len(m)+len(of))
	for k := range m {
		keys = append(keys, k)
	}
	for k := range of {
		if _, ok := m[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if of != nil {
			parts = append(parts, fmt.Sprintf("%s %d/%d", k, m[k], of[k]))
		} else {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "   ")
}
