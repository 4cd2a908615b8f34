package reliability

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/test/framework"
)

// TestReliabilityTwoReplicasOneHost runs two muster-scheduler replicas on
// this one host (same host name, so the lease identities differ only in
// their random suffix) with leader election, and checks who writes shared
// state, as the apiserver records it (each replica's field manager is its
// own argv[0]): only the lease holder writes the status ConfigMap and
// PodGroup status; a standby writes nothing, not even once the dead
// leader's lease has expired, until it has taken the lease itself; then it
// starts writing at once, without waiting for a pod to schedule.
//
// PodGroup status is made to need writing while each replica leads: the
// test writes a wrong status (as a stray client would) and watches who puts
// it right.
func TestReliabilityTwoReplicasOneHost(t *testing.T) {
	ctx := framework.TestContext(t)
	ns := framework.NewNamespace(t)
	deleteLeaseAtEnd(t)
	setQueues(t, tenantQueues("16", ns))
	framework.CreateNodes(t, framework.Node("onehost-1", "8", "32Gi", nil), framework.Node("onehost-2", "8", "32Gi", nil))
	ww := watchWrites(t, ns)
	w := watchPods(t, ns)
	pgs := framework.PodGroupClient(t).SchedulingV1alpha1().PodGroups(ns)

	const nameA, nameB = "muster-scheduler-onehost-a", "muster-scheduler-onehost-b"
	a := startBinaryAs(t, nameA)
	waitFor(t, 60*time.Second, "replica a to lead", func(ctx context.Context) bool { return leaseHolder(ctx) != "" })
	b := startBinaryAs(t, nameB)
	waitFor(t, 60*time.Second, "replica b to wait for the lease", func(context.Context) bool {
		return b.Count("Attempting to acquire leader lease") > 0
	})
	var termA leaseTerm
	waitFor(t, 10*time.Second, "the lease watch to see a take the lease", func(context.Context) bool {
		var ok bool
		termA, ok = ww.term(nameA)
		return ok
	})
	standbySince := time.Now()

	// A PodGroup gang and an annotation gang, bound and running.
	w.expect(ns+"/pg", 2)
	createPods(t, ns, podGroupGang(t, ns, "pg", 2, "1")...)
	w.expect(ns+"/ann", 2)
	createPods(t, ns, annotationGang("ann", 2, "1")...)
	running := func(ctx context.Context) bool {
		pg, err := pgs.Get(ctx, "pg", metav1.GetOptions{})
		return err == nil && pg.Status.Phase == schedv1alpha1.PodGroupRunning && pg.Status.Running == 2
	}
	waitFor(t, 60*time.Second, "PodGroup pg's status to say Running", running)

	// A wrong status, put right by the leader; three times.
	tamper := func() {
		t.Helper()
		pg, err := pgs.Get(ctx, "pg", metav1.GetOptions{})
		require.NoError(t, err)
		pg.Status.Phase, pg.Status.Running = schedv1alpha1.PodGroupPending, 0
		_, err = pgs.UpdateStatus(ctx, pg, metav1.UpdateOptions{})
		require.NoError(t, err)
	}
	for i := 0; i < 3; i++ {
		tamper()
		waitFor(t, 30*time.Second, "the leader to put PodGroup pg's status right", running)
	}
	// And a few seconds of status ConfigMap refreshes (every second) with
	// both replicas up.
	waitFor(t, 30*time.Second, "five status writes with both replicas up", func(context.Context) bool {
		return ww.by(nameA, "ConfigMap", standbySince) >= 5
	})
	assert.Zero(t, ww.by(nameB, "", time.Time{}), "the standby writes nothing while the leader runs")
	assert.GreaterOrEqual(t, ww.by(nameA, "PodGroup", standbySince), 3, "the leader put PodGroup status right")

	// The leader dies. Its lease stays until it expires; the PodGroup's
	// status is made wrong again at once, so that a standby that wrote
	// before holding the lease would be seen doing it.
	a.Kill(t)
	killed := time.Now()
	tamper()
	waitFor(t, 60*time.Second, "replica b to take the lease", func(context.Context) bool {
		term, ok := ww.term(nameB)
		return ok && term.Acquired.After(termA.Acquired)
	})
	termB, _ := ww.term(nameB)
	waitFor(t, 30*time.Second, "replica b to put PodGroup pg's status right", running)
	// The watch delivers the write a moment after a read sees it.
	waitFor(t, 10*time.Second, "the watch to see replica b's PodGroup status write", func(context.Context) bool {
		return ww.by(nameB, "PodGroup", killed) > 0
	})
	// No pod is created after the kill: the new leader starts writing the
	// status because it leads, not because it schedules.
	waitFor(t, 30*time.Second, "replica b to write the status ConfigMap", func(context.Context) bool {
		return ww.by(nameB, "ConfigMap", killed) > 0
	})
	firstB := time.Time{}
	ww.mu.Lock()
	for _, s := range ww.writes {
		if s.Manager == nameB {
			firstB = s.Hi
			break
		}
	}
	ww.mu.Unlock()
	t.Logf("lease acquired by b %s after the kill (a's term began %s); b's first write %s after it took the lease; writes: %v",
		termB.Acquired.Sub(killed).Round(10*time.Millisecond), termA.Acquired.Format(time.StampMilli),
		firstB.Sub(termB.Acquired).Round(10*time.Millisecond), ww.counts())
	assert.Empty(t, ww.violations(nameA, nameB), "every write made by the lease holder")
	assert.False(t, firstB.Before(termB.Acquired), "b wrote nothing before it held the lease")
	assert.False(t, b.Exited(), "the new leader runs")
	rep := w.report()
	assert.Empty(t, rep.Rebinds)
	assert.Empty(t, rep.Partial)
	assert.Equal(t, 4, rep.Bound, fmt.Sprintf("%+v", rep))
}
