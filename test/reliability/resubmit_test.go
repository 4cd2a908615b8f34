package reliability

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

// TestReliabilityResubmit runs a workload that makes muster keep state about
// pods, gangs and nodes (a queue reclaiming its guarantee from a borrower,
// gang admissions, a Spark app's executor reservation, PodGroup status),
// deletes every pod of it (the job is cleaned up), and submits the same
// workload again at once, with the same names, three times in a row. Every
// round must end as the first did, as fast: state muster keeps about a pod
// or a gang ends with it. (A queue could not reclaim its guarantee a second
// time within 30 s: preemptors that were gone still counted as their
// queue's usage, and nothing retried the pods held back when that ended.)
func TestReliabilityResubmit(t *testing.T) {
	startMuster(t)
	cases := []struct {
		name string
		// owner creates the owner queue's workload in ns; it returns the
		// number of owner pods that must be bound.
		owner func(t *testing.T, ns string) int
		// gang is the owner's gang (ns/name) for the partial-bind watch.
		gang   string
		quorum int
		// check, if set, checks a round's outcome beyond its pods.
		check func(t *testing.T, ns string, start time.Time)
	}{
		{
			name: "reclaim",
			owner: func(t *testing.T, ns string) int {
				createPods(t, ns, ownerPods("own", 4, nil, nil)...)
				return 4
			},
		},
		{
			name: "PodGroup gang reclaim",
			owner: func(t *testing.T, ns string) int {
				pods := podGroupGangOrReuse(t, ns, "train", 4, "1")
				for i := range pods {
					pods[i].labels[queue.LabelQueue] = "owner"
				}
				createPods(t, ns, pods...)
				return 4
			},
			gang: "train", quorum: 4,
			check: func(t *testing.T, ns string, start time.Time) {
				// The PodGroup's status is this run's, written afresh.
				framework.WaitFor(t, 30*time.Second, "the PodGroup's status", func(ctx context.Context) (bool, error) {
					pg, err := framework.PodGroupClient(t).SchedulingV1alpha1().PodGroups(ns).Get(ctx, "train", metav1.GetOptions{})
					if err != nil {
						return false, nil
					}
					st := pg.Status
					return (st.Phase == "Scheduling" || st.Phase == "Running") && !st.ScheduleStartTime.Time.Before(start.Truncate(time.Second)), nil
				})
			},
		},
		{
			name: "Spark app with a reservation",
			owner: func(t *testing.T, ns string) int {
				app := map[string]string{gang.LabelSparkApp: "spark-1", queue.LabelQueue: "owner"}
				driver := podSpec{name: "spark-1-driver", cpu: "1", labels: withLabel(app, gang.LabelSparkRole, "driver"),
					annotations: map[string]string{gang.AnnotationMinExecutors: "3", gang.AnnotationExecutorResources: "cpu=1"}}
				createPods(t, ns, driver)
				// The executors come once the driver runs, as Spark's do.
				framework.WaitBound(t, ns, driver.name, 60*time.Second)
				for i := range 3 {
					createPods(t, ns, podSpec{name: fmt.Sprintf("spark-1-exec-%d", i), cpu: "1", labels: withLabel(app, gang.LabelSparkRole, "executor")})
				}
				return 4
			},
			gang: "spark-1",
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := framework.NewNamespace(t)
			setQueues(t, fmt.Sprintf(`
queues:
  - name: borrower
  - name: owner
    guaranteed: {cpu: "4"}
namespaceQueues:
  %s: root.borrower
`, ns))
			framework.CreateNodes(t, framework.Node(nodeName("resubmit", i, 1), "8", "32Gi", nil))
			w := watchPods(t, ns)
			if tc.quorum > 0 {
				w.expect(ns+"/"+tc.gang, tc.quorum)
			}
			var first time.Duration
			for round := 1; round <= 3; round++ {
				// The borrower takes the whole idle cluster.
				createPods(t, ns, ownerPods("borrow", 8, map[string]string{queue.LabelQueue: "borrower"}, nil)...)
				framework.WaitFor(t, 60*time.Second, "the borrower to fill the cluster", func(ctx context.Context) (bool, error) {
					return countBoundWith(ctx, ns, queue.LabelQueue+"=borrower") == 8, nil
				})
				start := time.Now()
				want := tc.owner(t, ns)
				framework.WaitFor(t, 90*time.Second, fmt.Sprintf("round %d: the owner's %d pods bound", round, want), func(ctx context.Context) (bool, error) {
					return countBoundWith(ctx, ns, queue.LabelQueue+"=owner") == want, nil
				})
				took := time.Since(start)
				if tc.check != nil {
					tc.check(t, ns, start)
				}
				t.Logf("round %d: the owner's guarantee reclaimed and its %d pods bound in %s", round, want, took.Round(10*time.Millisecond))
				// The outcome is the first round's: exactly the owner's
				// guarantee was taken back, no more.
				framework.WaitFor(t, 30*time.Second, "the preempted borrowers gone", func(ctx context.Context) (bool, error) {
					return countWith(ctx, ns, queue.LabelQueue+"=borrower") == 4, nil
				})
				assert.Equal(t, 4, countBoundWith(context.Background(), ns, queue.LabelQueue+"=borrower"), "round %d: borrowers left", round)
				if round == 1 {
					first = took
				} else {
					// As fast as the first time. A wait that ends on
					// reclaim's 30 s grace (or kube-scheduler's 5-minute
					// flush) is far outside this bound.
					assert.LessOrEqual(t, took, 2*first+10*time.Second, "round %d took %s, the first %s", round, took, first)
				}
				deleteAllPods(t, ns)
				waitStatus(t, 30*time.Second, time.Now(), "both queues empty", func(r status.Report) bool {
					o, ok1 := queueLine(r, "root.owner")
					b, ok2 := queueLine(r, "root.borrower")
					return ok1 && ok2 && cpuOf(o.Allocated) == 0 && cpuOf(b.Allocated) == 0 && nothingReserved(r)
				})
			}
			rep := w.report()
			assert.Empty(t, rep.Rebinds, "pods bound twice")
			assert.Empty(t, rep.Partial, "gangs partly bound")
			t.Logf("longest partly-bound stretch: %s", rep.Longest.Round(time.Millisecond))
		})
	}
}

// ownerPods returns n pods of 1 CPU named prefix-i, with the given labels
// (the owner queue when nil).
func ownerPods(prefix string, n int, labels, annotations map[string]string) []podSpec {
	if labels == nil {
		labels = map[string]string{queue.LabelQueue: "owner"}
	}
	out := make([]podSpec, n)
	for i := range out {
		out[i] = podSpec{name: fmt.Sprintf("%s-%d", prefix, i), cpu: "1", labels: withLabel(labels, "", ""), annotations: annotations}
	}
	return out
}

// podGroupGangOrReuse is podGroupGang for a PodGroup that may be left from
// an earlier round: the PodGroup is deleted and created again, as a job's
// controller does when the job is resubmitted.
func podGroupGangOrReuse(t *testing.T, ns, name string, n int, cpu string) []podSpec {
	t.Helper()
	pgs := framework.PodGroupClient(t).SchedulingV1alpha1().PodGroups(ns)
	if err := pgs.Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		require.NoError(t, err)
	}
	framework.WaitFor(t, 30*time.Second, "the old PodGroup gone", func(ctx context.Context) (bool, error) {
		_, err := pgs.Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	return podGroupGang(t, ns, name, n, cpu)
}

// withLabel returns a copy of m with k=v added (nothing added when k is "").
func withLabel(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for key, val := range m {
		out[key] = val
	}
	if k != "" {
		out[k] = v
	}
	return out
}

// deleteAllPods deletes every pod of ns at once and waits until they are gone.
func deleteAllPods(t *testing.T, ns string) {
	t.Helper()
	zero := int64(0)
	pods := framework.CP.Client.CoreV1().Pods(ns)
	require.NoError(t, pods.DeleteCollection(context.Background(), metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{}))
	framework.WaitFor(t, 30*time.Second, "every pod of "+ns+" gone", func(ctx context.Context) (bool, error) {
		list, err := pods.List(ctx, metav1.ListOptions{})
		return err == nil && len(list.Items) == 0, nil
	})
}

// countWith counts the pods of ns matching a label selector that are not
// being deleted.
func countWith(ctx context.Context, ns, selector string) int {
	return len(podsWith(ctx, ns, selector, false))
}

// countBoundWith counts the bound, live pods of ns matching a label selector.
func countBoundWith(ctx context.Context, ns, selector string) int {
	return len(podsWith(ctx, ns, selector, true))
}

func podsWith(ctx context.Context, ns, selector string, bound bool) []v1.Pod {
	list, err := framework.CP.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil
	}
	var out []v1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			continue
		}
		if bound && p.Spec.NodeName == "" {
			continue
		}
		out = append(out, p)
	}
	return out
}

// TestReliabilityResubmitGangRecord: what muster keeps about a gang by its
// name (its record and backoff after a timeout, the never-fits notice sent
// once per gang) ends when the gang's pods are deleted: the same gang
// submitted again at once is a new gang, treated as the first was.
func TestReliabilityResubmitGangRecord(t *testing.T) {
	startMuster(t)

	t.Run("never fits", func(t *testing.T) {
		ns := framework.NewNamespace(t)
		setQueues(t, tenantQueues("2", ns))
		framework.CreateNodes(t, framework.Node(nodeName("resubmit-never", 0, 1), "8", "32Gi", nil))
		for round := 1; round <= 3; round++ {
			pods := annotationGang("big", 4, "1")
			createPods(t, ns, pods...)
			for _, p := range pods {
				waitUnschedulable(t, ns, p.name, 30*time.Second, "can never be admitted")
			}
			// The admin hears about this submission, not only the first.
			framework.WaitFor(t, 30*time.Second, fmt.Sprintf("round %d: a GangNeverFits Event about this round's pods", round), func(ctx context.Context) (bool, error) {
				return eventsAbout(ctx, ns, "GangNeverFits", podUIDs(ctx, ns)) > 0, nil
			})
			deleteAllPods(t, ns)
		}
	})

	t.Run("timed out", func(t *testing.T) {
		ns := framework.NewNamespace(t)
		setQueues(t, tenantQueues("64", ns))
		framework.CreateNodes(t, framework.Node(nodeName("resubmit-timeout", 0, 1), "8", "32Gi", nil))
		gangPods := func() []podSpec {
			pods := annotationGang("g", 4, "1")
			for i := range pods {
				pods[i].annotations[gang.AnnotationTimeout] = "2s"
			}
			return pods
		}
		// The first run: the gang on an empty cluster.
		start := time.Now()
		createPods(t, ns, gangPods()...)
		framework.WaitFor(t, 30*time.Second, "the gang bound", func(ctx context.Context) (bool, error) { return countBoundWith(ctx, ns, gang.LabelGang+"=g") == 4, nil })
		first := time.Since(start)
		deleteAllPods(t, ns)

		for round := 1; round <= 2; round++ {
			// No room: the gang times out and backs off (10 s).
			createPods(t, ns, podSpec{name: "blocker", cpu: "6"})
			framework.WaitBound(t, ns, "blocker", 30*time.Second)
			createPods(t, ns, gangPods()...)
			framework.WaitFor(t, 30*time.Second, fmt.Sprintf("round %d: the gang timed out", round), func(ctx context.Context) (bool, error) {
				return eventsAbout(ctx, ns, "GangTimedOut", podUIDs(ctx, ns)) > 0, nil
			})
			// Cleaned up while it backs off, and submitted again at once on
			// the empty cluster: bound as fast as the first time, not after
			// the old gang's backoff.
			deleteAllPods(t, ns)
			start := time.Now()
			createPods(t, ns, gangPods()...)
			framework.WaitFor(t, 30*time.Second, "the gang bound", func(ctx context.Context) (bool, error) { return countBoundWith(ctx, ns, gang.LabelGang+"=g") == 4, nil })
			took := time.Since(start)
			t.Logf("round %d: resubmitted after a timeout, bound in %s (the first time: %s)", round, took.Round(10*time.Millisecond), first.Round(10*time.Millisecond))
			assert.LessOrEqual(t, took, 2*first+5*time.Second, "round %d", round)
			deleteAllPods(t, ns)
		}
	})
}

// podUIDs returns the UIDs of the pods of ns now.
func podUIDs(ctx context.Context, ns string) map[string]bool {
	out := map[string]bool{}
	for _, p := range podsWith(ctx, ns, "", false) {
		out[string(p.UID)] = true
	}
	return out
}

// eventsAbout counts the Events of ns with the reason about one of the
// objects whose UIDs are given.
func eventsAbout(ctx context.Context, ns, reason string, uids map[string]bool) int {
	list, err := framework.CP.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range list.Items {
		if e.Reason == reason && uids[string(e.InvolvedObject.UID)] {
			n++
		}
	}
	return n
}
