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
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	pgclientset "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/test/framework"
)

func podGroups(t *testing.T) pgclientset.Interface {
	t.Helper()
	return framework.PodGroupClient(t)
}

// createPodGroup creates a PodGroup and n member pods of cpu each.
func createPodGroup(t *testing.T, ns, name string, min int32, n int, cpu string, d time.Duration, timeoutSeconds int32) {
	t.Helper()
	ctx := context.Background()
	pg := &schedv1alpha1.PodGroup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: schedv1alpha1.PodGroupSpec{MinMember: min}}
	if timeoutSeconds > 0 {
		pg.Spec.ScheduleTimeoutSeconds = &timeoutSeconds
	}
	_, err := podGroups(t).SchedulingV1alpha1().PodGroups(ns).Create(ctx, pg, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, gangPods(ns, name, n, cpu, d, map[string]string{gang.LabelPodGroup: name}, nil)))
}

// gangPods returns n muster pods named name-i with the labels and annotations.
func gangPods(ns, name string, n int, cpu string, d time.Duration, labels, annotations map[string]string) []cluster.Pod {
	pods := make([]cluster.Pod, n)
	for i := range pods {
		pods[i] = cluster.Pod{
			Namespace: ns, Name: fmt.Sprintf("%s-%d", name, i), SchedulerName: scheduler.SchedulerName,
			Requests: map[v1.ResourceName]string{v1.ResourceCPU: cpu}, Duration: d, Labels: labels, Annotations: annotations,
		}
	}
	return pods
}

// gangWatcher follows binds by watch and records, per gang, every moment a
// gang had some but not all of its quorum bound, and for how long.
type gangWatcher struct {
	mu      sync.Mutex
	gangOf  func(*v1.Pod) string
	quorum  map[string]int
	bound   map[string]map[string]bool // gang -> bound, unfinished members
	ever    map[string]map[string]bool // gang -> members ever bound
	partial map[string]time.Time       // gang -> since when it is partly bound
	longest map[string]time.Duration   // gang -> longest partial stretch
}

func watchGangs(t *testing.T, ns string, quorum map[string]int, gangOf func(*v1.Pod) string) *gangWatcher {
	t.Helper()
	w := &gangWatcher{gangOf: gangOf, quorum: quorum, bound: map[string]map[string]bool{}, ever: map[string]map[string]bool{},
		partial: map[string]time.Time{}, longest: map[string]time.Duration{}}
	framework.WatchPods(t, cache.ResourceEventHandlerFuncs{
		AddFunc:    w.observe,
		UpdateFunc: func(_, o any) { w.observe(o) },
	}, ns)
	return w
}

func (w *gangWatcher) observe(o any) {
	p, ok := o.(*v1.Pod)
	if !ok {
		return
	}
	g := w.gangOf(p)
	if g == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.bound[g] == nil {
		w.bound[g], w.ever[g] = map[string]bool{}, map[string]bool{}
	}
	// A member counts from its bind until it finishes.
	if p.Spec.NodeName != "" && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
		w.bound[g][p.Name], w.ever[g][p.Name] = true, true
	} else {
		delete(w.bound[g], p.Name)
	}
	n, q := len(w.ever[g]), w.quorum[g]
	now := time.Now()
	if n > 0 && n < q {
		if _, ok := w.partial[g]; !ok {
			w.partial[g] = now
		}
	} else if since, ok := w.partial[g]; ok {
		if d := now.Sub(since); d > w.longest[g] {
			w.longest[g] = d
		}
		delete(w.partial, g)
	}
}

// everBound counts the members of a gang ever seen bound.
func (w *gangWatcher) everBound(g string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ever[g])
}

// worstPartial is the longest time any gang spent partly bound (binding a
// gang takes one API call per member, so a short stretch is expected),
// and the gangs partly bound right now.
func (w *gangWatcher) worstPartial() (time.Duration, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var worst time.Duration
	for _, d := range w.longest {
		worst = max(worst, d)
	}
	var open []string
	for g, since := range w.partial {
		open = append(open, g)
		worst = max(worst, time.Since(since))
	}
	return worst, open
}
