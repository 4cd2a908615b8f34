package mustercapacity

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/component-base/metrics/testutil"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/metrics"
	"muster.dev/muster/pkg/plugins/mustergang"
	"muster.dev/muster/pkg/plugins/plugintest"
)

// node is a node of capacity type typ ("spot", "on-demand") in zone, with 4 cores.
func node(name, typ, zone string) *st.NodeWrapper {
	return plugintest.MakeNode(name, "4", "16Gi").Label(capacity.LabelMuster, typ).
		Label(v1.LabelInstanceTypeStable, "m5.xlarge").Label(v1.LabelTopologyZone, zone)
}

// cluster: on-demand od, spot pools in zones a (a1, a2) and b (b1), and a
// spot node being taken away (cordoned).
func cluster() []runtime.Object {
	return []runtime.Object{
		node("od", "on-demand", "a").Obj(),
		node("a1", "spot", "a").Obj(), node("a2", "spot", "a").Obj(),
		node("b1", "spot", "b").Obj(),
		node("going", "spot", "b").Unschedulable(true).Obj(),
	}
}

func withPolicy(p *st.PodWrapper, policy string) *st.PodWrapper {
	if policy != "" {
		p = p.Annotation(capacity.AnnotationPolicy, policy)
	}
	return p
}

func newPlugin(t *testing.T, objects ...runtime.Object) (*plugintest.Env, *Plugin) {
	t.Helper()
	env := plugintest.New(t, plugintest.Options{
		Plugins: []plugintest.Plugin{
			{Name: mustergang.Name, Factory: mustergang.NewFactory()},
			{Name: Name, Factory: New},
		},
		Objects: objects,
	})
	return env, env.Plugin(t, Name).(*Plugin)
}

func preFilter(env *plugintest.Env, pl *Plugin, p *v1.Pod) (*framework.CycleState, *fwk.Status) {
	state := framework.NewCycleState()
	_, s := pl.PreFilter(env.Ctx, state, p, env.Snapshot())
	return state, s
}

// member is a pending member of annotation gang g (quorum 4) with policy.
func member(name, policy string) *st.PodWrapper {
	return withPolicy(plugintest.MakePod(name).Label(gang.LabelGang, "g").Annotation(gang.AnnotationMinMember, "4").
		Req(map[v1.ResourceName]string{v1.ResourceCPU: "1"}), policy)
}

// TestPreFilter: a malformed policy refuses the pod; a pod with nothing to
// filter (no require-* policy, no gang) skips Filter.
func TestPreFilter(t *testing.T) {
	tests := map[string]struct {
		pod  *v1.Pod
		want fwk.Code
	}{
		"no policy":         {pod: plugintest.MakePod("p").Obj(), want: fwk.Skip},
		"prefer-spot":       {pod: withPolicy(plugintest.MakePod("p"), "prefer-spot").Obj(), want: fwk.Skip},
		"require-spot":      {pod: withPolicy(plugintest.MakePod("p"), "require-spot").Obj(), want: fwk.Success},
		"require-on-demand": {pod: withPolicy(plugintest.MakePod("p"), "require-on-demand").Obj(), want: fwk.Success},
		"malformed":         {pod: withPolicy(plugintest.MakePod("p"), "spot-please").Obj(), want: fwk.UnschedulableAndUnresolvable},
		"gang member":       {pod: member("m", "").Obj(), want: fwk.Success},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env, pl := newPlugin(t, cluster()...)
			_, s := preFilter(env, pl, tc.pod)
			assert.Equal(t, tc.want, s.Code(), plugintest.String(s))
		})
	}
}

// TestFilter: require-* policies keep pods to their capacity type, and gang
// members stay off nodes being taken away.
func TestFilter(t *testing.T) {
	type verdicts map[string]fwk.Code // node -> code
	ok, never := fwk.Success, fwk.UnschedulableAndUnresolvable
	tests := map[string]struct {
		pod  *v1.Pod
		want verdicts
	}{
		"any": {pod: plugintest.MakePod("p").Obj(),
			want: verdicts{"od": ok, "a1": ok, "going": ok}},
		"prefer-on-demand": {pod: withPolicy(plugintest.MakePod("p"), "prefer-on-demand").Obj(),
			want: verdicts{"od": ok, "a1": ok}},
		"require-spot": {pod: withPolicy(plugintest.MakePod("p"), "require-spot").Obj(),
			want: verdicts{"od": never, "a1": ok, "going": ok}},
		"require-on-demand": {pod: withPolicy(plugintest.MakePod("p"), "require-on-demand").Obj(),
			want: verdicts{"od": ok, "a1": never, "going": never}},
		"a Spark driver only prefers on-demand": {pod: plugintest.MakePod("d").Label(capacity.LabelSparkRole, "driver").Obj(),
			want: verdicts{"od": ok, "a1": ok}},
		"gang member": {pod: member("m", "").Obj(),
			want: verdicts{"od": ok, "a1": ok, "going": never}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env, pl := newPlugin(t, cluster()...)
			state, s := preFilter(env, pl, tc.pod)
			require.NotEqual(t, fwk.UnschedulableAndUnresolvable, s.Code(), plugintest.String(s))
			for n, want := range tc.want {
				got := pl.Filter(env.Ctx, state, tc.pod, env.NodeInfo(t, n))
				assert.Equal(t, want, got.Code(), "node %s: %s", n, plugintest.String(got))
			}
		})
	}
}

// TestFilterNodeGone: a node the snapshot no longer has is an error.
func TestFilterNodeGone(t *testing.T) {
	env, pl := newPlugin(t, cluster()...)
	state, _ := preFilter(env, pl, plugintest.MakePod("p").Obj())
	assert.Equal(t, fwk.Error, pl.Filter(env.Ctx, state, plugintest.MakePod("p").Obj(), framework.NewNodeInfo()).Code())
	_, s := pl.Score(env.Ctx, state, plugintest.MakePod("p").Obj(), framework.NewNodeInfo())
	assert.Equal(t, fwk.Error, s.Code())
}

// TestSpread: a gang's spot members go to a pool holding at most half of
// them while another pool has room, and score lower where their pool holds
// more of them.
func TestSpread(t *testing.T) {
	bound := func(name, n string) *v1.Pod { return member(name, "").Node(n).Phase(v1.PodRunning).Obj() }
	full := plugintest.MakePod("full").SchedulerName("default-scheduler").Node("b1").
		Req(map[v1.ResourceName]string{v1.ResourceCPU: "4"}).Obj()
	fullGoing := plugintest.MakePod("full-going").SchedulerName("default-scheduler").Node("going").
		Req(map[v1.ResourceName]string{v1.ResourceCPU: "4"}).Obj()
	tests := map[string]struct {
		objects []runtime.Object
		// want is the Filter verdict on a2 (pool a, holding two members
		// already) and b1 (pool b, none).
		wantA2, wantB1 fwk.Code
		wantHigherB1   bool
	}{
		"another pool has room": {
			objects: []runtime.Object{bound("m1", "a1"), bound("m2", "a1")},
			wantA2:  fwk.Unschedulable, wantB1: fwk.Success, wantHigherB1: true,
		},
		"no other pool has room": {
			objects: []runtime.Object{bound("m1", "a1"), bound("m2", "a1"), full, fullGoing},
			wantA2:  fwk.Success, wantB1: fwk.Success, wantHigherB1: true,
		},
		"the other pool's room is on a node being taken away": {
			objects: []runtime.Object{bound("m1", "a1"), bound("m2", "a1"), full},
			wantA2:  fwk.Success, wantB1: fwk.Success, wantHigherB1: true,
		},
		"the pool is not full yet": {
			objects: []runtime.Object{bound("m1", "a1")},
			wantA2:  fwk.Success, wantB1: fwk.Success, wantHigherB1: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			pending := member("m3", "")
			env, pl := newPlugin(t, append(append(cluster(), tc.objects...), pending.Obj())...)
			members := 1
			for _, o := range tc.objects {
				if p, ok := o.(*v1.Pod); ok && p.Labels[gang.LabelGang] == "g" {
					members++
				}
			}
			env.WaitFor(t, "the gang's members seen", func() bool {
				info, ok := env.Runtime.Gangs.Get(gang.Ref{Kind: gang.KindAnnotation, Namespace: plugintest.Namespace, Name: "g"})
				return ok && info.Members == members
			})
			state, s := preFilter(env, pl, pending.Obj())
			require.True(t, s.IsSuccess(), plugintest.String(s))
			a2 := pl.Filter(env.Ctx, state, pending.Obj(), env.NodeInfo(t, "a2"))
			b1 := pl.Filter(env.Ctx, state, pending.Obj(), env.NodeInfo(t, "b1"))
			assert.Equal(t, tc.wantA2, a2.Code(), plugintest.String(a2))
			assert.Equal(t, tc.wantB1, b1.Code(), plugintest.String(b1))

			require.Nil(t, pl.PreScore(env.Ctx, state, pending.Obj(), nil), "a gang member is scored")
			scoreA2, s := pl.Score(env.Ctx, state, pending.Obj(), env.NodeInfo(t, "a2"))
			require.True(t, s.IsSuccess())
			scoreB1, s := pl.Score(env.Ctx, state, pending.Obj(), env.NodeInfo(t, "b1"))
			require.True(t, s.IsSuccess())
			assert.Equal(t, tc.wantHigherB1, scoreB1 > scoreA2, "b1 %d, a2 %d", scoreB1, scoreA2)
		})
	}
}

// TestScore: the policy's preference, and nodes being taken away lowest.
func TestScore(t *testing.T) {
	tests := map[string]struct {
		policy string
		driver bool
		// order lists nodes from the highest score to the lowest; nodes
		// in one group score the same.
		order [][]string
	}{
		"prefer-spot":      {policy: "prefer-spot", order: [][]string{{"a1", "b1"}, {"od"}, {"going"}}},
		"prefer-on-demand": {policy: "prefer-on-demand", order: [][]string{{"od"}, {"a1", "b1"}, {"going"}}},
		"a Spark driver":   {driver: true, order: [][]string{{"od"}, {"a1", "b1"}, {"going"}}},
		"any":              {order: [][]string{{"od", "a1", "b1"}, {"going"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env, pl := newPlugin(t, cluster()...)
			w := withPolicy(plugintest.MakePod("p"), tc.policy)
			if tc.driver {
				w = w.Label(capacity.LabelSparkRole, "driver")
			}
			p := w.Obj()
			state, _ := preFilter(env, pl, p)
			require.Nil(t, pl.PreScore(env.Ctx, state, p, nil), "a node is being taken away: scores differ")
			score := func(n string) int64 {
				s, st := pl.Score(env.Ctx, state, p, env.NodeInfo(t, n))
				require.True(t, st.IsSuccess())
				return s
			}
			for i, group := range tc.order {
				for _, n := range group[1:] {
					assert.Equal(t, score(group[0]), score(n), "%s and %s", group[0], n)
				}
				if i > 0 {
					assert.Greater(t, score(tc.order[i-1][0]), score(group[0]), "%s over %s", tc.order[i-1][0], group[0])
				}
			}
			assert.Zero(t, score("going"))
		})
	}
}

// TestPreScoreSkips: Score is skipped when every node would score the same.
func TestPreScoreSkips(t *testing.T) {
	spotOnly := []runtime.Object{node("a1", "spot", "a").Obj(), node("b1", "spot", "b").Obj()}
	tests := map[string]struct {
		objects []runtime.Object
		policy  string
		skip    bool
	}{
		"no preference":                 {objects: spotOnly, skip: true},
		"a preference, one type only":   {objects: spotOnly, policy: "prefer-on-demand", skip: true},
		"a preference, both types":      {objects: cluster()[:2], policy: "prefer-spot", skip: false},
		"no preference, a node leaving": {objects: cluster(), skip: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env, pl := newPlugin(t, tc.objects...)
			p := withPolicy(plugintest.MakePod("p"), tc.policy).Obj()
			state, _ := preFilter(env, pl, p)
			s := pl.PreScore(env.Ctx, state, p, nil)
			assert.Equal(t, tc.skip, s.Code() == fwk.Skip, plugintest.String(s))
		})
	}
	env, pl := newPlugin(t, spotOnly...)
	assert.Equal(t, fwk.Skip, pl.PreScore(env.Ctx, framework.NewCycleState(), plugintest.MakePod("p").Obj(), nil).Code(), "no state: nothing to score")
}

// TestSignPod: the policy is part of the signature; gang members and pods
// whose policy is malformed opt out of batching.
func TestSignPod(t *testing.T) {
	_, pl := newPlugin(t, cluster()...)
	frags, s := pl.SignPod(context.Background(), withPolicy(plugintest.MakePod("p"), "prefer-spot").Obj())
	require.True(t, s.IsSuccess())
	assert.Equal(t, []fwk.SignFragment{{Key: capacity.AnnotationPolicy, Value: "prefer-spot"}}, frags)
	_, s = pl.SignPod(context.Background(), member("m", "").Obj())
	assert.Equal(t, fwk.Unschedulable, s.Code())
	_, s = pl.SignPod(context.Background(), withPolicy(plugintest.MakePod("p"), "spot-please").Obj())
	assert.Equal(t, fwk.Unschedulable, s.Code())
}

// TestPostBindCounts: every bind is counted by capacity type and role.
func TestPostBindCounts(t *testing.T) {
	env, pl := newPlugin(t, cluster()...)
	counter := metrics.Placements.WithLabelValues(string(capacity.Spot), string(capacity.RoleExecutor))
	before, err := testutil.GetCounterMetricValue(counter)
	require.NoError(t, err)
	executor := plugintest.MakePod("e").Label(capacity.LabelSparkRole, "executor").Obj()
	pl.PostBind(env.Ctx, nil, executor, "a1")
	pl.PostBind(env.Ctx, nil, executor, "no-such-node")
	after, err := testutil.GetCounterMetricValue(counter)
	require.NoError(t, err)
	assert.Equal(t, before+1, after)
}

// TestNewRefusesBadArgs: args are validated when the plugin is built.
func TestNewRefusesBadArgs(t *testing.T) {
	env, _ := newPlugin(t)
	bad := configv1.DefaultCapacityArgs()
	bad.PolicyWeight = -1
	_, err := New(env.Ctx, &bad, env.Framework, env.Runtime)
	assert.Error(t, err)
}
