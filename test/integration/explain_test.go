package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/cli"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/explain"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/status"
)

// runExplain runs `muster explain` against the test cluster and decodes its
// JSON answer.
func runExplain(t *testing.T, args ...string) explain.Explanation {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Main(append([]string{"explain", "--kubeconfig", env.cp.Kubeconfig, "-o", "json"}, args...), &out, &errOut)
	require.Equal(t, 0, code, "muster explain %v: %s", args, errOut.String())
	var e explain.Explanation
	require.NoError(t, json.Unmarshal(out.Bytes(), &e), out.String())
	return e
}

// TestExplainPendingReasons: a real pending pod in each waiting state, and
// `muster explain` names the right verdict and reason for each, read from
// the live cluster.
func TestExplainPendingReasons(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	// Two spot nodes of 4 CPU: nothing requiring on-demand can run.
	createNodes(t,
		node("explain-0", "4", "16Gi", map[string]string{capacity.LabelMuster: "spot"}),
		node("explain-1", "4", "16Gi", map[string]string{capacity.LabelMuster: "spot"}))
	setQueues(t, fmt.Sprintf(`
queues:
  - name: small
    max: {cpu: "2"}
    namespaces: [%q]
  - name: big
    namespaces: [%q]
  - name: closed
    namespaces: ["nobody-*"]
namespaceQueues:
  %s: root.small
`, ns, ns, ns))
	startMuster(t)

	big := map[string]string{queue.LabelQueue: "big"}
	pods := []cluster.Pod{
		{Namespace: ns, Name: "hold", SchedulerName: "muster", Requests: map[v1.ResourceName]string{v1.ResourceCPU: "2"}},
		{Namespace: ns, Name: "other-scheduler", SchedulerName: "someone-else", Requests: map[v1.ResourceName]string{v1.ResourceCPU: "1"}},
		{Namespace: ns, Name: "acl", SchedulerName: "muster", Requests: map[v1.ResourceName]string{v1.ResourceCPU: "1"},
			Labels: map[string]string{queue.LabelQueue: "closed"}},
		{Namespace: ns, Name: "bad-policy", SchedulerName: "muster", Requests: map[v1.ResourceName]string{v1.ResourceCPU: "1"},
			Labels: big, Annotations: map[string]string{capacity.AnnotationPolicy: "on-demand-please"}},
		{Namespace: ns, Name: "on-demand", SchedulerName: "muster", Requests: map[v1.ResourceName]string{v1.ResourceCPU: "1"},
			Labels: big, Annotations: map[string]string{capacity.AnnotationPolicy: "require-on-demand"}},
		{Namespace: ns, Name: "huge", SchedulerName: "muster", Requests: map[v1.ResourceName]string{v1.ResourceCPU: "3"}},
	}
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, pods))
	waitBound(t, ns, "hold", time.Minute)
	// The queue is full now; one more pod in it waits for quota.
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{
		{Namespace: ns, Name: "over", SchedulerName: "muster", Requests: map[v1.ResourceName]string{v1.ResourceCPU: "1"}}}))
	// A PodGroup gang with 2 of its 3 members, and a complete gang of two
	// 3-CPU members that cannot be placed (4-CPU nodes, one half taken).
	createPodGroup(t, ns, "short", 3, 2, "1", 0, 0)
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, gangPods(ns, "wide", 2, "3", 0,
		map[string]string{gang.LabelGang: "wide", queue.LabelQueue: "big"}, map[string]string{gang.AnnotationMinMember: "2"})))

	waitUnschedulable(t, ns, "acl", time.Minute)
	waitUnschedulable(t, ns, "bad-policy", time.Minute)
	waitUnschedulable(t, ns, "on-demand", time.Minute)
	waitUnschedulable(t, ns, "huge", time.Minute)
	waitUnschedulable(t, ns, "over", time.Minute)
	waitUnschedulable(t, ns, "short-0", time.Minute)
	waitStatus(t, time.Minute, "the status to show the queue's usage and the waiting gang", func(r status.Report) bool {
		q, ok := queueStatus(r, "root.small")
		waiting := false
		for _, g := range r.PendingGangs {
			waiting = waiting || g.Gang == "Annotation "+ns+"/wide" && strings.Contains(g.Reason, "not enough room")
		}
		return ok && q.Allocated["cpu"] == "2" && waiting
	})

	for _, tc := range []struct {
		pod      string
		args     []string
		want     explain.Verdict
		contains []string
	}{
		{pod: "hold", want: explain.Bound, contains: []string{"explain-"}},
		{pod: "other-scheduler", want: explain.NotMuster, contains: []string{`"someone-else"`}},
		{pod: "acl", want: explain.NoQueue, contains: []string{"may not submit to queue root.closed", "nobody-*"}},
		{pod: "bad-policy", want: explain.BadAnnotation, contains: []string{capacity.AnnotationPolicy, "on-demand-please"}},
		{pod: "on-demand", want: explain.NodesUnfit, contains: []string{"0/2 nodes are available"}},
		{pod: "huge", want: explain.NeverFits, contains: []string{"queue root.small's max is 2"}},
		{pod: "over", want: explain.QueueOverMax, contains: []string{"queue root.small is at its max for cpu", "2 in use"}},
		{pod: "short-1", want: explain.GangIncomplete, contains: []string{"PodGroup " + ns + "/short needs 3 members", "2 exist"}},
		{args: []string{"--gang", "wide", "-n", ns}, want: explain.GangWaiting, contains: []string{"not enough room"}},
	} {
		name := tc.pod
		if name == "" {
			name = strings.Join(tc.args, " ")
		}
		t.Run(name, func(t *testing.T) {
			args := tc.args
			if tc.pod != "" {
				args = []string{ns + "/" + tc.pod}
			}
			e := runExplain(t, args...)
			assert.Equal(t, tc.want, e.Verdict, "reason: %s", e.Reason)
			for _, s := range tc.contains {
				assert.Contains(t, e.Reason, s)
			}
		})
	}

	// The text form, as an on-call engineer reads it.
	var out, errOut bytes.Buffer
	require.Equal(t, 0, cli.Main([]string{"explain", "--kubeconfig", env.cp.Kubeconfig, "-n", ns, "over"}, &out, &errOut), errOut.String())
	text := out.String()
	t.Log("\n" + text)
	for _, s := range []string{"Verdict:    QueueOverMax", "Queue:      root.small (from namespaceQueues)", "Queue usage", "root.small", "Scheduler:  PodScheduled=False"} {
		assert.Contains(t, text, s)
	}
	out.Reset()
	require.Equal(t, 0, cli.Main([]string{"explain", "--kubeconfig", env.cp.Kubeconfig, "-n", ns, "--gang", "wide"}, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), "Members:")
	assert.Contains(t, out.String(), "wide-1")

	// A pod that does not exist is an error, not an explanation.
	assert.Equal(t, 1, cli.Main([]string{"explain", "--kubeconfig", env.cp.Kubeconfig, ns + "/nope"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "not found")
}
