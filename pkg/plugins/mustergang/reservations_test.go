package mustergang

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/plugintest"
)

var sparkApp = gang.Ref{Kind: gang.KindSpark, Namespace: plugintest.Namespace, Name: "app"}

// boundDriver is a Spark driver bound to node when the clock read boundAt,
// as a scheduler that is gone left it, reserving executors of one core.
func boundDriver(node string, executors string, boundAt time.Time) *v1.Pod {
	d := sparkDriver("app", executors)
	d.Spec.NodeName = node
	d.Status.Phase = v1.PodRunning
	d.Status.Conditions = []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: metav1.NewTime(boundAt)}}
	return d
}

// TestRestoreSparkReservation: after a restart, a bound Spark driver's
// missing executors get their room back, within the gang's timeout counted
// from the driver's bind.
func TestRestoreSparkReservation(t *testing.T) {
	recently, long := plugintest.Start.Add(-time.Minute), plugintest.Start.Add(-time.Hour)
	tests := map[string]struct {
		objects   []runtime.Object
		wantSlots int
	}{
		"executors missing": {
			objects: objects(nodes(2, "4"), boundDriver("n0", "3", recently), sparkExecutor("app", "e0").DeepCopy()), wantSlots: 3,
		},
		"one executor bound already": {
			objects: objects(nodes(2, "4"), boundDriver("n0", "3", recently),
				func() *v1.Pod { e := sparkExecutor("app", "e0"); e.Spec.NodeName = "n1"; return e }()),
			wantSlots: 2,
		},
		"past the timeout": {
			objects: objects(nodes(2, "4"), boundDriver("n0", "3", long)),
		},
		"no room": {
			objects: objects(nodes(1, "4"), boundDriver("n0", "4", recently)),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newGangEnv(t, setup{objects: tc.objects})
			pods := 0
			for _, o := range tc.objects {
				if _, ok := o.(*v1.Pod); ok {
					pods++
				}
			}
			e.waitMembers(t, sparkApp, pods)
			require.Equal(t, gang.PhaseBound, e.info(t, sparkApp).Phase)

			// The first cycle after the restart, whatever its pod.
			e.preFilter(plugintest.MakePod("any").Obj())
			assert.Equal(t, tc.wantSlots, e.info(t, sparkApp).FreeSlots)
			if tc.wantSlots == 0 {
				assert.Empty(t, e.Events.WithReason(ReasonReservationRestored))
				return
			}
			assert.Len(t, e.Events.WithReason(ReasonReservationRestored), 1)
			_, res, s := e.preFilter(sparkExecutor("app", "e9"))
			require.True(t, s.IsSuccess(), plugintest.String(s))
			assert.NotEmpty(t, res.NodeNames, "an executor goes to the restored slots")
		})
	}
}

// cordon marks a node as being taken away.
func (e *gangEnv) cordon(t *testing.T, node string) {
	t.Helper()
	n, err := e.Client.CoreV1().Nodes().Get(e.Ctx, node, metav1.GetOptions{})
	require.NoError(t, err)
	n.Spec.Unschedulable = true
	e.UpdateNode(t, n)
}

// TestDisplacedSlots: reserved slots on a node being taken away are placed
// on other nodes before the next decision; where no node has room, an
// admitted gang is released and a bound gang gives those slots up.
func TestDisplacedSlots(t *testing.T) {
	tests := map[string]struct {
		nodes     int
		wantEvent string
		// wantSlots is how many slots the gang holds afterwards.
		wantSlots int
	}{
		"moved to another node": {nodes: 2, wantEvent: ReasonReservationMoved, wantSlots: 3},
		"nowhere to go":         {nodes: 1, wantEvent: ReasonReservationDropped},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newGangEnv(t, setup{objects: objects(nodes(tc.nodes, "4"), boundDriver("n0", "3", plugintest.Start.Add(-time.Minute)))})
			e.waitMembers(t, sparkApp, 1)
			e.preFilter(plugintest.MakePod("any").Obj())
			require.Equal(t, 3, e.info(t, sparkApp).FreeSlots)
			slotNode := e.Runtime.Gangs.SlotNodes(sparkApp)[0]

			e.cordon(t, slotNode)
			e.WaitFor(t, "the slots taken off the node", func() bool { return e.info(t, sparkApp).Displaced > 0 })
			e.preFilter(plugintest.MakePod("any").Obj()) // the next cycle places them
			assert.Len(t, e.Events.WithReason(tc.wantEvent), 1)
			assert.Equal(t, tc.wantSlots, e.info(t, sparkApp).FreeSlots)
			assert.NotContains(t, e.Runtime.Gangs.SlotNodes(sparkApp), slotNode)
		})
	}
}

// TestDisplacedAdmission: an admitted gang whose free slots were on a node
// being taken away, with no member waiting there, moves them; if they fit
// nowhere, the admission is released.
func TestDisplacedAdmission(t *testing.T) {
	for _, tc := range []struct {
		name     string
		nodes    int
		released bool
	}{{"moved", 3, false}, {"released", 1, true}} {
		t.Run(tc.name, func(t *testing.T) {
			g := members("g", 2, 2, "2")
			ref := annotationGang("g")
			e := newGangEnv(t, setup{objects: objects(nodes(tc.nodes, "4"), g)})
			e.waitMembers(t, ref, 2)
			_, _, s := e.preFilter(g[0])
			require.True(t, s.IsSuccess(), plugintest.String(s))
			slotNode := e.Runtime.Gangs.SlotNodes(ref)[0]

			e.cordon(t, slotNode)
			e.WaitFor(t, "the slots taken off the node", func() bool {
				info := e.info(t, ref)
				return info.Displaced > 0 || info.Phase != gang.PhaseAdmitted
			})
			e.preFilter(plugintest.MakePod("any").Obj())
			info := e.info(t, ref)
			if tc.released {
				assert.Equal(t, gang.PhasePending, info.Phase)
				assert.False(t, e.Runtime.Gangs.HasSlots(ref))
				return
			}
			assert.Equal(t, gang.PhaseAdmitted, info.Phase)
			assert.Zero(t, info.Displaced)
			assert.NotContains(t, e.Runtime.Gangs.SlotNodes(ref), slotNode)
			assert.Len(t, e.Events.WithReason(ReasonReservationMoved), 1)
			_, _, s = e.preFilter(g[1])
			assert.True(t, s.IsSuccess(), "members take the moved slots: %s", plugintest.String(s))
		})
	}
}

// TestNodeDeletedMovesSlots: a deleted node's slots are placed again, as a
// node being taken away.
func TestNodeDeletedMovesSlots(t *testing.T) {
	e := newGangEnv(t, setup{objects: objects(nodes(2, "4"), boundDriver("n0", "2", plugintest.Start.Add(-time.Minute)))})
	e.waitMembers(t, sparkApp, 1)
	e.preFilter(plugintest.MakePod("any").Obj())
	slotNode := e.Runtime.Gangs.SlotNodes(sparkApp)[0]
	e.DeleteNode(t, slotNode)
	e.WaitFor(t, "the slots taken off the node", func() bool { return e.info(t, sparkApp).Displaced > 0 })
	_, _, s := e.preFilter(plugintest.MakePod("any").Obj())
	assert.NotEqual(t, fwk.Error, s.Code())
	assert.NotContains(t, e.Runtime.Gangs.SlotNodes(sparkApp), slotNode)
}

// TestBoundReservationTimesOut: a Spark driver's executors that do not all
// come within the timeout give their room back.
func TestBoundReservationTimesOut(t *testing.T) {
	e := newGangEnv(t, setup{objects: objects(nodes(2, "4"), boundDriver("n0", "2", plugintest.Start))})
	e.waitMembers(t, sparkApp, 1)
	e.preFilter(plugintest.MakePod("any").Obj())
	require.True(t, e.Runtime.Gangs.HasSlots(sparkApp))
	e.waitTickers(t)
	e.Clock.Step(5*time.Minute + time.Second)
	e.WaitFor(t, "the reservation released", func() bool {
		_, _, held := e.Runtime.Ledger.Lookup(gangKey(sparkApp))
		return !e.Runtime.Gangs.HasSlots(sparkApp) && !held
	})
}
