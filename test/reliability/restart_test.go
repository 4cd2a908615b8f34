package reliability

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

// TestReliabilityRestartMidGang kills muster-scheduler with SIGKILL while a
// Spark app's driver is bound and holds room for executors not created yet
// (a quorum that arrives slowly), a gang waits for room and a third runs,
// and starts it again. The new process rebuilds everything from the
// cluster: the running gang's usage is counted once, the Spark app's
// reservation is rebuilt, the waiting gang waits again, and when room comes
// every gang binds whole.
func TestReliabilityRestartMidGang(t *testing.T) {
	ctx := framework.TestContext(t)
	ns := framework.NewNamespace(t)
	deleteLeaseAtEnd(t)
	framework.CreateNodes(t, framework.Node("restart-1", "4", "16Gi", nil), framework.Node("restart-2", "4", "16Gi", nil))
	setQueues(t, tenantQueues("16", ns))
	w := watchPods(t, ns)
	ref := func(g string) string { return "Annotation " + ns + "/" + g }

	first := startBinary(t)
	waitFor(t, 60*time.Second, "the first instance to lead", func(ctx context.Context) bool { return leaseHolder(ctx) != "" })

	// running: bound before the kill.
	w.expect(ns+"/running", 4)
	createPods(t, ns, annotationGang("running", 4, "1")...)
	waitFor(t, 60*time.Second, "gang running to bind", func(context.Context) bool { return w.everBound(ns+"/running") == 4 })

	// held: a Spark driver bound, with room reserved for its 3 executors.
	driver, executors := sparkApp("held", "1", 3, "1")
	createPods(t, ns, driver)
	framework.WaitBound(t, ns, driver.name, 60*time.Second)

	// big: eight members arriving one by one, more than the cluster has left.
	w.expect(ns+"/big", 8)
	for i, p := range annotationGang("big", 8, "1") {
		createPods(t, ns, p)
		if i < 7 {
			waitUnschedulable(t, ns, p.name, 30*time.Second, fmt.Sprintf("%d of 8 members exist", i+1))
		}
	}
	before := waitStatus(t, 60*time.Second, time.Now(), "held's executors reserved, big pending", func(r status.Report) bool {
		q, _ := queueLine(r, "root.tenant")
		b, ok := pendingGang(r, ref("big"))
		return ok && b.Phase == "Pending" && cpuOf(q.Reserved) == 3000
	})
	tenant, _ := queueLine(before, "root.tenant")
	t.Logf("before the kill: tenant allocated %v reserved %v; pending gangs %+v", tenant.Allocated, tenant.Reserved, before.PendingGangs)
	require.Equal(t, int64(5000), cpuOf(tenant.Allocated), "running and held's driver")
	require.Equal(t, int64(3000), cpuOf(tenant.Reserved), "held's executors are reserved")

	// The hard case: no chance to clean up.
	holder := leaseHolder(ctx)
	first.Kill(t)
	killedAt := time.Now()
	assert.Equal(t, 4, w.everBound(ns+"/running"))
	assert.Equal(t, 1, w.everBound(ns+"/held"), "only held's driver is bound")

	second := startBinary(t)
	waitFor(t, 60*time.Second, "the restarted instance to lead", func(ctx context.Context) bool {
		h := leaseHolder(ctx)
		return h != "" && h != holder
	})
	t.Logf("the restarted instance leads %s after the kill", time.Since(killedAt).Round(100*time.Millisecond))

	// Rebuilt from the cluster: running counted once, held's reservation
	// rebuilt, big pending.
	after := waitStatus(t, 60*time.Second, time.Now(), "the restarted instance's view", func(r status.Report) bool {
		q, _ := queueLine(r, "root.tenant")
		b, ok := pendingGang(r, ref("big"))
		return ok && b.Phase == "Pending" && cpuOf(q.Reserved) == 3000
	})
	tenant, _ = queueLine(after, "root.tenant")
	t.Logf("after the restart: tenant allocated %v reserved %v; pending gangs %+v", tenant.Allocated, tenant.Reserved, after.PendingGangs)
	assert.Equal(t, int64(5000), cpuOf(tenant.Allocated), "the running gang is counted once")
	assert.Equal(t, int64(3000), cpuOf(tenant.Reserved), "held's executors are reserved once")
	_, runningPending := pendingGang(after, ref("running"))
	assert.False(t, runningPending, "the running gang is known as bound")
	assert.Equal(t, 1, w.everBound(ns+"/held"))
	assert.Zero(t, w.everBound(ns+"/big"))

	// Room comes: held's executors arrive, a node is added for big.
	createPods(t, ns, executors...)
	framework.CreateNodes(t, framework.Node("restart-3", "8", "16Gi", nil))
	waitFor(t, 90*time.Second, "every gang to bind", func(context.Context) bool {
		return w.complete() == 2 && w.everBound(ns+"/held") == 4
	})
	final := waitStatus(t, 30*time.Second, time.Now(), "everything allocated, nothing reserved", func(r status.Report) bool {
		q, _ := queueLine(r, "root.tenant")
		return cpuOf(q.Allocated) == 16000 && nothingReserved(r) && len(r.PendingGangs) == 0
	})
	q, _ := queueLine(final, "root.tenant")
	assert.Equal(t, 16, q.RunningPods)

	rep := w.report()
	t.Logf("watch: %d binds, rebinds %v, longest partial %s, most gangs partial at once %d", rep.Bound, rep.Rebinds, rep.Longest, rep.MaxPartial)
	assert.Empty(t, rep.Rebinds, "no pod bound twice")
	assert.Empty(t, rep.Partial, "no gang left partly bound")
	assert.Less(t, rep.Longest, 5*time.Second, "a gang is partly bound only during its bind burst")
	assert.False(t, second.Exited(), "the restarted instance runs")
}

// waitFor polls cond every 100ms until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) bool) {
	t.Helper()
	require.NoError(t, pollUntil(timeout, cond), "waiting for %s", what)
}
