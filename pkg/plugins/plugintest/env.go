// Package plugintest runs muster's plugins in unit tests the way
// kube-scheduler runs them, without an apiserver: a framework built by
// frameworkruntime.NewFramework over a fake clientset and its informers, a
// snapshot of nodes and pods, one profile's runtime on a fake clock, and
// fakes that record what the plugins ask of the scheduler (pods activated,
// Events, nominations).
package plugintest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	fwk "k8s.io/kube-scheduler/framework"
	schedulerconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/queuesort"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/kubernetes/pkg/scheduler/metrics"

	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/plugins/profile"
	"muster.dev/muster/pkg/queue"
)

// SchedulerName is the profile the plugins run in; pods opt in with it.
const SchedulerName = "muster"

// Start is the fake clock's starting time.
var Start = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// Plugin is one of muster's plugins to build into the framework.
type Plugin struct {
	Name    string
	Factory profile.PluginFactory
	// Args are the plugin's args (nil: its defaults).
	Args runtime.Object
	// Weight is its score weight (0: 1).
	Weight int32
}

// Options describe the cluster and the profile.
type Options struct {
	Plugins []Plugin
	// Objects are in the cluster from the start: nodes, pods, PodDisruptionBudgets...
	Objects []runtime.Object
	// Queues is queues.yaml in the queue ConfigMap; empty: no ConfigMap, the
	// default tree.
	Queues string
	// Discovery lists the API resources the fake apiserver says it serves
	// beyond the built-in ones (the PodGroup CRD, the Workload API); Serve
	// adds more later.
	Discovery []*metav1.APIResourceList
	// NotStarted leaves the runtime unstarted (Ready is not called).
	NotStarted bool
	// Leader is the runtime's leadership (nil: it always writes).
	Leader profile.Leader
}

// Env is a profile of muster's plugins running on a fake cluster.
type Env struct {
	Ctx       context.Context
	Client    *fake.Clientset
	Informers informers.SharedInformerFactory
	Clock     *Clock
	Framework framework.Framework
	Runtime   *profile.Runtime
	Events    *Recorder
	Activator *Activator
	Nominator *Nominator

	snapshot *snapshot
	plugins  map[string]fwk.Plugin
	// clientset is Client as the plugins see it (see Serve).
	clientset *servingClientset
}

// New builds the framework with the plugins, starts the informers and (unless
// NotStarted) the runtime, and takes a first snapshot. Everything stops
// when the test ends.
func New(t testing.TB, o Options) *Env {
	t.Helper()
	metrics.Register() // the framework instruments plugins with kube-scheduler's metrics
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	objects := append([]runtime.Object{}, o.Objects...)
	if o.Queues != "" {
		objects = append(objects, QueueConfigMap(o.Queues))
	}
	clk := NewClock(Start)
	e := &Env{
		Ctx: ctx, Client: newClientset(seenClock{clk}, o.Discovery, objects...), Clock: clk,
		Events: &Recorder{}, Activator: &Activator{clock: seenClock{clk}}, Nominator: &Nominator{}, snapshot: &snapshot{},
		plugins: map[string]fwk.Plugin{},
	}
	e.clientset = newServingClientset(e.Client)
	e.Informers = informers.NewSharedInformerFactory(e.Client, 0)
	// kube-scheduler's own event handlers watch pods and nodes: those
	// informers run whatever the plugins ask for.
	e.Informers.Core().V1().Pods().Informer()
	e.Informers.Core().V1().Nodes().Informer()
	fw, err := frameworkruntime.NewFramework(ctx, e.registry(o), e.profileConfig(o),
		frameworkruntime.WithClientSet(e.clientset),
		frameworkruntime.WithKubeConfig(&rest.Config{Host: "https://127.0.0.1:1"}),
		frameworkruntime.WithInformerFactory(e.Informers),
		frameworkruntime.WithSnapshotSharedLister(e.snapshot),
		frameworkruntime.WithEventRecorder(e.Events),
		frameworkruntime.WithPodActivator(e.Activator),
		frameworkruntime.WithPodNominator(e.Nominator),
		frameworkruntime.WithWaitingPods(frameworkruntime.NewWaitingPodsMap()),
	)
	require.NoError(t, err, "building the framework")
	e.Framework = fw
	if e.Runtime == nil { // no plugin: the runtime alone
		e.Runtime = e.newRuntime(ctx, fw, o)
	}
	// As kube-scheduler does: informers start once every plugin is built.
	e.Informers.Start(ctx.Done())
	for typ, ok := range e.Informers.WaitForCacheSync(ctx.Done()) {
		require.True(t, ok, "informer of %v synced", typ)
	}
	if !o.NotStarted {
		require.NoError(t, e.Runtime.Ready(), "starting the runtime")
	}
	e.Snapshot()
	return e
}

func (e *Env) newRuntime(ctx context.Context, h fwk.Handle, o Options) *profile.Runtime {
	opts := []profile.Option{profile.WithClock(e.Clock)}
	if o.Leader != nil {
		opts = append(opts, profile.WithLeader(o.Leader))
	}
	return profile.New(ctx, h, opts...)
}

// registry registers the plugins, each given the profile's runtime, next to
// the queue sort and bind plugins every profile needs.
func (e *Env) registry(o Options) frameworkruntime.Registry {
	r := frameworkruntime.Registry{queuesort.Name: queuesort.New, defaultbinder.Name: defaultbinder.New}
	for _, p := range o.Plugins {
		newPlugin := p.Factory
		r[p.Name] = func(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
			if e.Runtime == nil {
				e.Runtime = e.newRuntime(ctx, h, o)
			}
			pl, err := newPlugin(ctx, obj, h, e.Runtime)
			if err == nil {
				e.plugins[pl.Name()] = pl
			}
			return pl, err
		}
	}
	return r
}

func (e *Env) profileConfig(o Options) *schedulerconfig.KubeSchedulerProfile {
	prof := &schedulerconfig.KubeSchedulerProfile{SchedulerName: SchedulerName, Plugins: &schedulerconfig.Plugins{
		QueueSort: schedulerconfig.PluginSet{Enabled: []schedulerconfig.Plugin{{Name: queuesort.Name}}},
		Bind:      schedulerconfig.PluginSet{Enabled: []schedulerconfig.Plugin{{Name: defaultbinder.Name}}},
	}}
	for _, p := range o.Plugins {
		if p.Name == "MusterQueue" { // its own QueueSort replaces PrioritySort
			prof.Plugins.QueueSort = schedulerconfig.PluginSet{}
		}
	}
	for _, p := range o.Plugins {
		prof.Plugins.MultiPoint.Enabled = append(prof.Plugins.MultiPoint.Enabled, schedulerconfig.Plugin{Name: p.Name, Weight: max(p.Weight, 1)})
		if p.Args != nil {
			prof.PluginConfig = append(prof.PluginConfig, schedulerconfig.PluginConfig{Name: p.Name, Args: p.Args})
		}
	}
	return prof
}

// Plugin returns the plugin of that name as the framework built it.
func (e *Env) Plugin(t testing.TB, name string) fwk.Plugin {
	t.Helper()
	p, ok := e.plugins[name]
	require.True(t, ok, "plugin %s is built", name)
	return p
}

// QueueConfigMap is the queue ConfigMap (MusterQueue's defaults) holding queues.yaml.
func QueueConfigMap(queuesYAML string) *v1.ConfigMap {
	return &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: configv1.DefaultNamespace, Name: configv1.DefaultQueuesConfigMap},
		Data:       map[string]string{queue.ConfigKey: queuesYAML},
	}
}

// WaitFor waits until cond holds: what the informers deliver reaches the
// plugins asynchronously, as in kube-scheduler.
func (e *Env) WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(e.Ctx, 5*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	require.NoError(t, err, "waiting for %s", what)
}

func podKey(p *v1.Pod) string { return fmt.Sprintf("%s/%s", p.Namespace, p.Name) }
