package mustergang

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	pglisters "sigs.k8s.io/scheduler-plugins/pkg/generated/listers/scheduling/v1alpha1"

	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/profile/profiletest"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/waitreason"
)

const ns = "team"

// queueYAML is one queue for the namespace, with a max when given.
func queueYAML(max string) string {
	y := "queues:\n  - name: a\n    namespaces: [\"" + ns + "\"]\n"
	if max != "" {
		y += "    max: {cpu: \"" + max + "\"}\n"
	}
	return y + "  - name: b\n    namespaces: [\"" + ns + "\"]\nnamespaceQueues:\n  " + ns + ": a\n"
}

func testNode(name, cpu string) *v1.Node {
	alloc := v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse("64Gi"), v1.ResourcePods: resource.MustParse("110")}
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1.LabelHostname: name}},
		Status: v1.NodeStatus{Allocatable: alloc, Capacity: alloc}}
}

// testPod is a pod of the namespace asking for cpu; mutate sets the rest.
func testPod(name, cpu string, mutate ...func(*v1.Pod)) *v1.Pod {
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{}, Annotations: map[string]string{},
			CreationTimestamp: metav1.NewTime(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))},
		Spec: v1.PodSpec{SchedulerName: profiletest.Profile, Containers: []v1.Container{{Name: "c",
			Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu)}}}}},
		Status: v1.PodStatus{Phase: v1.PodPending},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

// member makes the pod a member of annotation gang g of min members.
func inGang(g, min string) func(*v1.Pod) {
	return func(p *v1.Pod) {
		p.Labels[gang.LabelGang] = g
		p.Annotations[gang.AnnotationMinMember] = min
	}
}

func boundTo(node string) func(*v1.Pod) { return func(p *v1.Pod) { p.Spec.NodeName = node } }

func inQueue(q string) func(*v1.Pod) { return func(p *v1.Pod) { p.Labels[queue.LabelQueue] = q } }

func gangOf(name, min, cpu string, n int, mutate ...func(*v1.Pod)) []runtime.Object {
	out := make([]runtime.Object, n)
	for i := range out {
		out[i] = testPod(fmt.Sprintf("%s-%d", name, i), cpu, append([]func(*v1.Pod){inGang(name, min)}, mutate...)...)
	}
	return out
}

// newGangPlugin builds MusterGang on a fake cluster as New would, without
// the PodGroup informers (podGroups, if any, are served from a lister), and
// tells it of every pod as its informer would.
func newGangPlugin(t *testing.T, queues string, podGroups []*schedv1alpha1.PodGroup, objs ...runtime.Object) (*Plugin, *profiletest.Cluster) {
	t.Helper()
	var pl *Plugin
	c := profiletest.New(t, queues, func(c *profiletest.Cluster) {
		args := configv1.DefaultGangArgs()
		pl = &Plugin{args: args, handle: c.Handle, rt: c.Runtime, reg: c.Runtime.Gangs, holds: c.Runtime.Holds, clock: c.Clock,
			sources: &sources{args: args, pods: c.Factory.Core().V1().Pods().Lister(),
				objects: map[schema.GroupVersionResource]getter{}},
			recorder: &events.FakeRecorder{}, neverFits: map[gang.Ref]string{}, statusDirty: map[gang.Ref]bool{},
			displacedFrom: map[gang.Ref][]string{}, ctx: c.Ctx}
		if podGroups != nil {
			idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
			for _, pg := range podGroups {
				require.NoError(t, idx.Add(pg))
			}
			lister := pglisters.NewPodGroupLister(idx)
			pl.sources.podGroups.Store(&podGroupAccess{lister: lister})
			pl.sources.serve(gang.ResourcePodGroup, func(ns, name string) (runtime.Object, error) {
				return lister.PodGroups(ns).Get(name)
			})
		}
		c.Runtime.GangOf = func(p *v1.Pod) (gang.Ref, bool) {
			ref, _, ok := pl.sources.identify(p)
			return ref, ok
		}
	}, objs...)
	for _, o := range objs {
		if p, ok := o.(*v1.Pod); ok {
			pl.onPod(p)
		}
	}
	return pl, c
}

func preFilter(t *testing.T, pl *Plugin, p *v1.Pod) *fwk.Status {
	t.Helper()
	_, st := pl.PreFilter(pl.ctx, framework.NewCycleState(), p, nil)
	return st
}

// TestGangWaitReasons: every path on which MusterGang holds a gang's member
// back gives it its code: in the pod's condition (Reasons), and, where the
// gang itself waits, in the gang's record (and so in the status).
func TestGangWaitReasons(t *testing.T) {
	podGroup := &schedv1alpha1.PodGroup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg"},
		Spec: schedv1alpha1.PodGroupSpec{MinMember: 2, MinResources: v1.ResourceList{v1.ResourceCPU: resource.MustParse("100")}}}
	inPodGroup := func(p *v1.Pod) { p.Labels[gang.LabelPodGroup] = "pg" }
	gated := func(p *v1.Pod) { p.Spec.SchedulingGates = []v1.PodSchedulingGate{{Name: "example.com/hold"}} }
	foreign := func(name, node string) *v1.Pod {
		return testPod(name, "2", boundTo(node), func(p *v1.Pod) { p.Spec.SchedulerName = "default-scheduler" })
	}
	cases := map[string]struct {
		queues    string
		podGroups []*schedv1alpha1.PodGroup
		objs      []runtime.Object
		pod       string
		prepare   func(*Plugin)
		want      waitreason.Code
		record    bool // the gang's record carries the code too
	}{
		"members missing": {queues: queueYAML(""), objs: gangOf("g", "3", "1", 1),
			pod: "g-0", want: waitreason.MembersMissing, record: true},
		"members gated": {queues: queueYAML(""), objs: append(gangOf("g", "2", "1", 1), testPod("g-1", "1", inGang("g", "2"), gated)),
			pod: "g-0", want: waitreason.MembersGated, record: true},
		"source missing": {queues: queueYAML(""), objs: []runtime.Object{testPod("exec-1", "1", func(p *v1.Pod) {
			p.Labels[gang.LabelSparkApp], p.Labels[gang.LabelSparkRole] = "app", string(gang.SparkExecutor)
		})}, pod: "exec-1", want: waitreason.GangSourceMissing},
		"invalid gang": {queues: queueYAML(""), objs: gangOf("g", "x", "1", 2),
			pod: "g-0", want: waitreason.InvalidGang},
		"invalid capacity policy": {queues: queueYAML(""), objs: gangOf("g", "2", "1", 2, func(p *v1.Pod) { p.Annotations[capacity.AnnotationPolicy] = "cheap" }),
			pod: "g-0", want: waitreason.InvalidCapacityPolicy, record: true},
		"no queue config": {queues: "queues: [", objs: gangOf("g", "2", "1", 2),
			pod: "g-0", want: waitreason.NoQueueConfig},
		"no queue": {queues: queueYAML(""), objs: gangOf("g", "2", "1", 2, inQueue("nope")),
			pod: "g-0", want: waitreason.NoQueue},
		"queue at max": {queues: queueYAML("4"), objs: append(gangOf("g", "2", "1", 2), testNode("n1", "8"), testPod("running", "3", boundTo("n1"))),
			pod: "g-0", want: waitreason.QueueAtMax, record: true},
		"never fits the queue": {queues: queueYAML("4"), objs: append(gangOf("g", "2", "3", 2), testNode("n1", "8")),
			pod: "g-0", want: waitreason.NeverFitsQueue, record: true},
		"fair share": {queues: queueYAML(""), objs: append(gangOf("g", "2", "1", 2), testNode("n1", "8"),
			testPod("running", "4", boundTo("n1")), testPod("waiting-in-b", "4", inQueue("b"))),
			pod: "g-0", want: waitreason.FairShare, record: true},
		"never fits the cluster": {queues: queueYAML(""), objs: append(gangOf("g", "2", "16", 2), testNode("n1", "8")),
			pod: "g-0", want: waitreason.NeverFitsCluster, record: true},
		"minResources": {queues: queueYAML(""), podGroups: []*schedv1alpha1.PodGroup{podGroup},
			objs: []runtime.Object{testNode("n1", "8"), testPod("pg-0", "1", inPodGroup), testPod("pg-1", "1", inPodGroup)},
			pod:  "pg-0", want: waitreason.MinResources, record: true},
		"not enough room": {queues: queueYAML(""), objs: append(gangOf("g", "2", "3", 2), testNode("n1", "4"), testNode("n2", "4"),
			foreign("f1", "n1"), foreign("f2", "n2")),
			pod: "g-0", want: waitreason.NotEnoughRoom, record: true},
		"backing off": {queues: queueYAML(""), objs: append(gangOf("g", "2", "1", 2), testNode("n1", "8")),
			prepare: func(pl *Plugin) {
				ref := gang.Ref{Kind: gang.KindAnnotation, Namespace: ns, Name: "g"}
				pl.reg.Release(ref, waitreason.BackingOff, "not admitted", pl.clock.Now().Add(10*time.Second))
			},
			pod: "g-0", want: waitreason.BackingOff, record: true},
		"admitted": {queues: queueYAML(""), objs: append(gangOf("g", "2", "1", 2), testNode("n1", "8")),
			pod: "g-0", want: waitreason.Admitted},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			pl, c := newGangPlugin(t, tc.queues, tc.podGroups, tc.objs...)
			if tc.prepare != nil {
				tc.prepare(pl)
			}
			var p *v1.Pod
			for _, o := range tc.objs {
				if q, ok := o.(*v1.Pod); ok && q.Name == tc.pod {
					p = q
				}
			}
			require.NotNil(t, p)
			st := preFilter(t, pl, p)
			got := c.Reasons.Of(p)
			assert.Equal(t, tc.want, got.Code, "the pod's code; status: %v", st)
			if tc.want == waitreason.Admitted {
				assert.True(t, st.IsSuccess(), st.Message())
				assert.Equal(t, "admitted to queue root.a", got.Message)
				return
			}
			assert.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code())
			assert.Equal(t, st.Message(), got.Message, "the condition says what the scheduler says")
			ref, ok := c.Runtime.GangOf(p)
			require.True(t, ok)
			info, _ := pl.reg.Get(ref)
			if tc.record {
				assert.Equal(t, tc.want, info.ReasonCode, "the gang's record")
				assert.Contains(t, st.Message(), info.Reason)
				assert.Equal(t, tc.want, c.Runtime.Report(c.Clock.Now()).PendingGangs[0].ReasonCode, "the status: %+v", c.Runtime.Report(c.Clock.Now()).PendingGangs)
			}
		})
	}
}

// TestGangReleasedAndTimedOutCodes: undoing an admission records Released,
// a timeout BackingOff; admission clears the code.
func TestGangReleasedAndTimedOutCodes(t *testing.T) {
	objs := append(gangOf("g", "2", "1", 2), testNode("n1", "8"))
	pl, c := newGangPlugin(t, queueYAML(""), nil, objs...)
	ref := gang.Ref{Kind: gang.KindAnnotation, Namespace: ns, Name: "g"}
	require.True(t, preFilter(t, pl, objs[0].(*v1.Pod)).IsSuccess())
	info, _ := pl.reg.Get(ref)
	assert.Equal(t, gang.PhaseAdmitted, info.Phase)
	assert.Empty(t, info.ReasonCode)

	pl.release(c.Ctx, ref, "member team/g-1 could not be bound", false)
	info, _ = pl.reg.Get(ref)
	assert.Equal(t, waitreason.Released, info.ReasonCode)
	assert.Equal(t, "member team/g-1 could not be bound", info.Reason)

	require.True(t, preFilter(t, pl, objs[0].(*v1.Pod)).IsSuccess(), "admitted again")
	pl.release(c.Ctx, ref, "timed out after 5m0s with 1 of 2 members placed", true)
	info, _ = pl.reg.Get(ref)
	assert.Equal(t, waitreason.BackingOff, info.ReasonCode)
	assert.True(t, info.BackoffUntil.After(c.Clock.Now()))
}
