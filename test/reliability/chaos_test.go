package reliability

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

// chaosPlan is when the chaos test kills and stops things.
type chaosPlan struct {
	// duration of the churn.
	duration time.Duration
	// killEvery: the leader is killed at every multiple of it.
	killEvery time.Duration
	// outageAt: the apiserver is stopped then, for outage (plus its
	// graceful shutdown), between two kills.
	outageAt, outage time.Duration
}

// planChaos: CHAOS_DURATION (`make chaos`: 20 minutes) of churn, the
// leader killed every 2 minutes and the apiserver stopped for 30 s once,
// a minute after a kill, past 60 % of the run. A run shorter than 6 minutes
// (the 90 s default that `make test` runs) kills the leader once, halfway,
// and stops the apiserver for 10 s.
func planChaos(t *testing.T) chaosPlan {
	t.Helper()
	d := 90 * time.Second
	if s := os.Getenv("CHAOS_DURATION"); s != "" {
		var err error
		d, err = time.ParseDuration(s)
		require.NoError(t, err, "CHAOS_DURATION")
	}
	p := chaosPlan{duration: d, killEvery: 2 * time.Minute, outage: 30 * time.Second}
	if d < 6*time.Minute {
		p.killEvery, p.outage = d/2, 10*time.Second
	}
	kills := time.Duration(0.6 * float64(d) / float64(p.killEvery))
	p.outageAt = kills*p.killEvery + p.killEvery/2
	return p
}

// chaosQueues: two leaf queues, one per namespace, each limited to maxCPU.
func chaosQueues(maxCPU, nsA, nsB string) string {
	return fmt.Sprintf(`queues:
  - name: a
    max: {cpu: %q}
  - name: b
    max: {cpu: %q}
namespaceQueues:
  %s: root.a
  %s: root.b
`, maxCPU, maxCPU, nsA, nsB)
}

// TestReliabilityChaos churns the cluster under two muster-scheduler
// replicas with leader election for CHAOS_DURATION (90 s without it):
// plain pods, gangs (annotation and PodGroup, some deleted in flight),
// Spark applications with min-executors (their executors created once the
// driver runs, some apps deleted in flight), queue edits (valid and
// invalid) and a node added and removed, in two namespaces mapped to two
// leaf queues. Meanwhile the leader is killed with SIGKILL every 2 minutes
// and replaced by a new standby, a replica that exits by itself (a lost
// lease) is restarted, as a Deployment would, and the apiserver is
// stopped once. Then the churn stops, a last set of long-running gangs,
// pods and a Spark app is submitted, and once everything has bound or
// finished: no pod was bound twice, no gang is left partly bound (the
// longest partial stretch is reported), nothing is reserved and no gang
// is pending, each leaf queue's usage in the status ConfigMap equals the
// requests of the bound, unfinished pods of its namespace, only lease
// holders wrote shared state, the configuration in force survived the
// failover that the outage caused while the queue ConfigMap held an
// invalid edit, and every replica served PodGroup gangs.
func TestReliabilityChaos(t *testing.T) {
	plan := planChaos(t)
	t.Logf("chaos plan: %s of churn, the leader killed every %s, the apiserver stopped at %s for %s",
		plan.duration, plan.killEvery, plan.outageAt, plan.outage)
	nsA, nsB := framework.NewNamespace(t), framework.NewNamespace(t)
	deleteLeaseAtEnd(t)
	queues := func(maxCPU string) string { return chaosQueues(maxCPU, nsA, nsB) }
	setQueues(t, queues("40"))
	for i := 0; i < 4; i++ {
		framework.CreateNodes(t, framework.Node(fmt.Sprintf("chaos-%d", i), "16", "64Gi", nil))
	}
	t.Cleanup(func() {
		_ = framework.CP.Client.CoreV1().Nodes().Delete(context.Background(), "soak-churn", metav1.DeleteOptions{})
	})
	w := watchPods(t, nsA, nsB)
	ww := watchWrites(t, nsA, nsB)

	f := &fleet{t: t, replaced: map[*proc]bool{}, killed: map[*proc]bool{}}
	f.start()
	waitFor(t, 60*time.Second, "a replica to lead", func(context.Context) bool { return currentLeader() != "" })
	f.start()

	pgs := framework.PodGroupClient(t)
	a := &churn{pgs: pgs, ns: nsA, w: w, rnd: rand.New(rand.NewSource(1)), retryFor: 2 * time.Minute}
	b := &churn{pgs: pgs, ns: nsB, w: w, rnd: rand.New(rand.NewSource(2)), retryFor: 2 * time.Minute}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var loops, apps sync.WaitGroup
	loop := func(every time.Duration, fn func(ctx context.Context)) { onTick(ctx, &loops, every, fn) }
	for _, c := range []*churn{a, b} {
		loop(500*time.Millisecond, c.plainPod)
		loop(2*time.Second, c.gang)
		loop(2*time.Second, c.cleanUp)
		loop(6*time.Second, func(ctx context.Context) {
			apps.Add(1)
			go func() {
				defer apps.Done()
				c.sparkApp(ctx)
			}()
		})
	}
	loop(5*time.Second, func(ctx context.Context) { a.editQueues(ctx, queues) })
	loop(7*time.Second, a.nodeChurn)

	// The chaos itself, from this goroutine: kills, the outage, restarts.
	// The outage comes with an invalid edit of the queue ConfigMap left in
	// place (an admin's typo) until the replica that leads after it has
	// published its status: the configuration in force must survive the
	// failover, as it survives the edit (SPEC: "the last good config stays
	// in force").
	start := time.Now()
	nextKill := start.Add(plan.killEvery)
	var kills []chaosKill
	var downAt, upAt time.Time
	var afterOutage *status.Report // the first status of the leader after the outage
	tick := time.NewTicker(250 * time.Millisecond)
	for time.Since(start) < plan.duration || (!downAt.IsZero() && afterOutage == nil) {
		<-tick.C
		now := time.Now()
		f.replaceExited()
		switch {
		case !upAt.IsZero() && afterOutage == nil:
			if r, term, ok := firstStatusOfLeaderSince(downAt); ok {
				afterOutage = &r
				a.thaw()
				t.Logf("[%s] the leader after the outage, %s, took the lease %s after the apiserver's return; its status says: configuration valid %v (%s)",
					time.Since(start).Round(time.Second), term.Manager, term.Acquired.Sub(upAt).Round(100*time.Millisecond), r.Config.Valid, r.Config.Source)
			} else if now.Sub(upAt) > 2*time.Minute {
				afterOutage = &status.Report{}
				a.thaw()
				t.Errorf("no replica led and published the status within 2 minutes of the apiserver's return")
			}
		case downAt.IsZero() && now.Sub(start) >= plan.outageAt:
			a.freezeInvalid(context.Background())
			stopping := time.Now()
			require.NoError(t, framework.CP.StopAPIServer())
			downAt = time.Now()
			t.Logf("[%s] apiserver stopped (its shutdown took %s)", downAt.Sub(start).Round(time.Second), downAt.Sub(stopping).Round(100*time.Millisecond))
		case !downAt.IsZero() && upAt.IsZero() && now.Sub(downAt) >= plan.outage:
			require.NoError(t, framework.CP.StartAPIServer())
			upAt = time.Now()
			t.Logf("[%s] apiserver back after %s", upAt.Sub(start).Round(time.Second), upAt.Sub(downAt).Round(100*time.Millisecond))
		case !now.Before(nextKill) && now.Sub(start) < plan.duration && (downAt.IsZero() || !upAt.IsZero()):
			leader := currentLeader()
			if p := f.byName(leader); p != nil && !p.Exited() {
				p.Kill(t)
				f.killed[p] = true
				kills = append(kills, chaosKill{name: leader, at: time.Now()})
				t.Logf("[%s] killed the leader %s (%d pods bound so far)", time.Since(start).Round(time.Second), leader, w.report().Bound)
				f.replaceExited()
				nextKill = nextKill.Add(plan.killEvery)
			}
		}
	}
	tick.Stop()
	churnEnd := time.Now()
	stop()
	loops.Wait()
	// A valid configuration for the rest, whatever the last edit was.
	setQueues(t, queues("40"))
	t.Logf("churn stopped after %s; waiting for the Spark applications in flight", churnEnd.Sub(start).Round(time.Second))
	apps.Wait()
	var errs []string
	for _, c := range []*churn{a, b} {
		c.mu.Lock()
		errs = append(errs, c.errs...)
		c.mu.Unlock()
	}
	assert.Empty(t, errs, "the churn's own requests and waits")

	// The last work: long-running gangs, pods and a Spark app in each
	// namespace.
	for _, c := range []*churn{a, b} {
		w.expect(c.ns+"/final-pg", 3)
		createPods(t, c.ns, podGroupGang(t, c.ns, "final-pg", 3, "1")...)
		w.expect(c.ns+"/final-ann", 2)
		createPods(t, c.ns, annotationGang("final-ann", 2, "500m")...)
		createPods(t, c.ns, podSpec{name: "final-plain-0", cpu: "500m"}, podSpec{name: "final-plain-1", cpu: "250m"})
		createPods(t, c.ns, sparkDriver("final-spark", 2))
		framework.WaitBound(t, c.ns, "final-spark-driver", 3*time.Minute)
		createPods(t, c.ns, sparkExecutor("final-spark", 0, 0), sparkExecutor("final-spark", 1, 0))
	}

	// All or nothing, still: a PodGroup gang above its queue's max (5 x 12
	// CPU against 40) is refused whole. Every member is tried and refused,
	// none is bound; then it goes.
	for _, c := range []*churn{a, b} {
		createPods(t, c.ns, podGroupGang(t, c.ns, "final-toobig", 5, "12")...)
	}
	for _, c := range []*churn{a, b} {
		for i := 0; i < 5; i++ {
			name := fmt.Sprintf("final-toobig-%d", i)
			_, err := c.waitPod(context.Background(), name, 60*time.Second, "refused or bound", func(p *v1.Pod) bool {
				return p.Spec.NodeName != "" || strings.HasPrefix(scheduledMessage(p), "PodScheduled=False")
			})
			require.NoError(t, err)
		}
		assert.Zero(t, w.everBound(c.ns+"/final-toobig"), "no member of a gang that cannot fit is bound (%s)", c.ns)
		for i := 0; i < 5; i++ {
			require.NoError(t, c.deletePod(context.Background(), fmt.Sprintf("final-toobig-%d", i)))
		}
		require.NoError(t, pgs.SchedulingV1alpha1().PodGroups(c.ns).Delete(context.Background(), "final-toobig", metav1.DeleteOptions{}))
	}

	// Everything binds or finishes. The checks from here on report and go
	// on, so that the run's numbers are logged whatever fails.
	var pending []string
	bindErr := pollUntil(5*time.Minute, func(ctx context.Context) bool {
		var now []string
		for _, ns := range []string{nsA, nsB} {
			list, err := framework.CP.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false
			}
			for _, p := range list.Items {
				if p.Spec.NodeName == "" {
					now = append(now, fmt.Sprintf("%s/%s: %s", ns, p.Name, scheduledMessage(&p)))
				}
			}
		}
		pending = now
		return len(pending) == 0
	})
	assert.NoError(t, bindErr, "every pod bound or finished; still pending: %v", pending)

	// The status agrees with the cluster: nothing reserved, no gang
	// pending, each leaf's usage the requests of its bound, unfinished pods.
	var want map[string]leafUsage
	var last status.Report
	statusErr := pollUntil(60*time.Second, func(ctx context.Context) bool {
		u, err := clusterUsage(ctx, map[string]string{nsA: "root.a", nsB: "root.b"})
		if err != nil {
			return false
		}
		r, err := readStatus(ctx)
		if err != nil {
			return false
		}
		want, last = u, r
		return nothingReserved(last) && len(last.PendingGangs) == 0 && last.Config.Valid && usageMatches(last, want)
	})
	assert.NoError(t, statusErr, "the status to show nothing reserved, no gang pending and the cluster's usage; cluster %v; last report %+v", want, last)

	// The watch sees the last binds a moment after the apiserver has them.
	_ = pollUntil(30*time.Second, func(context.Context) bool { return len(w.report().Partial) == 0 })
	rep := w.report()
	gangs := len(w.quorumSnapshot())
	ww.catchUp(t)
	takeovers, longestTakeover := ww.takeovers(kills)
	counts := ww.counts()
	t.Logf("chaos %s of churn: %d pods bound; %d gangs whole of %d (%d more deleted in flight); %d Spark apps (%d deleted in flight); %d queue edits (%d invalid); %d node changes",
		churnEnd.Sub(start).Round(time.Second), rep.Bound, w.complete(), gangs, a.doomed+b.doomed, a.sparkApps+b.sparkApps, a.sparkDoomed+b.sparkDoomed, a.edits, a.invalid, a.nodeChanges)
	t.Logf("chaos: %d leader kills, %d lease takeovers in all (longest from a kill: %s), %d replicas started, %d exited by themselves %v; apiserver down %s",
		len(kills), takeovers, longestTakeover.Round(100*time.Millisecond), f.gen, f.selfExits, f.exitNotes, upAt.Sub(downAt).Round(100*time.Millisecond))
	t.Logf("chaos: longest partial stretch %s (%s, from %s), most gangs partial at once %d; shared-state writes by replica %v",
		rep.Longest.Round(time.Millisecond), rep.LongestGang, rep.LongestFrom.Sub(start).Round(100*time.Millisecond), rep.MaxPartial, counts)
	for _, st := range rep.Over1s {
		t.Logf("chaos: gang %s partly bound for %s from %s", st.Gang, st.For.Round(time.Millisecond), st.From.Sub(start).Round(100*time.Millisecond))
	}
	if inc := w.incomplete(); len(inc) > 0 {
		t.Logf("chaos: gangs never seen whole: %v", inc)
	}
	for _, g := range rep.Partial {
		t.Logf("chaos: gang %s is partly bound at the end: %d of %d members were bound", g, w.everBound(g), w.quorumSnapshot()[g])
	}
	t.Logf("chaos: final usage %v", want)
	assert.Empty(t, rep.Rebinds, "no pod bound twice")
	assert.Empty(t, rep.Partial, "no gang left partly bound")
	assert.Equal(t, gangs, w.complete(), "every gang bound whole")
	assert.Empty(t, ww.violations(f.names()...), "only the lease holder writes shared state")
	assert.NotEmpty(t, f.live(), "a replica runs at the end")
	// The PodGroup CRD is served throughout: a replica that concludes
	// otherwise (one started while the apiserver is down, whose discovery
	// fails) schedules PodGroup members one by one if it leads.
	assert.Empty(t, f.logged("Gang source not served", `kind="PodGroup"`), "replicas that run without PodGroup gangs")
	assert.True(t, afterOutage.Config.Valid, "the configuration in force survives a failover while the ConfigMap holds an invalid edit; the new leader published %+v", afterOutage.Config)
}
