package mustergang

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	schedv1beta1 "k8s.io/api/scheduling/v1beta1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/plugintest"
	"muster.dev/muster/pkg/waitreason"
)

func TestWorkloadCondition(t *testing.T) {
	const initially = schedv1beta1.PodGroupInitiallyScheduled
	tests := map[string]struct {
		info      gang.Info
		known     bool
		scheduled bool
		want      *metav1.Condition // Type and LastTransitionTime left out
	}{
		"unknown":           {},
		"members missing":   {known: true, info: gang.Info{Phase: gang.PhaseWaiting, ReasonCode: waitreason.MembersMissing, Reason: "2 of 3 members exist"}},
		"complete, untried": {known: true, info: gang.Info{Phase: gang.PhasePending}},
		"members gated":     {known: true, info: gang.Info{Phase: gang.PhasePending, ReasonCode: waitreason.MembersGated, Reason: "gated"}},
		"no room": {known: true, info: gang.Info{Phase: gang.PhasePending, ReasonCode: waitreason.NotEnoughRoom, Reason: "needs 3 nodes"},
			want: &metav1.Condition{Status: metav1.ConditionFalse, Reason: schedv1beta1.PodGroupReasonUnschedulable, Message: "needs 3 nodes"}},
		"queue at max": {known: true, info: gang.Info{Phase: gang.PhasePending, ReasonCode: waitreason.QueueAtMax, Reason: "root.a is at max"},
			want: &metav1.Condition{Status: metav1.ConditionFalse, Reason: schedv1beta1.PodGroupReasonUnschedulable, Message: "root.a is at max"}},
		"timed out": {known: true, info: gang.Info{Phase: gang.PhasePending, ReasonCode: waitreason.BackingOff, Reason: "timed out"},
			want: &metav1.Condition{Status: metav1.ConditionFalse, Reason: schedv1beta1.PodGroupReasonUnschedulable, Message: "timed out"}},
		"bad policy": {known: true, info: gang.Info{Phase: gang.PhasePending, ReasonCode: waitreason.InvalidCapacityPolicy, Reason: "bad annotation"},
			want: &metav1.Condition{Status: metav1.ConditionFalse, Reason: schedv1beta1.PodGroupReasonSchedulerError, Message: "bad annotation"}},
		"admitted, binding": {known: true, info: gang.Info{Phase: gang.PhaseAdmitted}},
		"let through": {known: true, scheduled: true, info: gang.Info{Phase: gang.PhaseAdmitted},
			want: &metav1.Condition{Status: metav1.ConditionTrue, Reason: "Scheduled", Message: "muster scheduled the gang: 3 members placed together"}},
		"let through, forgotten since": {scheduled: true,
			want: &metav1.Condition{Status: metav1.ConditionTrue, Reason: "Scheduled", Message: "muster scheduled the gang: 3 members placed together"}},
		"bound": {known: true, info: gang.Info{Phase: gang.PhaseBound, Bound: 4},
			want: &metav1.Condition{Status: metav1.ConditionTrue, Reason: "Scheduled", Message: "muster scheduled the gang: 4 members placed together"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := workloadCondition(tc.info, tc.known, tc.scheduled, 3)
			if tc.want == nil {
				assert.Nil(t, got)
				return
			}
			tc.want.Type = initially
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestWithCondition(t *testing.T) {
	unschedulable := metav1.Condition{Type: schedv1beta1.PodGroupInitiallyScheduled, Status: metav1.ConditionFalse,
		Reason: schedv1beta1.PodGroupReasonUnschedulable, Message: "no room"}
	scheduled := metav1.Condition{Type: schedv1beta1.PodGroupInitiallyScheduled, Status: metav1.ConditionTrue, Reason: "Scheduled", Message: "placed"}
	pg := func(conds ...metav1.Condition) *schedv1beta1.PodGroup {
		return &schedv1beta1.PodGroup{ObjectMeta: metav1.ObjectMeta{Generation: 2}, Status: schedv1beta1.PodGroupStatus{Conditions: conds}}
	}
	observed := func(c metav1.Condition) metav1.Condition {
		c.ObservedGeneration = 2
		return c
	}
	tests := map[string]struct {
		pg      *schedv1beta1.PodGroup
		cond    metav1.Condition
		changed bool
		want    metav1.Condition
	}{
		"first":                 {pg: pg(), cond: unschedulable, changed: true, want: observed(unschedulable)},
		"same again":            {pg: pg(observed(unschedulable)), cond: unschedulable, want: observed(unschedulable)},
		"new message":           {pg: pg(observed(unschedulable)), cond: func() metav1.Condition { c := unschedulable; c.Message = "other"; return c }(), changed: true, want: func() metav1.Condition { c := observed(unschedulable); c.Message = "other"; return c }()},
		"scheduled":             {pg: pg(observed(unschedulable)), cond: scheduled, changed: true, want: observed(scheduled)},
		"never back to False":   {pg: pg(observed(scheduled)), cond: unschedulable, want: observed(scheduled)},
		"True is not rewritten": {pg: pg(observed(scheduled)), cond: func() metav1.Condition { c := scheduled; c.Message = "5 members"; return c }(), want: observed(scheduled)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st, changed := withCondition(tc.pg, tc.cond)
			assert.Equal(t, tc.changed, changed)
			got := apimeta.FindStatusCondition(st.Conditions, tc.cond.Type)
			if assert.NotNil(t, got) {
				got.LastTransitionTime = metav1.Time{}
				assert.Equal(t, tc.want, *got)
			}
		})
	}
}

// TestWorkloadStatusWritten: the leader writes a bound Workload gang's
// condition; a standby writes nothing.
func TestWorkloadStatusWritten(t *testing.T) {
	bound := func(name string) *v1.Pod {
		return plugintest.MakePod(name).PodGroupName("wl").Node("n0").Phase(v1.PodRunning).Req(cpu("1")).Obj()
	}
	lead := &leader{}
	e := newGangEnv(t, setup{workloads: true, objects: objects(nodes(1, "4"), workload("wl", 2), bound("w0"), bound("w1")), leader: lead})
	ref := gang.Ref{Kind: gang.KindWorkload, Namespace: plugintest.Namespace, Name: "wl"}
	e.waitMembers(t, ref, 2)
	e.WaitFor(t, "the gang bound", func() bool { return e.info(t, ref).Phase == gang.PhaseBound })
	e.waitTickers(t)
	read := func() *metav1.Condition {
		pg, err := e.Client.SchedulingV1beta1().PodGroups(plugintest.Namespace).Get(e.Ctx, "wl", metav1.GetOptions{})
		require.NoError(t, err)
		return apimeta.FindStatusCondition(pg.Status.Conditions, schedv1beta1.PodGroupInitiallyScheduled)
	}
	e.Clock.Step(statusInterval) // a standby's tick: whenever it is handled, before leading, it writes nothing
	assert.Nil(t, read(), "a standby writes nothing")

	lead.leading.Store(true)
	e.WaitFor(t, "the condition written", func() bool {
		if c := read(); c != nil {
			return c.Status == metav1.ConditionTrue && c.Reason == workloadReasonScheduled
		}
		e.Clock.Step(statusInterval) // the leader's tick may have come before the standby's was handled
		return false
	})
}

// TestWorkloadStatusTimedOut: an admitted Workload gang whose quorum does
// not come within its timeout (the plugin's default: the Workload API has
// no timeout field) is released and its pod group told why.
func TestWorkloadStatusTimedOut(t *testing.T) {
	args := configv1.DefaultGangArgs()
	args.DefaultTimeoutSeconds = 60
	g := make([]*v1.Pod, 3)
	for i := range g {
		g[i] = plugintest.MakePod(fmt.Sprintf("w%d", i)).PodGroupName("wl").Req(cpu("1")).Obj()
	}
	e := newGangEnv(t, setup{workloads: true, args: &args, objects: objects(nodes(2, "4"), workload("wl", 3), g)})
	ref := gang.Ref{Kind: gang.KindWorkload, Namespace: plugintest.Namespace, Name: "wl"}
	e.waitMembers(t, ref, 3)
	admitted(t, e, ref, g[0])

	e.stepPastTimeout(t)
	e.WaitFor(t, "the timeout", func() bool { return len(e.Events.WithReason(ReasonTimedOut)) == 1 })
	var c *metav1.Condition
	e.WaitFor(t, "the condition written", func() bool {
		pg, err := e.Client.SchedulingV1beta1().PodGroups(plugintest.Namespace).Get(e.Ctx, "wl", metav1.GetOptions{})
		require.NoError(t, err)
		if c = apimeta.FindStatusCondition(pg.Status.Conditions, schedv1beta1.PodGroupInitiallyScheduled); c != nil {
			return true
		}
		e.Clock.Step(statusInterval)
		return false
	})
	assert.Equal(t, metav1.ConditionFalse, c.Status)
	assert.Equal(t, schedv1beta1.PodGroupReasonUnschedulable, c.Reason)
	assert.Contains(t, c.Message, "timed out")
}
