package workload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	schedv1beta1 "k8s.io/api/scheduling/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/cli"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/explain"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/test/framework"
)

// TestExplainWorkloadGang: `muster explain` reads a Workload API gang as the
// scheduler does, from the live cluster: its quorum and queue from its pod
// group, so a gang short of members is GangIncomplete, and a pod group not
// created yet is what the gang waits for.
func TestExplainWorkloadGang(t *testing.T) {
	ctx := framework.TestContext(t)
	ns := framework.NewNamespace(t)
	framework.SetQueues(t, fmt.Sprintf("queues:\n  - name: training\n    namespaces: [%q]\nnamespaceQueues:\n  %s: training\n", ns, ns))
	_, err := framework.CP.Client.SchedulingV1beta1().PodGroups(ns).Create(ctx, &schedv1beta1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "trainer", Labels: map[string]string{queue.LabelQueue: "training"}},
		Spec: schedv1beta1.PodGroupSpec{SchedulingPolicy: schedv1beta1.PodGroupSchedulingPolicy{
			Gang: &schedv1beta1.GangSchedulingPolicy{MinCount: 3}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	for _, p := range []struct{ name, group string }{{"trainer-0", "trainer"}, {"trainer-1", "trainer"}, {"orphan-0", "not-yet"}} {
		obj, err := cluster.Pod{Namespace: ns, Name: p.name, SchedulerName: scheduler.SchedulerName,
			Requests: map[v1.ResourceName]string{v1.ResourceCPU: "1"}}.Object()
		require.NoError(t, err)
		obj.Spec.SchedulingGroup = &v1.PodSchedulingGroup{PodGroupName: &p.group}
		_, err = framework.CP.Client.CoreV1().Pods(ns).Create(ctx, obj, metav1.CreateOptions{})
		require.NoError(t, err)
	}

	e := runExplain(t, "-n", ns, "trainer-1")
	assert.Equal(t, "Workload "+ns+"/trainer", e.Gang)
	assert.Equal(t, explain.GangIncomplete, e.Verdict, "reason: %s", e.Reason)
	assert.Equal(t, fmt.Sprintf("Workload %s/trainer needs 3 members to start together and 2 exist (1 missing); none is bound until all 3 can be placed at once", ns), e.Reason)
	assert.Equal(t, "root.training", e.Queue)
	assert.Equal(t, "label muster.dev/queue=training on the gang's PodGroup", e.QueueVia)

	e = runExplain(t, "-n", ns, "orphan-0")
	assert.Equal(t, explain.GangSource, e.Verdict, "reason: %s", e.Reason)
	assert.Equal(t, fmt.Sprintf("the pod names PodGroup %s/not-yet (scheduling.k8s.io/v1beta1, spec.schedulingGroup), which does not exist; muster waits for it", ns), e.Reason)

	e = runExplain(t, "-n", ns, "--gang", "trainer")
	assert.Equal(t, "Workload "+ns+"/trainer", e.Gang, "--gang finds a Workload gang by its pod group's name")
}

// runExplain runs `muster explain -o json` against the test cluster.
func runExplain(t *testing.T, args ...string) explain.Explanation {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Main(append([]string{"explain", "--kubeconfig", framework.CP.Kubeconfig, "-o", "json"}, args...), &out, &errOut)
	require.Equal(t, 0, code, "muster explain %v: %s", args, errOut.String())
	var e explain.Explanation
	require.NoError(t, json.Unmarshal(out.Bytes(), &e), out.String())
	return e
}
