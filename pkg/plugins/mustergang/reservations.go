package mustergang

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/resources"
)

// Event reasons for reservations that outlive their admission.
const (
	ReasonReservationRestored = "GangReservationRestored"
	ReasonReservationMoved    = "GangReservationMoved"
	ReasonReservationDropped  = "GangReservationDropped"
)

// maintain brings the reservations up to date before a scheduling cycle
// decides anything: once, the Spark executor reservations that lived in the
// memory of a process that is gone are rebuilt from the cluster; and slots
// taken off nodes being taken away are placed on other nodes.
//
// Both need the scheduler's snapshot (what is assumed on each node, not only
// what is bound), which is only consistent inside a scheduling cycle; and a
// reservation only constrains muster's own decisions, each of which is made
// in such a cycle after this ran. So "once the process schedules" is when a
// new process or a new leader starts (extension points run only in the
// leader: kube-scheduler builds the plugins before it wins the lease), and
// "before the next cycle" is at once for everything a reservation guards.
func (pl *Plugin) maintain(ctx context.Context) {
	if pl.rt.Tree() == nil {
		return // nothing can be placed in a queue yet; the next cycle will
	}
	if !pl.restored.Swap(true) {
		pl.restoreSpark(ctx)
	}
	pl.displaceNoticed(ctx)
	if pl.displacedPending.Swap(false) {
		for _, ref := range pl.reg.Displaced() {
			pl.replace(ctx, ref)
		}
	}
}

// restoreSpark rebuilds the executor reservation of every bound Spark
// driver whose app has fewer executors than it asked for, within the gang's
// timeout counted from the driver's bind: room for the missing executors,
// in the queue and as slots placed like a fresh plan with the executors'
// capacity policy (never on nodes being taken away).
func (pl *Plugin) restoreSpark(ctx context.Context) {
	log := klog.FromContext(ctx)
	now := pl.clock.Now()
	for _, info := range pl.reg.List() {
		if info.Ref.Kind != gang.KindSpark || info.Phase != gang.PhaseBound || info.Spec.Executors == 0 || info.FreeSlots > 0 {
			continue
		}
		driver, err := pl.sources.sparkDriver(ctx, info.Ref)
		if err != nil || driver == nil || driver.Spec.NodeName == "" {
			continue
		}
		since := boundAt(driver)
		n := gang.ExecutorsToRestore(info, since, now)
		if n == 0 {
			log.V(2).Info("Not rebuilding a Spark reservation", "gang", info.Ref.String(), "driverBound", since,
				"timeout", info.Spec.Timeout, "executorsBound", info.Bound-1, "executors", info.Spec.Executors)
			continue
		}
		if err := pl.restore(ctx, driver, info.Ref, since, n); err != nil {
			log.Info("Could not rebuild a Spark app's executor reservation; its executors are admitted one by one",
				"gang", info.Ref.String(), "executors", n, "reason", err.Error())
		}
	}
}

// restore reserves room for n executors of a bound driver's app.
func (pl *Plugin) restore(ctx context.Context, driver *v1.Pod, ref gang.Ref, since time.Time, n int) error {
	gs, err := pl.sources.specOf(ctx, driver, ref)
	if err != nil {
		return err
	}
	leaf, perr := pl.place(driver, gs)
	if perr != nil {
		return fmt.Errorf("%s", perr.Msg)
	}
	policies, err := pl.policies(driver, leaf)
	if err != nil {
		return err
	}
	members := make([]gang.Member, n)
	total := resources.Vector{}
	for i := range members {
		members[i] = gang.Member{Name: fmt.Sprintf("executor-%d", i), Request: gs.spec.ExecutorRequest, Class: classExecutor}
		total.Add(gs.spec.ExecutorRequest)
	}
	if lerr := pl.rt.Ledger.Check(leaf, total); lerr != nil {
		return lerr
	}
	nodes, _, objs, _, err := pl.nodes(ref, nil)
	if err != nil {
		return err
	}
	eligible := sameDomain(gs.spec.Topology, pl.anchorOf(ctx, ref, driver, objs), objs, eligibility([]*v1.Pod{classPod: driver, classExecutor: driver}, objs))
	plan, short := gang.PlanWithPolicies(nodes, members, eligible, viewsOf(objs), policies)
	if short != nil {
		return fmt.Errorf("not enough room: %s", short.Reason)
	}
	if lerr := pl.rt.Ledger.Reserve(gangKey(ref), leaf, total); lerr != nil {
		return lerr
	}
	names, reqs := make([]string, n), make([]resources.Vector, n)
	for i, node := range plan.Node {
		names[i], reqs[i] = objs[node].Name, members[i].Request
	}
	if !pl.reg.Restore(ref, since, names, reqs) {
		pl.rt.Ledger.Remove(gangKey(ref))
		return fmt.Errorf("the gang changed meanwhile")
	}
	msg := fmt.Sprintf("Rebuilt the executor reservation of %s after a restart: %d executor(s) reserved on %d node(s), %s, until %s",
		ref, n, countDistinct(names), total, since.Add(gs.spec.Timeout).UTC().Format(time.RFC3339))
	pl.event(driver, gs, v1.EventTypeNormal, ReasonReservationRestored, "Reserve", msg)
	klog.FromContext(ctx).V(2).Info("Rebuilt a Spark executor reservation", "gang", ref.String(), "executors", n, "nodes", names)
	return nil
}

// boundAt is when a pod was bound: its PodScheduled condition turned true
// then (the apiserver stamps it at binding).
func boundAt(p *v1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodScheduled && c.Status == v1.ConditionTrue && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	if p.Status.StartTime != nil {
		return p.Status.StartTime.Time
	}
	return p.CreationTimestamp.Time
}

func viewsOf(objs []*v1.Node) []capacity.NodeView {
	views := make([]capacity.NodeView, len(objs))
	for i, n := range objs {
		views[i] = capacity.ViewOf(n)
	}
	return views
}

// onNodeUpdate acts on a node being taken away (SPEC section 5: a spot
// interruption notice, a scale-down, a cordon): no gang should count on it.
// An admitted gang with members waiting at Permit there is released and
// admitted again on other nodes (nothing of it is bound yet, and a member
// bound there would be lost within minutes, taking the gang with it);
// other gangs' free slots there are placed on other nodes before the next
// scheduling decision.
func (pl *Plugin) onNodeUpdate(_, obj any) {
	node, ok := obj.(*v1.Node)
	if !ok {
		return
	}
	view := capacity.ViewOf(node)
	if !view.Disrupted {
		return
	}
	waiting := map[gang.Ref]bool{}
	pl.handle.IterateOverWaitingPods(func(wp fwk.WaitingPod) {
		if p := wp.GetPod(); p.Spec.NodeName == node.Name {
			if ref, ok := pl.rt.GangOf(p); ok {
				waiting[ref] = true
			}
		}
	})
	for ref := range waiting {
		if info, ok := pl.reg.Get(ref); ok && info.Phase == gang.PhaseAdmitted {
			pl.release(pl.ctx, ref, fmt.Sprintf("node %s is being taken away (%s); admitting the gang again on other nodes", node.Name, view.Reason), false)
		}
	}
	pl.displace(pl.ctx, node.Name, view.Reason)
}

// displaceNoticed takes slots off the nodes this cycle's snapshot shows
// being taken away. onNodeUpdate does so as the update arrives, but it runs
// on its own goroutine, apart from the scheduler cache's: a cycle may see a
// node's notice before it has, and must not count on slots there.
func (pl *Plugin) displaceNoticed(ctx context.Context) {
	infos := pl.handle.SnapshotSharedLister().NodeInfos()
	for _, name := range pl.reg.NodesWithSlots() {
		ni, err := infos.Get(name)
		if err != nil || ni.Node() == nil {
			continue
		}
		if view := capacity.ViewOf(ni.Node()); view.Disrupted {
			pl.displace(ctx, name, view.Reason)
		}
	}
}

// displace takes the gangs' free slots off a node (why: what happens to
// it) for the next scheduling cycle to place them on other nodes.
func (pl *Plugin) displace(ctx context.Context, node, why string) {
	if !pl.reg.HasSlotsOn(node) {
		return
	}
	refs := pl.reg.Displace(node)
	if len(refs) == 0 {
		return
	}
	pl.mu.Lock()
	for _, ref := range refs {
		pl.displacedFrom[ref] = appendOnce(pl.displacedFrom[ref], fmt.Sprintf("%s (%s)", node, why))
	}
	pl.mu.Unlock()
	pl.displacedPending.Store(true)
	klog.FromContext(ctx).V(2).Info("Took reserved slots off a node being taken away; placing them on other nodes",
		"node", node, "reason", why, "gangs", len(refs))
	for _, ref := range refs {
		// A cycle to place them in: the gang's pending members, if any.
		pl.activate(ctx, ref, "")
	}
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// replace places a gang's displaced slots on other nodes, like a fresh plan
// for just those slots (the rest of its reservation stays where it is). If
// they fit nowhere, an admitted gang is released (admitted again from
// scratch when room comes) and a bound gang gives those slots up: its
// members beyond what is left are admitted one by one.
func (pl *Plugin) replace(ctx context.Context, ref gang.Ref) {
	log := klog.FromContext(ctx)
	pl.mu.Lock()
	from := strings.Join(pl.displacedFrom[ref], ", ")
	delete(pl.displacedFrom, ref)
	pl.mu.Unlock()
	info, ok := pl.reg.Get(ref)
	reqs := pl.reg.DisplacedSlots(ref)
	if !ok || len(reqs) == 0 {
		return
	}
	pod, gs, err := pl.reference(ctx, ref)
	why := ""
	var names []string
	if err == nil {
		names, why = pl.planSlots(ctx, pod, ref, gs, reqs)
	} else {
		why = err.Error()
	}
	if why == "" && pl.reg.Replace(ref, names) {
		msg := fmt.Sprintf("Moved %d reserved slot(s) of %s off %s to %s", len(reqs), ref, from, strings.Join(dedupe(names), ", "))
		pl.event(pod, gs, v1.EventTypeNormal, ReasonReservationMoved, "Reserve", msg)
		log.V(2).Info("Moved reserved slots off a node being taken away", "gang", ref.String(), "from", from, "to", names)
		pl.activate(ctx, ref, "")
		return
	}
	if why == "" {
		// A member took a displaced slot meanwhile: plan what is left in
		// the next cycle.
		if from != "" {
			pl.mu.Lock()
			pl.displacedFrom[ref] = appendOnce(pl.displacedFrom[ref], from)
			pl.mu.Unlock()
		}
		pl.displacedPending.Store(true)
		return
	}
	reason := fmt.Sprintf("%d reserved slot(s) on %s could not be placed on other nodes: %s", len(reqs), from, why)
	switch info.Phase {
	case gang.PhaseAdmitted:
		pl.release(ctx, ref, reason+"; admitting the gang again when room comes", false)
	default:
		total := pl.reg.DropDisplaced(ref)
		if pl.reg.HasSlots(ref) {
			pl.rt.Ledger.Shrink(gangKey(ref), total)
		} else {
			pl.rt.Ledger.Remove(gangKey(ref))
		}
		if pod != nil {
			pl.event(pod, gs, v1.EventTypeWarning, ReasonReservationDropped, "Reserve", fmt.Sprintf("%s: %s; its members are admitted one by one", ref, reason))
		}
	}
	log.Info("Gave up reserved slots on a node being taken away", "gang", ref.String(), "phase", info.Phase, "reason", reason)
}

// reference returns the pod whose constraints a gang's slots are planned
// for (a Spark app's driver; else a member not yet bound, else any), and
// the gang's spec read through it.
func (pl *Plugin) reference(ctx context.Context, ref gang.Ref) (*v1.Pod, gangSpec, error) {
	var pod *v1.Pod
	if ref.Kind == gang.KindSpark {
		d, err := pl.sources.sparkDriver(ctx, ref)
		if err != nil {
			return nil, gangSpec{}, err
		}
		pod = d
	} else {
		for _, p := range pl.sources.members(ctx, ref) {
			if pod == nil || pod.Spec.NodeName != "" && p.Spec.NodeName == "" {
				pod = p
			}
		}
	}
	if pod == nil {
		return nil, gangSpec{}, fmt.Errorf("no member of the gang is left to plan for")
	}
	gs, err := pl.sources.specOf(ctx, pod, ref)
	if err != nil {
		return pod, gs, err
	}
	return pod, gs, nil
}

// planSlots plans slots of the given sizes on the nodes as they are now,
// counting every reservation (the gang's own other slots included). It
// returns a node per slot, or why they do not fit.
func (pl *Plugin) planSlots(ctx context.Context, pod *v1.Pod, ref gang.Ref, gs gangSpec, reqs []resources.Vector) ([]string, string) {
	leaf, perr := pl.place(pod, gs)
	if perr != nil {
		return nil, perr.Msg
	}
	policies, err := pl.policies(pod, leaf)
	if err != nil {
		return nil, err.Error()
	}
	members := make([]gang.Member, len(reqs))
	for i, r := range reqs {
		class := classPod
		if ref.Kind == gang.KindSpark && gs.spec.Executors > 0 && maps.Equal(r, gs.spec.ExecutorRequest) {
			class = classExecutor
		}
		members[i] = gang.Member{Name: fmt.Sprintf("slot-%d", i), Request: r, Class: class}
	}
	nodes, _, objs, _, err := pl.nodes(gang.Ref{}, nil)
	if err != nil {
		return nil, err.Error()
	}
	eligible := sameDomain(gs.spec.Topology, pl.anchorOf(ctx, ref, pod, objs), objs, eligibility([]*v1.Pod{classPod: pod, classExecutor: pod}, objs))
	plan, short := gang.PlanWithPolicies(nodes, members, eligible, viewsOf(objs), policies)
	if short != nil {
		return nil, short.Reason
	}
	names := make([]string, len(reqs))
	for i, n := range plan.Node {
		names[i] = objs[n].Name
	}
	return names, ""
}

func dedupe(names []string) []string {
	var out []string
	for _, n := range names {
		out = appendOnce(out, n)
	}
	return out
}
