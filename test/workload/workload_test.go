// Package workload tests muster's gangs from the upstream Workload API
// (scheduling.k8s.io/v1beta1 PodGroups, pod.spec.schedulingGroup). It has a
// control plane of its own: the API is beta and off by default in 1.37, and
// turning on its feature gate is process-wide.
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
	}}))
}

// TestGangWorkloadAPI: pods of a Workload API PodGroup with a gang policy
// are a gang: nothing binds until minCount members exist and fit, then all
// bind together.
func TestGangWorkloadAPI(t *testing.T) {
	ctx := framework.TestContext(t)
	ns := framework.NewNamespace(t)
	framework.CreateNodes(t, framework.Node("wl-0", "4", "16Gi", nil), framework.Node("wl-1", "4", "16Gi", nil))
	framework.StartMuster(t)

	_, err := framework.CP.Client.SchedulingV1beta1().PodGroups(ns).Create(ctx, &schedv1beta1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "trainer"},
		Spec: schedv1beta1.PodGroupSpec{SchedulingPolicy: schedv1beta1.PodGroupSchedulingPolicy{
			Gang: &schedv1beta1.GangSchedulingPolicy{MinCount: 3}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	create := func(i int) {
		obj, err := cluster.Pod{Namespace: ns, Name: fmt.Sprintf("trainer-%d", i), SchedulerName: scheduler.SchedulerName,
			Requests: map[v1.ResourceName]string{v1.ResourceCPU: "2"}}.Object()
		require.NoError(t, err)
		group := "trainer"
		obj.Spec.SchedulingGroup = &v1.PodSchedulingGroup{PodGroupName: &group}
		_, err = framework.CP.Client.CoreV1().Pods(ns).Create(ctx, obj, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	create(0)
	create(1)
	got, err := framework.CP.Client.CoreV1().Pods(ns).Get(ctx, "trainer-0", metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, got.Spec.SchedulingGroup, "the apiserver keeps spec.schedulingGroup (the feature gate is on)")

	// trainer-1's own cycle comes after both exist (trainer-0's may have come
	// before trainer-1 was created; a member's arrival requeues no other).
	msg := framework.WaitUnschedulable(t, ns, "trainer-1", 30*time.Second, "Workload "+ns+"/trainer", "2 of 3 members exist")
	t.Logf("reason: %s", msg)
	assert.Equal(t, 0, framework.CountBound(t, ns))

	create(2)
	framework.WaitFor(t, 30*time.Second, "the three members bound", func(context.Context) (bool, error) {
		return framework.CountBound(t, ns) == 3, nil
	})
}
