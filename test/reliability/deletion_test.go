package reliability

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

// TestReliabilityDeletions deletes what gangs in flight depend on while
// they wait at Permit: a member not yet placed, a member waiting at Permit,
// the PodGroup, a node holding the gang's slots, the queue ConfigMap. Each
// time the reservation is released (or the gang completes on what is left),
// the capacity is usable by another gang, nothing is bound partly or to a
// node that is gone, the status says what happened, and muster keeps
// running.
//
// Every case starts the same way on two nodes of 4 CPUs: gang a (4 x 2 CPU)
// is admitted over the whole cluster, three members wait at Permit and the
// fourth is held back by a scheduling gate; gang b (the same size) waits for
// room.
func TestReliabilityDeletions(t *testing.T) {
	s := startMuster(t)
	cases := []struct {
		name     string
		podGroup bool // a is a PodGroup rather than an annotation gang
		// act deletes something; a must then be released (b binds, a
		// does not) unless completes, where a binds whole and b waits.
		act       func(t *testing.T, ns, node1, node2 string)
		completes bool
		// either: a is released and admitted again, racing b for the room:
		// one of them binds whole, the other not at all.
		either bool
		// aReason is what a's pending-gang line says afterwards.
		aReason string
		// deletesNode2: nothing may be bound to node2 after act.
		deletesNode2 bool
	}{
		{
			name: "member not yet placed",
			act: func(t *testing.T, ns, _, _ string) {
				deletePod(t, ns, "a-3")
			},
			aReason: "Waiting",
		},
		{
			name: "member waiting at Permit",
			act: func(t *testing.T, ns, _, _ string) {
				deletePod(t, ns, "a-0")
			},
			aReason: "Waiting",
		},
		{
			name:     "PodGroup",
			podGroup: true,
			act: func(t *testing.T, ns, _, _ string) {
				require.NoError(t, framework.PodGroupClient(t).SchedulingV1alpha1().PodGroups(ns).Delete(context.Background(), "a", metav1.DeleteOptions{}))
			},
			aReason: "was deleted",
		},
		{
			name: "node holding slots",
			act: func(t *testing.T, ns, _, node2 string) {
				require.NoError(t, framework.CP.Client.CoreV1().Nodes().Delete(context.Background(), node2, metav1.DeleteOptions{}))
				// Let muster see the deletion before the last member can
				// complete the gang: a bind already under way when the node
				// goes cannot be called back by any scheduler.
				waitStatus(t, 30*time.Second, time.Now(), "gang a released from the deleted node", func(r status.Report) bool {
					g, ok := pendingGang(r, "Annotation "+ns+"/a")
					if !ok {
						g, ok = pendingGang(r, "PodGroup "+ns+"/a")
					}
					return ok && (g.Phase != "Admitted" || g.Placed < 3)
				})
				framework.CreateNodes(t, framework.Node(node2+"-new", "4", "16Gi", nil))
				ungate(t, ns, "a-3")
			},
			either:       true,
			deletesNode2: true,
		},
		{
			name: "queue ConfigMap",
			act: func(t *testing.T, ns, _, _ string) {
				require.NoError(t, framework.CP.Client.CoreV1().ConfigMaps(musterNamespace).Delete(context.Background(), "muster-queues", metav1.DeleteOptions{}))
				waitStatus(t, 30*time.Second, time.Now(), "the deletion in the status", func(r status.Report) bool {
					return containsAll(r.Config.Source, "ConfigMap deleted", "stays in force") && r.Config.Valid
				})
				ungate(t, ns, "a-3")
			},
			completes: true,
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := framework.NewNamespace(t)
			setQueues(t, tenantQueues("64", ns))
			node1, node2 := nodeName("del", i, 1), nodeName("del", i, 2)
			framework.CreateNodes(t, framework.Node(node1, "4", "16Gi", nil), framework.Node(node2, "4", "16Gi", nil))
			w := watchPods(t, ns)
			w.expect(ns+"/a", 4)
			w.expect(ns+"/b", 4)
			kind := "Annotation "
			a := annotationGang("a", 4, "2")
			if tc.podGroup {
				kind, a = "PodGroup ", podGroupGang(t, ns, "a", 4, "2")
			}
			// The gated member first: the last member to arrive admits the
			// gang (its pod add is what requeues the others).
			a[3].gated = true
			createPods(t, ns, a[3], a[0], a[1], a[2])
			refA, refB := kind+ns+"/a", "Annotation "+ns+"/b"
			waitStatus(t, 60*time.Second, time.Now(), "a admitted with 3 placed", func(r status.Report) bool {
				g, ok := pendingGang(r, refA)
				return ok && g.Phase == "Admitted" && g.Placed == 3
			})
			createPods(t, ns, annotationGang("b", 4, "2")...)
			waitStatus(t, 60*time.Second, time.Now(), "b pending", func(r status.Report) bool {
				g, ok := pendingGang(r, refB)
				return ok && g.Phase == "Pending"
			})

			tc.act(t, ns, node1, node2)
			acted := time.Now()

			winner, loser := "b", "a"
			if tc.completes {
				winner, loser = "a", "b"
			}
			waitFor(t, 60*time.Second, "gang "+winner+" to bind", func(context.Context) bool {
				if tc.either && w.everBound(ns+"/a") == 4 {
					winner, loser = "a", "b"
				}
				return w.everBound(ns+"/"+winner) == 4
			})
			t.Logf("gang %s bound %s after the deletion", winner, time.Since(acted).Round(100*time.Millisecond))
			r := waitStatus(t, 30*time.Second, time.Now(), "only the winner's room in use, no reservation", func(r status.Report) bool {
				q, _ := queueLine(r, "root.tenant")
				return nothingReserved(r) && cpuOf(q.Allocated) == 8000
			})
			assert.Zero(t, w.everBound(ns+"/"+loser), "gang %s is not bound", loser)
			if tc.aReason != "" {
				g, ok := pendingGang(r, refA)
				if assert.True(t, ok, "a is listed as pending: %+v", r.PendingGangs) {
					assert.Contains(t, g.Reason+" "+g.Phase, tc.aReason)
				}
			}
			rep := w.report()
			assert.Empty(t, rep.Rebinds)
			assert.Empty(t, rep.Partial, "no gang partly bound")
			if tc.deletesNode2 {
				assertNoPodOn(t, ns, node2)
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
