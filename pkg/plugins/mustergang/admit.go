package mustergang

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/metrics"
	"muster.dev/muster/pkg/plugins/profile"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
	"muster.dev/muster/pkg/waitreason"
)

// admission is one attempt to admit a pending gang as a whole, made by the
// first member to reach PreFilter. Its steps run cheapest first: the
// queue's limits for the gang's total, fair share, the cluster's size,
// minResources, then a placement of every member node by node (with
// reclaim when its queue is below its guaranteed). The first step that
// refuses says why the gang waits; if none does, the capacity is reserved
// in the queue and as slots on the chosen nodes.
type admission struct {
	pl   *Plugin
	pod  *v1.Pod
	ref  gang.Ref
	gs   gangSpec
	leaf *queue.Queue

	// members are the gang's members to place; Class indexes the member
	// classes below: one per shape among them (a Ray head and its workers
	// are two), plus the executors a Spark driver reserves.
	members []gang.Member
	// Per class: its capacity policy, a pod whose constraints it has, and
	// the shape its slots are planned for ("" for reserved executors).
	policies  []capacity.Policy
	classPods []*v1.Pod
	shapes    []string
	// total is what the gang takes from its queue: its members' requests,
	// and at least its minResources.
	total resources.Vector

	// The nodes as the planner sees them (one index throughout): what is
	// free for this gang, the allocatable, the objects and their views,
	// and which of them the members' own constraints allow.
	free, allocatable []gang.Node
	objs              []*v1.Node
	infos             []fwk.NodeInfo
	views             []capacity.NodeView
	base              func(class, node int) bool
	// labels are the nodes' labels, for the gang's topology; domain is
	// the domain its plan chose (empty: no constraint, or spread).
	labels []map[string]string
	domain gang.Domain
	// heldFrom: holds kept room from the gang's plan.
	heldFrom bool
}

// refusal is why a step does not admit the gang: its code, and the
// sentence for the gang's record and its members' conditions. A sentence
// of a never-fit code names the gang itself; the others are prefixed with
// it when a pod is refused.
type refusal struct {
	code waitreason.Code
	msg  string
}

// admit tries to admit the whole gang now. On success the capacity is
// reserved in the queue and on the nodes, and the members are activated.
func (pl *Plugin) admit(ctx context.Context, pod *v1.Pod, ref gang.Ref, gs gangSpec, leaf *queue.Queue) *fwk.Status {
	a := &admission{pl: pl, pod: pod, ref: ref, gs: gs, leaf: leaf}
	if r := a.gather(ctx); r != nil {
		return pl.hold(pod, ref, gs, r)
	}
	for _, check := range []func() *refusal{a.queueLimits, a.fairShare} {
		if r := check(); r != nil {
			if r.code == waitreason.QueueAtMax && pl.rt.MayPreemptAtMax(a.pod, a.leaf, a.total) {
				if err := a.readNodes(); err != nil {
					return fwk.AsStatus(err)
				}
				r = a.preemptAtMax(ctx, r)
			}
			return pl.hold(pod, ref, gs, r)
		}
	}
	if err := a.readNodes(); err != nil {
		return fwk.AsStatus(err)
	}
	for _, check := range []func() *refusal{a.clusterSize, a.minResources} {
		if r := check(); r != nil {
			return pl.hold(pod, ref, gs, r)
		}
	}
	plan, r := a.place(ctx)
	if r != nil {
		if r.code == waitreason.NotEnoughRoom {
			if a.heldFrom {
				pl.heldOffBy(pod) // retried when held room is released
			}
			a.offerHold(ctx)
		}
		return pl.hold(pod, ref, gs, r)
	}
	return a.reserve(ctx, plan)
}

// gather lists the members to place (the pending ones, and a Spark
// driver's executors while nothing of its app is placed), their classes
// and policies, and the gang's total.
func (a *admission) gather(ctx context.Context) *refusal {
	names, reqs := a.pl.reg.PendingMembers(a.ref)
	pods := map[string]*v1.Pod{a.pod.Name: a.pod}
	if len(names) > 1 || (len(names) == 1 && names[0] != a.pod.Name) {
		for _, p := range a.pl.sources.members(ctx, a.ref) {
			if p.UID != a.pod.UID {
				pods[p.Name] = p
			}
		}
	}
	a.members = make([]gang.Member, 0, len(reqs)+int(a.gs.spec.Executors))
	classOf := map[string]int{}
	for i, r := range reqs {
		p := pods[names[i]]
		if p == nil { // not in the informer yet: planned as the admitting pod
			p = a.pod
		}
		shape := a.pl.shapeOf(p)
		c, ok := classOf[shape]
		if !ok {
			pol, _, err := a.pl.rt.PolicyOf(p)
			if err != nil {
				if p != a.pod {
					err = fmt.Errorf("member %s: %w", p.Name, err)
				}
				return &refusal{waitreason.InvalidCapacityPolicy, err.Error()}
			}
			c = a.addClass(pol, p, shape)
			classOf[shape] = c
		}
		a.members = append(a.members, gang.Member{Name: names[i], Request: r, Class: c})
	}
	if info, _ := a.pl.reg.Get(a.ref); info.Bound+info.Assumed == 0 && a.gs.spec.Executors > 0 {
		role := a.gs.spec.ExecutorRole
		if role == "" {
			role = capacity.RoleExecutor
		}
		pol, _, err := capacity.PolicyFor(nil, role, a.leaf.CapacityPolicy)
		if err != nil {
			return &refusal{waitreason.InvalidCapacityPolicy, err.Error()}
		}
		c := a.addClass(pol, a.pod, "") // the admitting pod's constraints: these members are not written yet
		for i := int32(0); i < a.gs.spec.Executors; i++ {
			a.members = append(a.members, gang.Member{Name: fmt.Sprintf("%s-%d", role, i), Request: a.gs.spec.ExecutorRequest, Class: c})
		}
	}
	a.total = resources.Vector{}
	for _, m := range a.members {
		a.total.Add(m.Request)
	}
	for r, min := range a.gs.spec.MinResources {
		if a.total[r] < min {
			a.total[r] = min
		}
	}
	return nil
}

func (a *admission) addClass(pol capacity.Policy, p *v1.Pod, shape string) int {
	a.policies = append(a.policies, pol)
	a.classPods = append(a.classPods, p)
	a.shapes = append(a.shapes, shape)
	return len(a.policies) - 1
}

// queueLimits: the queue first, cheap, and a gang above its queue's max
// never fits.
func (a *admission) queueLimits() *refusal {
	lerr := a.pl.rt.Ledger.Check(a.leaf, a.total)
	if lerr == nil {
		// What other preemptors of the queue wait to hold is theirs.
		if claims := a.pl.rt.ClaimsIn(a.leaf.Path, gangKey(a.ref)); !claims.IsZero() {
			lerr = a.pl.rt.Ledger.Check(a.leaf, a.total.Plus(claims))
		}
	}
	switch {
	case lerr == nil:
		return nil
	case lerr.NeverFits():
		return &refusal{waitreason.NeverFitsQueue, fmt.Sprintf(
			"%s can never be admitted to its queue as configured: it needs %s in total: %v", a.ref, a.total, lerr)}
	}
	return &refusal{waitreason.QueueAtMax, fmt.Sprintf("waiting for quota: %v (the whole gang needs %s)", lerr, a.total)}
}

// preemptAtMax preempts the fewest lower-priority pods (whole gangs) of the
// gang's own queue that bring it under the max and make room on the nodes;
// the gang is admitted once they are gone.
func (a *admission) preemptAtMax(ctx context.Context, atMax *refusal) *refusal {
	_, err := a.pl.rt.ReclaimNodes(ctx, profile.ReclaimRequest{
		Key: gangKey(a.ref), Pod: a.pod, Queue: a.leaf, Priority: corev1helpers.PodPriority(a.pod),
		Members: a.members, Nodes: a.infos, Eligible: capacity.EligibleFor(a.base, a.views, a.policies, false),
		UnderMax: a.pl.rt.UnderMax(a.leaf, a.total),
	})
	if err != nil {
		return &refusal{atMax.code, fmt.Sprintf("%s; preempting lower-priority pods of its queue could not help: %v", atMax.msg, err)}
	}
	klog.FromContext(ctx).V(2).Info("Preempted lower-priority pods of the gang's queue at its max", "gang", a.ref.String(), "queue", a.leaf.Path)
	return &refusal{waitreason.ReclaimUnderWay, fmt.Sprintf(
		"preempted lower-priority pods of queue %s to make room under its max; admitting the gang once they exit", a.leaf.Path)}
}

func (a *admission) fairShare() *refusal {
	if fr := a.pl.rt.FairShareAdmit(a.leaf, a.total); fr != nil {
		return &refusal{waitreason.FairShare, fmt.Sprintf("waiting for its fair share: %s (the whole gang needs %s)", fr.Msg, a.total)}
	}
	return nil
}

// readNodes takes the planner's view of the nodes from the snapshot.
func (a *admission) readNodes() error {
	var err error
	var held map[string]resources.Vector
	if a.pl.holds.Len() > 0 {
		info, _ := a.pl.reg.Get(a.ref)
		held = a.pl.rt.HeldFrom(a.pl.rt.HoldSubject(a.pod, a.ref, a.leaf, info.FirstSeen))
		a.heldFrom = len(held) > 0
	}
	a.free, a.allocatable, a.objs, a.infos, err = a.pl.nodes(a.ref, held)
	if err != nil {
		return err
	}
	a.base = eligibility(a.classPods, a.objs)
	a.views = viewsOf(a.objs)
	a.labels = make([]map[string]string, len(a.objs))
	for i, n := range a.objs {
		a.labels[i] = n.Labels
	}
	return nil
}

// plan places the members on nodes as the planner sees them, within the
// gang's topology.
func (a *admission) plan(nodes []gang.Node) (gang.Plan, gang.Domain, *gang.Shortfall) {
	return gang.PlanInTopology(nodes, a.members, a.base, a.views, a.policies, a.labels, a.gs.spec.Topology)
}

// clusterSize: a gang that would not fit even on the empty cluster (on the
// nodes its constraints and required capacity types allow) never fits.
func (a *admission) clusterSize() *refusal {
	anyNode := func(class, n int) bool {
		return a.base(class, n) && capacity.Allows(a.policies[class], a.views[n].Type)
	}
	if short := gang.NeverFits(a.allocatable, a.members, anyNode); short != nil {
		return &refusal{waitreason.NeverFitsCluster, fmt.Sprintf(
			"%s does not fit on this cluster as it is, not even when empty: %s; it waits for nodes to be added", a.ref, short.Reason)}
	}
	if t := a.gs.spec.Topology; t.Required {
		if _, _, short := gang.PlanInTopology(a.allocatable, a.members, anyNode, a.views, a.policies, a.labels, t); short != nil {
			return &refusal{waitreason.NeverFitsCluster, fmt.Sprintf(
				"%s does not fit in one domain of this cluster as it is, not even when empty: %s; it waits for nodes to be added", a.ref, short.Reason)}
		}
	}
	return nil
}

// minResources: a PodGroup's minResources must be free in total.
func (a *admission) minResources() *refusal {
	if msg := checkMinResources(a.free, a.gs.spec.MinResources); msg != "" {
		return &refusal{waitreason.MinResources, msg}
	}
	return nil
}

// place plans every member node by node. Without room, a queue below its
// guaranteed takes room back from queues above theirs, and the gang is
// admitted at once to the room its victims leave: its slots hold that room
// against pods waiting longer, and its members bind once the victims are
// gone.
func (a *admission) place(ctx context.Context) (gang.Plan, *refusal) {
	plan, domain, short := a.plan(a.free)
	if short == nil {
		a.domain = domain
		return plan, nil
	}
	log := klog.FromContext(ctx)
	// As PlanGang does: capacity preferences first, then relaxed; never on
	// nodes being taken away. Members follow their preferences among the
	// slot nodes, so a plan against them would send them to each other's
	// slots.
	var reclaimed []string
	var err error
	for _, within := range a.reclaimDomains() {
		infos := a.infos
		if within != nil { // only the domain's nodes: reclaim looks at every node it is given
			infos = make([]fwk.NodeInfo, len(within))
			for i, n := range within {
				infos[i] = a.infos[n]
			}
		}
	strictness:
		for _, strict := range []bool{true, false} {
			eligible := capacity.EligibleFor(a.base, a.views, a.policies, strict)
			if within != nil {
				inDomain := eligible
				eligible = func(class, i int) bool { return inDomain(class, within[i]) }
			}
			reclaimed, err = a.pl.rt.ReclaimNodes(ctx, profile.ReclaimRequest{
				Key: gangKey(a.ref), Pod: a.pod, Queue: a.leaf, Priority: corev1helpers.PodPriority(a.pod),
				Members: a.members, Nodes: infos, Eligible: eligible,
			})
			if err == nil {
				break strictness
			}
		}
		if err == nil {
			break
		}
	}
	if err != nil {
		log.V(2).Info("Reclaim made no room for the gang", "gang", a.ref.String(), "queue", a.leaf.Path, "reason", err.Error())
		return gang.Plan{}, &refusal{waitreason.NotEnoughRoom, fmt.Sprintf("not enough room yet%s: %s; reclaim could not help: %v",
			gang.RequiredNote(a.members, a.policies), short.Reason, err)}
	}
	if plan = planOn(a.objs, reclaimed); len(plan.Node) != len(a.members) {
		return gang.Plan{}, &refusal{waitreason.ReclaimUnderWay, fmt.Sprintf(
			"preempted pods to reclaim queue %s's guaranteed capacity; admitting the gang once they exit", a.leaf.Path)}
	}
	log.V(2).Info("Preempted pods for the gang; admitting it to the room they leave", "gang", a.ref.String(), "queue", a.leaf.Path)
	return plan, nil
}

// reserve holds the gang's total in its queue and its slots on the planned
// nodes, and lets its members through.
func (a *admission) reserve(ctx context.Context, plan gang.Plan) *fwk.Status {
	pl, ref := a.pl, a.ref
	if lerr := pl.rt.Ledger.Reserve(gangKey(ref), a.leaf, a.total); lerr != nil {
		return pl.hold(a.pod, ref, a.gs, &refusal{waitreason.QueueAtMax, fmt.Sprintf("waiting for quota: %v", lerr)})
	}
	slotNodes := make([]string, len(a.members))
	slotReqs := make([]resources.Vector, len(a.members))
	slotShapes := make([]string, len(a.members))
	for i, n := range plan.Node {
		m := a.members[i]
		slotNodes[i], slotReqs[i], slotShapes[i] = a.objs[n].Name, m.Request, a.shapes[m.Class]
	}
	if !pl.reg.Admit(ref, slotNodes, slotReqs, slotShapes) {
		pl.rt.Ledger.Remove(gangKey(ref))
		return fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf("%s: admission raced with a change; retrying", ref))
	}
	pl.rt.ReclaimAdmitted(gangKey(ref)) // the ledger holds the gang's room from now on
	pl.holds.Drop(ref)                  // its slots hold its room now
	info, _ := pl.reg.Get(ref)
	metrics.GangAdmissionWait.WithLabelValues(a.leaf.Path).Observe(pl.clock.Since(info.FirstSeen).Seconds())
	msg := fmt.Sprintf("Admitted %s to queue %s: %d member(s) reserved on %d node(s), %s", ref, a.leaf.Path, len(a.members), countDistinct(slotNodes), a.total)
	switch t := a.gs.spec.Topology; {
	case a.domain != gang.Domain{}:
		msg += fmt.Sprintf(", all in %s=%s", a.domain.Key, a.domain.Value)
	case !t.IsZero() && !t.Required:
		msg += fmt.Sprintf(", spread over domains: no %s had room for the whole gang (topology %s)", t.Keys[0], t)
	}
	pl.event(a.pod, a.gs, v1.EventTypeNormal, ReasonAdmitted, "Admit", msg)
	klog.FromContext(ctx).V(2).Info("Gang admitted", "gang", ref.String(), "queue", a.leaf.Path, "members", len(a.members), "total", a.total.String())
	pl.activate(ctx, ref, a.pod.UID)
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

// Member classes of the plans for a Spark driver's reserved executors (the
// driver's, and its executors', with the driver's constraints).
const (
	classPod = iota
	classExecutor
)

// policies returns the capacity policy of each of those member classes.
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

// hold records why the gang waits (its record, the pod's condition) and
// refuses the pod with it. A gang that can never fit as things are is told
// so at once, with an Event once per gang and reason, rather than after a
// timeout.
func (pl *Plugin) hold(pod *v1.Pod, ref gang.Ref, gs gangSpec, r *refusal) *fwk.Status {
	pl.reg.SetWaiting(ref, r.code, r.msg)
	if !r.code.NeverFits() {
		return pl.refuse(pod, r.code, fmt.Sprintf("%s: %s", ref, r.msg))
	}
	pl.mu.Lock()
	first := pl.neverFits[ref] != r.msg
	pl.neverFits[ref] = r.msg
	pl.mu.Unlock()
	if first {
		pl.event(pod, gs, v1.EventTypeWarning, ReasonNeverFits, "Admit", r.msg)
	}
	return pl.refuse(pod, r.code, r.msg)
}

// refuse holds the pod back in this cycle, and records why as its
// condition.
func (pl *Plugin) refuse(pod *v1.Pod, code waitreason.Code, msg string) *fwk.Status {
	pl.rt.Waiting(pod, code, msg)
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, msg)
}

// reclaimDomains are where reclaim may free room for the gang, in the
// order to try, as node indexes (nil: anywhere): without a topology,
// anywhere; with one, inside one domain at a time (the narrowest key first,
// its tightest domains first), then, for a preferred constraint, anywhere.
func (a *admission) reclaimDomains() [][]int {
	t := a.gs.spec.Topology
	if t.IsZero() {
		return [][]int{nil}
	}
	out := gang.DomainNodes(a.free, a.labels, t)
	if !t.Required {
		out = append(out, nil)
	}
	return out
}
