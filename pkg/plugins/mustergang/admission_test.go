package mustergang

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	schedv1beta1 "k8s.io/api/scheduling/v1beta1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/plugintest"
	"muster.dev/muster/pkg/queue"
)

func podGroup(name string, min int32) *schedv1alpha1.PodGroup {
	return &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: plugintest.Namespace, Name: name},
		Spec:       schedv1alpha1.PodGroupSpec{MinMember: min},
	}
}

func workload(name string, min int32) *schedv1beta1.PodGroup {
	return &schedv1beta1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: plugintest.Namespace, Name: name},
		Spec: schedv1beta1.PodGroupSpec{SchedulingPolicy: schedv1beta1.PodGroupSchedulingPolicy{
			Gang: &schedv1beta1.GangSchedulingPolicy{MinCount: min}}},
	}
}

// sparkDriver is the driver of Spark app, reserving room for executors of
// one core each.
func sparkDriver(app string, executors string) *v1.Pod {
	return plugintest.MakePod(app+"-driver").Label(gang.LabelSparkApp, app).Label(gang.LabelSparkRole, "driver").
		Annotation(gang.AnnotationMinExecutors, executors).Annotation(gang.AnnotationExecutorResources, "cpu=1").
		Req(cpu("1")).Obj()
}

func sparkExecutor(app, name string) *v1.Pod {
	return plugintest.MakePod(name).Label(gang.LabelSparkApp, app).Label(gang.LabelSparkRole, "executor").Req(cpu("1")).Obj()
}

// busy is a pod of another scheduler using cores of a node.
func busy(name, node, cores string) *v1.Pod {
	return plugintest.MakePod(name).SchedulerName("default-scheduler").Node(node).Req(cpu(cores)).Phase(v1.PodRunning).Obj()
}

// TestPreFilterAdmission: a gang is admitted as a whole when it is complete,
// its queue has room for its total and its members fit node by node; else
// every member is refused with the reason, and a gang that can never be
// admitted as things are says so once.
func TestPreFilterAdmission(t *testing.T) {
	pg := func(name string) *v1.Pod {
		return plugintest.MakePod(name).Label(gang.LabelPodGroup, "pg").Req(cpu("1")).Obj()
	}
	tests := map[string]struct {
		setup setup
		// pod is the member whose cycle runs (it is in the cluster too).
		pod  *v1.Pod
		ref  gang.Ref
		seen int // members the plugin must have seen first
		want fwk.Code
		// wantPhase is the gang's phase after the cycle ("": not checked).
		wantPhase gang.Phase
		// wantEvent is the reason of the one Event expected ("": none).
		wantEvent string
	}{
		"short of members": {
			setup: setup{objects: objects(nodes(2, "4"), members("g", 2, 3, "1"))},
			pod:   members("g", 2, 3, "1")[0], ref: annotationGang("g"), seen: 2,
			want: fwk.UnschedulableAndUnresolvable, wantPhase: gang.PhaseWaiting,
		},
		"a member held by a scheduling gate": {
			setup: setup{objects: objects(nodes(2, "4"), members("g", 2, 3, "1"),
				member("g", "gated", 3, "1").SchedulingGates([]string{"example.com/wait"}).Obj())},
			pod: members("g", 2, 3, "1")[0], ref: annotationGang("g"), seen: 3,
			want: fwk.UnschedulableAndUnresolvable, wantPhase: gang.PhaseWaiting,
		},
		"a malformed quorum": {
			setup: setup{objects: objects(nodes(1, "4"))},
			pod:   plugintest.MakePod("p").Label(gang.LabelGang, "g").Annotation(gang.AnnotationMinMember, "three").Obj(),
			want:  fwk.UnschedulableAndUnresolvable,
		},
		"its PodGroup does not exist yet": {
			setup: setup{objects: objects(nodes(1, "4")), servePodGroups: true},
			pod:   pg("p"), want: fwk.UnschedulableAndUnresolvable,
		},
		"a Spark executor without its driver": {
			setup: setup{objects: objects(nodes(1, "4"))},
			pod:   sparkExecutor("app", "e0"), want: fwk.UnschedulableAndUnresolvable,
		},
		"complete, and it fits": {
			setup: setup{objects: objects(nodes(2, "4"), members("g", 3, 3, "1"))},
			pod:   members("g", 3, 3, "1")[0], ref: annotationGang("g"), seen: 3,
			want: fwk.Success, wantPhase: gang.PhaseAdmitted, wantEvent: ReasonAdmitted,
		},
		"a PodGroup's gang": {
			setup: setup{objects: objects(nodes(2, "4"), pg("p0"), pg("p1")), podGroups: []*schedv1alpha1.PodGroup{podGroup("pg", 2)}},
			pod:   pg("p0"), ref: gang.Ref{Kind: gang.KindPodGroup, Namespace: plugintest.Namespace, Name: "pg"}, seen: 2,
			want: fwk.Success, wantPhase: gang.PhaseAdmitted, wantEvent: ReasonAdmitted,
		},
		"a Workload API pod group": {
			setup: setup{workloads: true, objects: objects(nodes(2, "4"), workload("wl", 2),
				plugintest.MakePod("w0").PodGroupName("wl").Req(cpu("1")).Obj(),
				plugintest.MakePod("w1").PodGroupName("wl").Req(cpu("1")).Obj())},
			pod: plugintest.MakePod("w0").PodGroupName("wl").Req(cpu("1")).Obj(),
			ref: gang.Ref{Kind: gang.KindWorkload, Namespace: plugintest.Namespace, Name: "wl"}, seen: 2,
			want: fwk.Success, wantPhase: gang.PhaseAdmitted, wantEvent: ReasonAdmitted,
		},
		"a Spark driver with its executors' room": {
			setup: setup{objects: objects(nodes(1, "4"), sparkDriver("app", "3"))},
			pod:   sparkDriver("app", "3"), ref: gang.Ref{Kind: gang.KindSpark, Namespace: plugintest.Namespace, Name: "app"}, seen: 1,
			want: fwk.Success, wantPhase: gang.PhaseAdmitted, wantEvent: ReasonAdmitted,
		},
		"the room for a Spark driver's executors is not there": {
			setup: setup{objects: objects(nodes(1, "4"), sparkDriver("app", "4"))},
			pod:   sparkDriver("app", "4"), ref: gang.Ref{Kind: gang.KindSpark, Namespace: plugintest.Namespace, Name: "app"}, seen: 1,
			want: fwk.UnschedulableAndUnresolvable, wantPhase: gang.PhasePending, wantEvent: ReasonNeverFits,
		},
		"above its queue's max": {
			setup: setup{queues: "queues: [{name: small, max: {cpu: \"2\"}}]\nnamespaceQueues: {ns: small}\n",
				objects: objects(nodes(2, "4"), members("g", 3, 3, "1"))},
			pod: members("g", 3, 3, "1")[0], ref: annotationGang("g"), seen: 3,
			want: fwk.UnschedulableAndUnresolvable, wantPhase: gang.PhasePending, wantEvent: ReasonNeverFits,
		},
		"its queue is full for now": {
			setup: setup{queues: "queues: [{name: small, max: {cpu: \"4\"}}]\nnamespaceQueues: {ns: small}\n",
				objects: objects(nodes(2, "4"), members("g", 3, 3, "1"),
					plugintest.MakePod("running").Node("n0").Phase(v1.PodRunning).Req(cpu("2")).Obj())},
			pod: members("g", 3, 3, "1")[0], ref: annotationGang("g"), seen: 3,
			want: fwk.UnschedulableAndUnresolvable, wantPhase: gang.PhasePending,
		},
		"a member larger than any node": {
			setup: setup{objects: objects(nodes(2, "4"), members("g", 2, 2, "6"))},
			pod:   members("g", 2, 2, "6")[0], ref: annotationGang("g"), seen: 2,
			want: fwk.UnschedulableAndUnresolvable, wantPhase: gang.PhasePending, wantEvent: ReasonNeverFits,
		},
		"not enough room now": {
			setup: setup{objects: objects(nodes(2, "4"), members("g", 3, 3, "1"), busy("b0", "n0", "3"), busy("b1", "n1", "3"))},
			pod:   members("g", 3, 3, "1")[0], ref: annotationGang("g"), seen: 3,
			want: fwk.UnschedulableAndUnresolvable, wantPhase: gang.PhasePending,
		},
		"a PodGroup's minResources are not free": {
			setup: setup{objects: objects(nodes(2, "4"), pg("p0"), pg("p1")), podGroups: []*schedv1alpha1.PodGroup{func() *schedv1alpha1.PodGroup {
				g := podGroup("pg", 2)
				g.Spec.MinResources = v1.ResourceList{v1.ResourceCPU: resource.MustParse("10")}
				g.Spec.ScheduleTimeoutSeconds = ptr.To[int32](60)
				return g
			}()}},
			pod: pg("p0"), ref: gang.Ref{Kind: gang.KindPodGroup, Namespace: plugintest.Namespace, Name: "pg"}, seen: 2,
			want: fwk.UnschedulableAndUnresolvable, wantPhase: gang.PhasePending,
		},
		"its fair share is taken": {
			setup: setup{queues: "queues: [{name: a, guaranteed: {cpu: \"4\"}}, {name: b, guaranteed: {cpu: \"4\"}}]\n",
				objects: objects(nodes(2, "4"),
					member("g", "g-0", 2, "1").Label(queue.LabelQueue, "a").Obj(), member("g", "g-1", 2, "1").Label(queue.LabelQueue, "a").Obj(),
					plugintest.MakePod("a0").Label(queue.LabelQueue, "a").Node("n0").Phase(v1.PodRunning).Req(cpu("3")).Obj(),
					plugintest.MakePod("a1").Label(queue.LabelQueue, "a").Node("n1").Phase(v1.PodRunning).Req(cpu("3")).Obj(),
					plugintest.MakePod("b0").Label(queue.LabelQueue, "b").Req(cpu("2")).Obj(),
					plugintest.MakePod("b1").Label(queue.LabelQueue, "b").Req(cpu("2")).Obj())},
			pod: member("g", "g-0", 2, "1").Label(queue.LabelQueue, "a").Obj(), ref: annotationGang("g"), seen: 2,
			want: fwk.UnschedulableAndUnresolvable, wantPhase: gang.PhasePending,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newGangEnv(t, tc.setup)
			if tc.seen > 0 {
				e.waitMembers(t, tc.ref, tc.seen)
			}
			_, res, s := e.preFilter(tc.pod)
			require.Equal(t, tc.want, s.Code(), plugintest.String(s))
			if tc.wantPhase != "" {
				info := e.info(t, tc.ref)
				assert.Equal(t, tc.wantPhase, info.Phase, info.Reason)
				if s.IsSuccess() {
					require.NotNil(t, res)
					assert.ElementsMatch(t, e.Runtime.Gangs.SlotNodes(tc.ref), sortedNames(res), "narrowed to the gang's slots")
					assert.NotEmpty(t, e.Runtime.Ledger.Usage(info.Queue).Reserved, "the gang's total is held in its queue")
				}
			}
			var reasons []string
			for _, ev := range e.Events.List() {
				reasons = append(reasons, ev.Reason)
			}
			if tc.wantEvent == "" {
				assert.Empty(t, reasons, "Events")
			} else {
				assert.Equal(t, []string{tc.wantEvent}, reasons, "Events")
			}
		})
	}
}

// TestAdmissionActivatesMembers: once its gang is admitted, the other
// pending members are retried at once to take their slots, and the admitted
// gang's room is its own: other pods are filtered off it.
func TestAdmissionActivatesMembers(t *testing.T) {
	g := members("g", 3, 3, "1")
	e := newGangEnv(t, setup{objects: objects(nodes(1, "4"), g)})
	e.waitMembers(t, annotationGang("g"), 3)
	e.Activator.Take()
	_, _, s := e.preFilter(g[0])
	require.True(t, s.IsSuccess(), plugintest.String(s))
	assert.Equal(t, []string{"ns/g-1", "ns/g-2"}, e.Activator.Take())

	other := plugintest.MakePod("other").Req(cpu("2")).Obj()
	state, _, s := e.preFilter(other)
	require.True(t, s.IsSuccess(), "a pod outside gangs must pass Filter now: %s", plugintest.String(s))
	f := e.pl.Filter(e.Ctx, state, other, e.NodeInfo(t, "n0"))
	assert.Equal(t, fwk.Unschedulable, f.Code(), "3 of the node's 4 cores are reserved")
	small := plugintest.MakePod("small").Req(cpu("1")).Obj()
	assert.True(t, e.pl.Filter(e.Ctx, state, small, e.NodeInfo(t, "n0")).IsSuccess(), "the fourth core is free")
	memberState, _, s := e.preFilter(g[1])
	require.True(t, s.IsSuccess())
	assert.True(t, e.pl.Filter(e.Ctx, memberState, g[1], e.NodeInfo(t, "n0")).IsSuccess(), "a member uses its gang's room")
	assert.Equal(t, fwk.Error, e.pl.Filter(e.Ctx, state, other, framework.NewNodeInfo()).Code(), "no node")
}

// TestNeverFitsOnce: the Event that a gang can never fit is emitted once,
// not on every retry.
func TestNeverFitsOnce(t *testing.T) {
	g := members("g", 2, 2, "6")
	e := newGangEnv(t, setup{objects: objects(nodes(2, "4"), g)})
	e.waitMembers(t, annotationGang("g"), 2)
	for range 3 {
		_, _, s := e.preFilter(g[0])
		require.Equal(t, fwk.UnschedulableAndUnresolvable, s.Code())
	}
	assert.Len(t, e.Events.WithReason(ReasonNeverFits), 1)
}

// TestPreFilterNonMembers: a pod outside gangs skips the plugin unless some
// gang holds room.
func TestPreFilterNonMembers(t *testing.T) {
	e := newGangEnv(t, setup{objects: objects(nodes(1, "4"))})
	_, _, s := e.preFilter(plugintest.MakePod("p").Obj())
	assert.Equal(t, fwk.Skip, s.Code())
	frags, s := e.pl.SignPod(e.Ctx, plugintest.MakePod("p").Obj())
	assert.Nil(t, frags)
	assert.True(t, s.IsSuccess(), "pods outside gangs may be batched")
	_, s = e.pl.SignPod(e.Ctx, members("g", 1, 2, "1")[0])
	assert.Equal(t, fwk.Unschedulable, s.Code(), "members are placed against their gang's reservation")
}

// TestReclaimForAGang: a gang whose queue is below its guarantee takes
// room back from a queue above its own and is admitted to it at once, so
// that pods waiting longer cannot take it while the victims exit.
func TestReclaimForAGang(t *testing.T) {
	queues := `
queues:
  - {name: borrower, guaranteed: {cpu: "2"}}
  - {name: owner, guaranteed: {cpu: "4"}}
`
	var objs []runtime.Object
	objs = append(objs, nodes(2, "4")...)
	for i := range 8 {
		objs = append(objs, plugintest.MakePod("b"+string(rune('0'+i))).Label(queue.LabelQueue, "borrower").
			Node("n"+string(rune('0'+i%2))).Phase(v1.PodRunning).Req(cpu("1")).Obj())
	}
	var g []*v1.Pod
	for i := range 2 {
		g = append(g, member("g", "g-"+string(rune('0'+i)), 2, "1").Label(queue.LabelQueue, "owner").Obj())
	}
	e := newGangEnv(t, setup{queues: queues, objects: objects(objs, g)})
	e.waitMembers(t, annotationGang("g"), 2)
	_, res, s := e.preFilter(g[0])
	require.True(t, s.IsSuccess(), plugintest.String(s))
	assert.Equal(t, gang.PhaseAdmitted, e.info(t, annotationGang("g")).Phase)
	assert.Len(t, e.Events.WithReason("Preempted"), 2, "two borrower pods make room")
	assert.NotEmpty(t, res.NodeNames)
	victims := 0
	for i := range 8 {
		if e.Pod(t, "b"+string(rune('0'+i))).DeletionTimestamp != nil {
			victims++
		}
	}
	assert.Equal(t, 2, victims)
}
