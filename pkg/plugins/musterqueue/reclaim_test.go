package musterqueue

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/plugins/plugintest"
)

const reclaimQueues = `
queues:
  - {name: borrower, guaranteed: {cpu: "2"}}
  - {name: owner, guaranteed: {cpu: "4"}}
`

// borrowers fills an 8-core node with the borrower's pods, started a minute
// apart: b0 the oldest, b7 the newest.
func borrowers() []runtime.Object {
	objects := []runtime.Object{plugintest.MakeNode("n1", "8", "32Gi").Obj()}
	for i := range 8 {
		p := running("b"+string(rune('0'+i)), "borrower", "1")
		start := metav1.NewTime(plugintest.Start.Add(time.Duration(i-10) * time.Minute))
		p.Status.StartTime = &start
		p.Labels["app"] = "borrower"
		objects = append(objects, p)
	}
	return objects
}

// unschedulableOn says the pod failed Filter on the nodes: preemption may help there.
func unschedulableOn(nodes ...string) fwk.NodeToStatusReader {
	m := framework.NewDefaultNodeToStatus()
	for _, n := range nodes {
		m.Set(n, fwk.NewStatus(fwk.Unschedulable, "no room"))
	}
	return m
}

func pdb(name string, allowed int32, match map[string]string) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: plugintest.Namespace, Name: name},
		Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: match}},
		Status:     policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: allowed},
	}
}

// TestPostFilterReclaims: a queue below its guarantee takes room back from a
// queue above its own, the fewest and newest pods, and the pod is nominated
// to the node they leave; otherwise nothing is preempted.
func TestPostFilterReclaims(t *testing.T) {
	tests := map[string]struct {
		extra []runtime.Object
		pod   *v1.Pod
		// nodes where Filter failed in a way preemption can help.
		nodes       []string
		wantCode    fwk.Code
		wantVictims []string
	}{
		"below its guarantee": {
			pod: pod("own", "owner", "2"), nodes: []string{"n1"},
			wantCode: fwk.Success, wantVictims: []string{"b6", "b7"},
		},
		"a disruption budget protects the newest": {
			extra: []runtime.Object{pdb("keep-b7", 0, map[string]string{"app": "borrower", "keep": "yes"})},
			pod:   pod("own", "owner", "1"), nodes: []string{"n1"},
			wantCode: fwk.Success, wantVictims: []string{"b6"},
		},
		"beyond its guarantee": {
			pod: pod("own", "owner", "5"), nodes: []string{"n1"},
			wantCode: fwk.Unschedulable,
		},
		"the borrower does not preempt": {
			pod: pod("more", "borrower", "1"), nodes: []string{"n1"},
			wantCode: fwk.Unschedulable,
		},
		"no node where preemption helps": {
			pod: pod("own", "owner", "1"), wantCode: fwk.Unschedulable,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objects := append(borrowers(), tc.extra...)
			for _, o := range objects {
				if p, ok := o.(*v1.Pod); ok && p.Name == "b7" && len(tc.extra) > 0 {
					p.Labels["keep"] = "yes"
				}
			}
			env := plugintest.New(t, plugintest.Options{
				Plugins: []plugintest.Plugin{{Name: Name, Factory: New}},
				Objects: append(objects, tc.pod), Queues: reclaimQueues,
			})
			pl := env.Plugin(t, Name).(*Plugin)
			state, st := preFilter(env, pl, tc.pod)
			require.True(t, st.IsSuccess(), plugintest.String(st))

			res, st := pl.PostFilter(env.Ctx, state, tc.pod, unschedulableOn(tc.nodes...))
			require.Equal(t, tc.wantCode, st.Code(), plugintest.String(st))
			var deleting []string
			for i := range 8 {
				if p := env.Pod(t, "b"+string(rune('0'+i))); p.DeletionTimestamp != nil {
					deleting = append(deleting, p.Name)
				}
			}
			assert.Equal(t, tc.wantVictims, deleting, "victims")
			if tc.wantCode != fwk.Success {
				assert.Empty(t, env.Events.WithReason("Preempted"))
				return
			}
			assert.Equal(t, "n1", res.NominatingInfo.NominatedNodeName)
			events := env.Events.WithReason("Preempted")
			require.Len(t, events, len(tc.wantVictims))
			assert.Equal(t, "ns/own", events[0].Related, "the Event names the preemptor")
		})
	}
}

// TestReclaimWaitsForItsVictims: while its victims exit, a preemptor
// preempts nothing more and is held back; it is retried (activated) when
// they are gone, or when the grace period ends for victims that never go.
func TestReclaimWaitsForItsVictims(t *testing.T) {
	for _, how := range []string{"victims gone", "grace period over"} {
		t.Run(how, func(t *testing.T) {
			own := pod("own", "owner", "1")
			env := plugintest.New(t, plugintest.Options{
				Plugins: []plugintest.Plugin{{Name: Name, Factory: New}},
				Objects: append(borrowers(), own), Queues: reclaimQueues,
			})
			pl := env.Plugin(t, Name).(*Plugin)
			state, st := preFilter(env, pl, own)
			require.True(t, st.IsSuccess(), plugintest.String(st))
			_, st = pl.PostFilter(env.Ctx, state, own, unschedulableOn("n1"))
			require.True(t, st.IsSuccess(), plugintest.String(st))
			env.WaitFor(t, "the victim seen exiting", func() bool { return env.Pod(t, "b7").DeletionTimestamp != nil })

			// The next attempt, before its victim is gone: nothing more.
			env.Snapshot()
			state, st = preFilter(env, pl, own)
			require.True(t, st.IsSuccess(), plugintest.String(st))
			_, st = pl.PostFilter(env.Ctx, state, own, unschedulableOn("n1"))
			assert.Equal(t, fwk.Unschedulable, st.Code(), plugintest.String(st))
			assert.Len(t, env.Events.WithReason("Preempted"), 1, "one victim in all")
			assert.Empty(t, env.Activator.Take())

			if how == "victims gone" {
				env.Finalize(t, "b7")
			} else {
				env.Clock.Step(time.Minute)
			}
			env.WaitFor(t, "the preemptor retried", func() bool { return len(env.Activator.Take()) > 0 })
		})
	}
}

// TestPostFilterReclaimsOnPreferredCapacity: with victims on an on-demand
// and a spot node, a pod that prefers spot reclaims on the spot node, though
// the on-demand node's victims are newer (taken first otherwise); a pod
// without a preference takes the newest.
func TestPostFilterReclaimsOnPreferredCapacity(t *testing.T) {
	for _, tc := range []struct {
		policy   string
		wantNode string
		victim   string
	}{
		{"prefer-spot", "n2", "s7"},
		{"", "n1", "b7"},
	} {
		t.Run("policy "+tc.policy, func(t *testing.T) {
			objects := append(borrowers(), plugintest.MakeNode("n2", "8", "32Gi").Label(capacity.LabelMuster, "spot").Obj())
			for i := range 8 {
				p := running("s"+string(rune('0'+i)), "borrower", "1")
				p.Spec.NodeName = "n2"
				start := metav1.NewTime(plugintest.Start.Add(time.Duration(i-30) * time.Minute)) // older than every b
				p.Status.StartTime = &start
				objects = append(objects, p)
			}
			own := pod("own", "owner", "1")
			if tc.policy != "" {
				own.Annotations = map[string]string{capacity.AnnotationPolicy: tc.policy}
			}
			env := plugintest.New(t, plugintest.Options{
				Plugins: []plugintest.Plugin{{Name: Name, Factory: New}},
				Objects: append(objects, own), Queues: reclaimQueues,
			})
			pl := env.Plugin(t, Name).(*Plugin)
			state, st := preFilter(env, pl, own)
			require.True(t, st.IsSuccess(), plugintest.String(st))
			res, st := pl.PostFilter(env.Ctx, state, own, unschedulableOn("n1", "n2"))
			require.True(t, st.IsSuccess(), plugintest.String(st))
			assert.Equal(t, tc.wantNode, res.NominatingInfo.NominatedNodeName)
			assert.NotNil(t, env.Pod(t, tc.victim).DeletionTimestamp, "%s preempted", tc.victim)
		})
	}
}
