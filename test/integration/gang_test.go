package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/status"
)

// nodes4 creates n nodes of 4 CPU named prefix-i.
func nodes4(t *testing.T, prefix string, from, n int) {
	t.Helper()
	var nodes []cluster.Node
	for i := from; i < from+n; i++ {
		nodes = append(nodes, node(fmt.Sprintf("%s-%d", prefix, i), "4", "16Gi", nil))
	}
	createNodes(t, nodes...)
}

// TestGangPodGroupAllOrNothing: a PodGroup of 8 on a cluster with room for
// 7 binds nothing; one more node and all 8 bind.
func TestGangPodGroupAllOrNothing(t *testing.T) {
	ns := newNamespace(t)
	nodes4(t, "aon", 0, 7)
	startMuster(t)
	w := watchGangs(t, ns, map[string]int{"train": 8}, func(p *v1.Pod) string { return p.Labels[gang.LabelPodGroup] })

	createPodGroup(t, ns, "train", 8, 8, "4", 0, 0)
	for i := 0; i < 8; i++ {
		waitUnschedulable(t, ns, fmt.Sprintf("train-%d", i), 30*time.Second, "PodGroup "+ns+"/train", "does not fit on this cluster")
	}
	assert.Equal(t, 0, countBound(t, ns), "no member bound while the gang does not fit")

	nodes4(t, "aon", 7, 1)
	waitFor(t, 30*time.Second, "all 8 members bound", func(context.Context) (bool, error) { return countBound(t, ns) == 8, nil })
	// The watcher sees the binds a moment after the API does.
	waitFor(t, 10*time.Second, "the watcher to see all 8 bound", func(context.Context) (bool, error) { return w.everBound("train") == 8, nil })
	worst, open := w.worstPartial()
	assert.Empty(t, open)
	assert.Less(t, worst, 5*time.Second, "binding the gang is one burst")

	waitFor(t, 30*time.Second, "PodGroup status Running", func(ctx context.Context) (bool, error) {
		pg, err := podGroups(t).SchedulingV1alpha1().PodGroups(ns).Get(ctx, "train", metav1.GetOptions{})
		return err == nil && pg.Status.Phase == schedv1alpha1.PodGroupRunning && pg.Status.Running == 8 && !pg.Status.ScheduleStartTime.IsZero(), nil
	})
	waitFor(t, 15*time.Second, "the admission Event", func(context.Context) (bool, error) {
		return len(eventsFor(t, ns, "train", "GangAdmitted")) > 0, nil
	})
}

// TestGangFragmentation: 8 pods of 4 CPU on 16 nodes with 2 CPU free each:
// 32 CPU are free, but no member fits anywhere. Not admitted, and the reason
// says why.
func TestGangFragmentation(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	nodes4(t, "frag", 0, 16)
	// Half of every node is taken by a pod that runs there already.
	var fillers []*v1.Pod
	for i := 0; i < 16; i++ {
		p, err := cluster.Pod{Namespace: ns, Name: fmt.Sprintf("filler-%d", i), Requests: cpu("2")}.Object()
		require.NoError(t, err)
		p.Spec.NodeName = fmt.Sprintf("frag-%d", i)
		fillers = append(fillers, p)
	}
	for _, p := range fillers {
		_, err := env.cp.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	startMuster(t)
	createPodGroup(t, ns, "wide", 8, 8, "4", 0, 0)
	msg := waitUnschedulable(t, ns, "wide-0", 30*time.Second, "fragmented")
	assert.Contains(t, msg, "cpu=32")
	t.Logf("reason: %s", msg)
	for i := 0; i < 8; i++ {
		p, err := env.cp.Client.CoreV1().Pods(ns).Get(ctx, fmt.Sprintf("wide-%d", i), metav1.GetOptions{})
		require.NoError(t, err)
		assert.Empty(t, p.Spec.NodeName)
	}
}

// TestGangRacing: 20 gangs race for a cluster that fits 3 at a time. Every
// gang is bound whole or not at all (watched), and all complete as earlier
// ones finish: no deadlock.
func TestGangRacing(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	nodes4(t, "race", 0, 12) // 48 CPU; a gang takes 16
	startMuster(t)
	const gangs, size = 20, 4
	quorum := map[string]int{}
	var pods []cluster.Pod
	for g := 0; g < gangs; g++ {
		name := fmt.Sprintf("g%02d", g)
		quorum[name] = size
		pods = append(pods, gangPods(ns, name, size, "4", 2*time.Second,
			map[string]string{gang.LabelGang: name}, map[string]string{gang.AnnotationMinMember: fmt.Sprint(size)})...)
	}
	w := watchGangs(t, ns, quorum, func(p *v1.Pod) string { return p.Labels[gang.LabelGang] })
	bw := watchBinds(t, func(*v1.Pod) string { return "all" }, ns)
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, pods))

	waitFor(t, 4*time.Minute, "every gang to run", func(context.Context) (bool, error) {
		for g := range quorum {
			if w.everBound(g) < size {
				return false, nil
			}
		}
		return true, nil
	})
	worst, open := w.worstPartial()
	assert.Empty(t, open, "gangs left partly bound")
	assert.Less(t, worst, 5*time.Second, "a gang's binds are one burst, never a partial gang that waits")
	assert.LessOrEqual(t, bw.Peak("all"), int64(48_000))
	t.Logf("longest partial binding burst: %s", worst)
}

// TestGangAnnotation: label muster.dev/gang with a min-member annotation.
// With too few pods nothing binds and the reason says so; the last member
// completes the gang.
func TestGangAnnotation(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	nodes4(t, "ann", 0, 3)
	startMuster(t)
	labels := map[string]string{gang.LabelGang: "trio"}
	ann := map[string]string{gang.AnnotationMinMember: "3", gang.AnnotationTimeout: "10m"}
	all := gangPods(ns, "trio", 3, "1", 0, labels, ann)
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, all[:2]))
	// The second member's own cycle comes after both exist; the first's may
	// have come before the second was created, and a member's arrival
	// requeues no other member (events.go), so it may still say 1 of 3.
	waitUnschedulable(t, ns, "trio-1", 30*time.Second, "2 of 3 members exist")
	waitUnschedulable(t, ns, "trio-0", 30*time.Second, "of 3 members exist")
	assert.Equal(t, 0, countBound(t, ns))
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, all[2:]))
	waitFor(t, 30*time.Second, "the trio bound", func(context.Context) (bool, error) { return countBound(t, ns) == 3, nil })
}

// TestGangBadAnnotations: each malformed value gets its own specific
// condition and Warning Event; nothing is bound.
func TestGangBadAnnotations(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	nodes4(t, "bad", 0, 2)
	startMuster(t)
	cases := map[string]struct {
		labels, annotations map[string]string
		want                string
	}{
		"nan":     {map[string]string{gang.LabelGang: "a"}, map[string]string{gang.AnnotationMinMember: "eight"}, `muster.dev/gang-min-member: "eight"`},
		"zero":    {map[string]string{gang.LabelGang: "b"}, map[string]string{gang.AnnotationMinMember: "0"}, "muster.dev/gang-min-member"},
		"missing": {map[string]string{gang.LabelGang: "c"}, nil, "needs the annotation muster.dev/gang-min-member"},
		"timeout": {map[string]string{gang.LabelGang: "d"}, map[string]string{gang.AnnotationMinMember: "1", gang.AnnotationTimeout: "soon"}, "muster.dev/gang-timeout"},
		"executors": {map[string]string{gang.LabelSparkApp: "app-e", gang.LabelSparkRole: "driver"},
			map[string]string{gang.AnnotationMinExecutors: "2", gang.AnnotationExecutorResources: "cpu=4,memory"}, "muster.dev/executor-resources"},
		"executors without size": {map[string]string{gang.LabelSparkApp: "app-f", gang.LabelSparkRole: "driver"},
			map[string]string{gang.AnnotationMinExecutors: "2"}, "needs muster.dev/executor-resources"},
	}
	for name, tc := range cases {
		podName := strings.ReplaceAll(name, " ", "-")
		require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{{
			Namespace: ns, Name: podName, SchedulerName: "muster", Requests: cpu("1"), Labels: tc.labels, Annotations: tc.annotations}}))
		defer func(podName, want string) {
			waitUnschedulable(t, ns, podName, 30*time.Second, want)
			waitFor(t, 15*time.Second, "the Warning Event of "+podName, func(context.Context) (bool, error) {
				for _, e := range eventsFor(t, ns, podName, "FailedScheduling") {
					if strings.HasPrefix(e, "Warning: ") && strings.Contains(e, want) {
						return true, nil
					}
				}
				return false, nil
			})
		}(podName, tc.want)
	}
	t.Cleanup(func() { assert.Equal(t, 0, countBound(t, ns)) })
}

// TestGangTimeoutAndNeverFits: a gang that cannot complete times out (Event,
// metric, status) and backs off; a gang larger than the cluster is told at
// once that it can never fit.
func TestGangTimeoutAndNeverFits(t *testing.T) {
	ns := newNamespace(t)
	nodes4(t, "tmo", 0, 3)
	s := startMuster(t)
	before := sumMetric(scrape(t, s.Addr), "muster_gang_timeouts_total", nil)

	createPodGroup(t, ns, "short", 4, 4, "4", 0, 2) // room for 3, times out after 2s
	waitFor(t, 30*time.Second, "the timeout Event", func(context.Context) (bool, error) {
		return len(eventsFor(t, ns, "short", "GangTimedOut")) > 0, nil
	})
	assert.Contains(t, strings.Join(eventsFor(t, ns, "short", "GangTimedOut"), "\n"), "not admitted within 2s")
	waitFor(t, 10*time.Second, "the timeout metric", func(context.Context) (bool, error) {
		return sumMetric(scrape(t, s.Addr), "muster_gang_timeouts_total", nil)-before >= 1, nil
	})
	r := waitStatus(t, 30*time.Second, "the pending gang in the status", func(r status.Report) bool {
		for _, g := range r.PendingGangs {
			if g.Gang == "PodGroup "+ns+"/short" && g.Timeouts > 0 {
				return true
			}
		}
		return false
	})
	t.Logf("status: %+v", r.PendingGangs)
	assert.Equal(t, 0, countBound(t, ns))

	start := time.Now()
	createPodGroup(t, ns, "huge", 20, 20, "4", 0, 0) // 80 CPU on a 12-CPU cluster
	waitUnschedulable(t, ns, "huge-0", 30*time.Second, "does not fit on this cluster as it is, not even when empty")
	assert.Less(t, time.Since(start), 15*time.Second, "told at once")
	waitFor(t, 15*time.Second, "the never-fits Event", func(context.Context) (bool, error) {
		return len(eventsFor(t, ns, "huge", "GangNeverFits")) > 0, nil
	})
}

// TestGangSpark: a driver with min-executors is bound only when it and its
// executors fit; their room stays reserved against other tenants until the
// executors come, and they land there.
func TestGangSpark(t *testing.T) {
	ctx := testContext(t)
	ns, other := newNamespace(t), newNamespace(t)
	nodes4(t, "spark", 0, 3) // 12 CPU: driver 2 + 2 executors of 4 = 10
	startMuster(t)
	app := "spark-app-1"
	driver := cluster.Pod{Namespace: ns, Name: "driver", SchedulerName: "muster", Requests: cpu("2"),
		Labels:      map[string]string{gang.LabelSparkApp: app, gang.LabelSparkRole: "driver"},
		Annotations: map[string]string{gang.AnnotationMinExecutors: "2", gang.AnnotationExecutorResources: "cpu=4"}}
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{driver}))
	d := waitBound(t, ns, "driver", 30*time.Second)

	// Another tenant's 4-CPU pod: the only room left for it is reserved.
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{{Namespace: other, Name: "intruder", SchedulerName: "muster", Requests: cpu("4")}}))
	waitUnschedulable(t, other, "intruder", 30*time.Second, "reserved for admitted gangs")

	var executors []cluster.Pod
	for i := 0; i < 2; i++ {
		executors = append(executors, cluster.Pod{Namespace: ns, Name: fmt.Sprintf("exec-%d", i), SchedulerName: "muster", Requests: cpu("4"),
			Labels: map[string]string{gang.LabelSparkApp: app, gang.LabelSparkRole: "executor"}})
	}
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, executors))
	e0, e1 := waitBound(t, ns, "exec-0", 30*time.Second), waitBound(t, ns, "exec-1", 30*time.Second)
	assert.NotEqual(t, d.Spec.NodeName, e0.Spec.NodeName)
	assert.NotEqual(t, e0.Spec.NodeName, e1.Spec.NodeName)
	p, err := env.cp.Client.CoreV1().Pods(other).Get(ctx, "intruder", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Empty(t, p.Spec.NodeName)

	// Executors beyond min-executors are admitted one by one.
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{{Namespace: ns, Name: "exec-extra", SchedulerName: "muster",
		Requests: cpu("1"), Labels: map[string]string{gang.LabelSparkApp: app, gang.LabelSparkRole: "executor"}}}))
	waitBound(t, ns, "exec-extra", 30*time.Second)

	// Executors of a dead driver are not scheduled.
	require.NoError(t, env.cp.Client.CoreV1().Pods(ns).Delete(ctx, "driver", metav1.DeleteOptions{}))
	waitFor(t, 30*time.Second, "the driver to be gone", func(ctx context.Context) (bool, error) {
		_, err := env.cp.Client.CoreV1().Pods(ns).Get(ctx, "driver", metav1.GetOptions{})
		return err != nil, nil
	})
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{{Namespace: ns, Name: "exec-orphan", SchedulerName: "muster",
		Requests: cpu("1"), Labels: map[string]string{gang.LabelSparkApp: app, gang.LabelSparkRole: "executor"}}}))
	waitUnschedulable(t, ns, "exec-orphan", 30*time.Second, "the driver of Spark application "+app+" is not running")

	// A driver whose reservation cannot fit is not bound.
	big := driver
	big.Name = "driver-big"
	big.Labels = map[string]string{gang.LabelSparkApp: "spark-app-2", gang.LabelSparkRole: "driver"}
	big.Annotations = map[string]string{gang.AnnotationMinExecutors: "5", gang.AnnotationExecutorResources: "cpu=4"}
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{big}))
	waitUnschedulable(t, ns, "driver-big", 30*time.Second, "Spark "+ns+"/spark-app-2")
}
