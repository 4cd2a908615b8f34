package reliability

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

var outage = flag.Duration("outage", 0, "how long TestReliabilityAPIServerOutage keeps the apiserver down (default 30s, 10s with -short)")

func outageDuration() time.Duration {
	switch {
	case *outage > 0:
		return *outage
	case testing.Short():
		return 10 * time.Second
	default:
		return 30 * time.Second
	}
}

// TestReliabilityAPIServerOutage stops kube-apiserver (etcd keeps running)
// while gangs are being scheduled and finish, and starts it again on the
// same address after -outage. muster, which nobody restarts, recovers by
// itself: every gang binds whole, no pod is bound twice, and once all is
// bound no reservation is left.
func TestReliabilityAPIServerOutage(t *testing.T) {
	const gangs, members = 16, 4
	down := outageDuration()
	ns := framework.NewNamespace(t)
	setQueues(t, tenantQueues("64", ns))
	for i := 0; i < 4; i++ {
		framework.CreateNodes(t, framework.Node(fmt.Sprintf("outage-%d", i), "8", "32Gi", nil))
	}
	s := startMuster(t)
	w := watchPods(t, ns)

	// Twice what the cluster holds: gangs run 4 s and make room for the next.
	var all []podSpec
	for i := 0; i < gangs; i++ {
		name := fmt.Sprintf("g%02d", i)
		w.expect(ns+"/"+name, members)
		for _, p := range annotationGang(name, members, "1") {
			p.duration = 4 * time.Second
			all = append(all, p)
		}
	}
	createPods(t, ns, all...)
	waitFor(t, 60*time.Second, "the first gangs to bind", func(context.Context) bool { return w.complete() >= 3 })

	before := w.complete()
	stopping := time.Now()
	require.NoError(t, framework.CP.StopAPIServer())
	stopped := time.Now()
	t.Logf("apiserver stopped (shutdown took %s) with %d of %d gangs bound; down for %s",
		stopped.Sub(stopping).Round(100*time.Millisecond), before, gangs, down)
	// The outage itself: nothing to poll, the apiserver is gone.
	time.Sleep(down)
	require.NoError(t, framework.CP.StartAPIServer())
	t.Logf("apiserver back after %s", time.Since(stopped).Round(100*time.Millisecond))
	back := time.Now()

	// New work after the outage flows too.
	w.expect(ns+"/after", members)
	createPods(t, ns, annotationGang("after", members, "1")...)

	waitFor(t, 3*time.Minute, "every gang to bind", func(context.Context) bool { return w.complete() == gangs+1 })
	t.Logf("every gang bound %s after the apiserver came back", time.Since(back).Round(100*time.Millisecond))
	waitStatus(t, 60*time.Second, time.Now(), "nothing reserved, no pending gang", func(r status.Report) bool {
		return nothingReserved(r) && len(r.PendingGangs) == 0
	})
	rep := w.report()
	t.Logf("watch: %d binds, rebinds %v, longest partial %s, most gangs partial at once %d", rep.Bound, rep.Rebinds, rep.Longest, rep.MaxPartial)
	assert.Empty(t, rep.Rebinds, "no pod bound twice")
	assert.Empty(t, rep.Partial, "no gang left partly bound")
	assert.Equal(t, (gangs+1)*members, rep.Bound)
	require.NoError(t, s.Err(), "muster kept running")
}
