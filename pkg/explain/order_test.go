package explain

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/status"
)

func queued(name string, prio int32, age time.Duration, mutate ...func(*v1.Pod)) *v1.Pod {
	return pod("team-a", "1", append([]func(*v1.Pod){func(p *v1.Pod) {
		p.Name, p.UID = name, types.UID(name)
		p.Spec.Priority = &prio
		p.CreationTimestamp = metav1.NewTime(now.Add(-age))
	}}, mutate...)...)
}

func inGang(name string) func(*v1.Pod) {
	return func(p *v1.Pod) { p.Labels[gang.LabelGang] = name }
}

// TestExplainOrder: where a waiting pod stands in its queue's order, what
// it waits behind (a gang once), and the room held at the head.
func TestExplainOrder(t *testing.T) {
	subject := queued("me", 0, time.Minute)
	pending := []*v1.Pod{
		queued("urgent", 100, 10*time.Second),
		queued("old", 0, 2*time.Minute),
		queued("new", 0, 0),
		queued("train-0", 0, 5*time.Minute, inGang("train")),
		queued("train-1", 50, 4*time.Minute, inGang("train")),
		queued("elsewhere", 1000, time.Hour, func(p *v1.Pod) { p.Namespace = "team-b" }),
		queued("theirs", 1000, time.Hour, func(p *v1.Pod) { p.Spec.SchedulerName = "default-scheduler" }),
	}
	train := gang.Ref{Kind: gang.KindAnnotation, Namespace: "team-a", Name: "train"}
	cases := []struct {
		name      string
		ordering  string
		wantOrder string
		behind    []string
	}{
		{"priority", "", "number 4 of 5 waiting in root.analytics.adhoc (ordering priority: priority, then arrival)",
			[]string{"pod team-a/urgent (priority 100", "gang " + train.String() + " (priority 50", "pod team-a/old (priority 0"}},
		{"fifo", "\n        ordering: fifo", "number 3 of 5 waiting in root.analytics.adhoc (ordering fifo: arrival only)",
			[]string{"gang " + train.String() + " (priority 0", "pod team-a/old (priority 0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tree, err := queue.Parse([]byte(strings.Replace(queuesYAML, `max: {cpu: "8"}`, `max: {cpu: "8"}`+c.ordering, 1)))
			require.NoError(t, err)
			st := report("8")
			st.Holds = []status.Hold{{Queue: "root.analytics.adhoc", Holder: train.String(), Holding: map[string]string{"cpu": "2"}, Nodes: 1, Since: "2026-11-27T11:56:00Z"}}
			e := Explain(Input{Pod: subject, SchedulerName: "muster", Now: now, Tree: tree, Status: st, Pending: pending})
			assert.Equal(t, c.wantOrder, e.Order)
			require.Len(t, e.WaitsBehind, len(c.behind), "%v", e.WaitsBehind)
			for i, b := range c.behind {
				assert.True(t, strings.HasPrefix(e.WaitsBehind[i], b), "%q does not start with %q", e.WaitsBehind[i], b)
			}
			assert.Equal(t, "gang "+train.String()+", the head of root.analytics.adhoc, holds cpu=2 on 1 node(s) since 2026-11-27T11:56:00Z: this pod may not take that room unless it stands before it", e.Holds)
		})
	}
}

// TestExplainOrderHolder: the pod at the head that holds room is told so.
func TestExplainOrderHolder(t *testing.T) {
	tree, err := queue.Parse([]byte(queuesYAML))
	require.NoError(t, err)
	subject := queued("big", 0, time.Minute)
	st := report("8")
	st.Holds = []status.Hold{{Queue: "root.analytics.adhoc", Holder: "Pod team-a/big", Holding: map[string]string{"cpu": "4"}, Nodes: 1, Since: "2026-11-27T11:59:00Z"}}
	e := Explain(Input{Pod: subject, SchedulerName: "muster", Now: now, Tree: tree, Status: st, Pending: []*v1.Pod{subject, queued("small", 0, 0)},
		PendingNamespaceOnly: true})
	assert.Equal(t, "number 1 of 2 waiting in root.analytics.adhoc (ordering priority: priority, then arrival)", e.Order)
	assert.Empty(t, e.WaitsBehind)
	assert.Equal(t, "it holds cpu=4 on 1 node(s) as the head of root.analytics.adhoc since 2026-11-27T11:59:00Z: pods behind it may not take that room", e.Holds)
	assert.Contains(t, e.Warnings, "pods of other namespaces could not be listed: the order counts only the pods of namespace team-a")
}
