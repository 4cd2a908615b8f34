// Package gang is the MusterGang plugin: all-or-nothing admission of gangs
// (scheduler-plugins PodGroups, annotation gangs, Spark applications, the
// Workload API's pod groups, KubeRay RayClusters, JobSets). The
// decisions (who is in a gang, whether it fits node by node, its state) live
// in the pure pkg/gang; this package reads pods and the objects that define
// gangs (watches.go), maps the answers to framework statuses, and holds
// members at Permit.
//
// How a gang goes through the scheduler:
//
//  1. Its members are refused (PreFilter) until minMember of them exist.
//  2. The first member to reach PreFilter after that runs the admission for
//     the whole gang: its queue's limits for the gang's total, then a
//     placement of every member node by node on the current nodes. If both
//     pass, the capacity is reserved at once: in the queue, and as slots on
//     the chosen nodes that no other pod may use. Otherwise the gang holds
//     nothing and waits, with the reason in every member's condition.
//  3. Members then schedule one by one into their slots (PreFilter narrows
//     them to slot nodes; Reserve claims a slot), and wait at Permit until
//     the quorum is assumed; then all are allowed together.
//  4. Anything that breaks an admission (a member that cannot be placed, the
//     Permit wait timing out, a member deleted) releases the whole gang: the
//     waiting members are rejected, slots and quota are freed.
//
// Because a gang is admitted only when all of it fits and then holds its
// capacity exclusively, two gangs never hold parts of the cluster against
// each other: no deadlock.
package mustergang

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/utils/clock"
	pgclientset "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"muster.dev/muster/pkg/apis/config"
	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins"
	"muster.dev/muster/pkg/plugins/profile"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// Name is the plugin's name in a KubeSchedulerConfiguration profile.
const Name = "MusterGang"

const stateKey fwk.StateKey = Name

// Event reasons.
const (
	ReasonAdmitted  = "GangAdmitted"
	ReasonTimedOut  = "GangTimedOut"
	ReasonNeverFits = "GangNeverFits"
)

// Plugin admits gangs all or nothing.
type Plugin struct {
	args   config.MusterGangArgs
	handle fwk.Handle
	rt     *profile.Runtime
	reg    *gang.Registry
	// holds: the room the gangs at the head of their queues wait for.
	holds   *gang.Holds
	clock   clock.WithTickerAndDelayedExecution
	sources *sources
	// podGroupClient reads and writes PodGroups (nil: one is built from
	// the handle's kubeconfig when their CRD is served).
	podGroupClient pgclientset.Interface
	recorder       eventRecorder
	// ctx is the plugin's lifetime, for work that informer events start.
	ctx context.Context

	mu sync.Mutex
	// neverFits remembers the gangs told they can never fit, so the Event is
	// emitted once per gang and not on every retry.
	neverFits map[gang.Ref]string
	// statusDirty: PodGroups whose status may need an update (runStatus).
	statusDirty map[gang.Ref]bool
	// workloadScheduled: Workload API gangs whose quorum was let through
	// at Permit, with its size, until their condition is written
	// (runWorkloadStatus).
	workloadScheduled map[gang.Ref]int
	// displacedFrom names, per gang, the nodes its displaced slots came
	// off and why, for the Event that says where they went.
	displacedFrom map[gang.Ref][]string

	// heldOff are the pods refused room that a hold kept (Filter, or a
	// gang's plan): retried when held room is released (no cluster event
	// says so).
	heldOff profile.Parked

	// restored: the Spark reservations were rebuilt (once, in the first
	// scheduling cycle). displacedPending: slots were taken off a node and
	// wait to be placed again.
	restored, displacedPending atomic.Bool
}

var (
	_ fwk.PreFilterPlugin   = &Plugin{}
	_ fwk.FilterPlugin      = &Plugin{}
	_ fwk.PostFilterPlugin  = &Plugin{}
	_ fwk.ReservePlugin     = &Plugin{}
	_ fwk.PermitPlugin      = &Plugin{}
	_ fwk.EnqueueExtensions = &Plugin{}
	_ fwk.SignPlugin        = &Plugin{}
)

// Option configures the plugin beyond its args.
type Option func(*options)

type options struct {
	podGroups pgclientset.Interface
	dynamic   dynamic.Interface
}

// WithPodGroupClient sets the client of scheduler-plugins' PodGroups; by
// default one is built from the handle's kubeconfig.
func WithPodGroupClient(c pgclientset.Interface) Option {
	return func(o *options) { o.podGroups = c }
}

// WithDynamicClient sets the client the plugin reads operators' gang
// sources with (RayCluster, JobSet); by default one is built from the
// handle's kubeconfig.
func WithDynamicClient(c dynamic.Interface) Option {
	return func(o *options) { o.dynamic = c }
}

// NewFactory returns the plugin's factory. The plugin shares its profile's
// runtime with MusterQueue, whose args (the queue ConfigMap) the runtime
// holds.
func NewFactory(opts ...Option) profile.PluginFactory {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return func(ctx context.Context, obj runtime.Object, h fwk.Handle, rt *profile.Runtime) (fwk.Plugin, error) {
		return newPlugin(ctx, obj, h, rt, o)
	}
}

func newPlugin(ctx context.Context, obj runtime.Object, h fwk.Handle, rt *profile.Runtime, o options) (fwk.Plugin, error) {
	args, err := plugins.DecodeArgs(Name, obj, configv1.DefaultGangArgs)
	if err != nil {
		return nil, err
	}
	if err := config.ValidateMusterGangArgs(field.NewPath(Name+"Args"), args); err != nil {
		return nil, fmt.Errorf("invalid %s args: %w", Name, err)
	}
	src, err := newSources(ctx, h, args, o.dynamic)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	pl := &Plugin{
		args: *args, handle: h, rt: rt, reg: rt.Gangs, holds: rt.Holds, clock: rt.Clock, sources: src, podGroupClient: o.podGroups,
		recorder: h.EventRecorder(), neverFits: map[gang.Ref]string{}, statusDirty: map[gang.Ref]bool{},
		workloadScheduled: map[gang.Ref]int{}, displacedFrom: map[gang.Ref][]string{}, ctx: ctx,
	}
	rt.Holds.OnRelease(func() { pl.retryHeldOff(ctx) })
	rt.GangOf = func(p *v1.Pod) (gang.Ref, bool) {
		ref, _, ok := pl.sources.identify(p)
		return ref, ok
	}
	pods := h.SharedInformerFactory().Core().V1().Pods().Informer()
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    pl.onPod,
		UpdateFunc: func(_, obj any) { pl.onPod(obj) },
		DeleteFunc: pl.onPodDelete,
	}); err != nil {
		return nil, fmt.Errorf("%s: watching pods: %w", Name, err)
	}
	nodes := h.SharedInformerFactory().Core().V1().Nodes().Informer()
	if _, err := nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: pl.onNodeUpdate, DeleteFunc: pl.onNodeDelete}); err != nil {
		return nil, fmt.Errorf("%s: watching nodes: %w", Name, err)
	}
	if src.workloadInformer != nil {
		if _, err := src.workloadInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) { pl.onSourceObjectAdd(gang.KindWorkload, obj) },
		}); err != nil {
			return nil, fmt.Errorf("%s: watching the Workload API's pod groups: %w", Name, err)
		}
		go pl.runWorkloadStatus(ctx)
	}
	pending, err := pl.startSources(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	if len(pending) > 0 {
		go pl.runDiscovery(ctx, pending)
	}
	go pl.runTimeouts(ctx)
	return pl, nil
}

// Name implements fwk.Plugin.
func (pl *Plugin) Name() string { return Name }

// Args returns the plugin's effective args.
func (pl *Plugin) Args() config.MusterGangArgs { return pl.args }

// cycleState carries the pod's gang from PreFilter to the later points.
type cycleState struct {
	ref    gang.Ref
	member bool // the pod is a member of a gang
	slots  bool // the gang holds slots this pod may take
	// held is the room, by node, that gangs at the head of their queues
	// hold against this pod.
	held map[string]resources.Vector
	// elastic is the leaf queue of a member admitted beyond its gang's
	// reservation (a bound gang's extra member, a Spark executor past
	// min-executors): it reclaims within its queue's guarantee as a pod of
	// its own.
	elastic *queue.Queue
}

func (s *cycleState) Clone() fwk.StateData { return s }

func readState(state fwk.CycleState) *cycleState {
	s, err := state.Read(stateKey)
	if err != nil {
		return &cycleState{}
	}
	return s.(*cycleState)
}

// SignPod implements fwk.SignPlugin. A gang member's nodes depend on its
// gang's live reservation, so members opt out of batching; other pods only
// see reserved capacity through Filter, which batching re-runs on the
// hinted node, so they sign nothing.
func (pl *Plugin) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	if _, ok := pl.rt.GangOf(pod); ok {
		return nil, fwk.NewStatus(fwk.Unschedulable, "gang members are placed against their gang's reservation")
	}
	return nil, nil
}

// remaining is how long a gang may still wait for its quorum.
func (pl *Plugin) remaining(info gang.Info) time.Duration {
	left := info.Deadline().Sub(pl.clock.Now())
	if left < time.Second {
		left = time.Second
	}
	return left
}

// eventRecorder is the part of the framework's recorder the plugin uses.
type eventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...interface{})
}

func logger(ctx context.Context) klog.Logger { return klog.FromContext(ctx) }
