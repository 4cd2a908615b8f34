package reliability

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/plugins/mustergang"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

// TestReliabilityDeletions deletes what a reservation in flight depends on:
// the member it is held for, a node holding its slots, the queue
// ConfigMap. Each time the reservation is released (or completes on what
// is left), the capacity is usable by another gang, nothing is bound partly
// or to a node that is gone, the status says what happened, and muster
// keeps running.
//
// Every case starts the same way on two nodes of 4 CPUs (one on-demand, one
// spot): Spark app a's driver (2 CPU) is bound and holds room for 3
// executors of 2 CPU that are not created yet, the whole cluster; gang b (4
// x 2 CPU) waits for room. (Before gated members stopped counting toward a
// quorum, these cases used a gang admitted with three members waiting at
// Permit for a gated fourth; muster no longer holds room for a member that
// cannot be scheduled, and a Spark app's executors are the real-world
// quorum that arrives late.)
func TestReliabilityDeletions(t *testing.T) {
	s := startMuster(t)
	cases := []struct {
		name string
		// act deletes something; a's reservation must then be released (b
		// binds, a's executors do not) unless completes, where a's
		// executors are created and bind and b waits.
		act       func(t *testing.T, ns, node1, node2 string)
		completes bool
		// deletesNode2: nothing may be bound to node2 after act.
		deletesNode2 bool
	}{
		{
			name: "driver holding the reservation",
			act: func(t *testing.T, ns, _, _ string) {
				deletePod(t, ns, "a-driver")
			},
		},
		{
			name: "node holding slots",
			act: func(t *testing.T, ns, _, node2 string) {
				require.NoError(t, framework.CP.Client.CoreV1().Nodes().Delete(context.Background(), node2, metav1.DeleteOptions{}))
				framework.CreateNodes(t, framework.Node(node2+"-new", "4", "16Gi", map[string]string{capacity.LabelMuster: "spot"}))
			},
			completes:    true,
			deletesNode2: true,
		},
		{
			name: "queue ConfigMap",
			act: func(t *testing.T, _, _, _ string) {
				require.NoError(t, framework.CP.Client.CoreV1().ConfigMaps(musterNamespace).Delete(context.Background(), "muster-queues", metav1.DeleteOptions{}))
				waitStatus(t, 30*time.Second, time.Now(), "the deletion in the status", func(r status.Report) bool {
					return containsAll(r.Config.Source, "ConfigMap deleted", "stays in force") && r.Config.Valid
				})
			},
			completes: true,
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := framework.NewNamespace(t)
			setQueues(t, tenantQueues("64", ns))
			node1, node2 := nodeName("del", i, 1), nodeName("del", i, 2)
			framework.CreateNodes(t, framework.Node(node1, "4", "16Gi", map[string]string{capacity.LabelMuster: "on-demand"}),
				framework.Node(node2, "4", "16Gi", map[string]string{capacity.LabelMuster: "spot"}))
			w := watchPods(t, ns)
			w.expect(ns+"/b", 4)
			driver, executors := sparkApp("a", "2", 3, "2")
			createPods(t, ns, driver)
			assert.Equal(t, node1, framework.WaitBound(t, ns, driver.name, 30*time.Second).Spec.NodeName, "the driver prefers on-demand")
			waitStatus(t, 30*time.Second, time.Now(), "a's executors reserved", func(r status.Report) bool {
				q, _ := queueLine(r, "root.tenant")
				return cpuOf(q.Reserved) == 6000
			})
			createPods(t, ns, annotationGang("b", 4, "2")...)
			waitStatus(t, 60*time.Second, time.Now(), "b pending", func(r status.Report) bool {
				g, ok := pendingGang(r, "Annotation "+ns+"/b")
				return ok && g.Phase == "Pending"
			})

			tc.act(t, ns, node1, node2)
			acted := time.Now()
			if tc.completes {
				createPods(t, ns, executors...)
				waitFor(t, 60*time.Second, "a's executors to bind", func(context.Context) bool { return w.everBound(ns+"/a") == 4 })
				t.Logf("a's executors bound %s after the deletion", time.Since(acted).Round(100*time.Millisecond))
			} else {
				waitFor(t, 60*time.Second, "gang b to bind", func(context.Context) bool { return w.everBound(ns+"/b") == 4 })
				t.Logf("gang b bound %s after the deletion", time.Since(acted).Round(100*time.Millisecond))
			}
			r := waitStatus(t, 30*time.Second, time.Now(), "only the winner's room in use, no reservation", func(r status.Report) bool {
				q, _ := queueLine(r, "root.tenant")
				return nothingReserved(r) && cpuOf(q.Allocated) == 8000
			})
			if tc.completes {
				assert.Zero(t, w.everBound(ns+"/b"), "gang b is not bound")
				g, ok := pendingGang(r, "Annotation "+ns+"/b")
				assert.True(t, ok && g.Phase == "Pending", "b waits for room: %+v", r.PendingGangs)
			} else {
				assert.Equal(t, 1, w.everBound(ns+"/a"), "no executor of a is bound")
			}
			rep := w.report()
			assert.Empty(t, rep.Rebinds)
			assert.Empty(t, rep.Partial, "no gang partly bound")
			if tc.deletesNode2 {
				assertNoPodOn(t, ns, node2)
				moved := framework.EventsFor(t, ns, driver.name, mustergang.ReasonReservationMoved)
				if assert.NotEmpty(t, moved, "an Event says where a's slots went") {
					assert.Contains(t, moved[0], node2+" (deleted) to "+node2+"-new")
				}
			}
			require.NoError(t, s.Err(), "muster is still running")
		})
	}
}

func nodeName(prefix string, i, n int) string {
	return prefix + "-" + string(rune('a'+i)) + "-" + string(rune('0'+n))
}

func deletePod(t *testing.T, ns, name string) {
	t.Helper()
	zero := int64(0)
	require.NoError(t, framework.CP.Client.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero}))
}

// assertNoPodOn: no pod of ns is bound to the node.
func assertNoPodOn(t *testing.T, ns, node string) {
	t.Helper()
	pods, err := framework.CP.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	for _, p := range pods.Items {
		assert.NotEqual(t, node, p.Spec.NodeName, "pod %s is bound to node %s, which was deleted", p.Name, node)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
