package mustergang

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/plugintest"
)

// TestAdmissionUndoneByTheCluster: an admitted gang is released when what it
// counted on goes: a member that was not placed yet, the node a member waits
// on, that node being taken away, its PodGroup. The member waiting at
// Permit is rejected and the gang holds nothing.
func TestAdmissionUndoneByTheCluster(t *testing.T) {
	pgMember := func(name string) *v1.Pod {
		return plugintest.MakePod(name).Label(gang.LabelPodGroup, "pg").Req(cpu("1")).Obj()
	}
	tests := map[string]struct {
		podGroup bool
		// undo changes the cluster; waitingOn is the node the first member
		// waits at Permit on.
		undo func(t *testing.T, e *gangEnv, waitingOn string)
	}{
		"a member not placed yet is deleted": {
			undo: func(t *testing.T, e *gangEnv, _ string) { e.DeletePod(t, plugintest.MakePod("g-2").Obj()) },
		},
		"the node is deleted": {
			undo: func(t *testing.T, e *gangEnv, node string) { e.DeleteNode(t, node) },
		},
		"the node is being taken away": {
			undo: func(t *testing.T, e *gangEnv, node string) {
				n, err := e.Client.CoreV1().Nodes().Get(e.Ctx, node, metav1.GetOptions{})
				require.NoError(t, err)
				n.Spec.Unschedulable = true
				e.UpdateNode(t, n)
			},
		},
		"its PodGroup is deleted": {
			podGroup: true,
			undo: func(t *testing.T, e *gangEnv, _ string) {
				require.NoError(t, e.pgs.SchedulingV1alpha1().PodGroups(plugintest.Namespace).Delete(e.Ctx, "pg", metav1.DeleteOptions{}))
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := setup{objects: objects(nodes(3, "4"), members("g", 3, 3, "1"))}
			ref, first := annotationGang("g"), members("g", 3, 3, "1")[0]
			if tc.podGroup {
				s = setup{objects: objects(nodes(3, "4"), pgMember("p0"), pgMember("p1")),
					podGroups: []*schedv1alpha1.PodGroup{podGroup("pg", 2)}}
				ref, first = gang.Ref{Kind: gang.KindPodGroup, Namespace: plugintest.Namespace, Name: "pg"}, pgMember("p0")
			}
			e := newGangEnv(t, s)
			e.waitMembers(t, ref, len(s.objects)-3)
			_, node := admitted(t, e, ref, first)

			tc.undo(t, e, node)
			e.WaitFor(t, "the admission released", func() bool {
				info, ok := e.Runtime.Gangs.Get(ref)
				return !ok || info.Phase != gang.PhaseAdmitted
			})
			assert.Equal(t, fwk.Unschedulable, e.PermitVerdict(t, first).Code(), "the waiting member is rejected")
			assert.False(t, e.Runtime.Gangs.HasSlots(ref), "slots freed")
			_, _, ok := e.Runtime.Ledger.Lookup(gangKey(ref))
			assert.False(t, ok, "quota freed")
		})
	}
}

// TestGateLifted: lifting the last scheduling gate completes a gang: its
// members are retried at once, no cluster event would reach them.
func TestGateLifted(t *testing.T) {
	ref := annotationGang("g")
	gated := member("g", "g-2", 3, "1").SchedulingGates([]string{"example.com/wait"}).Obj()
	e := newGangEnv(t, setup{objects: objects(nodes(1, "4"), members("g", 2, 3, "1"), gated)})
	e.waitMembers(t, ref, 3)
	require.Equal(t, gang.PhaseWaiting, e.info(t, ref).Phase)
	e.Activator.Take()

	lifted := gated.DeepCopy()
	lifted.Spec.SchedulingGates = nil
	e.UpdatePod(t, lifted)
	e.WaitFor(t, "the gang's members retried", func() bool { return len(e.Activator.Since(plugintest.Start)) > 0 })
	assert.Equal(t, gang.PhasePending, e.info(t, ref).Phase)
	assert.Subset(t, e.Activator.Take(), []string{"ns/g-0", "ns/g-1"}, "the others (the lifted pod's own update queues it anyway)")
}

// TestFinishedMembers: a member that finishes is forgotten; a gang without
// members is gone; a Spark driver takes its app's reservation with it.
func TestFinishedMembers(t *testing.T) {
	t.Run("a gang's last member", func(t *testing.T) {
		ref := annotationGang("g")
		p := member("g", "g-0", 1, "1").Node("n0").Phase(v1.PodRunning).Obj()
		e := newGangEnv(t, setup{objects: objects(nodes(1, "4"), p)})
		e.waitMembers(t, ref, 1)
		done := p.DeepCopy()
		done.Status.Phase = v1.PodSucceeded
		e.UpdatePod(t, done)
		e.WaitFor(t, "the gang forgotten", func() bool { _, ok := e.Runtime.Gangs.Get(ref); return !ok })
	})
	t.Run("a Spark driver", func(t *testing.T) {
		ref := gang.Ref{Kind: gang.KindSpark, Namespace: plugintest.Namespace, Name: "app"}
		driver := sparkDriver("app", "2")
		e := newGangEnv(t, setup{objects: objects(nodes(1, "4"), driver, sparkExecutor("app", "e0"))})
		e.waitMembers(t, ref, 2)
		_, _, s := e.preFilter(driver)
		require.True(t, s.IsSuccess(), plugintest.String(s))
		require.True(t, e.Runtime.Gangs.HasSlots(ref))
		e.DeletePod(t, driver)
		e.WaitFor(t, "the reservation released", func() bool {
			_, _, held := e.Runtime.Ledger.Lookup(gangKey(ref))
			return !e.Runtime.Gangs.HasSlots(ref) && !held
		})
	})
}

// TestPodGroupArrivesAfterItsMembers: members created before their PodGroup
// are counted once it exists.
func TestPodGroupArrivesAfterItsMembers(t *testing.T) {
	ref := gang.Ref{Kind: gang.KindPodGroup, Namespace: plugintest.Namespace, Name: "pg"}
	pods := objects(
		plugintest.MakePod("p0").Label(gang.LabelPodGroup, "pg").Obj(),
		plugintest.MakePod("p1").Label(gang.LabelPodGroup, "pg").SchedulingGates([]string{"example.com/wait"}).Obj())
	e := newGangEnv(t, setup{objects: objects(nodes(1, "4"), pods), servePodGroups: true})
	_, ok := e.Runtime.Gangs.Get(ref)
	require.False(t, ok, "no PodGroup: no gang")
	_, err := e.pgs.SchedulingV1alpha1().PodGroups(plugintest.Namespace).Create(e.Ctx, podGroup("pg", 2), metav1.CreateOptions{})
	require.NoError(t, err)
	e.waitMembers(t, ref, 2)
	assert.Equal(t, 1, e.info(t, ref).Gated, "the gated member is recorded too")
}

// TestQueueingHints: which cluster events may help a refused member.
func TestQueueingHints(t *testing.T) {
	pg := func(name string) *v1.Pod { return plugintest.MakePod(name).Label(gang.LabelPodGroup, "pg").Obj() }
	short := members("short", 2, 3, "1")
	complete := members("complete", 2, 2, "1")
	e := newGangEnv(t, setup{objects: objects(nodes(1, "4"), short, complete, pg("p0"), busy("b0", "n0", "4")),
		podGroups: []*schedv1alpha1.PodGroup{podGroup("pg", 2)}})
	e.waitMembers(t, annotationGang("short"), 2)
	e.waitMembers(t, annotationGang("complete"), 2)
	_, _, s := e.preFilter(complete[0])
	require.Equal(t, fwk.UnschedulableAndUnresolvable, s.Code(), "no room")

	events, err := e.pl.EventsToRegister(e.Ctx)
	require.NoError(t, err)
	hint := func(resource fwk.EventResource, action fwk.ActionType) fwk.QueueingHintFn {
		for _, ev := range events {
			if ev.Event.Resource == resource && ev.Event.ActionType&action != 0 {
				return ev.QueueingHintFn
			}
		}
		t.Fatalf("no hint for %s %s", resource, action)
		return nil
	}
	boundMember := member("short", "short-9", 3, "1").Node("n0").Obj()
	tests := map[string]struct {
		fn       fwk.QueueingHintFn
		pod      *v1.Pod
		old, new any
		want     fwk.QueueingHint
	}{
		"a member of its gang bound":      {fn: hint(fwk.Pod, fwk.Add), pod: short[0], new: boundMember, want: fwk.Queue},
		"itself":                          {fn: hint(fwk.Pod, fwk.Add), pod: short[0], new: short[0], want: fwk.QueueSkip},
		"a gated member":                  {fn: hint(fwk.Pod, fwk.Add), pod: short[0], new: member("short", "x", 3, "1").SchedulingGates([]string{"g"}).Obj(), want: fwk.QueueSkip},
		"another gang's member":           {fn: hint(fwk.Pod, fwk.Add), pod: short[0], new: complete[1], want: fwk.QueueSkip},
		"room freed, gang waits for room": {fn: hint(fwk.Pod, fwk.Delete), pod: complete[0], old: busy("b0", "n0", "4"), want: fwk.Queue},
		"room freed, gang short":          {fn: hint(fwk.Pod, fwk.Delete), pod: short[0], old: busy("b0", "n0", "4"), want: fwk.QueueSkip},
		"room freed, not a member":        {fn: hint(fwk.Pod, fwk.Delete), pod: plugintest.MakePod("x").Obj(), want: fwk.QueueSkip},
		"a node added":                    {fn: hint(fwk.Node, fwk.Add), pod: complete[0], want: fwk.Queue},
		"its PodGroup changed":            {fn: hint(podGroupResource, fwk.Update), pod: pg("p0"), new: podGroup("pg", 1), want: fwk.Queue},
		"another PodGroup changed":        {fn: hint(podGroupResource, fwk.Update), pod: pg("p0"), new: podGroup("other", 1), want: fwk.QueueSkip},
		"its PodGroup added":              {fn: hint(podGroupResource, fwk.Add), pod: pg("p0"), new: podGroup("pg", 1), want: fwk.Queue},
		"its PodGroup's status only":      {fn: hint(podGroupResource, fwk.Update), pod: pg("p0"), old: podGroup("pg", 1), new: withStatus(podGroup("pg", 1)), want: fwk.QueueSkip},
		"its PodGroup relabelled":         {fn: hint(podGroupResource, fwk.Update), pod: pg("p0"), old: podGroup("pg", 1), new: relabelled(podGroup("pg", 1)), want: fwk.Queue},
		// kube-scheduler's dynamic informer hands over unstructured objects
		"its PodGroup, unstructured":      {fn: hint(podGroupResource, fwk.Update), pod: pg("p0"), old: toUnstructured(t, podGroup("pg", 2)), new: toUnstructured(t, podGroup("pg", 1)), want: fwk.Queue},
		"its status only, unstructured":   {fn: hint(podGroupResource, fwk.Update), pod: pg("p0"), old: toUnstructured(t, podGroup("pg", 1)), new: toUnstructured(t, withStatus(podGroup("pg", 1))), want: fwk.QueueSkip},
		"another PodGroup, unstructured":  {fn: hint(podGroupResource, fwk.Update), pod: pg("p0"), new: toUnstructured(t, podGroup("other", 1)), want: fwk.QueueSkip},
		"not an object: retry to be safe": {fn: hint(podGroupResource, fwk.Update), pod: pg("p0"), new: "junk", want: fwk.Queue},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := tc.fn(klog.Background(), tc.pod, tc.old, tc.new)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func withStatus(p *schedv1alpha1.PodGroup) *schedv1alpha1.PodGroup {
	p.Status = schedv1alpha1.PodGroupStatus{Phase: schedv1alpha1.PodGroupPending, Running: 1}
	return p
}

func relabelled(p *schedv1alpha1.PodGroup) *schedv1alpha1.PodGroup {
	p.Labels = map[string]string{"muster.dev/queue": "other"}
	return p
}

func toUnstructured(t *testing.T, obj any) *unstructured.Unstructured {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	require.NoError(t, err)
	return &unstructured.Unstructured{Object: m}
}

// TestNoPodGroupEventsWithoutTheCRD: PodGroup events are registered only
// where the CRD is served.
func TestNoPodGroupEventsWithoutTheCRD(t *testing.T) {
	e := newGangEnv(t, setup{objects: objects(nodes(1, "4"))})
	events, err := e.pl.EventsToRegister(e.Ctx)
	require.NoError(t, err)
	for _, ev := range events {
		assert.NotEqual(t, podGroupResource, ev.Event.Resource)
	}
	_, _, s := e.preFilter(plugintest.MakePod("p").Label(gang.LabelPodGroup, "pg").Obj())
	assert.Equal(t, fwk.Skip, s.Code(), "a PodGroup label means nothing without the CRD")
}
