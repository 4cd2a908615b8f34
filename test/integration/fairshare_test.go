package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/status"
)

// boundIn counts the bound, unfinished pods of ns carrying the queue label q.
func boundIn(t *testing.T, ns, q string) int {
	t.Helper()
	list, err := env.cp.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: queue.LabelQueue + "=" + q})
	require.NoError(t, err)
	n := 0
	for _, p := range list.Items {
		if p.Spec.NodeName != "" && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
			n++
		}
	}
	return n
}

// TestFairShareWeights: two queues with pods pending in both before eight
// one-CPU slots appear share them by weight: 1:1 gives 4/4, 1:3 gives 2/6.
func TestFairShareWeights(t *testing.T) {
	for name, tc := range map[string]struct {
		wa, wb       int
		wantA, wantB int
	}{
		"1:1": {1, 1, 4, 4},
		"1:3": {1, 3, 2, 6},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t)
			ns := newNamespace(t)
			setQueues(t, fmt.Sprintf("queues:\n  - {name: a, weight: %d}\n  - {name: b, weight: %d}\n", tc.wa, tc.wb))
			startMuster(t)
			pods := append(musterPods(ns, "a", 10, "1", 0, map[string]string{queue.LabelQueue: "a"}),
				musterPods(ns, "b", 10, "1", 0, map[string]string{queue.LabelQueue: "b"})...)
			require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, pods))
			// Every pod is pending (there is no node yet) before the slots appear.
			waitUnschedulable(t, ns, "b-9", 30*time.Second)

			createNodes(t, node("fair-"+name[:1]+name[2:], "8", "64Gi", nil))
			waitFor(t, time.Minute, "8 pods bound", func(context.Context) (bool, error) { return countBound(t, ns) == 8, nil })
			// Every pod left waits for its fair share.
			for _, n := range unbound(t, ns) {
				waitUnschedulable(t, ns, n, 30*time.Second)
			}
			assert.Equal(t, tc.wantA, boundIn(t, ns, "a"), "queue a")
			assert.Equal(t, tc.wantB, boundIn(t, ns, "b"), "queue b")
		})
	}
}

// TestFairShareBorrowAndReclaim: a queue borrows idle capacity and keeps it
// while nobody else asks; a queue below its guaranteed gets exactly its
// guarantee back by reclaim, within 30 s, preempting no more than needed;
// then nothing moves back and forth.
func TestFairShareBorrowAndReclaim(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	setQueues(t, `
queues:
  - name: borrower
    guaranteed: {cpu: "2"}
  - name: owner
    guaranteed: {cpu: "4"}
`)
	createNodes(t, node("reclaim-0", "8", "64Gi", nil))
	s := startMuster(t)
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "borrow", 8, "1", 0, map[string]string{queue.LabelQueue: "borrower"})))
	waitFor(t, time.Minute, "the borrower to fill the cluster", func(context.Context) (bool, error) { return boundIn(t, ns, "borrower") == 8, nil })

	before := sumMetric(scrape(t, s.Addr), "muster_preemptions_total", map[string]string{"queue": "root.owner", "reason": "reclaim"})
	start := time.Now()
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "own", 6, "1", 0, map[string]string{queue.LabelQueue: "owner"})))
	waitFor(t, 30*time.Second, "the owner's guarantee back", func(context.Context) (bool, error) { return boundIn(t, ns, "owner") == 4, nil })
	t.Logf("guarantee reclaimed in %s", time.Since(start).Round(10*time.Millisecond))
	// Beyond its guarantee the owner does not preempt: two of its pods wait.
	for _, n := range unbound(t, ns) {
		waitUnschedulable(t, ns, n, 30*time.Second)
	}
	assert.Equal(t, 4, boundIn(t, ns, "owner"))
	assert.Equal(t, 4, boundIn(t, ns, "borrower"))
	waitFor(t, 10*time.Second, "the preemption metric", func(context.Context) (bool, error) {
		return sumMetric(scrape(t, s.Addr), "muster_preemptions_total", map[string]string{"queue": "root.owner", "reason": "reclaim"})-before == 4, nil
	})

	// No ping-pong: the borrower, now at 4 (above its guarantee of 2), keeps
	// asking; nothing is preempted any more while pods come and go.
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "more", 4, "1", 0, map[string]string{queue.LabelQueue: "borrower"})))
	for _, n := range []string{"more-0", "more-1", "more-2", "more-3"} {
		waitUnschedulable(t, ns, n, 30*time.Second)
	}
	assert.Equal(t, 4.0, sumMetric(scrape(t, s.Addr), "muster_preemptions_total", map[string]string{"queue": "root.owner", "reason": "reclaim"})-before)
	assert.Zero(t, sumMetric(scrape(t, s.Addr), "muster_preemptions_total", map[string]string{"queue": "root.borrower"}))

	r := waitStatus(t, 30*time.Second, "fair shares in the status", func(r status.Report) bool {
		q, ok := queueStatus(r, "root.owner")
		return ok && q.FairShare["cpu"] != ""
	})
	owner, _ := queueStatus(r, "root.owner")
	t.Logf("owner: fair %v dominant %.2f", owner.FairShare, owner.DominantShare)
	assert.Greater(t, owner.DominantShare, 0.0)
}

// TestFairShareGangVictim: a victim gang is evicted whole, never left below
// its quorum.
func TestFairShareGangVictim(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	for name, value := range map[string]int32{"muster-test-low": 10, "muster-test-high": 1000} {
		_, err := env.cp.Client.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value}, metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) {
			require.NoError(t, err)
		}
	}
	setQueues(t, `
queues:
  - name: tenant
  - name: owner
    guaranteed: {cpu: "2"}
`)
	createNodes(t, node("victim-0", "8", "64Gi", nil))
	startMuster(t)
	singles := musterPods(ns, "single", 4, "1", 0, map[string]string{queue.LabelQueue: "tenant"})
	for i := range singles {
		singles[i].PriorityClassName = "muster-test-high"
	}
	members := gangPods(ns, "g", 4, "1", 0, map[string]string{gang.LabelGang: "g", queue.LabelQueue: "tenant"},
		map[string]string{gang.AnnotationMinMember: "4"})
	for i := range members {
		members[i].PriorityClassName = "muster-test-low"
	}
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, append(singles, members...)))
	waitFor(t, time.Minute, "the tenant to fill the cluster", func(context.Context) (bool, error) { return countBound(t, ns) == 8, nil })

	// The owner needs 2 CPU: the cheapest victims are the low-priority gang,
	// and taking two of its members would break it: all four go.
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "own", 2, "1", 0, map[string]string{queue.LabelQueue: "owner"})))
	waitFor(t, 30*time.Second, "the owner's guarantee", func(context.Context) (bool, error) { return boundIn(t, ns, "owner") == 2, nil })
	waitFor(t, 30*time.Second, "the gang gone whole", func(ctx context.Context) (bool, error) {
		list, err := env.cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: gang.LabelGang + "=g"})
		return err == nil && len(list.Items) == 0, nil
	})
	for _, p := range singles {
		got, err := env.cp.Client.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
		require.NoError(t, err, "high-priority single %s was kept", p.Name)
		assert.NotEmpty(t, got.Spec.NodeName)
	}
}

// TestFairShareNoPingPong: a queue borrows, the other reclaims its
// guarantee, and then pods of both keep coming and going: the borrower may
// borrow again whatever is idle and lose it again, but it never preempts the
// queue that reclaimed from it. Two queues never preempt each other back and
// forth.
func TestFairShareNoPingPong(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	setQueues(t, `
queues:
  - name: a
    guaranteed: {cpu: "4"}
  - name: b
    guaranteed: {cpu: "4"}
`)
	createNodes(t, node("pingpong-0", "8", "64Gi", nil))
	s := startMuster(t)
	preemptedBy := func(q string) float64 {
		return sumMetric(scrape(t, s.Addr), "muster_preemptions_total", map[string]string{"queue": q})
	}
	beforeA, beforeB := preemptedBy("root.a"), preemptedBy("root.b")

	// a borrows: six long pods. b has two long pods, and then keeps
	// submitting short ones, below its guarantee.
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "a-long", 6, "1", 0, map[string]string{queue.LabelQueue: "a"})))
	waitFor(t, time.Minute, "a's pods bound", func(context.Context) (bool, error) { return boundIn(t, ns, "a") == 6, nil })
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "b-long", 2, "1", 0, map[string]string{queue.LabelQueue: "b"})))
	waitFor(t, 30*time.Second, "b's long pods bound", func(context.Context) (bool, error) { return boundIn(t, ns, "b") == 2, nil })

	deadline := time.Now().Add(15 * time.Second)
	for round := 0; time.Now().Before(deadline); round++ {
		for _, q := range []string{"a", "b"} {
			require.NoError(t, cluster.CreatePods(ctx, env.cp.Client,
				musterPods(ns, fmt.Sprintf("%s-short-%d", q, round), 2, "1", time.Second, map[string]string{queue.LabelQueue: q})))
		}
		next := time.Now().Add(time.Second)
		waitFor(t, 5*time.Second, "the next round", func(context.Context) (bool, error) { return time.Now().After(next), nil })
	}
	assert.GreaterOrEqual(t, preemptedBy("root.b")-beforeB, 2.0, "b reclaimed its guarantee from a")
	assert.Zero(t, preemptedBy("root.a")-beforeA, "a never preempted b")
	t.Logf("preemptions: by b %v, by a %v", preemptedBy("root.b")-beforeB, preemptedBy("root.a")-beforeA)
}
