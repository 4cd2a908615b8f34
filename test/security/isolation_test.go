package security

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
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/configsource"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

// isolationQueues: team-a admits only namespaces team-a*; the intruder has
// a queue of its own, and the "*" fallback is team-a (allowed: a fallback
// is checked against each pod's namespace when it is used).
const isolationQueues = `
queues:
  - name: team-a
    namespaces: ["team-a*"]
  - name: outside
    namespaces: ["intruder"]
namespaceQueues:
  team-a-1: root.team-a
  "*": root.team-a
`

// TestSecurityQueueIsolation: a namespace outside a queue's ACL can never
// get a pod bound in that queue, whichever way it names the queue: its
// pod's label (leaf name or full path), the namespaceQueues fallback, a
// PodGroup's label, a Spark driver's label (for the driver and for its
// executors), an executor's own label, or an annotation gang's label. Each
// attempt stays unbound with a PodScheduled condition and a
// FailedScheduling Event that name the queue and its ACL; nothing of it is
// counted in team-a. Mapping the namespace to team-a in namespaceQueues is
// refused as a whole. The same pods in team-a-1, or in the intruder's own
// queue, are bound: the refusals are the ACL's, not a lack of room.
func TestSecurityQueueIsolation(t *testing.T) {
	ctx := framework.TestContext(t)
	c := framework.CP.Client
	intruder := namespace(t, "intruder")
	teamA := namespace(t, "team-a-1")
	setQueues(t, isolationQueues)
	framework.CreateNodes(t, framework.Node("iso-0", "16", "64Gi", nil), framework.Node("iso-1", "16", "64Gi", nil))
	startRestricted(t)
	pgc := framework.PodGroupClient(t)

	cpu := map[v1.ResourceName]string{v1.ResourceCPU: "500m"}
	pod := func(ns, name string, labels, annotations map[string]string) cluster.Pod {
		return cluster.Pod{Namespace: ns, Name: name, SchedulerName: scheduler.SchedulerName, Requests: cpu, Labels: labels, Annotations: annotations}
	}
	podGroup := func(ns, name string, labels map[string]string) {
		_, err := pgc.SchedulingV1alpha1().PodGroups(ns).Create(ctx, &schedv1alpha1.PodGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			Spec:       schedv1alpha1.PodGroupSpec{MinMember: 2},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	onTeamA := map[string]string{queue.LabelQueue: "team-a"}
	spark := func(app, role string, extra map[string]string) map[string]string {
		l := map[string]string{gang.LabelSparkApp: app, gang.LabelSparkRole: role}
		for k, v := range extra {
			l[k] = v
		}
		return l
	}
	driverAnnotations := map[string]string{gang.AnnotationMinExecutors: "2", gang.AnnotationExecutorResources: "cpu=500m,memory=1Gi"}
	gangAnnotations := map[string]string{gang.AnnotationMinMember: "2"}

	// Routes into team-a, each tried from the intruder namespace. how is
	// what the refusal must name as the source of the queue.
	attempts := []struct {
		name string
		pods []cluster.Pod
		how  string
		// setup runs before the pods are created (PodGroups, drivers).
		setup func()
	}{
		{name: "label with the leaf name", how: "label muster.dev/queue=team-a",
			pods: []cluster.Pod{pod(intruder, "by-label", onTeamA, nil)}},
		{name: "label with the full path", how: "label muster.dev/queue=root.team-a",
			pods: []cluster.Pod{pod(intruder, "by-path", map[string]string{queue.LabelQueue: "root.team-a"}, nil)}},
		{name: "namespaceQueues fallback", how: `namespaceQueues."*"`,
			pods: []cluster.Pod{pod(intruder, "by-default", nil, nil)}},
		{name: "PodGroup label over the pods' own", how: "label muster.dev/queue=team-a",
			setup: func() { podGroup(intruder, "pg", onTeamA) },
			pods: []cluster.Pod{
				// The pods name the intruder's own queue; the PodGroup's label wins.
				pod(intruder, "pg-0", map[string]string{gang.LabelPodGroup: "pg", queue.LabelQueue: "outside"}, nil),
				pod(intruder, "pg-1", map[string]string{gang.LabelPodGroup: "pg", queue.LabelQueue: "outside"}, nil),
			}},
		{name: "Spark driver label", how: "label muster.dev/queue=team-a",
			pods: []cluster.Pod{pod(intruder, "spark-driver", spark("app-a", "driver", onTeamA), driverAnnotations)}},
		{name: "Spark executors of a driver elsewhere, with their own label", how: "label muster.dev/queue=team-a",
			setup: func() {
				require.NoError(t, cluster.CreatePods(ctx, c, []cluster.Pod{
					pod(intruder, "legit-driver", spark("app-b", "driver", map[string]string{queue.LabelQueue: "outside"}), nil),
				}))
				framework.WaitBound(t, intruder, "legit-driver", 60*time.Second)
			},
			pods: []cluster.Pod{
				pod(intruder, "spark-exec-0", spark("app-b", "executor", onTeamA), nil),
				pod(intruder, "spark-exec-1", spark("app-b", "executor", onTeamA), nil),
			}},
		{name: "annotation gang", how: "label muster.dev/queue=team-a",
			pods: []cluster.Pod{
				pod(intruder, "gang-0", map[string]string{gang.LabelGang: "g", queue.LabelQueue: "team-a"}, gangAnnotations),
				pod(intruder, "gang-1", map[string]string{gang.LabelGang: "g", queue.LabelQueue: "team-a"}, gangAnnotations),
			}},
	}
	acl := "namespace intruder may not submit to queue root.team-a"
	for _, a := range attempts {
		t.Run(a.name, func(t *testing.T) {
			if a.setup != nil {
				a.setup()
			}
			require.NoError(t, cluster.CreatePods(ctx, c, a.pods))
			for _, p := range a.pods {
				msg := framework.WaitUnschedulable(t, p.Namespace, p.Name, 60*time.Second, acl, "(from "+a.how+")", "root.team-a admits namespaces team-a*")
				t.Logf("%s: %s", p.Name, msg)
				framework.WaitFor(t, 30*time.Second, "the FailedScheduling Event of "+p.Name, func(context.Context) (bool, error) {
					for _, e := range framework.EventsFor(t, p.Namespace, p.Name, "FailedScheduling") {
						if strings.Contains(e, acl) {
							return true, nil
						}
					}
					return false, nil
				})
			}
		})
	}

	// An executor without a label of its own takes its driver's queue, and
	// is refused by the same ACL.
	require.NoError(t, cluster.CreatePods(ctx, c, []cluster.Pod{pod(intruder, "driver-exec", spark("app-a", "executor", nil), nil)}))
	framework.WaitUnschedulable(t, intruder, "driver-exec", 60*time.Second, acl, "(from label muster.dev/queue=team-a)")

	// The admin cannot map the intruder to team-a either: the edit is
	// refused as a whole, the last good tree stays, and the refusal is an
	// Event on the ConfigMap naming the ACL.
	setQueues(t, isolationQueues+"  intruder: root.team-a\n")
	framework.WaitFor(t, 30*time.Second, "the QueueConfigRefused Event", func(context.Context) (bool, error) {
		for _, e := range framework.EventsFor(t, musterNamespace, queuesConfigMap, configsource.ReasonRefused) {
			if strings.Contains(e, "namespaceQueues.intruder") && strings.Contains(e, "does not admit namespace intruder") {
				return true, nil
			}
		}
		return false, nil
	})
	require.NoError(t, cluster.CreatePods(ctx, c, []cluster.Pod{pod(intruder, "after-refused-edit", nil, nil)}))
	framework.WaitUnschedulable(t, intruder, "after-refused-edit", 60*time.Second, acl, `(from namespaceQueues."*")`)

	// Controls: the same shapes in team-a-1, and the intruder in its own
	// queue, are bound; the cluster had room all along.
	podGroup(teamA, "pg", onTeamA)
	controls := []cluster.Pod{
		pod(teamA, "by-label", onTeamA, nil),
		pod(teamA, "by-default", nil, nil),
		pod(teamA, "pg-0", map[string]string{gang.LabelPodGroup: "pg"}, nil),
		pod(teamA, "pg-1", map[string]string{gang.LabelPodGroup: "pg"}, nil),
		pod(teamA, "gang-0", map[string]string{gang.LabelGang: "g", queue.LabelQueue: "team-a"}, gangAnnotations),
		pod(teamA, "gang-1", map[string]string{gang.LabelGang: "g", queue.LabelQueue: "team-a"}, gangAnnotations),
		pod(intruder, "own-queue", map[string]string{queue.LabelQueue: "outside"}, nil),
	}
	require.NoError(t, cluster.CreatePods(ctx, c, controls))
	for _, p := range controls {
		framework.WaitBound(t, p.Namespace, p.Name, 60*time.Second)
	}

	// Nothing of the intruder's is bound but its own; team-a holds only
	// team-a-1's pods, and none of the intruder's is pending there.
	list, err := c.CoreV1().Pods(intruder).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var bound []string
	for _, p := range list.Items {
		if p.Spec.NodeName != "" {
			bound = append(bound, p.Name)
		}
	}
	assert.ElementsMatch(t, []string{"legit-driver", "own-queue"}, bound, "the intruder's bound pods")
	waitStatus(t, c, "team-a's usage in the status to be team-a-1's alone", func(r status.Report) (bool, error) {
		for _, q := range r.Queues {
			if q.Queue == "root.team-a" {
				return q.RunningPods == 6 && q.PendingPods == 0, nil
			}
		}
		return false, fmt.Errorf("no root.team-a in the status")
	})
}
