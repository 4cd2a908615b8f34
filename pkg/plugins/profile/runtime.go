// Package profile holds the state muster's plugins of one scheduler profile
// share: the queue tree in force, the usage ledger kept in step with the
// cluster, and the status and metrics published from them. pkg/scheduler
// creates one per profile and hands it to each plugin it builds.
package profile

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/utils/clock"

	"muster.dev/muster/pkg/apis/config"
	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/configsource"
	"muster.dev/muster/pkg/fairshare"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/metrics"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/pkg/waitreason"
)

// Runtime is the shared state of one profile.
type Runtime struct {
	Handle  fwk.Handle
	Ledger  *queue.Ledger
	Config  *configsource.Source
	Profile string
	Clock   clock.WithTickerAndDelayedExecution
	// Gangs is every gang and the capacity reserved for admitted ones.
	Gangs *gang.Registry
	// Holds is the room the gangs at the head of their queues wait for.
	Holds *gang.Holds
	// Ranks are the running pods by leaf queue and priority (kept by
	// MusterQueue), for priority at a max.
	Ranks *Ranks
	// GangOf, set by the gang plugin, reports the gang a pod belongs to.
	// Pods of gangs get their queue admission from the gang plugin, as a
	// whole, instead of one by one from the queue plugin.
	GangOf func(*v1.Pod) (gang.Ref, bool)
	// Conditions receives why pods wait and when a pod that waited is
	// admitted: a status.ConditionWriter, made when the runtime starts
	// unless one was given before.
	Conditions Conditions

	namespace string
	ctx       context.Context
	queueArgs config.MusterQueueArgs
	startOnce sync.Once
	startErr  error
	shares    shareCache
	// standings of the leaf queues against their fair shares, by path.
	standings atomic.Pointer[map[string]float64]
	// reclaims: the reclaims under way (preemptors waiting for their room,
	// their victims until they are gone); heldBack: pods refused because of
	// them, retried when one ends. Both under mu.
	reclaims  *fairshare.InFlight
	heldBack  Parked
	mu        sync.Mutex
	listeners []func(*queue.Tree)
	// leader tells whether this process writes shared state; nil: it does.
	// Set once, by New.
	leader Leader
	// pdbs lists PodDisruptionBudgets, for reclaim.
	pdbs policylisters.PodDisruptionBudgetLister
	// devices counts DRA devices: what pods' claims take, what nodes have.
	devices *deviceView
}

// Conditions keeps muster's own condition (waitreason.ConditionType) on the
// pods it holds back. Both calls are cheap and never block: a scheduling
// cycle makes them.
type Conditions interface {
	// Waiting: muster holds the pod back, for this reason.
	Waiting(pod *v1.Pod, code waitreason.Code, msg string)
	// Admitted: the pod passed admission (a pod that never waited is left
	// without the condition).
	Admitted(pod *v1.Pod, msg string)
}

// Waiting records why muster holds the pod back, as its condition.
func (rt *Runtime) Waiting(pod *v1.Pod, code waitreason.Code, msg string) {
	if rt.Conditions != nil {
		rt.Conditions.Waiting(pod, code, msg)
	}
}

// Admitted records that the pod passed admission to queue.
func (rt *Runtime) Admitted(pod *v1.Pod, queue string) {
	if rt.Conditions != nil {
		rt.Conditions.Admitted(pod, "admitted to queue "+queue)
	}
}

// Leader tells whether this process is the one replica that writes shared
// state (pkg/leadership.Tracker).
type Leader interface{ Leading() bool }

// PluginFactory builds one of muster's plugins for the profile behind h,
// given that profile's runtime. pkg/scheduler owns the runtimes and adapts
// it to the framework's frameworkruntime.PluginFactory.
type PluginFactory func(ctx context.Context, obj runtime.Object, h fwk.Handle, rt *Runtime) (fwk.Plugin, error)

// Option configures a Runtime.
type Option func(*Runtime)

// WithClock sets the clock the runtime and its plugins tell time by
// (timeouts, backoffs, reclaim grace, status); the real clock by default.
func WithClock(c clock.WithTickerAndDelayedExecution) Option {
	return func(rt *Runtime) { rt.Clock = c }
}

// WithLeader gives the runtime this process's leadership: it writes shared
// state only while l leads. Without it the runtime always writes (tools that
// run the plugins without leader election, such as scheduler_perf).
func WithLeader(l Leader) Option {
	return func(rt *Runtime) { rt.leader = l }
}

// New returns the runtime of the profile behind h, for its plugins to
// share; it lives until ctx ends. It starts (reads the queue ConfigMap,
// publishes status) on the first call to Ready, after every plugin is built:
// the framework builds plugins in no fixed order, and the queue ConfigMap to
// read is MusterQueue's argument.
func New(ctx context.Context, h fwk.Handle, opts ...Option) *Runtime {
	logger := klog.FromContext(ctx).WithName("muster")
	rt := &Runtime{Handle: h, Profile: h.ProfileName(), Clock: clock.RealClock{}, ctx: klog.NewContext(ctx, logger),
		queueArgs: configv1.DefaultQueueArgs()}
	for _, o := range opts {
		o(rt)
	}
	rt.Gangs = gang.NewRegistry(rt.Clock)
	rt.Holds = gang.NewHolds()
	rt.Ranks = newRanks()
	rt.GangOf = func(*v1.Pod) (gang.Ref, bool) { return gang.Ref{}, false }
	rt.Ledger = queue.NewLedger(nil, queue.WithClock(rt.Clock))
	// Asked for now, while the plugins are built: kube-scheduler starts the
	// informers its plugins asked for once, after building them, and an
	// informer asked for later never syncs.
	rt.pdbs = h.SharedInformerFactory().Policy().V1().PodDisruptionBudgets().Lister()
	indexPodsByNamespace(ctx, h.SharedInformerFactory().Core().V1().Pods().Informer())
	rt.devices = newDeviceView(rt.ctx, h)
	return rt
}

// indexPodsByNamespace gives kube-scheduler's pod informer, built without
// indexers, the namespace index: muster lists a gang's members by
// namespace and selector, which without the index scans every pod in the
// cluster (and logs a warning each time).
func indexPodsByNamespace(ctx context.Context, inf cache.SharedIndexInformer) {
	if _, ok := inf.GetIndexer().GetIndexers()[cache.NamespaceIndex]; ok {
		return
	}
	if err := inf.AddIndexers(cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}); err != nil {
		klog.FromContext(ctx).Error(err, "Could not index pods by namespace; gang members are found by scanning every pod")
	}
}

// SetQueueArgs gives the runtime MusterQueue's args; without them it uses
// MusterQueue's defaults.
func (rt *Runtime) SetQueueArgs(args config.MusterQueueArgs) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.queueArgs = args
}

// Ready starts the runtime on first use and reports whether it could: the
// queue configuration is read (or the default is in force), pods are
// accounted, status and metrics are published. Every extension point that
// reads the runtime calls it first.
func (rt *Runtime) Ready() error {
	rt.startOnce.Do(func() { rt.startErr = rt.start() })
	return rt.startErr
}

func (rt *Runtime) start() error {
	ctx, h := rt.ctx, rt.Handle
	rt.mu.Lock()
	args := rt.queueArgs
	rt.mu.Unlock()
	rt.namespace = args.Namespace
	metrics.Register()

	// Pods are accounted once the first tree is in force (applyTree walks
	// them all); from then on the informer keeps the ledger current.
	pods := h.SharedInformerFactory().Core().V1().Pods()
	if _, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    rt.onPod,
		UpdateFunc: func(_, obj any) { rt.onPod(obj) },
		DeleteFunc: rt.onPodDelete,
	}); err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	if err := rt.watchCapacity(); err != nil {
		return fmt.Errorf("watching capacity: %w", err)
	}
	if rt.Conditions == nil {
		w, err := status.NewConditionWriter(h.ClientSet(), pods.Informer(), rt.Clock, rt.Leading)
		if err != nil {
			return err
		}
		rt.Conditions = w
		go w.Run(ctx)
	}
	src, err := configsource.Start(ctx, configsource.Options{
		Client: h.ClientSet(), Namespace: args.Namespace, Name: args.QueuesConfigMap,
		OnApply: rt.applyTree, Clock: rt.Clock,
		LastApplied: func(ctx context.Context) (string, error) {
			return status.ReadApplied(ctx, h.ClientSet(), args.Namespace, args.StatusConfigMap)
		},
	})
	if err != nil {
		return err
	}
	rt.mu.Lock()
	rt.Config = src
	rt.mu.Unlock()

	metrics.SetQueueSource(rt.queueSamples)
	go func() {
		<-ctx.Done()
		metrics.SetQueueSource(nil)
	}()
	w := &status.Writer{
		Client: h.ClientSet(), Namespace: args.Namespace, Name: args.StatusConfigMap,
		Interval: time.Duration(args.StatusIntervalSeconds) * time.Second, Clock: rt.Clock,
		Report: rt.Report, Leading: rt.Leading, Applied: src.Applied,
	}
	go w.Run(ctx)
	return nil
}

// OnTreeChange registers fn to be called after every new tree is in force.
func (rt *Runtime) OnTreeChange(fn func(*queue.Tree)) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.listeners = append(rt.listeners, fn)
}

// Tree returns the tree in force, or nil when no valid configuration is.
func (rt *Runtime) Tree() *queue.Tree { return rt.Ledger.Tree() }

func (rt *Runtime) applyTree(t *queue.Tree) {
	first := rt.Ledger.Tree() == nil
	rt.Ledger.SetTree(t)
	// The first tree accounts every pod; later ones re-place pending pods,
	// which may map to other queues now (namespaceQueues, ACLs).
	if lister := rt.podLister(); lister != nil {
		if pods, err := lister.List(labels.Everything()); err == nil {
			for _, p := range pods {
				if first || p.Spec.NodeName == "" {
					if first {
						rt.Ledger.Remove(Key(p)) // accounted without a tree: place it properly
					}
					rt.onPod(p)
				}
			}
		}
	}
	rt.mu.Lock()
	ls := append([]func(*queue.Tree){}, rt.listeners...)
	rt.mu.Unlock()
	for _, fn := range ls {
		fn(t)
	}
}

func (rt *Runtime) podLister() interface {
	List(labels.Selector) ([]*v1.Pod, error)
} {
	if rt.Handle == nil || rt.Handle.SharedInformerFactory() == nil {
		return nil
	}
	return rt.Handle.SharedInformerFactory().Core().V1().Pods().Lister()
}

// Key is a pod's key in the ledger.
func Key(p *v1.Pod) string { return string(p.UID) }

func (rt *Runtime) config() *configsource.Source {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.Config
}

// Place returns the pod's leaf queue under the tree in force.
func (rt *Runtime) Place(p *v1.Pod) (*queue.Queue, *queue.PlacementError) {
	t := rt.Tree()
	if t == nil {
		src := rt.config()
		if src == nil {
			return nil, &queue.PlacementError{Code: waitreason.NoQueueConfig, Msg: "muster is starting: the queue configuration is not read yet"}
		}
		st := src.Status()
		return nil, &queue.PlacementError{Code: waitreason.NoQueueConfig, Msg: fmt.Sprintf("no valid queue configuration is in force, so nothing is admitted: %s: %s", st.Source, st.LastError)}
	}
	return t.Place(p.Namespace, p.Labels[queue.LabelQueue])
}

func (rt *Runtime) onPod(obj any) {
	p, ok := obj.(*v1.Pod)
	if !ok || p.Spec.SchedulerName != rt.Profile || rt.Tree() == nil && rt.config() == nil {
		return // not started: the first tree will account every pod
	}
	key := Key(p)
	if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
		rt.Ledger.Forget(key) // done for good: a cycle still holding the pod may not bring it back
		rt.forgetPod(p)
		if rt.devices != nil {
			rt.devices.podChanged(p, false)
		}
		return
	}
	if p.Spec.NodeName != "" {
		leaf := queue.RootName // a bound pod whose queue is gone still uses the cluster
		if _, admitted, ok := rt.Ledger.Lookup(key); ok && admitted != "" {
			leaf = admitted
		} else if q, err := rt.Place(p); err == nil {
			leaf = q.Path
		}
		rt.Ledger.Allocate(key, leaf, rt.PodRequest(p))
		return
	}
	q, err := rt.Place(p)
	if err != nil {
		rt.Ledger.Remove(key)
		return
	}
	rt.Ledger.SetPending(key, q.Path, rt.PodRequest(p))
}

// Gone takes a pod kube-scheduler reports deleted or finished off the
// ledger now. Queueing hints call it: kube-scheduler retries the pods an
// event requeues at once when their backoff is over, and the runtime's own
// pod handler, on a goroutine of its own, may not have seen the event yet;
// a retry then finds the queue still full and waits for the next event,
// which may never come. Forgetting twice is harmless.
func (rt *Runtime) Gone(p *v1.Pod) {
	if p.Spec.SchedulerName == rt.Profile {
		rt.Ledger.Forget(Key(p))
	}
	if rt.devices != nil {
		rt.devices.podChanged(p, true)
	}
}

func (rt *Runtime) onPodDelete(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	p, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	if rt.devices != nil {
		rt.devices.podChanged(p, true) // any scheduler's: its devices come free
	}
	if p.Spec.SchedulerName == rt.Profile {
		rt.Ledger.Forget(Key(p))
		rt.forgetPod(p)
	}
}

// PolicyOf resolves a pod's capacity policy (docs/reference.md, "Capacity policies"): its
// muster.dev/capacity-policy annotation, else the Spark role's default, else
// its queue's capacityPolicy, else any. A malformed annotation is an error.
func (rt *Runtime) PolicyOf(p *v1.Pod) (capacity.Policy, capacity.Source, error) {
	var queuePolicy capacity.Policy
	queueName := ""
	if q, err := rt.Place(p); err == nil {
		queuePolicy, queueName = q.CapacityPolicy, q.Path
	}
	pol, src, err := capacity.PolicyOf(p.Annotations, p.Labels, queuePolicy)
	if src == capacity.SourceQueue {
		src = src.WithQueue(queueName)
	}
	return pol, src, err
}

// Report builds the status report.
func (rt *Runtime) Report(now time.Time) status.Report {
	t, usage := rt.Ledger.Snapshot()
	st := rt.Config.Status()
	cfg := status.Config{Source: st.Source, ResourceVersion: st.ResourceVersion, Valid: st.Valid, LastError: st.LastError}
	if !st.AppliedAt.IsZero() {
		cfg.AppliedAt = st.AppliedAt.UTC().Format(time.RFC3339)
	}
	if !st.LastErrorAt.IsZero() {
		cfg.LastErrorAt = st.LastErrorAt.UTC().Format(time.RFC3339)
	}
	shares, _ := rt.Shares()
	r := status.Build(t, usage, shares.Fair, shares.Dominant, cfg, now)
	holds := map[gang.Ref]gang.Hold{}
	for _, h := range rt.Holds.List() {
		holds[h.Ref] = h
		sh := status.Hold{Queue: h.Leaf, Holder: h.Ref.String(), Priority: h.Priority,
			Holding: status.Quantities(h.Total()), Nodes: len(h.Need), Since: h.Since.UTC().Format(time.RFC3339)}
		if h.Ref.Kind == gang.KindPod {
			sh.Yielded = h.Timeouts
		}
		r.Holds = append(r.Holds, sh)
	}
	position := map[string]int{} // by queue: pending gangs seen so far
	for _, g := range rt.Gangs.List() {
		if g.Phase == gang.PhaseBound {
			continue
		}
		sg := status.Gang{
			Gang: g.Ref.String(), Queue: g.Queue, Phase: string(g.Phase), Members: g.Members, MinMember: g.Spec.MinMember,
			Placed: g.Assumed + g.Bound, Since: g.FirstSeen.UTC().Format(time.RFC3339),
			ReasonCode: g.ReasonCode, Reason: g.Reason, Timeouts: g.Timeouts,
		}
		if g.Phase == gang.PhasePending {
			position[g.Queue]++
			sg.Position = position[g.Queue]
		}
		if h, ok := holds[g.Ref]; ok {
			sg.Holding, sg.HoldingNodes = status.Quantities(h.Total()), len(h.Need)
		}
		r.PendingGangs = append(r.PendingGangs, sg)
	}
	return r
}

// Leading reports whether this replica should write shared state (status,
// PodGroup status): it holds the lease, or leader election is off.
func (rt *Runtime) Leading(context.Context) bool {
	return rt.leader == nil || rt.leader.Leading()
}

// queueSamples computes the queue gauges.
func (rt *Runtime) queueSamples() []metrics.QueueSample {
	t, usage := rt.Ledger.Snapshot()
	if t == nil {
		return nil
	}
	shares, _ := rt.Shares()
	out := make([]metrics.QueueSample, 0, len(t.Queues))
	for _, q := range t.Queues {
		u := usage[q.Path]
		res := map[string]map[string]float64{
			"guaranteed": gauge(q.Guaranteed), "max": gauge(q.EffectiveMax),
			"allocated": gauge(u.Allocated), "reserved": gauge(u.Reserved), "pending": gauge(u.Pending),
			"fair_share": gauge(shares.Fair[q.Path]),
		}
		// Every type of every resource the queue mentions has a series, 0
		// when there is none of it, so that "allocated < guaranteed" holds
		// for a queue that holds nothing. Max is the exception: no series
		// means no limit.
		for typ, m := range res {
			if typ == "max" {
				continue
			}
			for _, other := range res {
				for name := range other {
					if _, ok := m[name]; !ok {
						m[name] = 0
					}
				}
			}
		}
		out = append(out, metrics.QueueSample{Queue: q.Path, Resources: res,
			Pods: map[string]int{"pending": u.Waiting, "running": u.Running}})
	}
	return out
}

// gauge converts a vector to Prometheus units: cores for cpu, else the base unit.
func gauge(v resources.Vector) map[string]float64 {
	out := make(map[string]float64, len(v))
	for name, a := range v {
		if name == v1.ResourceCPU {
			out[string(name)] = float64(a) / 1000
		} else {
			out[string(name)] = float64(a)
		}
	}
	return out
}
