package explain

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
	"muster.dev/muster/pkg/status"
)

const queuesYAML = `
queues:
  - name: analytics
    max: {cpu: "10"}
    namespaces: ["team-a*"]
    queues:
      - name: adhoc
        max: {cpu: "8"}
namespaceQueues:
  team-a: adhoc
`

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func pod(ns string, cpu string, mutate ...func(*v1.Pod)) *v1.Pod {
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns, Labels: map[string]string{}, Annotations: map[string]string{}},
		Spec: v1.PodSpec{SchedulerName: "muster", Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{
			Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu)}}}}},
		Status: v1.PodStatus{Phase: v1.PodPending},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func report(allocatedAdhoc string, gangs ...status.Gang) *status.Report {
	return &status.Report{
		UpdatedAt: now.Add(-3 * time.Second).Format(time.RFC3339),
		Config:    status.Config{Valid: true},
		Queues: []status.Queue{
			{Queue: "root", Allocated: map[string]string{"cpu": allocatedAdhoc}},
			{Queue: "root.analytics", Allocated: map[string]string{"cpu": allocatedAdhoc}},
			{Queue: "root.analytics.adhoc", Allocated: map[string]string{"cpu": allocatedAdhoc}},
		},
		PendingGangs: gangs,
	}
}

func unschedulable(msg string) func(*v1.Pod) {
	return func(p *v1.Pod) {
		p.Status.Conditions = []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionFalse, Reason: "Unschedulable", Message: msg,
			LastTransitionTime: metav1.NewTime(now.Add(-time.Minute))}}
	}
}

func TestExplain(t *testing.T) {
	tree, err := queue.Parse([]byte(queuesYAML))
	require.NoError(t, err)
	gref := gang.Ref{Kind: gang.KindPodGroup, Namespace: "team-a", Name: "train"}
	tests := []struct {
		name     string
		in       Input
		want     Verdict
		contains []string
	}{
		{
			name: "bound", want: Bound, contains: []string{"node-1"},
			in: Input{Pod: pod("team-a", "1", func(p *v1.Pod) { p.Spec.NodeName = "node-1" }), Tree: tree, Status: report("0")},
		},
		{
			name: "finished", want: Finished,
			in: Input{Pod: pod("team-a", "1", func(p *v1.Pod) { p.Status.Phase = v1.PodSucceeded }), Tree: tree, Status: report("0")},
		},
		{
			name: "another scheduler", want: NotMuster, contains: []string{`"default-scheduler"`},
			in: Input{Pod: pod("team-a", "1", func(p *v1.Pod) { p.Spec.SchedulerName = "default-scheduler" }), Tree: tree, Status: report("0")},
		},
		{
			name: "no valid configuration", want: NoQueueConfig, contains: []string{"root.x: bad"},
			in: Input{Pod: pod("team-a", "1"), Tree: tree, Status: &status.Report{UpdatedAt: now.Format(time.RFC3339), Config: status.Config{LastError: "root.x: bad"}}},
		},
		{
			name: "namespace without queue", want: NoQueue, contains: []string{"namespace other has no queue"},
			in: Input{Pod: pod("other", "1"), Tree: tree, Status: report("0")},
		},
		{
			name: "ACL", want: NoQueue, contains: []string{"namespace intruder may not submit to queue root.analytics.adhoc"},
			in: Input{Pod: pod("intruder", "1", func(p *v1.Pod) { p.Labels[queue.LabelQueue] = "adhoc" }), Tree: tree, Status: report("0")},
		},
		{
			name: "ACL via the gang's PodGroup label", want: NoQueue, contains: []string{"may not submit"},
			in: Input{Pod: pod("intruder", "1"), Tree: tree, Status: report("0"),
				Gang: &GangFacts{Ref: gang.Ref{Kind: gang.KindPodGroup, Namespace: "intruder", Name: "g"}, MinMember: 2, Members: 2, QueueLabel: "adhoc"}},
		},
		{
			name: "bad capacity policy", want: BadAnnotation, contains: []string{"muster.dev/capacity-policy"},
			in: Input{Pod: pod("team-a", "1", func(p *v1.Pod) { p.Annotations["muster.dev/capacity-policy"] = "spot-please" }), Tree: tree, Status: report("0")},
		},
		{
			name: "bad gang annotation", want: BadAnnotation, contains: []string{"gang-min-member"},
			in: Input{Pod: pod("team-a", "1"), Tree: tree, Status: report("0"),
				Gang: &GangFacts{Ref: gang.Ref{Kind: gang.KindAnnotation, Namespace: "team-a", Name: "g"}, SpecErr: errors.New("muster.dev/gang-min-member: \"x\" is not a number")}},
		},
		{
			name: "PodGroup missing", want: GangSource, contains: []string{"does not exist"},
			in: Input{Pod: pod("team-a", "1"), Tree: tree, Status: report("0"),
				Gang: &GangFacts{Ref: gref, Missing: "the pod names PodGroup team-a/train, which does not exist"}},
		},
		{
			name: "gang incomplete", want: GangIncomplete, contains: []string{"needs 8 members", "5 exist", "3 missing"},
			in: Input{Pod: pod("team-a", "1"), Tree: tree, Status: report("0"), Gang: &GangFacts{Ref: gref, MinMember: 8, Members: 5}},
		},
		{
			name: "queue at max", want: QueueOverMax, contains: []string{"queue root.analytics.adhoc is at its max for cpu", "7 in use", "2 requested > 8 max"},
			in: Input{Pod: pod("team-a", "2"), Tree: tree, Status: report("7")},
		},
		{
			name: "never fits the queue", want: NeverFits, contains: []string{"requests 9 cpu", "max is 8"},
			in: Input{Pod: pod("team-a", "9"), Tree: tree, Status: report("0")},
		},
		{
			name: "gang waiting for admission", want: GangWaiting, contains: []string{"PodGroup team-a/train is waiting: not enough room yet"},
			in: Input{Pod: pod("team-a", "2"), Tree: tree, Status: report("7", status.Gang{Gang: gref.String(), Phase: "Waiting", Reason: "not enough room yet: 3 of 8 members fit"}),
				Gang: &GangFacts{Ref: gref, MinMember: 8, Members: 8}},
		},
		{
			name: "no node fits", want: NodesUnfit, contains: []string{"0/3 nodes are available"},
			in: Input{Pod: pod("team-a", "1", unschedulable("0/3 nodes are available: 3 Insufficient cpu.")), Tree: tree, Status: report("0")},
		},
		{
			name: "not tried, scheduler silent", want: NotTriedYet, contains: []string{"does not seem to be running"},
			in: Input{Pod: pod("team-a", "1"), Tree: tree, Status: &status.Report{UpdatedAt: now.Add(-10 * time.Minute).Format(time.RFC3339), Config: status.Config{Valid: true}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.SchedulerName, tc.in.Now = "muster", now
			e := Explain(tc.in)
			assert.Equal(t, tc.want, e.Verdict, "reason: %s", e.Reason)
			for _, s := range tc.contains {
				assert.Contains(t, e.Reason, s)
			}
			if e.Verdict != Bound && e.Verdict != Finished && e.Verdict != NotTriedYet && e.Verdict != SchedulerStatus {
				assert.NotEmpty(t, e.Todo, "a waiting verdict says what to do")
			}
		})
	}
}

func TestExplainShowsTheFacts(t *testing.T) {
	tree, err := queue.Parse([]byte(queuesYAML))
	require.NoError(t, err)
	p := pod("team-a", "2", unschedulable("0/3 nodes are available: 3 Insufficient cpu."))
	e := Explain(Input{Pod: p, SchedulerName: "muster", Now: now, Tree: tree, Status: report("4"), Events: []v1.Event{
		{Type: "Warning", Reason: "FailedScheduling", Message: "second", LastTimestamp: metav1.NewTime(now.Add(-time.Second))},
		{Type: "Warning", Reason: "FailedScheduling", Message: "first", LastTimestamp: metav1.NewTime(now.Add(-time.Minute))},
	}})
	assert.Equal(t, "root.analytics.adhoc", e.Queue)
	assert.Equal(t, "namespaceQueues", e.QueueVia)
	require.Len(t, e.Usage, 3, "the leaf and its ancestors")
	assert.Equal(t, "root.analytics.adhoc", e.Usage[0].Queue.Queue)
	assert.Equal(t, map[string]string{"cpu": "8"}, e.Usage[0].OwnMax)
	assert.Equal(t, "any (default)", e.Policy)
	assert.Contains(t, e.Condition, "PodScheduled=False Unschedulable (for 1m0s)")
	require.Len(t, e.Events, 2)
	assert.Contains(t, e.Events[0], "first", "events oldest first")
	assert.Equal(t, "3s", e.StatusAge)
	assert.Empty(t, e.Warnings)
}

// TestExplainDevices: the DRA devices a pod's claims take count in its
// request and against a device-class max.
func TestExplainDevices(t *testing.T) {
	tree, err := queue.Parse([]byte("queues:\n  - name: ml\n    max: {deviceclass/gpu.example.com: \"4\"}\nnamespaceQueues:\n  team-a: ml\n"))
	require.NoError(t, err)
	st := &status.Report{UpdatedAt: now.Add(-3 * time.Second).Format(time.RFC3339), Config: status.Config{Valid: true},
		Queues: []status.Queue{
			{Queue: "root", Allocated: map[string]string{"deviceclass/gpu.example.com": "3"}},
			{Queue: "root.ml", Allocated: map[string]string{"deviceclass/gpu.example.com": "3"}},
		}}
	tests := map[string]struct {
		devices  resources.Vector
		want     Verdict
		contains []string
	}{
		"two devices, one left": {resources.Vector{"deviceclass/gpu.example.com": 2}, QueueOverMax,
			[]string{"queue root.ml is at its max for deviceclass/gpu.example.com", "3 in use", "2 requested > 4 max"}},
		"more than the max": {resources.Vector{"deviceclass/gpu.example.com": 5}, NeverFits, []string{"max is 4"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := Explain(Input{Pod: pod("team-a", "1"), SchedulerName: "muster", Tree: tree, Status: st, Devices: tc.devices, Now: now})
			assert.Equal(t, tc.want, e.Verdict, e.Reason)
			for _, c := range tc.contains {
				assert.Contains(t, e.Reason, c)
			}
			assert.Contains(t, e.Request, "deviceclass/gpu.example.com=")
		})
	}
}
