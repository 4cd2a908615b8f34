package reliability

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

// TestReliabilityLeaderFailover runs two muster-scheduler replicas with
// leader election and takes the leader away in the middle of a burst of 30
// gangs: killed outright (SIGKILL), or frozen past its lease (SIGSTOP, as a
// long GC pause or a stalled VM) and thawed after the other replica took
// over. No pod is bound twice, no gang is left partly bound, and every gang
// is bound within the lease duration plus a margin for the work itself.
func TestReliabilityLeaderFailover(t *testing.T) {
	const gangs, members = 30, 4
	for _, mode := range []string{"kill", "freeze"} {
		t.Run(mode, func(t *testing.T) {
			ctx := framework.TestContext(t)
			ns := framework.NewNamespace(t)
			deleteLeaseAtEnd(t)
			var nodes []string
			for i := 0; i < 4; i++ {
				name := fmt.Sprintf("fo-%s-%d", mode, i)
				nodes = append(nodes, name)
				framework.CreateNodes(t, framework.Node(name, "16", "64Gi", nil))
			}
			w := watchPods(t, ns)

			a := startBinary(t)
			var first string
			waitFor(t, 60*time.Second, "the first replica to lead", func(ctx context.Context) bool {
				first = leaseHolder(ctx)
				return first != ""
			})
			b := startBinary(t)
			waitFor(t, 60*time.Second, "the second replica to wait for the lease", func(context.Context) bool {
				return b.Count("Attempting to acquire leader lease") > 0
			})

			// The burst: gangs created one after another while the leader binds.
			created := make(chan error, 1)
			go func() {
				defer close(created)
				for i := 0; i < gangs; i++ {
					name := fmt.Sprintf("g%02d", i)
					w.expect(ns+"/"+name, members)
					for _, p := range annotationGang(name, members, "500m") {
						if err := createPodErr(ctx, ns, p); err != nil {
							created <- err
							return
						}
					}
				}
			}()
			waitFor(t, 60*time.Second, "a third of the burst to bind", func(context.Context) bool {
				return w.report().Bound >= gangs*members/3
			})
			at := w.report().Bound
			outAt := time.Now()
			switch mode {
			case "kill":
				a.Kill(t)
			case "freeze":
				require.NoError(t, a.Cmd.Process.Signal(syscall.SIGSTOP))
			}
			var took time.Duration
			waitFor(t, 60*time.Second, "the second replica to take over", func(ctx context.Context) bool {
				h := leaseHolder(ctx)
				took = time.Since(outAt)
				return h != "" && h != first
			})
			if mode == "freeze" {
				// Thawed, the old leader finds its lease gone and must stop.
				require.NoError(t, a.Cmd.Process.Signal(syscall.SIGCONT))
				waitFor(t, 60*time.Second, "the thawed replica to exit", func(context.Context) bool { return a.Exited() })
			}
			require.NoError(t, <-created)

			budget := leaseDuration + 45*time.Second
			waitFor(t, budget, "every gang to bind", func(context.Context) bool { return w.complete() == gangs })
			rep := w.report()
			last := rep.LastBind.Sub(outAt)
			t.Logf("%s: %d of %d pods bound when the leader went; lease taken over after %s; last bind %s after; longest partial %s; most gangs partial at once %d",
				mode, at, gangs*members, took.Round(100*time.Millisecond), last.Round(100*time.Millisecond), rep.Longest.Round(time.Millisecond), rep.MaxPartial)
			assert.Empty(t, rep.Rebinds, "no pod bound twice")
			assert.Empty(t, rep.Partial, "no gang left partly bound")
			assert.Less(t, last, budget)
			assert.Equal(t, gangs*members, rep.Bound)
			conflicts := strings.Count(a.Out.String()+b.Out.String(), "already assigned to node")
			t.Logf("%s: binding conflicts logged: %d; binds logged by the first replica %d, by the second %d",
				mode, conflicts, a.Count("Successfully bound pod to node"), b.Count("Successfully bound pod to node"))
			if mode == "kill" {
				// With the old leader dead, only the new one can have bound
				// the rest. (Thawed, the old leader may still win every race
				// for the binds it had in flight: both outcomes are correct
				// as long as nothing is bound twice and every gang is whole.)
				assert.Greater(t, b.Count("Successfully bound pod to node"), 0, "the new leader binds")
			}

			waitStatus(t, 30*time.Second, time.Now(), "nothing reserved once all is bound", func(r status.Report) bool {
				return nothingReserved(r) && len(r.PendingGangs) == 0
			})
			assert.False(t, b.Exited(), "the new leader runs")
		})
	}
}
