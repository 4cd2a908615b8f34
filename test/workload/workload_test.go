// Package workload tests muster's gangs from the upstream Workload API
// (scheduling.k8s.io/v1beta1 PodGroups, pod.spec.schedulingGroup) as
// manifests/ ship muster: the muster-scheduler binary with the Deployment's
// arguments and the shipped configuration, as its ServiceAccount with the
// shipped RBAC. The package has a control plane of its own: the API is beta
// and off by default in 1.37, and the cluster serves it only with the
// apiserver's GenericWorkload gate and runtime-config. The in-process
// apiserver turns that gate on in this test process too; muster runs in a
// process of its own, with its own gates (the shipped ones), so nothing
// here leans on it.
package workload

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	schedv1beta1 "k8s.io/api/scheduling/v1beta1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/controlplane"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/test/framework"
)

func TestMain(m *testing.M) {
	os.Exit(framework.Main(m, controlplane.Options{APIServerFlags: []string{
		"--feature-gates=GenericWorkload=true",
		"--runtime-config=scheduling.k8s.io/v1beta1=true",
		"--authorization-mode=Node,RBAC",
	}}))
}

// TestGangWorkloadAPI: pods of a Workload API PodGroup with a gang policy
// are a gang: nothing binds until minCount members exist and fit, then all
// bind together, and the PodGroup says so in its status, as kube-scheduler
// writes it: no condition while members are missing (upstream keeps such
// pods out of any cycle), then PodGroupInitiallyScheduled True, Scheduled.
func TestGangWorkloadAPI(t *testing.T) {
	ns := framework.NewNamespace(t)
	framework.CreateNodes(t, framework.Node("wl-0", "4", "16Gi", nil), framework.Node("wl-1", "4", "16Gi", nil))
	framework.StartDeployed(t)

	createPodGroup(t, ns, "trainer", 3)
	createMembers(t, ns, "trainer", "2", 0, 1)
	got, err := framework.CP.Client.CoreV1().Pods(ns).Get(context.Background(), "trainer-0", metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, got.Spec.SchedulingGroup, "the apiserver keeps spec.schedulingGroup (the feature gate is on)")

	// trainer-1's own cycle comes after both exist (trainer-0's may have come
	// before trainer-1 was created; a member's arrival requeues no other).
	msg := framework.WaitUnschedulable(t, ns, "trainer-1", 30*time.Second, "Workload "+ns+"/trainer", "2 of 3 members exist")
	t.Logf("reason: %s", msg)
	assert.Equal(t, 0, framework.CountBound(t, ns))
	assert.Nil(t, condition(t, ns, "trainer"), "no condition while members are missing")

	last := time.Now()
	createMembers(t, ns, "trainer", "2", 2)
	framework.WaitFor(t, 30*time.Second, "the three members bound", func(context.Context) (bool, error) {
		return framework.CountBound(t, ns) == 3, nil
	})
	bound := time.Since(last)
	c := waitCondition(t, ns, "trainer", metav1.ConditionTrue, "Scheduled")
	t.Logf("bound %s after the last member's creation, condition %s after it: %+v",
		bound.Round(time.Millisecond), time.Since(last).Round(time.Millisecond), *c)
}

// TestWorkloadPodGroupConditions: a complete gang that cannot be placed is
// told so on its PodGroup (False, Unschedulable, muster's reason as the
// message), whether it waits for room or can never fit; once room comes
// it is scheduled (True). That True is final is TestWithCondition's.
func TestWorkloadPodGroupConditions(t *testing.T) {
	ns := framework.NewNamespace(t)
	framework.CreateNodes(t, framework.Node("wlc-0", "4", "16Gi", nil), framework.Node("wlc-1", "4", "16Gi", nil))
	framework.StartDeployed(t)

	// Never fits: three members of 5 CPUs on nodes of 4.
	createPodGroup(t, ns, "huge", 3)
	createMembers(t, ns, "huge", "5", 0, 1, 2)
	c := waitCondition(t, ns, "huge", metav1.ConditionFalse, schedv1beta1.PodGroupReasonUnschedulable)
	assert.Contains(t, c.Message, "not even when empty")
	t.Logf("never fits: %+v", *c)

	// Waits for room: a plain pod takes 3 of wlc-0's 4 CPUs, and three
	// members of 2 CPUs fit on the empty cluster, not now.
	filler, err := cluster.Pod{Namespace: ns, Name: "filler", SchedulerName: scheduler.SchedulerName,
		Requests: map[v1.ResourceName]string{v1.ResourceCPU: "3"}}.Object()
	require.NoError(t, err)
	filler.Spec.NodeSelector = map[string]string{v1.LabelHostname: "wlc-0"}
	_, err = framework.CP.Client.CoreV1().Pods(ns).Create(context.Background(), filler, metav1.CreateOptions{})
	require.NoError(t, err)
	framework.WaitBound(t, ns, "filler", 30*time.Second)
	createPodGroup(t, ns, "wide", 3)
	createMembers(t, ns, "wide", "2", 0, 1, 2)
	c = waitCondition(t, ns, "wide", metav1.ConditionFalse, schedv1beta1.PodGroupReasonUnschedulable)
	assert.NotContains(t, c.Message, "not even when empty")
	t.Logf("no room: %+v", *c)
	assert.Equal(t, 1, framework.CountBound(t, ns), "the filler alone")

	framework.CreateNodes(t, framework.Node("wlc-2", "4", "16Gi", nil))
	// The condition is written once the quorum is let through to binding,
	// not after the binds: wait for both.
	c = waitCondition(t, ns, "wide", metav1.ConditionTrue, "Scheduled")
	framework.WaitFor(t, 30*time.Second, "the filler and the whole gang bound", func(context.Context) (bool, error) {
		return framework.CountBound(t, ns) == 4, nil
	})
	for i := range 3 {
		framework.WaitBound(t, ns, fmt.Sprintf("wide-%d", i), time.Second)
	}
	t.Logf("scheduled: %+v", *c)
}

// createPodGroup creates a Workload API PodGroup with a gang policy of
// minCount members.
func createPodGroup(t *testing.T, ns, name string, minCount int32) {
	t.Helper()
	_, err := framework.CP.Client.SchedulingV1beta1().PodGroups(ns).Create(context.Background(), &schedv1beta1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: schedv1beta1.PodGroupSpec{SchedulingPolicy: schedv1beta1.PodGroupSchedulingPolicy{
			Gang: &schedv1beta1.GangSchedulingPolicy{MinCount: minCount}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// createMembers creates pods GROUP-i of the pod group, each asking for cpu.
func createMembers(t *testing.T, ns, group, cpu string, indexes ...int) {
	t.Helper()
	for _, i := range indexes {
		obj, err := cluster.Pod{Namespace: ns, Name: fmt.Sprintf("%s-%d", group, i), SchedulerName: scheduler.SchedulerName,
			Requests: map[v1.ResourceName]string{v1.ResourceCPU: cpu}}.Object()
		require.NoError(t, err)
		obj.Spec.SchedulingGroup = &v1.PodSchedulingGroup{PodGroupName: &group}
		_, err = framework.CP.Client.CoreV1().Pods(ns).Create(context.Background(), obj, metav1.CreateOptions{})
		require.NoError(t, err)
	}
}

// condition is the pod group's PodGroupInitiallyScheduled condition, or nil.
func condition(t *testing.T, ns, name string) *metav1.Condition {
	t.Helper()
	pg, err := framework.CP.Client.SchedulingV1beta1().PodGroups(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return apimeta.FindStatusCondition(pg.Status.Conditions, schedv1beta1.PodGroupInitiallyScheduled)
}

// waitCondition waits until the pod group's PodGroupInitiallyScheduled
// condition has this status and reason, for the pod group's generation.
func waitCondition(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	var c *metav1.Condition
	framework.WaitFor(t, 30*time.Second, fmt.Sprintf("PodGroup %s/%s %s=%s, %s", ns, name, schedv1beta1.PodGroupInitiallyScheduled, status, reason),
		func(ctx context.Context) (bool, error) {
			pg, err := framework.CP.Client.SchedulingV1beta1().PodGroups(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			c = apimeta.FindStatusCondition(pg.Status.Conditions, schedv1beta1.PodGroupInitiallyScheduled)
			return c != nil && c.Status == status && c.Reason == reason && c.ObservedGeneration == pg.Generation, nil
		})
	return c
}
