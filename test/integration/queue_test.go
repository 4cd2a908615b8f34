package integration

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/cli"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/status"
)

// bigCluster creates n nodes of 32 CPU for the test.
func bigCluster(t *testing.T, prefix string, n int) {
	t.Helper()
	nodes := make([]cluster.Node, n)
	for i := range nodes {
		nodes[i] = node(fmt.Sprintf("%s-%d", prefix, i), "32", "128Gi", nil)
	}
	createNodes(t, nodes...)
}

// TestQueueMaxNeverExceeded: a burst of 100 pods into a leaf with max 10 CPU
// on a cluster with room for all of them. Every bind is watched: the leaf
// never holds more than 10 CPU, and the rest bind as earlier pods finish.
func TestQueueMaxNeverExceeded(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	bigCluster(t, "burst", 10)
	setQueues(t, fmt.Sprintf(`
queues:
  - name: burst
    max: {cpu: "10"}
    namespaces: [%q]
namespaceQueues:
  %s: root.burst
`, ns, ns))
	startMuster(t)
	w := watchBinds(t, func(*v1.Pod) string { return "burst" }, ns)

	const n = 100
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "b", n, "1", time.Second, nil)))
	waitFor(t, 3*time.Minute, "all 100 pods to run and finish", func(context.Context) (bool, error) {
		return w.EverBound() == n && countBound(t, ns) == 0, nil
	})
	assert.Equal(t, int64(10_000), w.Peak("burst"), "the leaf filled its max, and never went above it (millicores)")
}

// TestQueueParentMax: a parent's max holds across its two leaves, and a
// leaf's guaranteed is not a cap.
func TestQueueParentMax(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	bigCluster(t, "parent", 2)
	setQueues(t, fmt.Sprintf(`
queues:
  - name: team
    max: {cpu: "6"}
    guaranteed: {cpu: "4"}
    queues:
      - {name: a, max: {cpu: "5"}, guaranteed: {cpu: "2"}}
      - {name: b, max: {cpu: "5"}, guaranteed: {cpu: "2"}}
namespaceQueues:
  %s: root.team.a
`, ns))
	startMuster(t)
	w := watchBinds(t, func(p *v1.Pod) string { return p.Labels[queue.LabelQueue] }, ns)

	a := musterPods(ns, "a", 5, "1", 0, map[string]string{queue.LabelQueue: "a"})
	b := musterPods(ns, "b", 5, "1", 0, map[string]string{queue.LabelQueue: "root.team.b"})
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, append(a, b...)))

	waitFor(t, time.Minute, "6 pods bound", func(context.Context) (bool, error) { return countBound(t, ns) == 6, nil })
	// Every other pod is refused for the parent's max.
	var refused int
	for _, p := range append(a, b...) {
		got, err := env.cp.Client.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
		require.NoError(t, err)
		if got.Spec.NodeName == "" {
			refused++
			waitUnschedulable(t, ns, p.Name, 30*time.Second, "queue root.team is at its max for cpu", "max 6")
		}
	}
	assert.Equal(t, 4, refused)
	assert.Equal(t, 6, countBound(t, ns), "still 6 once every refusal is in")
	assert.LessOrEqual(t, w.Peak("a"), int64(5000))
	assert.LessOrEqual(t, w.Peak("root.team.b"), int64(5000))
	assert.True(t, w.Peak("a") > 2000 || w.Peak("root.team.b") > 2000, "a leaf went above its guaranteed 2: guaranteed is not a cap")
}

// TestQueueHotReload: raising max lets waiting pods bind within seconds; an
// invalid edit is refused whole, visibly, and the old limits still hold.
func TestQueueHotReload(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	bigCluster(t, "reload", 2)
	config := func(max string) string {
		return fmt.Sprintf("queues:\n  - name: tenant\n    max: {cpu: %q}\nnamespaceQueues:\n  %s: root.tenant\n", max, ns)
	}
	setQueues(t, config("2"))
	s := startMuster(t)

	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "p", 4, "1", 0, nil)))
	waitFor(t, time.Minute, "2 pods bound", func(context.Context) (bool, error) { return countBound(t, ns) == 2, nil })
	for _, name := range unbound(t, ns) {
		waitUnschedulable(t, ns, name, 30*time.Second, "queue root.tenant is at its max for cpu", "max 2")
	}

	// A valid edit: the waiting pods bind within seconds.
	start := time.Now()
	setQueues(t, config("4"))
	waitFor(t, 15*time.Second, "the waiting pods to bind after max went up", func(context.Context) (bool, error) {
		return countBound(t, ns) == 4, nil
	})
	t.Logf("waiting pods bound %s after the edit", time.Since(start).Round(10*time.Millisecond))

	// An invalid edit: refused whole, an Event says why, the old limits hold.
	invalidBefore := sumMetric(scrape(t, s.Addr), "muster_config_reloads_total", map[string]string{"result": "invalid"})
	setQueues(t, "queues:\n  - name: tenant\n    max: {cpu: lots}\n    weight: -1\n")
	// The ConfigMap outlives tests, and so do the Events about it: this
	// edit's refusal is the one that names its errors.
	var note string
	waitFor(t, 15*time.Second, "the refusal Event", func(context.Context) (bool, error) {
		for _, n := range eventsFor(t, musterNamespace, "muster-queues", "QueueConfigRefused") {
			if strings.Contains(n, `root.tenant.max.cpu: "lots" is not a valid quantity`) {
				note = n
				return true, nil
			}
		}
		return false, nil
	})
	assert.True(t, strings.HasPrefix(note, "Warning: "), note)
	assert.Contains(t, note, "root.tenant.weight: must be greater than 0")
	assert.Equal(t, 1.0, sumMetric(scrape(t, s.Addr), "muster_config_reloads_total", map[string]string{"result": "invalid"})-invalidBefore)

	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "late", 1, "1", 0, nil)))
	waitUnschedulable(t, ns, "late-0", 30*time.Second, "queue root.tenant is at its max for cpu", "max 4")
	assert.Equal(t, 4, countBound(t, ns))

	r := waitStatus(t, 30*time.Second, "the refusal in the status", func(r status.Report) bool { return r.Config.LastError != "" })
	assert.Contains(t, r.Config.LastError, "is not a valid quantity")
	assert.True(t, r.Config.Valid)
	q, ok := queueStatus(r, "root.tenant")
	require.True(t, ok)
	assert.Equal(t, map[string]string{"cpu": "4"}, q.Max, "the old limits are still in force")

	// A restart (or a new leader) while the edit is still invalid: the last
	// valid configuration muster applied, kept in the status ConfigMap, is
	// in force, not nothing.
	waitFor(t, 30*time.Second, "the applied configuration kept in the status ConfigMap", func(ctx context.Context) (bool, error) {
		cm, err := env.cp.Client.CoreV1().ConfigMaps(musterNamespace).Get(ctx, "muster-queue-status", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return cm.Data[status.AppliedKey] == config("4"), nil
	})
	require.NoError(t, s.Stop())
	startMuster(t)
	r = waitStatus(t, 30*time.Second, "the restarted scheduler's status", func(r status.Report) bool {
		return strings.Contains(r.Config.Source, "last valid configuration")
	})
	assert.True(t, r.Config.Valid)
	assert.Contains(t, r.Config.LastError, "is not a valid quantity", "the refusal is still reported")
	q, ok = queueStatus(r, "root.tenant")
	require.True(t, ok)
	assert.Equal(t, map[string]string{"cpu": "4"}, q.Max)
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "after-restart", 1, "1", 0, nil)))
	waitUnschedulable(t, ns, "after-restart-0", 30*time.Second, "queue root.tenant is at its max for cpu", "max 4")
	assert.Equal(t, 4, countBound(t, ns))
}

// TestQueueUnknownQueueAndACL: pods that name a queue that does not exist,
// or whose namespace may not submit, are never bound; the condition and a
// Warning Event say which queue and why.
func TestQueueUnknownQueueAndACL(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	bigCluster(t, "acl", 1)
	setQueues(t, `
queues:
  - name: private
    namespaces: ["team-secret-*"]
  - name: open
`)
	startMuster(t)
	pods := []cluster.Pod{
		{Namespace: ns, Name: "unknown", SchedulerName: "muster", Requests: cpu("1"), Labels: map[string]string{queue.LabelQueue: "nosuch"}},
		{Namespace: ns, Name: "denied", SchedulerName: "muster", Requests: cpu("1"), Labels: map[string]string{queue.LabelQueue: "private"}},
		{Namespace: ns, Name: "unmapped", SchedulerName: "muster", Requests: cpu("1")},
		{Namespace: ns, Name: "allowed", SchedulerName: "muster", Requests: cpu("1"), Labels: map[string]string{queue.LabelQueue: "open"}},
	}
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, pods))
	waitBound(t, ns, "allowed", 30*time.Second)

	cases := map[string][]string{
		"unknown":  {"queue nosuch does not exist", queue.LabelQueue},
		"denied":   {"namespace " + ns + " may not submit to queue root.private", "team-secret-*"},
		"unmapped": {"namespace " + ns + " has no queue"},
	}
	for name, want := range cases {
		msg := waitUnschedulable(t, ns, name, 30*time.Second, want...)
		waitFor(t, 15*time.Second, "the FailedScheduling event of "+name, func(context.Context) (bool, error) {
			for _, e := range eventsFor(t, ns, name, "FailedScheduling") {
				if strings.HasPrefix(e, "Warning: ") && strings.Contains(e, want[0]) {
					return true, nil
				}
			}
			return false, nil
		})
		t.Logf("%s: %s", name, msg)
	}
	for name := range cases {
		p, err := env.cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		assert.Empty(t, p.Spec.NodeName, "%s was bound", name)
	}
}

// TestQueueRestartNoOverAdmission: a restarted muster-scheduler rebuilds the
// usage from the cluster and admits nothing beyond the max.
func TestQueueRestartNoOverAdmission(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	bigCluster(t, "restart", 1)
	setQueues(t, fmt.Sprintf("queues:\n  - name: capped\n    max: {cpu: \"3\"}\nnamespaceQueues:\n  %s: root.capped\n", ns))
	first := startMuster(t)
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "before", 3, "1", 0, nil)))
	waitFor(t, time.Minute, "3 pods bound", func(context.Context) (bool, error) { return countBound(t, ns) == 3, nil })
	require.NoError(t, first.Stop())

	startMuster(t)
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "after", 2, "1", 0, nil)))
	for _, name := range unbound(t, ns) {
		waitUnschedulable(t, ns, name, 30*time.Second, "queue root.capped is at its max for cpu: 3 in use")
	}
	assert.Equal(t, 3, countBound(t, ns))
}

// TestQueueStatus: the status ConfigMap and the queue metrics show the
// queues' limits and usage.
func TestQueueStatus(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	bigCluster(t, "status", 1)
	setQueues(t, fmt.Sprintf(`
queues:
  - name: analytics
    weight: 2
    guaranteed: {cpu: "4"}
    max: {cpu: "8", memory: 64Gi}
    queues:
      - name: etl
      - name: adhoc
namespaceQueues:
  %s: root.analytics.etl
`, ns))
	s := startMuster(t)
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "p", 3, "2", 0, nil)))
	waitFor(t, time.Minute, "2 pods bound... and 1 more", func(context.Context) (bool, error) { return countBound(t, ns) == 3, nil })

	r := waitStatus(t, 30*time.Second, "usage in the status", func(r status.Report) bool {
		q, ok := queueStatus(r, "root.analytics.etl")
		return ok && q.Allocated["cpu"] == "6"
	})
	etl, _ := queueStatus(r, "root.analytics.etl")
	assert.Equal(t, 3, etl.RunningPods)
	assert.Equal(t, map[string]string{"cpu": "8", "memory": "64Gi"}, etl.Max, "effective max, inherited")
	analytics, _ := queueStatus(r, "root.analytics")
	assert.Equal(t, "6", analytics.Allocated["cpu"], "a parent's usage is its children's")
	assert.Equal(t, map[string]string{"cpu": "4"}, analytics.Guaranteed)
	assert.Equal(t, 2.0, analytics.Weight)
	assert.Contains(t, r.Config.Source, "ConfigMap muster-system/muster-queues")

	mf := scrape(t, s.Addr)
	assert.Equal(t, 6.0, sumMetric(mf, "muster_queue_resource", map[string]string{"queue": "root.analytics.etl", "resource": "cpu", "type": "allocated"}))
	assert.Equal(t, 8.0, sumMetric(mf, "muster_queue_resource", map[string]string{"queue": "root.analytics.etl", "resource": "cpu", "type": "max"}))
	assert.Equal(t, 4.0, sumMetric(mf, "muster_queue_resource", map[string]string{"queue": "root.analytics", "resource": "cpu", "type": "guaranteed"}))
	assert.Equal(t, 3.0, sumMetric(mf, "muster_queue_pods", map[string]string{"queue": "root.analytics", "state": "running"}))

	// muster status prints the same from the live cluster.
	var out, errOut bytes.Buffer
	code := cli.Main([]string{"status", "--kubeconfig", env.cp.Kubeconfig}, &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	assert.Contains(t, out.String(), "Config: ConfigMap muster-system/muster-queues")
	assert.Regexp(t, `(?m)^    etl\s+1\s+-\s+cpu=8,memory=64Gi\s+cpu=6,pods=3\s+`, out.String())
	out.Reset()
	require.Equal(t, 0, cli.Main([]string{"status", "--kubeconfig", env.cp.Kubeconfig, "-o", "json"}, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), `"queue": "root.analytics.etl"`)
}

// TestQueueRemovedWhileRunning: a queue removed while it has running pods
// keeps them running (their usage stays with the remaining ancestors); new
// pods for it are refused with a clear reason.
func TestQueueRemovedWhileRunning(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	bigCluster(t, "removed", 1)
	setQueues(t, "queues:\n  - name: org\n    max: {cpu: \"3\"}\n    queues:\n      - name: old\n      - name: new\n")
	startMuster(t)
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "old", 2, "1", 0, map[string]string{queue.LabelQueue: "old"})))
	waitFor(t, time.Minute, "2 pods bound", func(context.Context) (bool, error) { return countBound(t, ns) == 2, nil })

	setQueues(t, "queues:\n  - name: org\n    max: {cpu: \"3\"}\n    queues:\n      - name: new\n")
	// The new tree exactly (root.org.new without root.org.old): a report
	// left by an earlier test's scheduler has neither.
	r := waitStatus(t, 30*time.Second, "the new tree in the status", func(r status.Report) bool {
		_, hasOld := queueStatus(r, "root.org.old")
		_, hasNew := queueStatus(r, "root.org.new")
		return hasNew && !hasOld
	})
	org, _ := queueStatus(r, "root.org")
	assert.Equal(t, "2", org.Allocated["cpu"], "the removed queue's running pods still count in its parent")

	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, append(
		musterPods(ns, "again", 1, "1", 0, map[string]string{queue.LabelQueue: "old"}),
		musterPods(ns, "sibling", 2, "1", 0, map[string]string{queue.LabelQueue: "new"})...)))
	waitUnschedulable(t, ns, "again-0", 30*time.Second, "queue old does not exist")
	// The parent's max still counts the old pods: one of the two siblings fits.
	waitFor(t, 30*time.Second, "3 pods bound", func(context.Context) (bool, error) { return countBound(t, ns) == 3, nil })
	for _, name := range unbound(t, ns) {
		if strings.HasPrefix(name, "sibling") {
			waitUnschedulable(t, ns, name, 30*time.Second, "queue root.org is at its max for cpu: 3 in use")
		}
	}
	for _, name := range []string{"old-0", "old-1"} {
		p, err := env.cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, v1.PodRunning, p.Status.Phase, "%s keeps running", name)
	}
}
