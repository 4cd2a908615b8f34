package integration

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

// priorityClasses creates the priority classes the policy tests use (once
// for the whole run; they are cluster-scoped).
func priorityClasses(t *testing.T) {
	t.Helper()
	never := v1.PreemptNever
	for _, pc := range []schedulingv1.PriorityClass{
		{ObjectMeta: metav1.ObjectMeta{Name: "muster-policy-low"}, Value: 10},
		{ObjectMeta: metav1.ObjectMeta{Name: "muster-policy-high"}, Value: 1000},
		{ObjectMeta: metav1.ObjectMeta{Name: "muster-policy-high-never"}, Value: 1000, PreemptionPolicy: &never},
	} {
		_, err := env.cp.Client.SchedulingV1().PriorityClasses().Create(context.Background(), &pc, metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) {
			require.NoError(t, err)
		}
	}
}

// victimWatch records, through a watch, which pods of a namespace were
// deleted and whether each carried DisruptionTarget=True (reason
// PreemptionByScheduler) on some version seen before its deletion.
type victimWatch struct {
	mu      sync.Mutex
	marked  map[string]string // pod name -> the condition's message
	deleted []string
}

func watchVictims(t *testing.T, ns string) *victimWatch {
	t.Helper()
	w := &victimWatch{marked: map[string]string{}}
	see := func(o any) {
		p, ok := o.(*v1.Pod)
		if !ok {
			return
		}
		for _, c := range p.Status.Conditions {
			if c.Type == v1.DisruptionTarget && c.Status == v1.ConditionTrue && c.Reason == v1.PodReasonPreemptionByScheduler {
				w.mu.Lock()
				w.marked[p.Name] = c.Message
				w.mu.Unlock()
			}
		}
	}
	framework.WatchPods(t, cache.ResourceEventHandlerFuncs{
		AddFunc:    see,
		UpdateFunc: func(_, o any) { see(o) },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if p, ok := o.(*v1.Pod); ok {
				see(p)
				w.mu.Lock()
				w.deleted = append(w.deleted, p.Name)
				w.mu.Unlock()
			}
		},
	}, ns)
	return w
}

// Deleted returns the pods deleted so far, and for each the
// DisruptionTarget message it carried before ("" if none).
func (w *victimWatch) Deleted() map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]string{}
	for _, n := range w.deleted {
		out[n] = w.marked[n]
	}
	return out
}

// TestPolicyPriorityAtMax: a queue at its max, with room on the nodes: a
// higher-priority pod of the queue preempts exactly one lower-priority pod
// of its own queue (the newest), never a pod of another queue, and the
// victim carries DisruptionTarget before it goes; with preemptionPolicy
// Never it waits instead.
func TestPolicyPriorityAtMax(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	victims := teamAtMax(t, ns, "prio-max-0", 1)

	// preemptionPolicy Never: the queue is at its max, the pod waits.
	never := musterPods(ns, "never", 1, "1", 0, map[string]string{queue.LabelQueue: "team"})
	never[0].PriorityClassName = "muster-policy-high-never"
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, never))
	waitUnschedulable(t, ns, "never-0", 30*time.Second, "root.team")

	high := musterPods(ns, "high", 1, "1", 0, map[string]string{queue.LabelQueue: "team"})
	high[0].PriorityClassName = "muster-policy-high"
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, high))
	waitBound(t, ns, "high-0", time.Minute)

	got := victims.Deleted()
	require.Len(t, got, 1, "exactly one victim: %v", got)
	require.Contains(t, got, "low-3", "the newest low-priority pod of the queue")
	assert.Contains(t, got["low-3"], "pod "+ns+"/high-0", "DisruptionTarget names what it made room for")
	assert.NotEmpty(t, framework.EventsFor(t, ns, "low-3", "Preempted"), "an Event on the victim")
	assert.NotEmpty(t, framework.EventsFor(t, ns, "high-0", "Preempting"), "an Event on the beneficiary")
	assert.Equal(t, 2, boundIn(t, ns, "other"), "another queue's pods are never taken for priority")
	p, err := env.cp.Client.CoreV1().Pods(ns).Get(ctx, "never-0", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Empty(t, p.Spec.NodeName, "preemptionPolicy Never preempts nothing")
}

// TestPolicyMinRuntime: a reclaim takes pods that have run their queue's
// minRuntimeSeconds before younger ones, though the younger are the newest
// (which it would take first otherwise); every victim is marked
// DisruptionTarget before it goes.
func TestPolicyMinRuntime(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	setQueues(t, `
queues:
  - name: borrower
    minRuntimeSeconds: 3600
  - name: owner
    guaranteed: {cpu: "2"}
`)
	createNodes(t, node("min-runtime-0", "6", "64Gi", nil))
	startMuster(t)
	victims := watchVictims(t, ns)

	old := musterPods(ns, "old", 3, "1", 0, map[string]string{queue.LabelQueue: "borrower"})
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, old))
	waitFor(t, time.Minute, "the old pods running", func(context.Context) (bool, error) { return countRunning(t, ns) == 3, nil })
	// They started two hours ago, as far as the API says.
	for _, p := range old {
		startedAgo(t, ns, p.Name, 2*time.Hour)
	}
	young := musterPods(ns, "young", 3, "1", 0, map[string]string{queue.LabelQueue: "borrower"})
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, young))
	waitFor(t, time.Minute, "the young pods running", func(context.Context) (bool, error) { return countRunning(t, ns) == 6, nil })

	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "own", 2, "1", 0, map[string]string{queue.LabelQueue: "owner"})))
	waitFor(t, time.Minute, "the owner's guarantee", func(context.Context) (bool, error) { return boundIn(t, ns, "owner") == 2, nil })

	got := victims.Deleted()
	require.Len(t, got, 2, "victims: %v", got)
	for name, msg := range got {
		assert.Contains(t, []string{"old-0", "old-1", "old-2"}, name, "a young pod was taken while old ones could go")
		assert.Contains(t, msg, "queue root.owner reclaims its guaranteed capacity from queue root.borrower", "%s: DisruptionTarget before deletion", name)
	}
}

// countRunning counts the pods of ns the simulated kubelet runs.
func countRunning(t *testing.T, ns string) int {
	t.Helper()
	list, err := env.cp.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	n := 0
	for _, p := range list.Items {
		if p.Status.Phase == v1.PodRunning && p.Status.StartTime != nil {
			n++
		}
	}
	return n
}

// startedAgo moves a running pod's status.startTime into the past.
func startedAgo(t *testing.T, ns, name string, ago time.Duration) {
	t.Helper()
	ctx := context.Background()
	p, err := env.cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	start := metav1.NewTime(time.Now().Add(-ago))
	p.Status.StartTime = &start
	_, err = env.cp.Client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	require.NoError(t, err)
}

// TestPolicyOrderWithinQueue: three pods wait in a queue with no node to
// run on, a low-priority one first, then a high-priority one, then another
// low-priority one; a node with room for one appears. With ordering
// priority (the default) the high-priority pod gets it; with ordering fifo
// the first to arrive does.
func TestPolicyOrderWithinQueue(t *testing.T) {
	priorityClasses(t)
	setQueues(t, `
queues:
  - name: by-priority
  - name: by-arrival
    ordering: fifo
`)
	s := startMuster(t)
	for name, tc := range map[string]struct {
		queue, want string
	}{
		"priority": {"by-priority", "high-0"},
		"fifo":     {"by-arrival", "first-0"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t)
			ns := newNamespace(t)
			labels := map[string]string{queue.LabelQueue: tc.queue}
			// Room for one pod, on a node only this namespace's pods tolerate.
			taint := v1.Taint{Key: "muster-test/order", Value: ns, Effect: v1.TaintEffectNoSchedule}
			var pods []cluster.Pod
			for _, p := range []struct{ name, class string }{
				{"first", "muster-policy-low"}, {"high", "muster-policy-high"}, {"last", "muster-policy-low"},
			} {
				pod := musterPods(ns, p.name, 1, "1", 0, labels)[0]
				pod.PriorityClassName = p.class
				pod.Tolerations = []v1.Toleration{{Key: taint.Key, Value: taint.Value, Effect: taint.Effect}}
				pods = append(pods, pod)
			}
			// A node none of them tolerates: they fail to fit and wait in the
			// scheduler's unschedulable pool.
			other := node("order-"+name+"-other", "1", "8Gi", nil)
			other.Taints = []v1.Taint{{Key: "muster-test/nobody", Effect: v1.TaintEffectNoSchedule}}
			createNodes(t, other)
			for _, p := range pods {
				require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{p}))
				waitUnschedulable(t, ns, p.Name, 30*time.Second)
			}
			// Every pod out of its backoff (podMaxBackoffSeconds: 2), so that
			// the node's arrival moves them all to the active queue at once,
			// where the order applies: no attempt for longer than that.
			quietSince(t, s.Addr, 2500*time.Millisecond)
			n := node("order-"+name, "1", "8Gi", nil)
			n.Taints = []v1.Taint{taint}
			createNodes(t, n)
			waitFor(t, time.Minute, "one pod bound", func(context.Context) (bool, error) { return countBound(t, ns) == 1, nil })
			waitBound(t, ns, tc.want, time.Second)
		})
	}
}

// quietSince waits until the scheduler has made no scheduling attempt for
// quiet.
func quietSince(t *testing.T, addr string, quiet time.Duration) {
	t.Helper()
	last, changed := -1.0, time.Now()
	waitFor(t, time.Minute, "no scheduling attempt for "+quiet.String(), func(context.Context) (bool, error) {
		n := sumMetric(scrape(t, addr), "scheduler_schedule_attempts_total", nil)
		if n != last {
			last, changed = n, time.Now()
		}
		return time.Since(changed) >= quiet, nil
	})
}

// lifeWatch records, through a watch, when each pod of a namespace was first
// seen bound and when it was first seen finished.
type lifeWatch struct {
	mu              sync.Mutex
	bound, finished map[string]time.Time
}

func watchLives(t *testing.T, ns string) *lifeWatch {
	t.Helper()
	w := &lifeWatch{bound: map[string]time.Time{}, finished: map[string]time.Time{}}
	see := func(o any) {
		p, ok := o.(*v1.Pod)
		if !ok {
			return
		}
		now := time.Now()
		w.mu.Lock()
		defer w.mu.Unlock()
		if _, seen := w.bound[p.Name]; !seen && p.Spec.NodeName != "" {
			w.bound[p.Name] = now
		}
		if _, seen := w.finished[p.Name]; !seen && p.Status.Phase == v1.PodSucceeded {
			w.finished[p.Name] = now
		}
	}
	framework.WatchPods(t, cache.ResourceEventHandlerFuncs{AddFunc: see, UpdateFunc: func(_, o any) { see(o) }}, ns)
	return w
}

func (w *lifeWatch) boundAt(name string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.bound[name]
	return at, ok
}

// TestPolicyNoStarvation: a node full of small pods of one queue, then a
// gang (or one large pod) of that queue, then the small pods finish one at
// a time while new small pods of the queue keep coming: the head of the
// queue holds the room it waits for, and is bound before every new pod,
// within seconds of its room freeing.
func TestPolicyNoStarvation(t *testing.T) {
	cases := []struct {
		name string
		// head is what waits at the head of the queue, and its holder name
		// in the status.
		head   func(ns string) []cluster.Pod
		holder func(ns string) string
	}{
		{"gang of four", func(ns string) []cluster.Pod {
			return gangPods(ns, "train", 4, "1", 10*time.Minute, map[string]string{queue.LabelQueue: "batch", gang.LabelGang: "train"},
				map[string]string{gang.AnnotationMinMember: "4"})
		}, func(ns string) string { return string(gang.KindAnnotation) + " " + ns + "/train" }},
		{"single pod of four CPU", func(ns string) []cluster.Pod {
			return musterPods(ns, "big", 1, "4", 10*time.Minute, map[string]string{queue.LabelQueue: "batch"})
		}, func(ns string) string { return string(gang.KindPod) + " " + ns + "/big-0" }},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) { noStarvation(t, fmt.Sprintf("starve-%d", i), c.head, c.holder) })
	}
}

func noStarvation(t *testing.T, nodeName string, head func(ns string) []cluster.Pod, holder func(ns string) string) {
	ctx := testContext(t)
	ns := newNamespace(t)
	setQueues(t, "queues:\n  - name: batch\n")
	createNodes(t, node(nodeName, "8", "64Gi", nil))
	startMuster(t)
	lives := watchLives(t, ns)
	labels := map[string]string{queue.LabelQueue: "batch"}

	var small []cluster.Pod
	for i := range 8 {
		// The fourth finishes about 15 s after the head arrives: time for
		// the status (written every 5 s) to show its hold, and for explain.
		small = append(small, musterPods(ns, fmt.Sprintf("small-%d", i), 1, "1", 12*time.Second+time.Duration(i)*time.Second, labels)[0])
	}
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, small))
	waitFor(t, time.Minute, "the node full", func(context.Context) (bool, error) { return countRunning(t, ns) == 8, nil })

	members := head(ns)
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, members))
	waitUnschedulable(t, ns, members[0].Name, 30*time.Second)

	// The status shows the head holding the room while it waits (written
	// every 5 s; it waits about 10).
	holding := make(chan string, 1)
	go func() {
		for ctx.Err() == nil {
			cm, err := env.cp.Client.CoreV1().ConfigMaps(framework.MusterNamespace).Get(ctx, framework.StatusConfigMap, metav1.GetOptions{})
			if err == nil {
				if r, err := status.Decode([]byte(cm.Data[status.Key])); err == nil {
					for _, h := range r.Holds {
						if h.Holder == holder(ns) {
							position := 0
							for _, g := range r.PendingGangs {
								if g.Gang == h.Holder {
									position = g.Position
								}
							}
							holding <- fmt.Sprintf("%s on %d node(s) in %s, position %d", h.Holding["cpu"], h.Nodes, h.Queue, position)
							return
						}
					}
				}
			}
			time.Sleep(100 * time.Millisecond) // a poll interval, not a wait for state
		}
	}()

	// New small pods of the queue keep coming until the head is bound.
	// Once the status shows the hold, muster explain says, of a new pod,
	// that it waits behind the head and may not take its room, and of the
	// head that it holds it.
	late, lastLate, held := 0, time.Time{}, ""
	waitFor(t, time.Minute, "the head of the queue bound", func(ctx context.Context) (bool, error) {
		if time.Since(lastLate) >= 200*time.Millisecond {
			require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, fmt.Sprintf("late-%d", late), 1, "1", 10*time.Minute, labels)))
			late, lastLate = late+1, time.Now()
		}
		if held == "" {
			select {
			case held = <-holding:
				explainWhileHeld(t, ns, members, late, lives)
			default:
			}
		}
		for _, m := range members {
			if _, ok := lives.boundAt(m.Name); !ok {
				return false, nil
			}
		}
		return true, nil
	})

	var headBound time.Time
	for _, m := range members {
		at, _ := lives.boundAt(m.Name)
		if at.After(headBound) {
			headBound = at
		}
	}
	for i := range late {
		if at, ok := lives.boundAt(fmt.Sprintf("late-%d-0", i)); ok {
			assert.False(t, at.Before(headBound), "late-%d-0 bound before the head of the queue", i)
		}
	}
	// Its room was free once the fourth small pod finished.
	lives.mu.Lock()
	var finishes []time.Time
	for _, at := range lives.finished {
		finishes = append(finishes, at)
	}
	lives.mu.Unlock()
	sort.Slice(finishes, func(i, j int) bool { return finishes[i].Before(finishes[j]) })
	require.GreaterOrEqual(t, len(finishes), 4)
	wait := headBound.Sub(finishes[3])
	t.Logf("bound %s after its room freed; %d new pods arrived meanwhile", wait.Round(time.Millisecond), late)
	assert.Less(t, wait, 5*time.Second)
	if held == "" {
		select {
		case held = <-holding:
		default:
			t.Fatal("the status never showed the head holding its room")
		}
	}
	t.Logf("status while it waited: holding %s", held)
	want := "4 on 1 node(s) in root.batch"
	if len(members) > 1 {
		want += ", position 1"
	}
	assert.Contains(t, held, want)
}

// explainWhileHeld checks muster explain's account of the order while the
// head holds its room (it must still be waiting after the answers).
func explainWhileHeld(t *testing.T, ns string, head []cluster.Pod, late int, lives *lifeWatch) {
	t.Helper()
	headName := "pod " + ns + "/" + head[0].Name
	if len(head) > 1 {
		headName = "gang " + string(gang.KindAnnotation) + " " + ns + "/train"
	}
	newest := runExplain(t, fmt.Sprintf("%s/late-%d-0", ns, late-1))
	first := runExplain(t, ns+"/"+head[0].Name)
	_, bound := lives.boundAt(head[0].Name)
	require.False(t, bound, "the head was bound while explain ran: the small pods finish too soon for this test")
	t.Logf("explain of the newest pod: %s; behind %v; %s", newest.Order, newest.WaitsBehind, newest.Holds)
	t.Logf("explain of the head: %s; %s", first.Order, first.Holds)
	assert.Equal(t, "number 1 of "+strconv.Itoa(late+1)+" waiting in root.batch (ordering priority: priority, then arrival)", first.Order)
	assert.True(t, strings.HasPrefix(first.Holds, "it holds cpu=4,pods="), first.Holds)
	// Pods created in the same second are told apart by name here (muster
	// itself knows when it saw each): the newest is among the last.
	assert.Regexp(t, fmt.Sprintf(`^number \d+ of %d waiting in root.batch`, late+1), newest.Order)
	assert.NotEqual(t, "number 1 of", newest.Order[:len("number 1 of")])
	require.NotEmpty(t, newest.WaitsBehind)
	assert.True(t, strings.HasPrefix(newest.WaitsBehind[0], headName+" (priority 0"), newest.WaitsBehind[0])
	assert.True(t, strings.HasPrefix(newest.Holds, headName+", the head of root.batch, holds cpu=4,pods="), newest.Holds)
}

// TestPolicyElasticReclaim: a gang's member beyond its quorum, arriving
// after the gang is bound, reclaims within its queue's guarantee like a pod
// of its own would.
func TestPolicyElasticReclaim(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	victims := borrowerAndOwner(t, ns, "elastic-0", 4)
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "borrow", 8, "1", 0, map[string]string{queue.LabelQueue: "borrower"})))
	waitFor(t, time.Minute, "the borrower to fill the node", func(context.Context) (bool, error) { return boundIn(t, ns, "borrower") == 8, nil })

	labels := map[string]string{queue.LabelQueue: "owner", gang.LabelGang: "job"}
	members := gangPods(ns, "job", 3, "1", 0, labels, map[string]string{gang.AnnotationMinMember: "2"})
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, members[:2]))
	waitBound(t, ns, "job-0", time.Minute)
	waitBound(t, ns, "job-1", time.Minute)
	require.Len(t, victims.Deleted(), 2, "the gang reclaimed its two members' room")

	// The third member comes after the gang is bound: it is elastic.
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, members[2:]))
	waitBound(t, ns, "job-2", time.Minute)
	got := victims.Deleted()
	assert.Len(t, got, 3, "one more borrower pod reclaimed for the elastic member: %v", got)
	for name, msg := range got {
		assert.Contains(t, msg, "queue root.owner reclaims its guaranteed capacity from queue root.borrower", name)
	}
}

// TestPolicyGangPriorityAtMax: a higher-priority gang of a queue at its
// max preempts the fewest newest lower-priority pods of its queue, never a
// pod of another queue, and is bound once they are gone.
func TestPolicyGangPriorityAtMax(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	victims := teamAtMax(t, ns, "gang-prio-max-0", 2)

	members := gangPods(ns, "train", 2, "1", 0, map[string]string{queue.LabelQueue: "team", gang.LabelGang: "train"},
		map[string]string{gang.AnnotationMinMember: "2"})
	for i := range members {
		members[i].PriorityClassName = "muster-policy-high"
	}
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, members))
	waitBound(t, ns, "train-0", time.Minute)
	waitBound(t, ns, "train-1", time.Minute)

	got := victims.Deleted()
	require.Len(t, got, 2, "victims: %v", got)
	for _, name := range []string{"low-2", "low-3"} {
		require.Contains(t, got, name, "the newest low-priority pods of the queue")
		assert.Contains(t, got[name], "gang "+string(gang.KindAnnotation)+" "+ns+"/train", "DisruptionTarget names the gang")
	}
	assert.Equal(t, 2, boundIn(t, ns, "other"), "another queue's pods are never taken for priority")
}

// TestPolicyExecutorsBeforeDriver: a reclaim that finds a Spark app among
// its victims takes executors, never the driver alone, though the driver is
// the newest pod (which it would take first otherwise).
func TestPolicyExecutorsBeforeDriver(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	victims := borrowerAndOwner(t, ns, "spark-victim-0", 2)
	plain := musterPods(ns, "plain", 3, "1", 0, map[string]string{queue.LabelQueue: "borrower"})
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, plain))
	app := "spark-" + ns
	driver := sparkPod(ns, "app-driver", app, "driver", "", "1")
	driver.Labels[queue.LabelQueue] = "borrower"
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{driver}))
	waitFor(t, time.Minute, "the driver running", func(context.Context) (bool, error) { return countRunning(t, ns) == 4, nil })
	var executors []cluster.Pod
	for i := range 4 {
		e := sparkPod(ns, fmt.Sprintf("app-exec-%d", i), app, "executor", "", "1")
		e.Labels[queue.LabelQueue] = "borrower"
		executors = append(executors, e)
	}
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, executors))
	waitFor(t, time.Minute, "the node full", func(context.Context) (bool, error) { return countRunning(t, ns) == 8, nil })
	// The plain pods are the oldest, then the executors; the driver is the
	// newest.
	for _, p := range plain {
		startedAgo(t, ns, p.Name, 2*time.Hour)
	}
	for _, e := range executors {
		startedAgo(t, ns, e.Name, time.Hour)
	}

	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "own", 2, "1", 0, map[string]string{queue.LabelQueue: "owner"})))
	waitFor(t, time.Minute, "the owner's guarantee", func(context.Context) (bool, error) { return boundIn(t, ns, "owner") == 2, nil })
	got := victims.Deleted()
	require.Len(t, got, 2, "victims: %v", got)
	for name := range got {
		assert.Contains(t, name, "app-exec-", "executors go before the driver and before older pods")
	}
}

// teamAtMax sets up a queue team at its max of 4 CPU on a 16-CPU node, with
// four low-priority pods running, low-0 to low-3, the last newest ones the
// newest by far (start times are kept to the second: the others started an
// hour ago), and two low-priority pods of queue other; it returns a watch
// of the victims.
func teamAtMax(t *testing.T, ns, nodeName string, newest int) *victimWatch {
	t.Helper()
	ctx := testContext(t)
	priorityClasses(t)
	setQueues(t, `
queues:
  - name: team
    max: {cpu: "4"}
  - name: other
`)
	createNodes(t, node(nodeName, "16", "64Gi", nil))
	startMuster(t)
	victims := watchVictims(t, ns)
	low := musterPods(ns, "low", 4, "1", 0, map[string]string{queue.LabelQueue: "team"})
	others := musterPods(ns, "other", 2, "1", 0, map[string]string{queue.LabelQueue: "other"})
	for i := range low {
		low[i].PriorityClassName = "muster-policy-low"
	}
	for i := range others {
		others[i].PriorityClassName = "muster-policy-low"
	}
	old := len(low) - newest
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, slices.Concat(low[:old], others)))
	waitFor(t, time.Minute, "the older pods running", func(context.Context) (bool, error) { return countRunning(t, ns) == old+len(others), nil })
	for _, p := range low[:old] {
		startedAgo(t, ns, p.Name, time.Hour)
	}
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, low[old:]))
	waitFor(t, time.Minute, "every pod running", func(context.Context) (bool, error) { return countRunning(t, ns) == len(low)+len(others), nil })
	return victims
}

// TestPolicyOrderAcrossQueues: two queues' pods wait for room, the pod of
// the queue holding more than its fair share first, then the pod of the
// queue holding nothing; a node with room for one appears. The queue
// furthest below its fair share goes first, though its pod came later
// (kube-scheduler's PrioritySort would take the first to arrive).
func TestPolicyOrderAcrossQueues(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	setQueues(t, `
queues:
  - name: ahead
  - name: behind
`)
	createNodes(t, node("across-0", "2", "8Gi", nil))
	s := startMuster(t)
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "held", 2, "1", 0, map[string]string{queue.LabelQueue: "ahead"})))
	waitFor(t, time.Minute, "queue ahead holding the node", func(context.Context) (bool, error) { return boundIn(t, ns, "ahead") == 2, nil })

	// Both wait for a node only they tolerate, in the unschedulable pool.
	taint := v1.Taint{Key: "muster-test/across", Value: ns, Effect: v1.TaintEffectNoSchedule}
	other := node("across-other", "8", "8Gi", nil) // capacity enough that the fair-share gate admits both
	other.Taints = []v1.Taint{{Key: "muster-test/nobody", Effect: v1.TaintEffectNoSchedule}}
	createNodes(t, other)
	for _, q := range []string{"ahead", "behind"} {
		p := musterPods(ns, "late-"+q, 1, "1", 0, map[string]string{queue.LabelQueue: q})[0]
		p.Tolerations = []v1.Toleration{{Key: taint.Key, Value: taint.Value, Effect: taint.Effect}}
		require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{p}))
		waitUnschedulable(t, ns, p.Name, 30*time.Second)
	}
	quietSince(t, s.Addr, 2500*time.Millisecond)
	room := node("across-room", "1", "8Gi", nil)
	room.Taints = []v1.Taint{taint}
	createNodes(t, room)
	waitFor(t, time.Minute, "one late pod bound", func(context.Context) (bool, error) { return countBound(t, ns) == 3, nil })
	waitBound(t, ns, "late-behind-0", time.Second)
}

// borrowerAndOwner sets up queue borrower (no guarantee) and queue owner
// (guaranteed that many CPUs) on one 8-CPU node, starts muster and returns a
// watch of the victims.
func borrowerAndOwner(t *testing.T, ns, nodeName string, guaranteed int) *victimWatch {
	t.Helper()
	setQueues(t, fmt.Sprintf(`
queues:
  - name: borrower
  - name: owner
    guaranteed: {cpu: "%d"}
`, guaranteed))
	createNodes(t, node(nodeName, "8", "64Gi", nil))
	startMuster(t)
	return watchVictims(t, ns)
}
