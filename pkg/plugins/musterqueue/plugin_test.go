package musterqueue

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/plugintest"
	"muster.dev/muster/pkg/plugins/profile"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// teamQueues: a parent with a max over two leaves with their own, a queue
// only another namespace may use, one without limits, and the test
// namespace mapped to team.a.
const teamQueues = `
queues:
  - name: team
    max: {cpu: "6"}
    queues:
      - {name: a, max: {cpu: "4"}}
      - {name: b, max: {cpu: "4"}}
  - name: private
    namespaces: [other]
  - name: other
namespaceQueues:
  ns: root.team.a
`

func newPlugin(t *testing.T, queues string, objects ...runtime.Object) (*plugintest.Env, *Plugin) {
	t.Helper()
	objects = append(objects, plugintest.MakeNode("n1", "64", "256Gi").Obj())
	env := plugintest.New(t, plugintest.Options{
		Plugins: []plugintest.Plugin{{Name: Name, Factory: New}},
		Objects: objects,
		Queues:  queues,
	})
	return env, env.Plugin(t, Name).(*Plugin)
}

// pod is a pending pod of the profile requesting cpu, in queue (a
// muster.dev/queue label; empty: none).
func pod(name, queueLabel, cpu string) *v1.Pod {
	w := plugintest.MakePod(name).Req(map[v1.ResourceName]string{v1.ResourceCPU: cpu})
	if queueLabel != "" {
		w = w.Label(queue.LabelQueue, queueLabel)
	}
	return w.Obj()
}

// running is pod bound to n1 and running.
func running(name, queueLabel, cpu string) *v1.Pod {
	p := pod(name, queueLabel, cpu)
	p.Spec.NodeName = "n1"
	p.Status.Phase = v1.PodRunning
	return p
}

func preFilter(env *plugintest.Env, pl *Plugin, p *v1.Pod) (*framework.CycleState, *fwk.Status) {
	state := framework.NewCycleState()
	_, st := pl.PreFilter(env.Ctx, state, p, env.Snapshot())
	return state, st
}

// hint returns the queueing hint the plugin registered for the event.
func hint(t *testing.T, pl *Plugin, resource fwk.EventResource, action fwk.ActionType) fwk.QueueingHintFn {
	t.Helper()
	events, err := pl.EventsToRegister(context.Background())
	require.NoError(t, err)
	for _, e := range events {
		if e.Event.Resource == resource && e.Event.ActionType&action != 0 {
			return e.QueueingHintFn
		}
	}
	t.Fatalf("no hint registered for %s %s", resource, action)
	return nil
}

// TestPreFilter: placement, max at every level, and the retry each refusal
// waits for (a deleted pod that frees the queue that blocked it).
func TestPreFilter(t *testing.T) {
	tests := map[string]struct {
		existing []*v1.Pod
		pod      *v1.Pod
		want     fwk.Code
		// wantBlockedAt is the queue whose usage must drop before a retry:
		// a deleted pod of it (and only of it) queues the pod again.
		wantBlockedAt string
		// unrelated is a queue label whose pods' deletion does not help.
		unrelated string
	}{
		"placed by namespaceQueues": {pod: pod("p", "", "1"), want: fwk.Success},
		"placed by its label":       {pod: pod("p", "root.team.b", "1"), want: fwk.Success},
		"unknown queue":             {pod: pod("p", "nope", "1"), want: fwk.UnschedulableAndUnresolvable},
		"not a leaf":                {pod: pod("p", "root.team", "1"), want: fwk.UnschedulableAndUnresolvable},
		"namespace not admitted":    {pod: pod("p", "private", "1"), want: fwk.UnschedulableAndUnresolvable},
		"leaf at its max": {
			existing: []*v1.Pod{running("a1", "a", "3"), running("b1", "b", "1")},
			pod:      pod("p", "a", "2"), want: fwk.UnschedulableAndUnresolvable,
			wantBlockedAt: "a", unrelated: "b",
		},
		"parent at its max": {
			existing: []*v1.Pod{running("a1", "a", "3"), running("b1", "b", "3")},
			pod:      pod("p", "a", "1"), want: fwk.UnschedulableAndUnresolvable,
			wantBlockedAt: "b", unrelated: "other",
		},
		"above the leaf's max alone": {pod: pod("p", "a", "5"), want: fwk.UnschedulableAndUnresolvable},
		"beside a full sibling": {
			existing: []*v1.Pod{running("b1", "b", "4")},
			pod:      pod("p", "a", "2"), want: fwk.Success,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env, pl := newPlugin(t, teamQueues, plugintest.Pods(tc.existing...)...)
			_, st := preFilter(env, pl, tc.pod)
			require.Equal(t, tc.want, st.Code(), plugintest.String(st))
			if tc.wantBlockedAt == "" {
				return
			}
			onDelete := hint(t, pl, fwk.Pod, fwk.Delete)
			h, err := onDelete(klog.Background(), tc.pod, running("gone", tc.wantBlockedAt, "1"), nil)
			require.NoError(t, err)
			assert.Equal(t, fwk.Queue, h, "a pod of the blocking queue deleted")
			h, err = onDelete(klog.Background(), tc.pod, running("gone", tc.unrelated, "1"), nil)
			require.NoError(t, err)
			assert.Equal(t, fwk.QueueSkip, h, "a pod of another queue deleted")
		})
	}
}

// TestPreFilterSkipsGangMembers: a gang is admitted as a whole by MusterGang.
func TestPreFilterSkipsGangMembers(t *testing.T) {
	env, pl := newPlugin(t, teamQueues)
	env.Runtime.GangOf = func(*v1.Pod) (gang.Ref, bool) {
		return gang.Ref{Kind: gang.KindAnnotation, Namespace: "ns", Name: "g"}, true
	}
	state, st := preFilter(env, pl, pod("p", "a", "1"))
	assert.Equal(t, fwk.Skip, st.Code())
	// Reserve, Unreserve and PostFilter leave a gang member to MusterGang.
	assert.Nil(t, pl.Reserve(env.Ctx, state, pod("p", "a", "1"), "n1"))
	pl.Unreserve(env.Ctx, state, pod("p", "a", "1"), "n1")
	_, st = pl.PostFilter(env.Ctx, state, pod("p", "a", "1"), framework.NewDefaultNodeToStatus())
	assert.Equal(t, fwk.Unschedulable, st.Code())
}

// TestReserve: a pod's quota is held from Reserve until Unreserve, and two
// pods that passed PreFilter together cannot both take the last room.
func TestReserve(t *testing.T) {
	env, pl := newPlugin(t, teamQueues, running("a1", "a", "2"))
	first, second := pod("first", "a", "1"), pod("second", "a", "2")
	s1, st := preFilter(env, pl, first)
	require.True(t, st.IsSuccess(), plugintest.String(st))
	s2, st := preFilter(env, pl, second)
	require.True(t, st.IsSuccess(), plugintest.String(st))

	require.Nil(t, pl.Reserve(env.Ctx, s1, first, "n1"))
	assert.Equal(t, int64(1000), env.Runtime.Ledger.Usage("root.team.a").Reserved[v1.ResourceCPU])
	st = pl.Reserve(env.Ctx, s2, second, "n1")
	assert.Equal(t, fwk.Unschedulable, st.Code(), "the second would take queue a above its max")

	pl.Unreserve(env.Ctx, s1, first, "n1")
	assert.Zero(t, env.Runtime.Ledger.Usage("root.team.a").Reserved[v1.ResourceCPU], "Unreserve gives the quota back")
	require.Nil(t, pl.Reserve(env.Ctx, s2, second, "n1"), "room again")
}

// TestFairShareGate: a queue at its fair share may not take the free
// capacity that a queue below its share waits for; it is retried when a pod
// is deleted (room freed), not when the owed queue's pods are bound (that
// room is then used, not freed).
func TestFairShareGate(t *testing.T) {
	queues := `
queues:
  - {name: a, guaranteed: {cpu: "4"}}
  - {name: b, guaranteed: {cpu: "4"}}
`
	objects := []runtime.Object{plugintest.MakeNode("n1", "8", "32Gi").Obj()}
	for _, p := range []*v1.Pod{running("a1", "a", "3"), running("a2", "a", "3"),
		pod("b1", "b", "1"), pod("b2", "b", "1"), pod("b3", "b", "1"), pod("b4", "b", "1")} {
		objects = append(objects, p)
	}
	env := plugintest.New(t, plugintest.Options{
		Plugins: []plugintest.Plugin{{Name: Name, Factory: New}}, Objects: objects, Queues: queues,
	})
	pl := env.Plugin(t, Name).(*Plugin)

	greedy := pod("greedy", "a", "1")
	_, st := preFilter(env, pl, greedy)
	require.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code(), plugintest.String(st))
	assert.Contains(t, st.Message(), "root.b", "names the queue owed the room")

	_, st = preFilter(env, pl, pod("owed", "b", "1"))
	assert.True(t, st.IsSuccess(), "the queue below its share is admitted: %s", plugintest.String(st))

	// The owed queue's pod bound: the gate still refuses, so no Pod Add
	// event is registered to retry it.
	env.Runtime.Ledger.Allocate("owed", "root.b", resources.Vector{v1.ResourceCPU: 1000})
	_, st = preFilter(env, pl, greedy)
	require.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code(), "a bind frees nothing: %s", plugintest.String(st))
	events, err := pl.EventsToRegister(context.Background())
	require.NoError(t, err)
	for _, e := range events {
		assert.False(t, e.Event.Resource == fwk.Pod && e.Event.ActionType&fwk.Add != 0, "no retry on Pod Add")
	}
	onDelete := hint(t, pl, fwk.Pod, fwk.Delete)
	h, err := onDelete(klog.Background(), greedy, running("b1", "b", "1"), nil)
	require.NoError(t, err)
	assert.Equal(t, fwk.Queue, h, "capacity freed anywhere moves fair shares")
}

// TestQueueingHints: events that cannot help a pod do not queue it.
func TestQueueingHints(t *testing.T) {
	env, pl := newPlugin(t, teamQueues, running("a1", "a", "4"))
	blocked := pod("blocked", "a", "1")
	_, st := preFilter(env, pl, blocked)
	require.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code())
	admitted := pod("admitted", "b", "1")
	_, st = preFilter(env, pl, admitted)
	require.True(t, st.IsSuccess())

	foreign := running("foreign", "a", "1")
	foreign.Spec.SchedulerName = "default-scheduler"
	relabelled := blocked.DeepCopy()
	relabelled.Labels[queue.LabelQueue] = "b"
	onDelete, onLabel := hint(t, pl, fwk.Pod, fwk.Delete), hint(t, pl, fwk.Pod, fwk.UpdatePodLabel)
	tests := map[string]struct {
		fn       fwk.QueueingHintFn
		pod      *v1.Pod
		old, new any
		want     fwk.QueueingHint
	}{
		"delete: another scheduler's pod":  {fn: onDelete, pod: blocked, old: foreign, want: fwk.QueueSkip},
		"delete: a pod not turned away":    {fn: onDelete, pod: admitted, old: running("x", "a", "1"), want: fwk.QueueSkip},
		"delete: frees the blocking queue": {fn: onDelete, pod: blocked, old: running("x", "a", "1"), want: fwk.Queue},
		"delete: not a pod":                {fn: onDelete, pod: blocked, old: "junk", want: fwk.QueueSkip},
		"delete: queue unknown, retry":     {fn: onDelete, pod: blocked, old: running("x", "nope", "1"), want: fwk.Queue},
		"label: queue changed":             {fn: onLabel, pod: blocked, old: blocked, new: relabelled, want: fwk.Queue},
		"label: other labels changed":      {fn: onLabel, pod: blocked, old: blocked, new: blocked, want: fwk.QueueSkip},
		"label: another pod":               {fn: onLabel, pod: admitted, old: blocked, new: relabelled, want: fwk.QueueSkip},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := tc.fn(klog.Background(), tc.pod, tc.old, tc.new)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestNewConfigurationRetriesRefusedPods: a new queue tree re-activates
// every pod the plugin turned away; a deleted pod is forgotten.
func TestNewConfigurationRetriesRefusedPods(t *testing.T) {
	env, pl := newPlugin(t, teamQueues, running("a1", "a", "4"))
	for _, p := range []*v1.Pod{pod("over", "a", "1"), pod("lost", "nope", "1"), pod("deleted", "nope", "1")} {
		env.CreatePod(t, p)
		_, st := preFilter(env, pl, p)
		require.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code())
	}
	env.DeletePod(t, pod("deleted", "nope", "1"))
	env.WaitFor(t, "the deletion seen", func() bool {
		pl.mu.Lock()
		defer pl.mu.Unlock()
		_, ok := pl.waiting["deleted"]
		return !ok
	})
	assert.Empty(t, env.Activator.Take())

	cm := plugintest.QueueConfigMap(teamQueues + "  # edited\n")
	_, err := env.Client.CoreV1().ConfigMaps(cm.Namespace).Update(env.Ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	var activated []string
	env.WaitFor(t, "the refused pods activated", func() bool {
		activated = append(activated, env.Activator.Take()...)
		return len(activated) >= 2
	})
	assert.ElementsMatch(t, []string{"ns/over", "ns/lost"}, activated)
}

// TestSignPod: queue admission adds nothing to a pod's signature.
func TestSignPod(t *testing.T) {
	_, pl := newPlugin(t, teamQueues)
	frags, st := pl.SignPod(context.Background(), pod("p", "a", "1"))
	assert.Nil(t, frags)
	assert.True(t, st.IsSuccess())
}

// TestNewRefusesBadArgs: args are validated when the plugin is built.
func TestNewRefusesBadArgs(t *testing.T) {
	env, _ := newPlugin(t, teamQueues)
	_, err := New(env.Ctx, &metav1.Status{}, env.Framework, env.Runtime)
	assert.Error(t, err, "args of the wrong type")
	_, err = New(env.Ctx, nil, env.Framework, profile.New(env.Ctx, env.Framework))
	assert.NoError(t, err, "no args: the defaults")
}
