package mustergang

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/component-base/metrics/testutil"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/metrics"
	"muster.dev/muster/pkg/plugins/plugintest"
	"muster.dev/muster/pkg/plugins/profile"
	"muster.dev/muster/pkg/queue"
)

// admitted runs the first member's cycle, admitting the gang, and returns
// it waiting at Permit with the node it reserved.
func admitted(t *testing.T, e *gangEnv, ref gang.Ref, first *v1.Pod) (*framework.CycleState, string) {
	t.Helper()
	state, node, s := e.schedule(t, first)
	require.Equal(t, fwk.Wait, s.Code(), plugintest.String(s))
	require.Equal(t, gang.PhaseAdmitted, e.info(t, ref).Phase)
	return state, node
}

// TestPermitWaitsForTheQuorum: members wait at Permit until the quorum is
// reserved, then all of them go together; each holds its own share of the
// gang's quota from Reserve on.
func TestPermitWaitsForTheQuorum(t *testing.T) {
	g := members("g", 3, 3, "1")
	ref := annotationGang("g")
	e := newGangEnv(t, setup{objects: objects(nodes(2, "4"), g)})
	e.waitMembers(t, ref, 3)

	_, n0 := admitted(t, e, ref, g[0])
	_, n1, s := e.schedule(t, g[1], plugintest.Assumed(g[0], n0))
	require.Equal(t, fwk.Wait, s.Code(), "2 of 3 placed: %s", plugintest.String(s))
	_, _, s = e.schedule(t, g[2], plugintest.Assumed(g[0], n0), plugintest.Assumed(g[1], n1))
	require.True(t, s.IsSuccess(), "the quorum: %s", plugintest.String(s))
	assert.Nil(t, e.PermitVerdict(t, g[0]), "allowed with the quorum")
	assert.Nil(t, e.PermitVerdict(t, g[1]), "allowed with the quorum")

	info := e.info(t, ref)
	assert.Equal(t, 3, info.Assumed)
	assert.Zero(t, info.FreeSlots, "every slot taken")
	for _, p := range g {
		state, _, ok := e.Runtime.Ledger.Lookup(profile.Key(p))
		require.True(t, ok, "%s holds its quota", p.Name)
		assert.Equal(t, queue.Reserved, state)
	}
	_, _, ok := e.Runtime.Ledger.Lookup(gangKey(ref))
	assert.False(t, ok, "the gang's own reservation went to its members")
}

// TestUnreserveReleasesTheGang: a member that cannot be bound before the
// quorum releases the whole admission: the members waiting at Permit are
// rejected, the gang's slots and quota are freed, and its members retried.
func TestUnreserveReleasesTheGang(t *testing.T) {
	g := members("g", 3, 3, "1")
	ref := annotationGang("g")
	e := newGangEnv(t, setup{objects: objects(nodes(2, "4"), g)})
	e.waitMembers(t, ref, 3)
	_, n0 := admitted(t, e, ref, g[0])
	state, n1, s := e.schedule(t, g[1], plugintest.Assumed(g[0], n0))
	require.Equal(t, fwk.Wait, s.Code())
	e.Activator.Take()

	e.pl.Unreserve(e.Ctx, state, g[1], n1) // its binding failed
	assert.Equal(t, fwk.Unschedulable, e.PermitVerdict(t, g[0]).Code(), "the waiting member is rejected")
	info := e.info(t, ref)
	assert.Equal(t, gang.PhasePending, info.Phase)
	assert.False(t, e.Runtime.Gangs.HasSlots(ref), "slots freed")
	_, _, ok := e.Runtime.Ledger.Lookup(gangKey(ref))
	assert.False(t, ok, "quota freed")
	assert.NotEmpty(t, e.Activator.Take(), "members retried")
	assert.Empty(t, e.Events.WithReason(ReasonTimedOut), "not a timeout")

	// The framework unreserves the rejected member too: nothing more to free.
	e.pl.Unreserve(e.Ctx, state, g[0], n0)
	assert.Equal(t, gang.PhasePending, e.info(t, ref).Phase)
	_, _, s = e.preFilter(g[0])
	assert.True(t, s.IsSuccess(), "admitted again: %s", plugintest.String(s))
}

// TestReserveBeyondTheReservation: once a gang is bound, a further member
// takes its own quota, within its queue's max.
func TestReserveBeyondTheReservation(t *testing.T) {
	queues := "queues: [{name: small, max: {cpu: \"3\"}}]\nnamespaceQueues: {ns: small}\n"
	bound := func(name string) *v1.Pod {
		return member("g", name, 2, "1").Node("n0").Phase(v1.PodRunning).Obj()
	}
	extra, over := members("g", 4, 2, "1")[2], members("g", 4, 2, "1")[3]
	ref := annotationGang("g")
	e := newGangEnv(t, setup{queues: queues, objects: objects(nodes(1, "8"), bound("g-0"), bound("g-1"), extra, over)})
	e.waitMembers(t, ref, 4)
	require.Equal(t, gang.PhaseBound, e.info(t, ref).Phase)

	state, res, s := e.preFilter(extra)
	require.True(t, s.IsSuccess(), plugintest.String(s))
	assert.Nil(t, res, "no slots: any node")
	overState, _, s := e.preFilter(over)
	require.True(t, s.IsSuccess(), "both pass PreFilter before either holds anything: %s", plugintest.String(s))
	require.Nil(t, e.pl.Reserve(e.Ctx, state, extra, "n0"))
	assert.Nil(t, e.Permit(state, extra, "n0"), "beyond the quorum, members go one by one")
	assert.Equal(t, fwk.Unschedulable, e.pl.Reserve(e.Ctx, overState, over, "n0").Code(), "the queue's max under the ledger's lock")
	e.pl.Unreserve(e.Ctx, state, extra, "n0")
	assert.Nil(t, e.pl.Reserve(e.Ctx, overState, over, "n0"), "room again")
}

// TestPostFilterReleasesAMemberThatDidNotFit: a member that fits in none of
// its gang's slots sends the gang back to be admitted afresh.
func TestPostFilterReleasesAMemberThatDidNotFit(t *testing.T) {
	g := members("g", 2, 2, "1")
	ref := annotationGang("g")
	e := newGangEnv(t, setup{objects: objects(nodes(2, "4"), g)})
	e.waitMembers(t, ref, 2)
	_, n0 := admitted(t, e, ref, g[0])
	state, _, s := e.preFilter(g[1], plugintest.Assumed(g[0], n0))
	require.True(t, s.IsSuccess())

	_, s = e.pl.PostFilter(e.Ctx, state, g[1], framework.NewDefaultNodeToStatus())
	assert.Equal(t, fwk.Unschedulable, s.Code())
	assert.Equal(t, gang.PhasePending, e.info(t, ref).Phase)
	assert.Equal(t, fwk.Unschedulable, e.PermitVerdict(t, g[0]).Code())

	_, s = e.pl.PostFilter(e.Ctx, framework.NewCycleState(), plugintest.MakePod("other").Obj(), framework.NewDefaultNodeToStatus())
	assert.Equal(t, fwk.Unschedulable, s.Code(), "not a member: nothing to release")
}

// timeoutSetup is a gang of three with a one-minute timeout on two 4-core nodes.
func timeoutSetup(count int, extra ...any) (setup, []*v1.Pod) {
	g := make([]*v1.Pod, count)
	for i := range g {
		g[i] = member("g", "g-"+string(rune('0'+i)), 3, "1").Annotation(gang.AnnotationTimeout, "60s").Obj()
	}
	return setup{objects: objects(append([]any{nodes(2, "4"), g}, extra...)...)}, g
}

// stepPastTimeout moves the fake clock past the gang's one-minute timeout,
// once the plugin's timeout ticker runs.
func (e *gangEnv) stepPastTimeout(t *testing.T) {
	t.Helper()
	e.waitTickers(t)
	e.Clock.Step(61 * time.Second)
}

// waitTickers waits until the periodic work on the fake clock has started:
// the status writer, the timeout check, the PodGroup status sync when
// PodGroups are served, the Workload pod groups' when those are, and the discovery of gang sources while one is not.
func (e *gangEnv) waitTickers(t *testing.T) {
	t.Helper()
	want := 2
	if e.pl.sources.pgs() != nil {
		want++
	}
	if e.pl.sources.workloadInformer != nil {
		want++ // the Workload API's pod group conditions
	}
	if e.discovering {
		want++
	}
	e.WaitFor(t, "the tickers", func() bool { return e.Clock.Waiters() >= want })
}

// TestTimeouts: a gang that does not get its quorum within its timeout is
// released (an admitted one's waiting members rejected), counted and told
// with an Event, and backs off before it is retried.
func TestTimeouts(t *testing.T) {
	tests := map[string]struct {
		count int // members that exist
		extra []any
		// admit runs the first member's cycle before the timeout.
		admit bool
	}{
		"admitted, members waiting at Permit": {count: 3, admit: true},
		"complete, no room":                   {count: 3, extra: []any{busy("b0", "n0", "4"), busy("b1", "n1", "4")}},
		"short of members":                    {count: 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, g := timeoutSetup(tc.count, tc.extra...)
			ref := annotationGang("g")
			e := newGangEnv(t, s)
			e.waitMembers(t, ref, tc.count)
			if tc.admit {
				admitted(t, e, ref, g[0])
			} else {
				_, _, st := e.preFilter(g[0])
				require.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code())
			}
			counter := metrics.GangTimeouts.WithLabelValues("root.default")
			before, err := testutil.GetCounterMetricValue(counter)
			require.NoError(t, err)

			e.stepPastTimeout(t)
			e.WaitFor(t, "the timeout", func() bool { return len(e.Events.WithReason(ReasonTimedOut)) == 1 })
			info := e.info(t, ref)
			assert.Equal(t, 1, info.Timeouts)
			assert.False(t, e.Runtime.Gangs.HasSlots(ref))
			after, err := testutil.GetCounterMetricValue(counter)
			require.NoError(t, err)
			assert.Equal(t, before+1, after)
			if tc.admit {
				assert.Equal(t, fwk.Unschedulable, e.PermitVerdict(t, g[0]).Code(), "the waiting member is rejected")
			}
			if tc.count < 3 {
				return
			}
			_, _, st := e.preFilter(g[1])
			assert.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code(), "backing off: %s", plugintest.String(st))

			// The retry is set when the timeout is reported: step the clock
			// until it has come (the timer may be set after a first step).
			until := info.BackoffUntil
			e.WaitFor(t, "the members retried after the backoff", func() bool {
				e.Clock.Step(time.Second)
				return len(e.Activator.Since(until)) > 0
			})
			// Tried again: admitted, or (no room) refused for that, no
			// longer for backing off.
			_, _, st = e.preFilter(g[1])
			assert.NotContains(t, st.Message(), "backing off", "tried again: %s", plugintest.String(st))
			if tc.extra == nil {
				assert.True(t, st.IsSuccess(), "admitted again: %s", plugintest.String(st))
			}
		})
	}
}

// TestUnreserveAfterTheTimeout: a member unreserved once the wait is over
// (the framework rejected it at Permit) counts as a timeout, whether the
// unreserve or the timeout check comes first.
func TestUnreserveAfterTheTimeout(t *testing.T) {
	s, g := timeoutSetup(3)
	ref := annotationGang("g")
	e := newGangEnv(t, s)
	e.waitMembers(t, ref, 3)
	state, node := admitted(t, e, ref, g[0])
	e.Clock.Step(61 * time.Second) // before the timeout check runs
	e.pl.Unreserve(e.Ctx, state, g[0], node)
	e.WaitFor(t, "the timeout reported", func() bool { return len(e.Events.WithReason(ReasonTimedOut)) == 1 })
	assert.Equal(t, gang.PhasePending, e.info(t, ref).Phase)
	assert.True(t, e.info(t, ref).BackoffUntil.After(e.Clock.Now()), "backing off")
}

// TestMemberDeletedDuringItsCycle: kube-scheduler pops a member, then its
// delete event arrives while the cycle still runs. Whatever the cycle does
// after that takes nothing for the pod: no slot, no share of the gang's
// quota, no membership; and the gang's room goes with the gang.
func TestMemberDeletedDuringItsCycle(t *testing.T) {
	g := members("g", 3, 3, "1")
	ref := annotationGang("g")
	e := newGangEnv(t, setup{objects: objects(nodes(2, "4"), g)})
	e.waitMembers(t, ref, 3)
	_, n0 := admitted(t, e, ref, g[0])

	// g[1]'s cycle has passed PreFilter and Filter when the pod is deleted.
	state, res, s := e.preFilter(g[1], plugintest.Assumed(g[0], n0))
	require.True(t, s.IsSuccess(), plugintest.String(s))
	node := sortedNames(res)[0]
	e.DeletePod(t, g[1])
	e.waitMembers(t, ref, 2) // the deletion is seen
	e.WaitFor(t, "the ledger to see the deletion", func() bool {
		_, _, ok := e.Runtime.Ledger.Lookup(profile.Key(g[1]))
		return !ok
	})

	assert.Equal(t, fwk.UnschedulableAndUnresolvable, e.pl.Reserve(e.Ctx, state, g[1], node).Code(), "nothing is taken for a deleted pod")
	e.pl.Unreserve(e.Ctx, state, g[1], node) // what the framework does next
	_, _, ok := e.Runtime.Ledger.Lookup(profile.Key(g[1]))
	assert.False(t, ok, "no ledger entry for the deleted pod")
	// A PreFilter of the stale pod does not bring it back either.
	_, _, _ = e.preFilter(g[1])
	assert.Equal(t, 2, e.info(t, ref).Members, "a deleted member is not observed again")

	// The gang, short of a member, lets its room go; the rest of it goes
	// with its last members.
	assert.Equal(t, fwk.Unschedulable, e.PermitVerdict(t, g[0]).Code(), "the waiting member is rejected")
	e.pl.Unreserve(e.Ctx, state, g[0], n0)
	e.DeletePod(t, g[0])
	e.DeletePod(t, g[2])
	e.WaitFor(t, "the gang to be dropped", func() bool { _, ok := e.Runtime.Gangs.Get(ref); return !ok })
	e.WaitFor(t, "the ledger to hold nothing", func() bool {
		_, usage := e.Runtime.Ledger.Snapshot()
		return len(usage) == 0
	})
}
