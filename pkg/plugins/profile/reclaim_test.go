package profile_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"muster.dev/muster/pkg/fairshare"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/plugintest"
	"muster.dev/muster/pkg/plugins/profile"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

const reclaimQueues = `
queues:
  - {name: borrower, guaranteed: {cpu: "2"}}
  - {name: owner, guaranteed: {cpu: "4"}}
`

// borrowed fills newRuntime's 8-core node with the borrower's one-core
// pods, b0 the oldest; gangs puts pairs of them in gangs of two (b0 with
// b1, ...).
func borrowed(gangs bool) []runtime.Object {
	var out []runtime.Object
	for i := range 8 {
		w := plugintest.MakePod("b"+strconv.Itoa(i)).Label(queue.LabelQueue, "borrower").
			Node("n0").Phase(v1.PodRunning).Req(cpu("1")).StartTime(startedAt(i))
		if gangs {
			w = w.Label(gang.LabelGang, "pair"+strconv.Itoa(i/2))
		}
		if i == 7 {
			w = w.Label("keep", "yes")
		}
		out = append(out, w.Obj())
	}
	return out
}

// startedAt is when a borrower pod started: b0 ten minutes ago, then one a minute.
func startedAt(i int) metav1.Time {
	return metav1.NewTime(plugintest.Start.Add(time.Duration(i-10) * time.Minute))
}

// request is a preemptor of queue owner asking for cores.
func request(e *plugintest.Env, name string, cores string) profile.ReclaimRequest {
	p := plugintest.MakePod(name).Label(queue.LabelQueue, "owner").Req(cpu(cores)).Obj()
	return profile.ReclaimRequest{
		Key: string(p.UID), Pod: p, Queue: e.Runtime.Tree().Get("root.owner"),
		Members: []gang.Member{{Name: p.Name, Request: resources.PodRequest(p)}}, Nodes: e.Snapshot(),
	}
}

func exiting(t *testing.T, e *plugintest.Env) []string {
	t.Helper()
	var out []string
	for i := range 8 {
		if p := e.Pod(t, "b"+strconv.Itoa(i)); p.DeletionTimestamp != nil {
			out = append(out, p.Name)
		}
	}
	return out
}

// TestReclaim: the victims a reclaim preempts and the node it nominates.
func TestReclaim(t *testing.T) {
	tests := map[string]struct {
		extra []runtime.Object
		gangs bool
		// nominated is a pod already nominated to n0 with the cores it asks.
		nominated   string
		cores       string
		wantVictims []string
		wantCode    fairshare.RefusalCode
	}{
		"the newest":                          {cores: "2", wantVictims: []string{"b6", "b7"}},
		"a whole gang, not half of one":       {gangs: true, cores: "1", wantVictims: []string{"b6", "b7"}},
		"room for an earlier preemptor first": {nominated: "1", cores: "1", wantVictims: []string{"b6", "b7"}},
		"a disruption budget protects the newest": {
			extra: []runtime.Object{&policyv1.PodDisruptionBudget{
				ObjectMeta: metav1.ObjectMeta{Namespace: plugintest.Namespace, Name: "keep"},
				Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"keep": "yes"}}},
			}},
			cores: "1", wantVictims: []string{"b6"},
		},
		"a budget that allows a disruption": {
			extra: []runtime.Object{&policyv1.PodDisruptionBudget{
				ObjectMeta: metav1.ObjectMeta{Namespace: plugintest.Namespace, Name: "keep"},
				Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"keep": "yes"}}},
				Status:     policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 1},
			}},
			cores: "1", wantVictims: []string{"b7"},
		},
		"not beyond the guarantee": {cores: "5", wantCode: fairshare.RefusalNotBelowGuarantee},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newRuntime(t, reclaimQueues, append(borrowed(tc.gangs), tc.extra...)...)
			if tc.gangs {
				e.Runtime.GangOf = func(p *v1.Pod) (gang.Ref, bool) {
					ref, _, ok := gang.Identify(p)
					return ref, ok
				}
				for i := range 8 {
					ref := gang.Ref{Kind: gang.KindAnnotation, Namespace: plugintest.Namespace, Name: "pair" + strconv.Itoa(i/2)}
					e.Runtime.Gangs.Observe(ref, gang.Spec{MinMember: 2, Timeout: time.Hour}, "root.borrower",
						gang.Pod{Key: "b" + strconv.Itoa(i), Name: "b" + strconv.Itoa(i), Created: plugintest.Start, Bound: true})
				}
			}
			if tc.nominated != "" {
				e.Nominator.Nominate(plugintest.MakePod("earlier").Label(queue.LabelQueue, "owner").Req(cpu(tc.nominated)).Obj(), "n0")
			}
			node, err := e.Runtime.Reclaim(e.Ctx, request(e, "own", tc.cores))
			if tc.wantCode != "" {
				var refusal *fairshare.ReclaimRefusal
				require.True(t, errors.As(err, &refusal), "a typed refusal: %v", err)
				assert.Equal(t, tc.wantCode, refusal.Code)
				assert.Empty(t, exiting(t, e))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "n0", node)
			assert.Equal(t, tc.wantVictims, exiting(t, e))
			assert.True(t, e.Runtime.Reclaiming("own"), "its victims are exiting")
		})
	}
}

// TestReclaimWithoutAConfiguration: nothing is preempted before a queue
// configuration is in force.
func TestReclaimWithoutAConfiguration(t *testing.T) {
	e := plugintest.New(t, plugintest.Options{NotStarted: true})
	_, err := e.Runtime.Reclaim(e.Ctx, profile.ReclaimRequest{Key: "own", Pod: plugintest.MakePod("own").Obj(), Queue: &queue.Queue{Path: "root.owner"}})
	assert.Error(t, err)
}

// TestReclaimBook: reclaims under way count against each other, so that
// together they take the guarantee and no more; a preemptor they hold back
// is retried (activated) when one of them ends.
func TestReclaimBook(t *testing.T) {
	for _, end := range []string{"admitted", "gone", "grace period over"} {
		t.Run(end, func(t *testing.T) {
			e := newRuntime(t, reclaimQueues, borrowed(false)...)
			first, second := request(e, "first", "4"), request(e, "second", "1")
			_, err := e.Runtime.Reclaim(e.Ctx, first)
			require.NoError(t, err)
			require.Len(t, exiting(t, e), 4)
			e.WaitFor(t, "the victims seen exiting", func() bool {
				for i := 4; i < 8; i++ {
					if e.Pod(t, "b"+strconv.Itoa(i)).DeletionTimestamp == nil {
						return false
					}
				}
				return true
			})

			second.Nodes = e.Snapshot()
			_, err = e.Runtime.Reclaim(e.Ctx, second)
			require.Error(t, err, "the first reclaim's claim fills the owner's guarantee")
			assert.Len(t, exiting(t, e), 4, "nothing more preempted")
			assert.Empty(t, e.Activator.Take())

			switch end {
			case "admitted":
				e.Runtime.ReclaimAdmitted(first.Key)
			case "gone":
				e.Runtime.ReclaimGone(first.Key)
			case "grace period over":
				e.Clock.Step(time.Minute)
			}
			assert.Equal(t, []string{"ns/second"}, e.Activator.Take())
		})
	}
}

// TestReclaimWaitsForItsOwnVictims: a preemptor preempts nothing more while
// its victims exit; it is retried when they are gone, unless it is gone too.
func TestReclaimWaitsForItsOwnVictims(t *testing.T) {
	for _, preemptorGone := range []bool{false, true} {
		t.Run(map[bool]string{false: "retried", true: "gone meanwhile"}[preemptorGone], func(t *testing.T) {
			e := newRuntime(t, reclaimQueues, borrowed(false)...)
			req := request(e, "own", "1")
			e.CreatePod(t, req.Pod)
			_, err := e.Runtime.Reclaim(e.Ctx, req)
			require.NoError(t, err)
			_, err = e.Runtime.Reclaim(e.Ctx, req)
			require.Error(t, err)
			assert.Len(t, exiting(t, e), 1)

			if preemptorGone {
				e.DeletePod(t, req.Pod)
				e.WaitFor(t, "the preemptor forgotten", func() bool { return !e.Runtime.Reclaiming("own") })
			}
			e.Finalize(t, "b7")
			if preemptorGone {
				// Nothing to wait for: the preemptor is no longer held back.
				e.WaitFor(t, "the victim gone from the ledger", func() bool {
					_, _, ok := e.Runtime.Ledger.Lookup("b7")
					return !ok
				})
				assert.Empty(t, e.Activator.Take())
				return
			}
			e.WaitFor(t, "the preemptor retried", func() bool { return len(e.Activator.Since(plugintest.Start)) > 0 })
			assert.Equal(t, []string{"ns/own"}, e.Activator.Take())
		})
	}
}

// TestReclaimExitingRoom: the room a pod that is exiting leaves is counted
// free, for the preemptor nominated there to take: a later preemptor needs
// only the victims its own request calls for. (Counted used as well as
// claimed, it made a reclaim take a victim more than it needed, and
// concurrent reclaims went past the guarantee.)
func TestReclaimExitingRoom(t *testing.T) {
	objs := borrowed(false)
	gone := metav1.NewTime(plugintest.Start)
	objs[7].(*v1.Pod).DeletionTimestamp = &gone
	objs[7].(*v1.Pod).Finalizers = []string{"example.com/hold"}
	e := newRuntime(t, reclaimQueues, objs...)
	e.Nominator.Nominate(plugintest.MakePod("earlier").Label(queue.LabelQueue, "owner").Req(cpu("1")).Obj(), "n0")
	node, err := e.Runtime.Reclaim(e.Ctx, request(e, "own", "1"))
	require.NoError(t, err)
	assert.Equal(t, "n0", node)
	assert.Equal(t, []string{"b6", "b7"}, exiting(t, e), "b7 was exiting already; one victim more, not two")
}

// TestReclaimVictimNotSeenExitingYet: a victim preempted a moment ago may
// not show as exiting in the next cycle's snapshot yet; the book knows it
// is going, and its room is the earlier preemptor's (nominated there), not
// taken twice. (Counted used, a reclaim took two victims for one CPU, and
// the owner got more than its guarantee: TestFairShareBorrowAndReclaim.)
func TestReclaimVictimNotSeenExitingYet(t *testing.T) {
	e := newRuntime(t, reclaimQueues, borrowed(false)...)
	first, second := request(e, "first", "1"), request(e, "second", "1") // both from a snapshot before any reclaim
	_, err := e.Runtime.Reclaim(e.Ctx, first)
	require.NoError(t, err)
	require.Len(t, exiting(t, e), 1)
	e.Nominator.Nominate(first.Pod, "n0")

	node, err := e.Runtime.Reclaim(e.Ctx, second)
	require.NoError(t, err)
	assert.Equal(t, "n0", node)
	assert.Len(t, exiting(t, e), 2, "one victim for each CPU asked for")
}
