package reliability

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

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/mustergang"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

// TestReliabilityRestartSparkReservation kills muster-scheduler with SIGKILL
// while a Spark driver is bound and its executors, for which it holds a
// reservation, are not created yet. The restarted process rebuilds the
// reservation from the cluster before it decides anything: a gang that
// would fit in the reserved room does not get it, the executors created
// afterwards bind into it, and the status shows the same reservation
// before and after the restart.
func TestReliabilityRestartSparkReservation(t *testing.T) {
	ctx := framework.TestContext(t)
	ns := framework.NewNamespace(t)
	deleteLeaseAtEnd(t)
	framework.CreateNodes(t, framework.Node("sparkr-1", "4", "16Gi", nil), framework.Node("sparkr-2", "4", "16Gi", nil))
	setQueues(t, tenantQueues("64", ns))
	w := watchPods(t, ns)

	first := startBinary(t)
	waitFor(t, 60*time.Second, "the first instance to lead", func(ctx context.Context) bool { return leaseHolder(ctx) != "" })
	// The driver (1 CPU) holds room for 3 executors of 2 CPU: 7 of the 8 CPUs.
	driver, executors := sparkApp("app", "1", 3, "2")
	createPods(t, ns, driver)
	framework.WaitBound(t, ns, driver.name, 60*time.Second)
	before := waitStatus(t, 30*time.Second, time.Now(), "the driver allocated, its executors reserved", func(r status.Report) bool {
		q, _ := queueLine(r, "root.tenant")
		return cpuOf(q.Allocated) == 1000 && cpuOf(q.Reserved) == 6000
	})
	tenant, _ := queueLine(before, "root.tenant")
	t.Logf("before the kill: tenant allocated %v reserved %v", tenant.Allocated, tenant.Reserved)

	holder := leaseHolder(ctx)
	first.Kill(t)
	killedAt := time.Now()
	second := startBinary(t)
	waitFor(t, 60*time.Second, "the restarted instance to lead", func(ctx context.Context) bool {
		h := leaseHolder(ctx)
		return h != "" && h != holder
	})
	t.Logf("the restarted instance leads %s after the kill", time.Since(killedAt).Round(100*time.Millisecond))

	// A gang of 3 x 2 CPU: it fits in the 7 CPUs left by the driver (3 on
	// one node, 4 on the other) unless the reservation is there.
	w.expect(ns+"/rival", 3)
	createPods(t, ns, annotationGang("rival", 3, "2")...)
	after := waitStatus(t, 60*time.Second, time.Now(), "the rebuilt reservation", func(r status.Report) bool {
		q, _ := queueLine(r, "root.tenant")
		g, ok := pendingGang(r, "Annotation "+ns+"/rival")
		return cpuOf(q.Reserved) == 6000 && ok && g.Phase == "Pending"
	})
	tenantAfter, _ := queueLine(after, "root.tenant")
	t.Logf("after the restart: tenant allocated %v reserved %v", tenantAfter.Allocated, tenantAfter.Reserved)
	assert.Equal(t, tenant.Reserved, tenantAfter.Reserved, "the same reservation")
	assert.Equal(t, tenant.Allocated, tenantAfter.Allocated)
	waitUnschedulable(t, ns, "rival-0", 30*time.Second, "not enough room")
	assert.NotEmpty(t, framework.EventsFor(t, ns, driver.name, mustergang.ReasonReservationRestored), "an Event says the reservation was rebuilt")

	createPods(t, ns, executors...)
	for _, e := range executors {
		framework.WaitBound(t, ns, e.name, 30*time.Second)
	}
	final := waitStatus(t, 30*time.Second, time.Now(), "the executors allocated, nothing reserved", func(r status.Report) bool {
		q, _ := queueLine(r, "root.tenant")
		return cpuOf(q.Allocated) == 7000 && nothingReserved(r)
	})
	g, ok := pendingGang(final, "Annotation "+ns+"/rival")
	assert.True(t, ok && g.Phase == "Pending", "the rival still waits for room: %+v", final.PendingGangs)
	assert.Zero(t, w.everBound(ns+"/rival"), "the rival never got the reserved room")
	assert.Empty(t, w.report().Rebinds)
	assert.False(t, second.Exited(), "the restarted instance runs")
}

// TestReliabilitySpotNoticeMovesReservation: a Spark app's reservation has
// a slot on a spot node that gets the AWS node termination handler's
// interruption taint. The slot moves to another node at once (no timeout
// is involved): a pod that would take the room there does not get it, and
// the executors created afterwards bind on nodes that stay.
func TestReliabilitySpotNoticeMovesReservation(t *testing.T) {
	ctx := framework.TestContext(t)
	ns := framework.NewNamespace(t)
	setQueues(t, tenantQueues("64", ns))
	spot := func(zone string) map[string]string {
		return map[string]string{capacity.LabelMuster: "spot", "topology.kubernetes.io/zone": zone, "node.kubernetes.io/instance-type": "m5.xlarge"}
	}
	framework.CreateNodes(t,
		framework.Node("notice-od", "2", "16Gi", map[string]string{capacity.LabelMuster: "on-demand"}),
		framework.Node("notice-spot-a", "4", "16Gi", spot("zone-a")),
		framework.Node("notice-spot-b", "4", "16Gi", spot("zone-b")))
	s := startMuster(t)
	w := watchPods(t, ns)

	// The driver prefers on-demand; its two executors (2 CPU each) prefer
	// spot and are spread over the two spot pools: a slot on each.
	driver, executors := sparkApp("app", "1", 2, "2")
	createPods(t, ns, driver)
	assert.Equal(t, "notice-od", framework.WaitBound(t, ns, driver.name, 30*time.Second).Spec.NodeName)
	waitStatus(t, 30*time.Second, time.Now(), "the executors reserved", func(r status.Report) bool {
		q, _ := queueLine(r, "root.tenant")
		return cpuOf(q.Reserved) == 4000
	})

	node, err := framework.CP.Client.CoreV1().Nodes().Get(ctx, "notice-spot-a", metav1.GetOptions{})
	require.NoError(t, err)
	node.Spec.Taints = append(node.Spec.Taints, v1.Taint{Key: capacity.TaintNTHSpotITN, Value: "true", Effect: v1.TaintEffectNoSchedule})
	_, err = framework.CP.Client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
	require.NoError(t, err)
	tainted := time.Now()
	// A barrier: the scheduler's cache takes node events in order, so once
	// a pod bound to a node added after the taint, every cycle from then on
	// sees the taint. (Created at once, the rival could be scheduled on a
	// snapshot from before it, and take the room on notice-spot-a.) The
	// barrier is too small for the rival or an executor.
	framework.CreateNodes(t, framework.Node("notice-barrier", "1", "1Gi", nil))
	createPods(t, ns, podSpec{name: "barrier", cpu: "100m", nodeSelector: map[string]string{v1.LabelHostname: "notice-barrier"}})
	framework.WaitBound(t, ns, "barrier", 30*time.Second)

	// 2 CPUs: the only node with that much room left is notice-spot-b, where
	// the moved slot now holds it.
	createPods(t, ns, podSpec{name: "rival", cpu: "2"})
	var moved []string
	waitFor(t, 30*time.Second, "the reservation to move", func(context.Context) bool {
		moved = framework.EventsFor(t, ns, driver.name, mustergang.ReasonReservationMoved)
		return len(moved) > 0
	})
	t.Logf("moved %s after the notice: %s", time.Since(tainted).Round(100*time.Millisecond), moved[0])
	assert.Contains(t, moved[0], "notice-spot-a (tainted "+capacity.TaintNTHSpotITN)
	assert.Contains(t, moved[0], "to notice-spot-b")
	waitUnschedulable(t, ns, "rival", 30*time.Second, "reserved for admitted gangs")

	createPods(t, ns, executors...)
	for _, e := range executors {
		assert.Equal(t, "notice-spot-b", framework.WaitBound(t, ns, e.name, 30*time.Second).Spec.NodeName,
			"%s avoided the node given notice", e.name)
	}
	waitStatus(t, 30*time.Second, time.Now(), "nothing reserved", nothingReserved)
	p, err := framework.CP.Client.CoreV1().Pods(ns).Get(ctx, "rival", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Empty(t, p.Spec.NodeName, "the rival did not take the reserved room")
	assert.Empty(t, w.report().Rebinds)
	require.NoError(t, s.Err(), "muster is still running")
}

// TestReliabilityGatedMember: a gang whose last member is held by a
// scheduling gate holds nothing while it is gated (its reason says which
// gate), another gang may use the room meanwhile, and once the gate is
// lifted and room exists the gang binds within seconds: its members, which
// were refused while it was short, are woken at once rather than by
// kube-scheduler's periodic flush.
func TestReliabilityGatedMember(t *testing.T) {
	ns := framework.NewNamespace(t)
	setQueues(t, tenantQueues("64", ns))
	framework.CreateNodes(t, framework.Node("gated-1", "4", "16Gi", nil), framework.Node("gated-2", "4", "16Gi", nil))
	s := startMuster(t)
	w := watchPods(t, ns)
	w.expect(ns+"/g", 4)
	w.expect(ns+"/other", 4)
	ref := "Annotation " + ns + "/g"

	g := annotationGang("g", 4, "2")
	g[3].gated = true
	createPods(t, ns, g[3], g[0], g[1], g[2])
	wantReason := "3 of 4 members may be scheduled; 1 is held by scheduling gate(s) " + gateName
	waitStatus(t, 30*time.Second, time.Now(), "g waiting for its gate, holding nothing", func(r status.Report) bool {
		pg, ok := pendingGang(r, ref)
		return ok && pg.Phase == "Waiting" && strings.Contains(pg.Reason, wantReason) && nothingReserved(r)
	})
	waitUnschedulable(t, ns, "g-0", 30*time.Second, "of 4 members")

	// The room g would need is used by another gang meanwhile.
	createPods(t, ns, annotationGang("other", 4, "2")...)
	waitFor(t, 30*time.Second, "the other gang to bind", func(context.Context) bool { return w.everBound(ns+"/other") == 4 })
	waitStatus(t, 30*time.Second, time.Now(), "still nothing reserved while g is gated", func(r status.Report) bool {
		pg, ok := pendingGang(r, ref)
		return ok && pg.Phase == "Waiting" && nothingReserved(r)
	})

	// Room comes, then the gate is lifted.
	for i := range 4 {
		deletePod(t, ns, fmt.Sprintf("other-%d", i))
	}
	waitStatus(t, 30*time.Second, time.Now(), "the room free", func(r status.Report) bool {
		q, _ := queueLine(r, "root.tenant")
		return cpuOf(q.Allocated) == 0
	})
	ungate(t, ns, "g-3")
	lifted := time.Now()
	waitFor(t, 30*time.Second, "g to bind", func(context.Context) bool { return w.everBound(ns+"/g") == 4 })
	took := time.Since(lifted)
	t.Logf("g bound %s after its gate was lifted", took.Round(100*time.Millisecond))
	assert.Less(t, took, 10*time.Second, "bound within seconds, not after a flush or a timeout")

	rep := w.report()
	assert.Empty(t, rep.Rebinds)
	assert.Empty(t, rep.Partial, "no gang partly bound")
	require.NoError(t, s.Err(), "muster is still running")
}

// sparkApp returns a Spark driver of driverCPU that reserves room for n
// executors of execCPU each, and those n executors (to be created later).
func sparkApp(app, driverCPU string, n int, execCPU string) (podSpec, []podSpec) {
	driver := podSpec{
		name: app + "-driver", cpu: driverCPU,
		labels: map[string]string{gang.LabelSparkApp: app, gang.LabelSparkRole: string(gang.SparkDriver)},
		annotations: map[string]string{gang.AnnotationMinExecutors: fmt.Sprint(n),
			gang.AnnotationExecutorResources: "cpu=" + execCPU},
	}
	executors := make([]podSpec, n)
	for i := range executors {
		executors[i] = podSpec{name: fmt.Sprintf("%s-exec-%d", app, i), cpu: execCPU,
			labels: map[string]string{gang.LabelSparkApp: app, gang.LabelSparkRole: string(gang.SparkExecutor)}}
	}
	return driver, executors
}
