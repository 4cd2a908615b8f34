package mustergang

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/metrics"
	"muster.dev/muster/pkg/plugins/profile"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// gangKey is a gang's entry in the queue ledger.
func gangKey(ref gang.Ref) string { return "gang:" + ref.String() }

// PreFilter admits the pod's gang as a whole if it is not admitted yet, then
// narrows the pod to the nodes holding its gang's slots. Pods outside gangs
// only need Filter when some gang holds capacity.
func (pl *Plugin) PreFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	if err := pl.rt.Ready(); err != nil {
		return nil, fwk.AsStatus(err)
	}
	// Before any decision: reservations are what this cycle must respect.
	pl.maintain(ctx)
	ref, role, _, ok := pl.sources.identify(pod)
	if !ok {
		if !pl.reg.AnyReserved() {
			return nil, fwk.NewStatus(fwk.Skip)
		}
		state.Write(stateKey, &cycleState{})
		return nil, nil
	}
	gs, err := pl.sources.specOf(pod, ref, role)
	if err != nil {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("%s: %v", ref, err))
	}
	if gs.wait != "" {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("%s: %s", ref, gs.wait))
	}
	leaf, perr := pl.place(pod, gs)
	if perr != nil {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("%s: %s", ref, perr.Msg))
	}
	pl.observe(ctx, ref, gs.spec, leaf.Path, memberPod(pod), pod.UID)

	info, _ := pl.reg.Get(ref)
	cs := &cycleState{ref: ref, member: true}
	switch info.Phase {
	case gang.PhaseWaiting:
		// Members held by scheduling gates do not count (info.Reason says
		// so); lifting the last gate brings that pod here and admits the gang.
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("%s: %s", ref, info.Reason))
	case gang.PhasePending:
		if now := pl.clock.Now(); info.BackoffUntil.After(now) {
			return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf(
				"%s: %s; backing off, retrying at %s", ref, info.Reason, info.BackoffUntil.UTC().Format("15:04:05")))
		}
		if st := pl.admit(ctx, pod, ref, gs, leaf); !st.IsSuccess() {
			return nil, st
		}
	}
	if pl.reg.HasSlots(ref) {
		cs.slots = true
		state.Write(stateKey, cs)
		return &fwk.PreFilterResult{NodeNames: sets.New(pl.reg.SlotNodes(ref)...)}, nil
	}
	// Beyond the reservation (a bound gang's extra members, a Spark app's
	// executors past min-executors): admitted one by one in the queue.
	if lerr := pl.rt.Ledger.Check(leaf, profile.PodRequest(pod)); lerr != nil {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, lerr.Error())
	}
	state.Write(stateKey, cs)
	return nil, nil
}

// PreFilterExtensions implements fwk.PreFilterPlugin.
func (pl *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// place returns the gang's leaf queue: the PodGroup's muster.dev/queue
// label, else the pod's, else namespaceQueues.
func (pl *Plugin) place(pod *v1.Pod, gs gangSpec) (*queue.Queue, *queue.PlacementError) {
	t := pl.rt.Tree()
	if t == nil {
		return pl.rt.Place(pod) // explains that no configuration is in force
	}
	return t.Place(pod.Namespace, gs.queueLabel)
}

// admit tries to admit the whole gang now: its queue's limits for the total,
// then every member node by node. On success the capacity is reserved in the
// queue and on the nodes, and the members are activated.
func (pl *Plugin) admit(ctx context.Context, pod *v1.Pod, ref gang.Ref, gs gangSpec, leaf *queue.Queue) *fwk.Status {
	log := klog.FromContext(ctx)
	names, reqs := pl.reg.PendingMembers(ref)
	members := make([]gang.Member, 0, len(reqs)+int(gs.spec.Executors))
	for i, r := range reqs {
		members = append(members, gang.Member{Name: names[i], Request: r, Class: classPod})
	}
	if info, _ := pl.reg.Get(ref); info.Bound+info.Assumed == 0 {
		for i := int32(0); i < gs.spec.Executors; i++ {
			members = append(members, gang.Member{Name: fmt.Sprintf("executor-%d", i), Request: gs.spec.ExecutorRequest, Class: classExecutor})
		}
	}
	policies, err := pl.policies(pod, leaf)
	if err != nil {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("%s: %v", ref, err))
	}
	total := resources.Vector{}
	for _, m := range members {
		total.Add(m.Request)
	}
	for r, a := range gs.spec.MinResources {
		if total[r] < a {
			total[r] = a
		}
	}

	// The queue first: cheap, and a gang above its queue's max never fits.
	if lerr := pl.rt.Ledger.Check(leaf, total); lerr != nil {
		if lerr.NeverFits() {
			return pl.neverFit(pod, ref, gs, fmt.Sprintf(
				"%s can never be admitted to its queue as configured: it needs %s in total: %v", ref, total, lerr))
		}
		return pl.wait(ref, fmt.Sprintf("waiting for quota: %v (the whole gang needs %s)", lerr, total))
	}
	if fr := pl.rt.FairShareAdmit(leaf, total); fr != nil {
		return pl.wait(ref, fmt.Sprintf("waiting for its fair share: %s (the whole gang needs %s)", fr.Msg, total))
	}

	nodes, allocatable, objs, infos, err := pl.nodes(ref)
	if err != nil {
		return fwk.AsStatus(err)
	}
	base := eligibility(pod, objs)
	views := make([]capacity.NodeView, len(objs))
	for i, n := range objs {
		views[i] = capacity.ViewOf(n)
	}
	anyNode := func(class, n int) bool { return base(class, n) && capacity.Allows(policies[class], views[n].Type) }
	if short := gang.NeverFits(allocatable, members, anyNode); short != nil {
		return pl.neverFit(pod, ref, gs, fmt.Sprintf(
			"%s does not fit on this cluster as it is, not even when empty: %s; it waits for nodes to be added", ref, short.Reason))
	}
	if err := checkMinResources(nodes, gs.spec.MinResources); err != "" {
		return pl.wait(ref, err)
	}
	plan, short := capacity.PlanGang(nodes, members, base, views, policies)
	if short != nil {
		// A queue below its guaranteed takes room back from queues above
		// theirs, and the gang is admitted at once to the room its victims
		// leave: its slots hold that room against pods waiting longer, and
		// its members bind once the victims are gone.
		// As planGang does: capacity preferences first, then relaxed;
		// never on nodes being taken away. Members follow their
		// preferences among the slot nodes, so a plan against them would
		// send them to each other's slots.
		var reclaimed []string
		var err error
		for _, strict := range []bool{true, false} {
			reclaimed, err = pl.rt.ReclaimNodes(ctx, profile.ReclaimRequest{
				Key: gangKey(ref), Pod: pod, Queue: leaf, Priority: corev1helpers.PodPriority(pod),
				Members: members, Nodes: infos,
				Eligible: capacity.EligibleFor(base, views, policies, strict),
			})
			if err == nil {
				break
			}
		}
		if err != nil {
			log.V(2).Info("Reclaim made no room for the gang", "gang", ref.String(), "queue", leaf.Path, "reason", err.Error())
			return pl.wait(ref, fmt.Sprintf("not enough room yet%s: %s; reclaim could not help: %v", capacity.RequiredNote(members, policies), short.Reason, err))
		}
		if plan = planOn(objs, reclaimed); len(plan.Node) != len(members) {
			return pl.wait(ref, fmt.Sprintf("preempted pods to reclaim queue %s's guaranteed capacity; admitting the gang once they exit", leaf.Path))
		}
		log.V(2).Info("Preempted pods for the gang; admitting it to the room they leave", "gang", ref.String(), "queue", leaf.Path)
	}

	if lerr := pl.rt.Ledger.Reserve(gangKey(ref), leaf, total); lerr != nil {
		return pl.wait(ref, fmt.Sprintf("waiting for quota: %v", lerr))
	}
	slotNodes := make([]string, len(members))
	slotReqs := make([]resources.Vector, len(members))
	for i, n := range plan.Node {
		slotNodes[i], slotReqs[i] = objs[n].Name, members[i].Request
	}
	if !pl.reg.Admit(ref, slotNodes, slotReqs) {
		pl.rt.Ledger.Remove(gangKey(ref))
		return fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("%s: admission raced with a change; retrying", ref))
	}
	pl.rt.ReclaimAdmitted(gangKey(ref)) // the ledger holds the gang's room from now on
	info, _ := pl.reg.Get(ref)
	metrics.GangAdmissionWait.WithLabelValues(leaf.Path).Observe(pl.clock.Since(info.FirstSeen).Seconds())
	msg := fmt.Sprintf("Admitted %s to queue %s: %d member(s) reserved on %d node(s), %s", ref, leaf.Path, len(members), countDistinct(slotNodes), total)
	pl.event(pod, gs, v1.EventTypeNormal, ReasonAdmitted, "Admit", msg)
	log.V(2).Info("Gang admitted", "gang", ref.String(), "queue", leaf.Path, "members", len(members), "total", total.String())
	pl.activate(ctx, ref, pod.UID)
	return nil
}

// planOn turns a node name per member into a plan over objs; the plan is
// empty if a node is not among them.
func planOn(objs []*v1.Node, names []string) gang.Plan {
	index := make(map[string]int, len(objs))
	for i, n := range objs {
		index[n.Name] = i
	}
	plan := gang.Plan{Node: make([]int, 0, len(names))}
	for _, name := range names {
		i, ok := index[name]
		if !ok {
			return gang.Plan{}
		}
		plan.Node = append(plan.Node, i)
	}
	return plan
}

// Member classes: the gang's pods share the admitting pod's constraints and
// policy; a Spark driver's virtual executors have the executors' policy.
const (
	classPod = iota
	classExecutor
)

// policies returns the capacity policy of each member class.
func (pl *Plugin) policies(pod *v1.Pod, leaf *queue.Queue) ([]capacity.Policy, error) {
	pol, _, err := pl.rt.PolicyOf(pod)
	if err != nil {
		return nil, err
	}
	exec, _, err := capacity.PolicyFor(nil, capacity.RoleExecutor, leaf.CapacityPolicy)
	if err != nil {
		return nil, err
	}
	return []capacity.Policy{classPod: pol, classExecutor: exec}, nil
}

// wait records why a gang is not admitted and refuses the pod with it.
func (pl *Plugin) wait(ref gang.Ref, reason string) *fwk.Status {
	pl.reg.SetWaiting(ref, reason)
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("%s: %s", ref, reason))
}

// neverFit reports, once per gang and reason, that it cannot be admitted
// however long it waits as things are (its queue's max, or the cluster's
// size): at once, rather than after a timeout.
func (pl *Plugin) neverFit(pod *v1.Pod, ref gang.Ref, gs gangSpec, msg string) *fwk.Status {
	pl.reg.SetWaiting(ref, msg)
	pl.mu.Lock()
	first := pl.neverFits[ref] != msg
	pl.neverFits[ref] = msg
	pl.mu.Unlock()
	if first {
		pl.event(pod, gs, v1.EventTypeWarning, ReasonNeverFits, "Admit", msg)
	}
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, msg)
}

// nodes builds the planner's view: per node what is free for this gang (what
// other gangs hold counts as used), and its full allocatable.
func (pl *Plugin) nodes(ref gang.Ref) (free, allocatable []gang.Node, objs []*v1.Node, kept []fwk.NodeInfo, err error) {
	infos, err := pl.handle.SnapshotSharedLister().NodeInfos().List()
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("listing nodes: %w", err)
	}
	free = make([]gang.Node, 0, len(infos))
	allocatable = make([]gang.Node, 0, len(infos))
	objs = make([]*v1.Node, 0, len(infos))
	for _, ni := range infos {
		n := ni.Node()
		if n == nil {
			continue
		}
		alloc, used := profile.NodeUsage(ni)
		used.Add(pl.reg.ReservedOnNode(n.Name, ref))
		f := alloc.Clone()
		f.Sub(used)
		free = append(free, gang.Node{Name: n.Name, Free: f})
		allocatable = append(allocatable, gang.Node{Name: n.Name, Free: alloc})
		objs = append(objs, n)
		kept = append(kept, ni)
	}
	return free, allocatable, objs, kept, nil
}

func checkMinResources(nodes []gang.Node, min resources.Vector) string {
	if len(min) == 0 {
		return ""
	}
	total := resources.Vector{}
	for _, n := range nodes {
		for r, a := range n.Free {
			if a > 0 {
				total[r] += a
			}
		}
	}
	// Not Exceeds: a resource nothing has free is absent from total, and
	// absent means "unlimited" there.
	for _, r := range min.Names() {
		if total[r] < min[r] {
			return fmt.Sprintf("waiting for minResources: needs %s %s free in total, %s is free", resources.Format(r, min[r]), r, resources.Format(r, total[r]))
		}
	}
	return ""
}

// activate moves the gang's other pending members to the active queue: the
// gang has room now.
func (pl *Plugin) activate(ctx context.Context, ref gang.Ref, except types.UID) {
	pods := map[string]*v1.Pod{}
	for _, p := range pl.sources.members(ref) {
		if p.UID != except && p.Spec.NodeName == "" {
			pods[p.Namespace+"/"+p.Name] = p
		}
	}
	if len(pods) > 0 {
		pl.handle.Activate(klog.FromContext(ctx), pods)
	}
}

func countDistinct(names []string) int { return sets.New(names...).Len() }

// event records an Event on the gang's PodGroup, or on the pod.
func (pl *Plugin) event(pod *v1.Pod, gs gangSpec, eventType, reason, action, msg string) {
	if gs.podGroup != nil {
		// Informer objects carry no kind; the recorder needs it for the reference.
		pg := gs.podGroup.DeepCopy()
		pg.APIVersion, pg.Kind = schedv1alpha1.SchemeGroupVersion.String(), "PodGroup"
		pl.recorder.Eventf(pg, pod, eventType, reason, action, "%s", msg)
		return
	}
	pl.recorder.Eventf(pod, nil, eventType, reason, action, "%s", msg)
}
