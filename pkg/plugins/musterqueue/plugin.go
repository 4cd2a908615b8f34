// Package queue is the MusterQueue plugin: it admits pods to their tenant
// queue against the live queue tree (placement, ACLs, max at every level)
// and holds each admitted pod's quota from Reserve until it is bound.
package musterqueue

import (
	"context"
	"fmt"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"muster.dev/muster/pkg/apis/config"
	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins"
	"muster.dev/muster/pkg/plugins/profile"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
	"muster.dev/muster/pkg/waitreason"
)

// Name is the plugin's name in a KubeSchedulerConfiguration profile.
const Name = "MusterQueue"

const stateKey fwk.StateKey = Name

// Plugin admits pods to tenant queues.
type Plugin struct {
	args config.MusterQueueArgs
	rt   *profile.Runtime

	mu sync.Mutex
	// waiting are pods this plugin turned away, with the queue whose limit
	// (or the placement problem) stopped them; they are retried when that
	// queue's usage drops or the configuration changes.
	waiting map[types.UID]waitingPod
	order   *order
}

type waitingPod struct {
	pod *v1.Pod
	// blockedAt is the queue whose max refused the pod; empty when it was
	// refused for placement (unknown queue, ACL).
	blockedAt string
	// fair is set when fair sharing held the pod back: any change in who
	// holds what may let it through.
	fair bool
}

var (
	_ fwk.PreFilterPlugin   = &Plugin{}
	_ fwk.ReservePlugin     = &Plugin{}
	_ fwk.EnqueueExtensions = &Plugin{}
	_ fwk.SignPlugin        = &Plugin{}

	_ profile.PluginFactory = New
)

// New builds the plugin from its validated args, on its profile's runtime.
func New(ctx context.Context, obj runtime.Object, h fwk.Handle, rt *profile.Runtime) (fwk.Plugin, error) {
	args, err := plugins.DecodeArgs(Name, obj, configv1.DefaultQueueArgs)
	if err != nil {
		return nil, err
	}
	if err := config.ValidateMusterQueueArgs(field.NewPath(Name+"Args"), args); err != nil {
		return nil, fmt.Errorf("invalid %s args: %w", Name, err)
	}
	rt.SetQueueArgs(*args)
	pl := &Plugin{args: *args, rt: rt, waiting: map[types.UID]waitingPod{}, order: newOrder()}
	rt.OnTreeChange(func(*queue.Tree) { pl.activateAll(ctx) })
	if _, err := h.SharedInformerFactory().Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if p, ok := obj.(*v1.Pod); ok {
				pl.arrive(p)
			}
			pl.observe(obj)
		},
		UpdateFunc: func(_, obj any) { pl.observe(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if p, ok := obj.(*v1.Pod); ok {
				pl.done(p)
				pl.rt.Ranks.Forget(p.UID)
				pl.order.forget(p.UID)
				pl.rt.Holds.Forget(gang.PodRef(p.Namespace, p.Name))
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("%s: watching pods: %w", Name, err)
	}
	go pl.runStandings(ctx)
	return pl, nil
}

// Name implements fwk.Plugin.
func (pl *Plugin) Name() string { return Name }

// Args returns the plugin's effective args.
func (pl *Plugin) Args() config.MusterQueueArgs { return pl.args }

type cycleState struct {
	leaf *queue.Queue
	req  resources.Vector
	// atMax is set when the pod was refused at a max that lower-priority
	// pods of its own queue hold enough to lift: PostFilter preempts them.
	atMax bool
}

func (s *cycleState) Clone() fwk.StateData { return s }

// PreFilter places the pod in its leaf queue and checks that it fits under
// the max of that queue and every ancestor. Neither problem can be solved by
// preempting pods on nodes, so both are UnschedulableAndUnresolvable; the
// message becomes the pod's PodScheduled condition and its FailedScheduling
// Event.
func (pl *Plugin) PreFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	logger := klog.FromContext(ctx)
	if err := pl.rt.Ready(); err != nil {
		return nil, fwk.AsStatus(err)
	}
	if _, ok := pl.rt.GangOf(pod); ok {
		// A gang is admitted to its queue as a whole by MusterGang.
		return nil, fwk.NewStatus(fwk.Skip)
	}
	leaf, perr := pl.rt.Place(pod)
	if perr != nil {
		pl.wait(pod, "")
		logger.V(4).Info("Pod has no queue it may use", "pod", klog.KObj(pod), "reason", perr.Msg)
		return nil, pl.refuse(pod, perr.Code, perr.Msg)
	}
	req := pl.rt.PodRequest(pod)
	if lerr := pl.rt.Ledger.Check(leaf, req); lerr == nil && !pl.clearOfClaims(pod, leaf, req) {
		pl.rt.HoldBack(pod)
		msg := fmt.Sprintf("queue %s is at its max with the room that pods preempted for another pod of it leave", leaf.Path)
		logger.V(4).Info("Pod waits behind a preemptor of its queue", "pod", klog.KObj(pod), "queue", leaf.Path)
		return nil, pl.refuse(pod, waitreason.QueueAtMax, msg)
	} else if lerr != nil {
		pl.wait(pod, lerr.Queue)
		logger.V(4).Info("Pod over its queue's limit", "pod", klog.KObj(pod), "queue", lerr.Queue, "resource", lerr.Resource)
		st := pl.refuse(pod, lerr.Code(), lerr.Error())
		if pl.rt.MayPreemptAtMax(pod, leaf, req) {
			// Lower-priority pods of its own queue hold enough: PostFilter
			// may preempt them (UnschedulableAndUnresolvable would skip it).
			state.Write(stateKey, &cycleState{leaf: leaf, req: req, atMax: true})
			st = fwk.NewStatus(fwk.Unschedulable, st.Reasons()...)
		}
		return nil, st
	}
	if ref := pl.rt.FairShareAdmit(leaf, req); ref != nil {
		pl.waitFair(pod)
		logger.V(4).Info("Pod held back for fair share", "pod", klog.KObj(pod), "queue", leaf.Path, "waiting", ref.Waiting)
		return nil, pl.refuse(pod, waitreason.FairShare, ref.Msg)
	}
	pl.done(pod)
	pl.rt.Admitted(pod, leaf.Path)
	state.Write(stateKey, &cycleState{leaf: leaf, req: req})
	return nil, nil
}

// PreFilterExtensions implements fwk.PreFilterPlugin.
func (pl *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// refuse holds the pod back in this cycle, and records why as its
// condition.
func (pl *Plugin) refuse(pod *v1.Pod, code waitreason.Code, msg string) *fwk.Status {
	pl.rt.Waiting(pod, code, msg)
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, msg)
}

// Reserve takes the pod's quota, checking again under the ledger's lock so
// that no two admissions together overshoot a max.
func (pl *Plugin) Reserve(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ string) *fwk.Status {
	s, err := state.Read(stateKey)
	if err != nil {
		return nil // PreFilter skipped the pod: a gang member
	}
	cs := s.(*cycleState)
	if lerr := pl.rt.Ledger.Reserve(profile.Key(pod), cs.leaf, cs.req); lerr != nil {
		pl.wait(pod, lerr.Queue)
		pl.rt.Waiting(pod, lerr.Code(), lerr.Error())
		return fwk.NewStatus(fwk.Unschedulable, lerr.Error())
	}
	pl.rt.ReclaimAdmitted(profile.Key(pod)) // if it reclaimed, the ledger holds its room now
	if pl.rt.Holds.Len() > 0 {
		pl.rt.Holds.Drop(gang.PodRef(pod.Namespace, pod.Name)) // it takes its room now
	}
	klog.FromContext(ctx).V(5).Info("Reserved queue quota", "pod", klog.KObj(pod), "queue", cs.leaf.Path)
	return nil
}

// Unreserve gives the quota back.
func (pl *Plugin) Unreserve(_ context.Context, state fwk.CycleState, pod *v1.Pod, _ string) {
	if _, err := state.Read(stateKey); err != nil {
		return // a gang member: MusterGang holds its quota
	}
	pl.rt.Ledger.Unreserve(profile.Key(pod))
}

// SignPod implements fwk.SignPlugin. Queue admission decides about the pod,
// never about a node, so it adds nothing to the signature that batching
// uses to reuse node choices; PreFilter still runs for every pod.
func (pl *Plugin) SignPod(context.Context, *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return nil, nil
}

// EventsToRegister: a pod turned away for a limit may fit once usage of the
// blocking queue drops: a pod of that subtree finishes or is deleted
// (kube-scheduler reports both as a Pod Delete). A pod whose own queue label
// changes is placed afresh; a pod held back for fair share is retried when
// a pod is deleted or a node is added, the only events that can raise the
// room the gate leaves it. A pod bound or added never does: binding moves
// room from free to used and, for a queue below its share, from owed to
// used, so the headroom beyond what others are owed never grows, and a new
// pending pod only raises another queue's claim (fairshare.Gate). Retrying
// every such pod after every bind was most of the scheduler's work under
// contention (W2 at twice the capacity: 46,000 refusals for 4,600 binds).
// Configuration changes re-activate waiting pods directly (see New).
func (pl *Plugin) EventsToRegister(context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Delete}, QueueingHintFn: pl.isSchedulableAfterPodDeleted},
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.UpdatePodLabel}, QueueingHintFn: pl.isSchedulableAfterPodLabelChange},
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add}, QueueingHintFn: pl.isSchedulableAfterNodeAdded},
	}, nil
}

// isSchedulableAfterNodeAdded: a pod held back for fair share may go once
// the cluster grows (every queue's share grows with it).
func (pl *Plugin) isSchedulableAfterNodeAdded(_ klog.Logger, pod *v1.Pod, _, _ any) (fwk.QueueingHint, error) {
	if pl.waitsForFairShare(pod) {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}

// waitsForFairShare reports whether the pod was last held back for fair
// share.
func (pl *Plugin) waitsForFairShare(pod *v1.Pod) bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	w, waiting := pl.waiting[pod.UID]
	return waiting && w.fair
}

func (pl *Plugin) isSchedulableAfterPodDeleted(logger klog.Logger, pod *v1.Pod, oldObj, _ any) (fwk.QueueingHint, error) {
	gone, ok := oldObj.(*v1.Pod)
	if !ok || gone.Spec.SchedulerName != pl.rt.Profile {
		return fwk.QueueSkip, nil
	}
	pl.rt.Gone(gone)
	pl.mu.Lock()
	w, waiting := pl.waiting[pod.UID]
	pl.mu.Unlock()
	if waiting && w.fair {
		return fwk.Queue, nil // capacity freed: fair shares move
	}
	if !waiting || w.blockedAt == "" {
		return fwk.QueueSkip, nil
	}
	// The deleted pod's quota was held in its leaf and every ancestor; it
	// frees the blocking queue if that is one of them.
	q, perr := pl.rt.Place(gone)
	if perr != nil {
		return fwk.Queue, nil // cannot tell: better a useless retry than a stuck pod
	}
	for a := q; a != nil; a = a.Parent {
		if a.Path == w.blockedAt {
			logger.V(5).Info("Queue usage dropped", "pod", klog.KObj(pod), "queue", w.blockedAt, "freedBy", klog.KObj(gone))
			return fwk.Queue, nil
		}
	}
	return fwk.QueueSkip, nil
}

func (pl *Plugin) isSchedulableAfterPodLabelChange(_ klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	oldPod, ok1 := oldObj.(*v1.Pod)
	newPod, ok2 := newObj.(*v1.Pod)
	if !ok1 || !ok2 || newPod.UID != pod.UID {
		return fwk.QueueSkip, nil
	}
	if oldPod.Labels[queue.LabelQueue] != newPod.Labels[queue.LabelQueue] {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}

// clearOfClaims reports whether the request fits under the maxes on the
// leaf's path with what other preemptors of the leaf wait to hold: the
// room their victims leave is theirs.
func (pl *Plugin) clearOfClaims(pod *v1.Pod, leaf *queue.Queue, req resources.Vector) bool {
	claims := pl.rt.ClaimsIn(leaf.Path, profile.Key(pod))
	return claims.IsZero() || pl.rt.Ledger.Check(leaf, req.Plus(claims)) == nil
}

// observe keeps the index of running pods current.
func (pl *Plugin) observe(obj any) {
	p, ok := obj.(*v1.Pod)
	if !ok || p.Spec.SchedulerName != pl.rt.Profile {
		return
	}
	leaf, req := "", resources.Vector(nil)
	if p.Spec.NodeName != "" && p.DeletionTimestamp == nil && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
		if q, perr := pl.rt.Place(p); perr == nil {
			leaf, req = q.Path, pl.rt.PodRequest(p) // only running pods are ranked
		}
	}
	pl.rt.Ranks.Set(p, leaf, req)
	if p.Spec.NodeName != "" {
		pl.order.forget(p.UID) // ordered no more
	} else {
		pl.order.changed(p.UID)
	}
}

func (pl *Plugin) waitFair(pod *v1.Pod) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.waiting[pod.UID] = waitingPod{pod: pod, fair: true}
}

func (pl *Plugin) wait(pod *v1.Pod, blockedAt string) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.waiting[pod.UID] = waitingPod{pod: pod, blockedAt: blockedAt}
}

func (pl *Plugin) done(pod *v1.Pod) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	delete(pl.waiting, pod.UID)
}

// activateAll moves every pod this plugin turned away back to the active
// queue: a new configuration may admit them.
func (pl *Plugin) activateAll(ctx context.Context) {
	pl.mu.Lock()
	pods := make(map[string]*v1.Pod, len(pl.waiting))
	for _, w := range pl.waiting {
		pods[w.pod.Namespace+"/"+w.pod.Name] = w.pod
	}
	pl.waiting = map[types.UID]waitingPod{}
	pl.mu.Unlock()
	if len(pods) > 0 {
		klog.FromContext(ctx).V(2).Info("Queue configuration changed; retrying pods", "count", len(pods))
		pl.rt.Handle.Activate(klog.FromContext(ctx), pods)
	}
}
