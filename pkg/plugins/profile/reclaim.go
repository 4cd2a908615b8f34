package profile

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/fairshare"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/metrics"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// reclaimGrace is how long a preemptor waits for its victims to go before
// it may preempt again.
const reclaimGrace = 30 * time.Second

// ReclaimRequest is a preemptor: one pod, or a gang's members.
type ReclaimRequest struct {
	// Key identifies the preemptor (a pod's UID, a gang's ledger key).
	Key      string
	Pod      *v1.Pod // for Events
	Queue    *queue.Queue
	Priority int32
	Members  []gang.Member
	// Eligible says which of Nodes the members may use (nil: all).
	Eligible func(class, node int) bool
	Nodes    []fwk.NodeInfo
	// UnderMax, when set, says the preemptor is at its queue's max: see
	// fairshare.ReclaimInput.UnderMax.
	UnderMax func(freed resources.Vector) bool
}

// Reclaim preempts the victims fairshare.Reclaim chooses for the request
// and returns the node its first member should wait for (nominated), or
// why nothing was preempted. While victims of an earlier reclaim by the same
// preemptor are still going, it preempts nothing more.
func (rt *Runtime) Reclaim(ctx context.Context, req ReclaimRequest) (string, error) {
	nodes, err := rt.ReclaimNodes(ctx, req)
	if err != nil || len(nodes) == 0 {
		return "", err
	}
	return nodes[0], nil
}

// ReclaimNodes is Reclaim returning the node of every member in the plan
// (same index as req.Members), so that a gang can hold the room its victims
// leave: otherwise pods waiting longer could take it before the gang is
// retried.
func (rt *Runtime) ReclaimNodes(ctx context.Context, req ReclaimRequest) ([]string, error) {
	if p := req.Pod; p != nil && p.Spec.PreemptionPolicy != nil && *p.Spec.PreemptionPolicy == v1.PreemptNever {
		return nil, fmt.Errorf("its preemptionPolicy is Never")
	}
	r := &reclaim{rt: rt, req: req, now: rt.Clock.Now(), pods: map[string]*v1.Pod{}}
	if err := r.gatherUsage(); err != nil {
		return nil, err
	}
	r.gatherCandidates(klog.FromContext(ctx))
	plan, why := fairshare.Reclaim(r.in)
	if plan == nil {
		if r.claims > 0 {
			// Other reclaims under way counted against this one: when they
			// end, it is retried (no cluster event may say so).
			rt.mu.Lock()
			rt.holdBack(req.Pod)
			rt.mu.Unlock()
		}
		return nil, why // a *fairshare.ReclaimRefusal: the same sentence, and a code for errors.As
	}
	if err := r.preempt(ctx, plan); err != nil {
		return nil, err
	}
	nodes := make([]string, len(plan.Plan.Node))
	for i, n := range plan.Plan.Node {
		nodes[i] = r.in.Nodes[n].Name
	}
	return nodes, nil
}

// reclaim is one reclaim decision for a preemptor, taken in steps: the
// queues' usage corrected by the reclaims under way, the candidate nodes and
// victims, then the chosen victims preempted and recorded.
type reclaim struct {
	rt  *Runtime
	req ReclaimRequest
	now time.Time
	in  fairshare.ReclaimInput
	// pods are the candidate victims' pods, by key.
	pods map[string]*v1.Pod
	// claims counts the other preemptors' claims the usage includes.
	claims int
}

// gatherUsage reads what every queue holds from the ledger and corrects it
// with the reclaim book. The ledger lags behind recent reclaims: preemptors
// waiting for their victims hold nothing in it yet, and victims still count
// until their deletion is seen. Correcting for both makes concurrent
// reclaims add up to the guarantee and no more. A preemptor whose victims
// are still exiting preempts nothing more: it is held back until they are
// gone.
func (r *reclaim) gatherUsage() error {
	rt := r.rt
	t, snapshot := rt.Ledger.Snapshot()
	if t == nil {
		return fmt.Errorf("no queue configuration in force")
	}
	usage := map[string]resources.Vector{}
	for p, u := range snapshot {
		usage[p] = u.Used()
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	book := rt.inflight()
	if book.Waiting(r.req.Key, r.now) {
		rt.holdBack(r.req.Pod)
		return fmt.Errorf("waiting for pods preempted for it to exit")
	}
	r.claims = book.Adjust(usage, r.req.Key, r.now,
		func(key string) bool { state, _, ok := rt.Ledger.Lookup(key); return ok && state != queue.Pending },
		func(key string) bool { _, _, ok := rt.Ledger.Lookup(key); return ok })
	r.in = fairshare.ReclaimInput{
		Tree: t, Usage: usage, Queue: r.req.Queue, Priority: r.req.Priority,
		Members: r.req.Members, Eligible: r.req.Eligible, Gangs: map[string]fairshare.GangQuorum{},
		UnderMax: r.req.UnderMax,
	}
	return nil
}

// gatherCandidates lists the nodes the members may use, with what is free
// on each for them, and the pods on them that could make room.
func (r *reclaim) gatherCandidates(logger klog.Logger) {
	own, _ := r.rt.GangOf(r.req.Pod) // its own reservation, if any, is its to use
	for _, ni := range r.req.Nodes {
		if ni.Node() == nil {
			continue
		}
		r.in.Nodes = append(r.in.Nodes, r.candidateNode(ni, own))
		r.addVictims(ni, len(r.in.Nodes)-1)
	}
	if logger.V(5).Enabled() {
		for _, n := range r.in.Nodes {
			logger.V(5).Info("Reclaim candidate node", "node", n.Name, "free", n.Free.String())
		}
		logger.V(5).Info("Reclaim candidates", "victims", len(r.in.Victims), "members", len(r.in.Members))
	}
}

// candidateNode is a node with what is free on it for the preemptor: what
// pods nominated to it with at least its priority (earlier preemptors
// waiting for their victims to go) have first claim on is taken, and so are
// other gangs' reservations, as in the gang planner: room found there would
// not be the preemptor's once its victims go.
func (r *reclaim) candidateNode(ni fwk.NodeInfo, own gang.Ref) gang.Node {
	name := ni.Node().Name
	free, used := r.rt.NodeUsage(ni)
	// A pod that is exiting (a victim of an earlier reclaim) leaves its
	// room to the pods nominated here, which are taken below: counted used
	// as well, it would be counted twice, and victims taken for room that
	// is coming free anyway. The book knows a victim is going before this
	// cycle's snapshot shows its deletion.
	for _, pi := range ni.GetPods() {
		if p := pi.GetPod(); p.DeletionTimestamp != nil || r.rt.isEvicted(Key(p), r.now) {
			used.Sub(r.rt.PodRequest(p)) // its pods count too
		}
	}
	// Likewise the DRA devices of claims whose pods are gone already.
	used.Sub(r.rt.releasingOn(name))
	for _, np := range r.rt.Handle.NominatedPodsForNode(name) {
		if p := np.GetPod(); p.UID != r.req.Pod.UID && corev1helpers.PodPriority(p) >= r.req.Priority {
			used.Add(r.rt.PodRequest(p))
		}
	}
	used.Add(r.rt.Gangs.ReservedOnNode(name, own))
	free.Sub(used)
	return gang.Node{Name: name, Free: free}
}

// addVictims adds the pods of the profile on the node (the node-th
// candidate) that are admitted and not already exiting as candidate victims.
func (r *reclaim) addVictims(ni fwk.NodeInfo, node int) {
	rt := r.rt
	for _, pi := range ni.GetPods() {
		p := pi.GetPod()
		if p.Spec.SchedulerName != rt.Profile || p.DeletionTimestamp != nil {
			continue
		}
		state, leaf, ok := rt.Ledger.Lookup(Key(p))
		if !ok || state == queue.Pending || rt.isEvicted(Key(p), r.now) {
			continue
		}
		// What it counts for, as the ledger holds it: computing a pod's
		// requests anew for every pod on every candidate node is most of
		// a reclaim's cost on a large cluster.
		req, ok := rt.Ledger.Request(Key(p))
		if !ok {
			req = rt.PodRequest(p)
		}
		v := fairshare.Victim{
			Key: Key(p), Namespace: p.Namespace, Name: p.Name, Queue: leaf, Node: node,
			// A pod bound but not started yet is the newest of all: by
			// its creation time (to the second) it could look older
			// than pods that have run for a while, and be spared for them.
			Request: req, Priority: corev1helpers.PodPriority(p), Started: r.now,
			DisruptionAllowed: rt.disruptionAllowed(p),
		}
		if p.Status.StartTime != nil {
			v.Started = p.Status.StartTime.Time
		}
		if q := r.in.Tree.Get(leaf); q != nil && q.MinRuntime > 0 {
			v.Young = r.now.Sub(v.Started) < q.MinRuntime
		}
		if ref, ok := rt.GangOf(p); ok {
			v.Gang = ref.String()
			v.Lead = capacity.RoleOf(p.Labels) == capacity.RoleDriver
			if info, ok := rt.Gangs.Get(ref); ok {
				r.in.Gangs[v.Gang] = fairshare.GangQuorum{Min: int(info.Spec.MinMember), Bound: info.Bound}
			}
		}
		r.in.Victims = append(r.in.Victims, v)
		r.pods[v.Key] = p
	}
}

// preempt records the reclaim in the book, then has the chosen victims
// evicted.
func (r *reclaim) preempt(ctx context.Context, plan *fairshare.ReclaimPlan) error {
	rt, req := r.rt, r.req
	total := resources.Vector{}
	for _, m := range req.Members {
		total.Add(m.Request)
	}
	victims := make([]fairshare.InFlightVictim, len(plan.Victims))
	for i, v := range plan.Victims {
		victims[i] = fairshare.InFlightVictim{Key: v.Key, Queue: v.Queue, Request: v.Request}
	}
	rt.mu.Lock()
	until := rt.inflight().Record(req.Key, req.Queue.Path, total, victims, r.now)
	rt.mu.Unlock()
	// Whatever the book missed ends at the grace period: retry then what
	// it held back.
	rt.Clock.AfterFunc(until.Sub(r.now), func() { rt.expireReclaims(until) })
	// The victims are marked and deleted before the cycle goes on, side by
	// side. Not off the cycle, as kube-scheduler's asynchronous preemption
	// does: a gang admitted to the room its reclaim frees is released when
	// a member finds that room still taken, unless its victims are seen
	// going (candidateNode counts exiting pods' room as coming free).
	return r.evict(ctx, plan)
}

// evict marks the chosen victims as disruption targets and deletes them,
// each with an Event and a count by reason, side by side.
func (r *reclaim) evict(ctx context.Context, plan *fairshare.ReclaimPlan) error {
	rt, req := r.rt, r.req
	logger := klog.FromContext(ctx)
	beneficiary := rt.describePreemptor(req)
	errs := make([]error, len(plan.Victims))
	var wg sync.WaitGroup
	for i, v := range plan.Victims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := r.pods[v.Key]
			reason := plan.Reasons[i]
			msg := fmt.Sprintf("Preempted by muster to make room for %s of queue %s: it has higher priority in the same queue", beneficiary, req.Queue.Path)
			if reason == fairshare.ReasonReclaim {
				msg = fmt.Sprintf("Preempted by muster to make room for %s: queue %s reclaims its guaranteed capacity from queue %s", beneficiary, req.Queue.Path, v.Queue)
			}
			if errs[i] = rt.markDisruptionTarget(ctx, p, msg); errs[i] != nil {
				return
			}
			uid := types.UID(v.Key)
			err := rt.Handle.ClientSet().CoreV1().Pods(v.Namespace).Delete(ctx, v.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
			if err != nil && !apierrors.IsNotFound(err) {
				errs[i] = fmt.Errorf("preempting %s/%s: %w", v.Namespace, v.Name, err)
				return
			}
			metrics.Preemptions.WithLabelValues(req.Queue.Path, reason).Inc()
			rt.Handle.EventRecorder().Eventf(p, req.Pod, v1.EventTypeNormal, "Preempted", "Preempting", "%s", msg)
			logger.V(2).Info("Preempted a pod", "victim", klog.KObj(p), "victimQueue", v.Queue, "preemptor", klog.KObj(req.Pod), "queue", req.Queue.Path, "reason", reason)
		}()
	}
	wg.Wait()
	names := make([]string, 0, len(plan.Victims))
	for i, v := range plan.Victims {
		if errs[i] != nil {
			return errs[i]
		}
		names = append(names, v.Namespace+"/"+v.Name)
	}
	if req.Pod != nil && len(names) > 0 {
		rt.Handle.EventRecorder().Eventf(req.Pod, nil, v1.EventTypeNormal, "Preempting", "Preempting",
			"Preempting %d pod(s) to make room for %s: %s", len(names), beneficiary, strings.Join(names, ", "))
	}
	return nil
}

// describePreemptor names what a reclaim makes room for: a gang, or a pod.
func (rt *Runtime) describePreemptor(req ReclaimRequest) string {
	if req.Pod == nil {
		return "queue " + req.Queue.Path
	}
	if ref, ok := rt.GangOf(req.Pod); ok {
		return "gang " + ref.String()
	}
	return "pod " + req.Pod.Namespace + "/" + req.Pod.Name
}

// markDisruptionTarget sets the victim's DisruptionTarget condition before
// it is deleted, as kube-scheduler's own preemption does: a Job's
// podFailurePolicy and an operator can tell a preemption from a crash. A
// victim already gone needs nothing.
func (rt *Runtime) markDisruptionTarget(ctx context.Context, p *v1.Pod, msg string) error {
	cond := v1.PodCondition{
		Type: v1.DisruptionTarget, Status: v1.ConditionTrue, Reason: v1.PodReasonPreemptionByScheduler,
		Message: msg, LastTransitionTime: metav1.NewTime(rt.Clock.Now()),
	}
	// The UID makes the patch fail on a new pod of the same name.
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": p.UID},
		"status":   map[string]any{"conditions": []v1.PodCondition{cond}},
	})
	if err != nil {
		return fmt.Errorf("marking %s/%s as a disruption target: %w", p.Namespace, p.Name, err)
	}
	_, err = rt.Handle.ClientSet().CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("marking %s/%s as a disruption target: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// inflight returns the book of reclaims under way. rt.mu must be held.
func (rt *Runtime) inflight() *fairshare.InFlight {
	if rt.reclaims == nil {
		rt.reclaims = fairshare.NewInFlight(reclaimGrace)
	}
	return rt.reclaims
}

// holdBack remembers a pod refused because of reclaims under way, to be
// retried when one of them ends. rt.mu must be held.
func (rt *Runtime) holdBack(p *v1.Pod) {
	if p != nil {
		rt.heldBack.Add(p)
	}
}

// ClaimsIn is what other preemptors of the leaf queue wait to hold (see
// fairshare.InFlight.Claims).
func (rt *Runtime) ClaimsIn(leaf, self string) resources.Vector {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.inflight().Claims(leaf, self, rt.Clock.Now(),
		func(key string) bool { state, _, ok := rt.Ledger.Lookup(key); return ok && state != queue.Pending })
}

// HoldBack keeps a pod refused because of reclaims under way, to be retried
// when one of them ends.
func (rt *Runtime) HoldBack(p *v1.Pod) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.holdBack(p)
}

// Reclaiming reports whether the preemptor key preempted pods that are still
// exiting.
func (rt *Runtime) Reclaiming(key string) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.inflight().Waiting(key, rt.Clock.Now())
}

func (rt *Runtime) isEvicted(key string, now time.Time) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.inflight().Evicted(key, now)
}

// ReclaimAdmitted tells the reclaim book that a preemptor (a pod's key, a
// gang's ledger key) is admitted: the ledger counts its request from now on.
func (rt *Runtime) ReclaimAdmitted(key string) {
	rt.endReclaims(func(f *fairshare.InFlight) bool { return f.Admitted(key) })
}

// ReclaimGone tells the reclaim book that a pod or gang no longer exists:
// as a preemptor it claims nothing any more, as a victim it has exited.
func (rt *Runtime) ReclaimGone(key string) {
	rt.endReclaims(func(f *fairshare.InFlight) bool { return f.Gone(key) })
}

// expireReclaims ends what the book holds whose grace period ended by
// until. It is given the time rather than reading the clock: it runs from a
// timer of that clock.
func (rt *Runtime) expireReclaims(until time.Time) {
	rt.endReclaims(func(f *fairshare.InFlight) bool { return f.Expire(until) })
}

// endReclaims applies end to the book; if it ended anything, the pods held
// back by reclaims under way are retried.
func (rt *Runtime) endReclaims(end func(*fairshare.InFlight) bool) {
	rt.mu.Lock()
	ended := end(rt.inflight())
	rt.mu.Unlock()
	if ended {
		rt.heldBack.Activate(klog.FromContext(rt.ctx), rt.Handle, "Reclaims under way ended; retrying the pods they held back")
	}
}

// forgetPod ends what the runtime keeps about a pod that is gone.
func (rt *Runtime) forgetPod(p *v1.Pod) {
	rt.heldBack.Forget(p.UID)
	rt.ReclaimGone(Key(p))
}

// disruptionAllowed reports whether no PodDisruptionBudget forbids
// disrupting the pod now.
func (rt *Runtime) disruptionAllowed(p *v1.Pod) bool {
	pdbs, err := rt.pdbs.PodDisruptionBudgets(p.Namespace).List(labels.Everything())
	if err != nil {
		return true
	}
	for _, pdb := range pdbs {
		if matches(pdb, p) && pdb.Status.DisruptionsAllowed <= 0 {
			return false
		}
	}
	return true
}

func matches(pdb *policyv1.PodDisruptionBudget, p *v1.Pod) bool {
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || sel.Empty() {
		return false
	}
	return sel.Matches(labels.Set(p.Labels))
}

// UnderMax says whether req fits under every max on the leaf's path once
// pods holding freed have gone (fairshare.ReclaimInput.UnderMax).
func (rt *Runtime) UnderMax(leaf *queue.Queue, req resources.Vector) func(freed resources.Vector) bool {
	return func(freed resources.Vector) bool {
		rest := req.Clone()
		for r, a := range freed {
			rest[r] -= a
		}
		return rt.Ledger.Check(leaf, rest) == nil
	}
}

// MayPreemptAtMax reports whether a pod (or the gang it admits), refused at
// a max, may preempt lower-priority pods of its own leaf: its preemption
// policy allows it, its queue is not served first come first served
// (ordering fifo), and without those pods req would fit under every max on
// its path. The index of running pods answers without a scan, so a queue at
// its max full of pods as important costs nothing more.
func (rt *Runtime) MayPreemptAtMax(pod *v1.Pod, leaf *queue.Queue, req resources.Vector) bool {
	if p := pod.Spec.PreemptionPolicy; p != nil && *p == v1.PreemptNever || leaf.Ordering == queue.OrderFIFO {
		return false
	}
	below := rt.Ranks.Below(leaf.Path, corev1helpers.PodPriority(pod))
	return !below.IsZero() && rt.UnderMax(leaf, req)(below)
}

// ReclaimForPod is PostFilter's reclaim for one pod of leaf asking for req
// (at its queue's max when underMax is set): the nodes that failed it, the
// reclaim, and the node it is nominated to.
func (rt *Runtime) ReclaimForPod(ctx context.Context, pod *v1.Pod, leaf *queue.Queue, req resources.Vector,
	underMax func(resources.Vector) bool, m fwk.NodeToStatusReader) (*fwk.PostFilterResult, *fwk.Status) {
	nodes, err := m.NodesForStatusCode(rt.Handle.SnapshotSharedLister().NodeInfos(), fwk.Unschedulable)
	if err != nil {
		return nil, fwk.AsStatus(err)
	}
	if len(nodes) == 0 {
		return nil, fwk.NewStatus(fwk.Unschedulable, "preemption cannot help: no node would take the pod even if emptied")
	}
	// As gangs are planned: on the capacity type the pod's policy prefers
	// when reclaim can make room there, else on any it allows (the
	// scheduler's Filter enforces what it requires).
	var node string
	attempts := []func(class, node int) bool{nil}
	if pol, _, perr := rt.PolicyOf(pod); perr == nil && pol.Preferred() != "" {
		views := make([]capacity.NodeView, len(nodes))
		for i, ni := range nodes {
			views[i] = capacity.ViewOf(ni.Node())
		}
		anyNode := func(int, int) bool { return true }
		attempts = []func(class, node int) bool{
			capacity.EligibleFor(anyNode, views, []capacity.Policy{pol}, true),
			capacity.EligibleFor(anyNode, views, []capacity.Policy{pol}, false),
		}
	}
	for _, eligible := range attempts {
		node, err = rt.Reclaim(ctx, ReclaimRequest{
			Key: Key(pod), Pod: pod, Queue: leaf, Priority: corev1helpers.PodPriority(pod),
			Members: []gang.Member{{Name: pod.Name, Request: req}}, Nodes: nodes, UnderMax: underMax, Eligible: eligible,
		})
		if err == nil {
			break
		}
	}
	logger := klog.FromContext(ctx)
	if err != nil {
		logger.V(4).Info("No reclaim", "pod", klog.KObj(pod), "queue", leaf.Path, "reason", err)
		return nil, fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("no preemption: %v", err))
	}
	logger.V(2).Info("Reclaimed capacity", "pod", klog.KObj(pod), "queue", leaf.Path, "node", node)
	return &fwk.PostFilterResult{NominatingInfo: &fwk.NominatingInfo{NominatedNodeName: node, NominatingMode: fwk.ModeOverride}},
		fwk.NewStatus(fwk.Success)
}
