package profile_test

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/component-base/metrics/legacyregistry"

	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/plugintest"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

const twoQueues = `
queues:
  - {name: a, guaranteed: {cpu: "4"}}
  - {name: b, guaranteed: {cpu: "4"}, capacityPolicy: require-spot}
namespaceQueues:
  ns: a
`

func cpu(n string) map[v1.ResourceName]string { return map[v1.ResourceName]string{v1.ResourceCPU: n} }

func newRuntime(t *testing.T, queues string, objects ...runtime.Object) *plugintest.Env {
	t.Helper()
	return plugintest.New(t, plugintest.Options{Queues: queues,
		Objects: append([]runtime.Object{plugintest.MakeNode("n0", "8", "32Gi").Obj()}, objects...)})
}

func cores(v resources.Vector) int64 { return v[v1.ResourceCPU] / 1000 }

// TestLedgerFollowsPods: the ledger accounts every pod of the profile from
// its events: pending in its queue, allocated once bound, nothing once
// finished or deleted; other schedulers' pods are not muster's to count.
func TestLedgerFollowsPods(t *testing.T) {
	e := newRuntime(t, twoQueues,
		plugintest.MakePod("running").Node("n0").Phase(v1.PodRunning).Req(cpu("2")).Obj(),
		plugintest.MakePod("foreign").SchedulerName("default-scheduler").Node("n0").Req(cpu("1")).Obj(),
		plugintest.MakePod("lost").Label(queue.LabelQueue, "gone").Node("n0").Phase(v1.PodRunning).Req(cpu("1")).Obj())
	ledger := e.Runtime.Ledger
	a := func() queue.Usage { return ledger.Usage("root.a") }
	require.Equal(t, int64(2), cores(a().Allocated), "accounted when the runtime starts")
	assert.Equal(t, int64(3), cores(ledger.Usage(queue.RootName).Allocated), "a bound pod without a queue counts at the root")

	p := e.CreatePod(t, plugintest.MakePod("p").Req(cpu("1")).Obj())
	e.WaitFor(t, "the pod pending in a", func() bool { return cores(a().Pending) == 1 && a().Waiting == 1 })

	p = e.Bind(t, p, "n0")
	e.WaitFor(t, "the pod allocated", func() bool { return cores(a().Allocated) == 3 && a().Running == 2 && a().Waiting == 0 })

	p.Status.Phase = v1.PodSucceeded
	e.UpdatePod(t, p)
	e.WaitFor(t, "the pod gone from the ledger", func() bool { return cores(a().Allocated) == 2 })

	e.DeletePod(t, plugintest.MakePod("running").Obj())
	e.WaitFor(t, "the deleted pod gone", func() bool { return cores(a().Allocated) == 0 })
	e.CreatePod(t, plugintest.MakePod("refused").Label(queue.LabelQueue, "nope").Obj())
	e.CreatePod(t, plugintest.MakePod("q").Label(queue.LabelQueue, "b").Req(cpu("1")).Obj())
	e.WaitFor(t, "the pod pending in b", func() bool { return cores(ledger.Usage("root.b").Pending) == 1 })
	assert.Equal(t, int64(1), cores(ledger.Usage(queue.RootName).Pending), "a pod with no queue is not pending anywhere")
}

// TestNewTreePlacesPendingPodsAgain: pending pods follow a new
// configuration; bound ones keep the queue they were admitted to.
func TestNewTreePlacesPendingPodsAgain(t *testing.T) {
	e := newRuntime(t, twoQueues,
		plugintest.MakePod("bound").Node("n0").Phase(v1.PodRunning).Req(cpu("1")).Obj(),
		plugintest.MakePod("pending").Req(cpu("1")).Obj())
	trees := make(chan *queue.Tree, 4)
	e.Runtime.OnTreeChange(func(t *queue.Tree) { trees <- t })
	cm := plugintest.QueueConfigMap(twoQueues[:len(twoQueues)-len("  ns: a\n")] + "  ns: b\n")
	_, err := e.Client.CoreV1().ConfigMaps(cm.Namespace).Update(e.Ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	e.WaitFor(t, "the pending pod in b", func() bool { return cores(e.Runtime.Ledger.Usage("root.b").Pending) == 1 })
	assert.Equal(t, int64(1), cores(e.Runtime.Ledger.Usage("root.a").Allocated), "the bound pod stays in a")
	assert.Zero(t, cores(e.Runtime.Ledger.Usage("root.a").Pending))
	e.WaitFor(t, "the listeners told of the new tree", func() bool { return len(trees) == 1 })
	assert.Same(t, <-trees, e.Runtime.Tree())
}

// TestPlaceWithoutAConfiguration: pods are not placed before the runtime
// has read the configuration, nor while none valid is in force.
func TestPlaceWithoutAConfiguration(t *testing.T) {
	starting := plugintest.New(t, plugintest.Options{NotStarted: true})
	_, perr := starting.Runtime.Place(plugintest.MakePod("p").Obj())
	require.NotNil(t, perr)

	invalid := newRuntime(t, "queues: [{name: a, colour: red}]\n")
	_, perr = invalid.Runtime.Place(plugintest.MakePod("p").Obj())
	require.NotNil(t, perr)
	assert.Contains(t, perr.Msg, "colour", "says what is wrong with the configuration")
	assert.False(t, invalid.Runtime.Report(invalid.Clock.Now()).Config.Valid)
}

// TestPolicyOf: a pod's capacity policy is its annotation's, else its
// Spark role's default, else its queue's, else any.
func TestPolicyOf(t *testing.T) {
	e := newRuntime(t, twoQueues)
	tests := map[string]struct {
		pod     *v1.Pod
		want    capacity.Policy
		wantErr bool
	}{
		"annotation": {pod: plugintest.MakePod("p").Annotation(capacity.AnnotationPolicy, "prefer-spot").Obj(), want: capacity.PreferSpot},
		"driver":     {pod: plugintest.MakePod("p").Label(capacity.LabelSparkRole, "driver").Obj(), want: capacity.PreferOnDemand},
		"queue":      {pod: plugintest.MakePod("p").Label(queue.LabelQueue, "b").Obj(), want: capacity.RequireSpot},
		"default":    {pod: plugintest.MakePod("p").Obj(), want: capacity.Any},
		"no queue":   {pod: plugintest.MakePod("p").Label(queue.LabelQueue, "nope").Obj(), want: capacity.Any},
		"malformed":  {pod: plugintest.MakePod("p").Annotation(capacity.AnnotationPolicy, "cheap").Obj(), wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, _, err := e.Runtime.PolicyOf(tc.pod)
			if tc.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestReport: the status report lists the queues with their usage and the
// gangs that are not bound yet.
func TestReport(t *testing.T) {
	e := newRuntime(t, twoQueues, plugintest.MakePod("running").Node("n0").Phase(v1.PodRunning).Req(cpu("2")).Obj())
	waiting := gang.Ref{Kind: gang.KindAnnotation, Namespace: plugintest.Namespace, Name: "waiting"}
	bound := gang.Ref{Kind: gang.KindAnnotation, Namespace: plugintest.Namespace, Name: "bound"}
	e.Runtime.Gangs.Observe(waiting, gang.Spec{MinMember: 2, Timeout: time.Minute}, "root.a", gang.Pod{Key: "w0", Name: "w0", Created: plugintest.Start})
	e.Runtime.Gangs.Observe(bound, gang.Spec{MinMember: 1, Timeout: time.Minute}, "root.a", gang.Pod{Key: "b0", Name: "b0", Created: plugintest.Start, Bound: true})

	r := e.Runtime.Report(e.Clock.Now())
	assert.True(t, r.Config.Valid)
	assert.NotEmpty(t, r.Config.AppliedAt)
	require.Len(t, r.PendingGangs, 1)
	assert.Equal(t, waiting.String(), r.PendingGangs[0].Gang)
	assert.Equal(t, int32(2), r.PendingGangs[0].MinMember)
	var a bool
	for _, q := range r.Queues {
		if q.Queue == "root.a" {
			a = true
			assert.Equal(t, "2", q.Allocated["cpu"])
			assert.Equal(t, 1, q.RunningPods)
		}
	}
	assert.True(t, a, "root.a is in the report")
}

// TestStatusWrittenWhenLeading: the status ConfigMap is written by the
// replica that leads.
func TestStatusWrittenWhenLeading(t *testing.T) {
	e := newRuntime(t, twoQueues)
	assert.True(t, e.Runtime.Leading(e.Ctx), "without leader election, this replica writes")
	e.WaitFor(t, "the status ConfigMap", func() bool {
		_, err := e.Client.CoreV1().ConfigMaps(configv1.DefaultNamespace).Get(e.Ctx, configv1.DefaultStatusConfigMap, metav1.GetOptions{})
		return err == nil
	})
	standby := plugintest.New(t, plugintest.Options{Leader: leader(false)})
	assert.False(t, standby.Runtime.Leading(standby.Ctx))
}

type leader bool

func (l leader) Leading() bool { return bool(l) }

// TestQueueMetrics: the queue gauges come from the live ledger, a series
// per resource the queue mentions (0 when it holds none), none for no max.
func TestQueueMetrics(t *testing.T) {
	newRuntime(t, twoQueues, plugintest.MakePod("running").Node("n0").Phase(v1.PodRunning).Req(cpu("2")).Obj(),
		plugintest.MakePod("pending").Label(queue.LabelQueue, "b").Req(cpu("1")).Obj())
	gauges := gather(t, "muster_queue_resource")
	assert.Equal(t, 2.0, gauges[[3]string{"root.a", "cpu", "allocated"}])
	assert.Equal(t, 4.0, gauges[[3]string{"root.a", "cpu", "guaranteed"}])
	assert.Contains(t, gauges, [3]string{"root.b", "cpu", "allocated"}, "a series at 0 for a resource the queue mentions")
	assert.Equal(t, 1.0, gauges[[3]string{"root.b", "cpu", "pending"}])
	assert.NotContains(t, gauges, [3]string{"root.a", "cpu", "max"}, "no max: no series")
	pods := gather(t, "muster_queue_pods")
	assert.Equal(t, 1.0, pods[[3]string{"root.a", "running", ""}])
}

// gather reads a muster gauge from the registry, by its labels' values in
// order.
func gather(t *testing.T, name string) map[[3]string]float64 {
	t.Helper()
	families, err := legacyregistry.DefaultGatherer.Gather()
	require.NoError(t, err)
	out := map[[3]string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var key [3]string
			for _, l := range m.GetLabel() {
				key[labelIndex(l)] = l.GetValue()
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

// labelIndex orders labels as the metric declares them: queue, then
// resource and type, or state.
func labelIndex(l *dto.LabelPair) int {
	switch l.GetName() {
	case "queue":
		return 0
	case "resource", "state":
		return 1
	default:
		return 2
	}
}
