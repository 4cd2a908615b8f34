// Package explain answers "why is my pod pending?" for `muster explain`:
// from facts read off the live cluster (the pod, its gang, the queue
// ConfigMap, the status muster-scheduler publishes, the pod's Events) it
// derives one verdict with a human reason and what to do about it. Pure Go:
// the CLI gathers the facts, this package only reasons about them.
package explain

import (
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/pkg/waitreason"
)

// Verdict classifies why a pod is where it is. The values are stable: they
// appear in `muster explain -o json` and scripts may match on them.
type Verdict string

const (
	Bound           Verdict = "Bound"         // on a node
	Finished        Verdict = "Finished"      // Succeeded or Failed
	NotMuster       Verdict = "NotMuster"     // another scheduler's pod
	NoQueueConfig   Verdict = "NoQueueConfig" // no valid queue configuration in force
	NoQueue         Verdict = "NoQueue"       // no queue, not a leaf, or the namespace is not admitted (ACL)
	BadAnnotation   Verdict = "BadAnnotation" // a muster annotation muster cannot use
	GangSource      Verdict = "GangSourceMissing"
	GangIncomplete  Verdict = "GangIncomplete"  // fewer members exist than the gang's minimum
	QueueOverMax    Verdict = "QueueOverMax"    // admitting it would take a queue over max
	GangWaiting     Verdict = "GangWaiting"     // the gang is complete and waits for admission
	NodesUnfit      Verdict = "NoNodeFits"      // admitted by the queue, no node takes it now
	NeverFits       Verdict = "NeverFits"       // bigger than the queue's max or any node
	NotTriedYet     Verdict = "NotTriedYet"     // no decision recorded yet
	SchedulerStatus Verdict = "SchedulerStatus" // only the scheduler's own message is known
)

// GangFacts is what the CLI read about the pod's gang.
type GangFacts struct {
	Ref gang.Ref
	// MinMember is the gang's quorum; 0 when unknown (source missing or bad).
	MinMember int32
	// Members counts the gang's live pods; Placed those bound to a node.
	Members, Placed int
	// QueueLabel is the gang's muster.dev/queue (its PodGroup's or Spark
	// driver's, else the pod's own).
	QueueLabel string
	// Missing says what the gang's source lacks (PodGroup not created, Spark
	// driver not running); empty when the source is there.
	Missing string
	// SpecErr is a malformed gang definition (bad annotation).
	SpecErr error
}

// Input is everything explain knows.
type Input struct {
	Pod *v1.Pod
	// SchedulerName is muster's profile name (spec.schedulerName to match).
	SchedulerName string
	// Tree is the queue configuration read from the ConfigMap; TreeErr why
	// it could not be read or parsed (then the status tells what is in force).
	Tree    *queue.Tree
	TreeErr error
	// Status is the published queue status; nil when it could not be read.
	Status *status.Report
	// Gang is nil for a pod in no gang.
	Gang *GangFacts
	// Events are the pod's Events, in any order.
	Events []v1.Event
	// Nodes are the cluster's nodes as muster's filters see them, and
	// GangNodes the nodes the pod's gang's members are bound to (one entry
	// per member); both only for the details of a pod no node takes, nil
	// when not read.
	Nodes     []NodeFacts
	GangNodes []string
	// Pending are the pods waiting for muster, read for the pod's place in
	// its queue's order; nil when not read.
	Pending []*v1.Pod
	// PendingNamespaceOnly: only the pod's namespace could be listed.
	PendingNamespaceOnly bool
	// Devices are the DRA devices the pod's ResourceClaims take, as
	// deviceclass/<class> amounts (devices.PodDevices); nil when it has none
	// or they could not be read.
	Devices resources.Vector
	Now     time.Time
}

// request is what the pod counts for in its queue, devices included.
func (in Input) request() resources.Vector {
	r := resources.PodRequest(in.Pod)
	r.Add(in.Devices)
	return r
}

// QueueLine is one queue of the usage table (leaf first, then ancestors).
type QueueLine struct {
	status.Queue
	// OwnMax is the max the queue itself sets (the effective max may come
	// from an ancestor).
	OwnMax map[string]string `json:"ownMax,omitempty"`
}

// Explanation is explain's answer.
type Explanation struct {
	Pod     string  `json:"pod"`
	Phase   string  `json:"phase"`
	Node    string  `json:"node,omitempty"`
	Verdict Verdict `json:"verdict"`
	// Reason is one or two sentences a tenant understands.
	Reason string `json:"reason"`
	// Todo lists what the tenant or admin can do.
	Todo []string `json:"todo,omitempty"`

	Queue    string `json:"queue,omitempty"`
	QueueVia string `json:"queueVia,omitempty"`
	Gang     string `json:"gang,omitempty"`
	// GangLine summarises the gang: quorum, members, placed, phase.
	GangLine string `json:"gangLine,omitempty"`
	Policy   string `json:"capacityPolicy,omitempty"`
	Request  string `json:"request,omitempty"`
	// Order is where the pod, or its gang, stands in its queue's order;
	// WaitsBehind what stands before it there (the first few); Holds the
	// room held at the head of its queue (by it, or by what it waits
	// behind).
	Order       string   `json:"order,omitempty"`
	WaitsBehind []string `json:"waitsBehind,omitempty"`
	Holds       string   `json:"holds,omitempty"`

	Usage []QueueLine `json:"queues,omitempty"`
	// StatusAge is how old the published status is; a stale status means
	// muster-scheduler is not running or not leading.
	StatusAge string `json:"statusAge,omitempty"`
	// Condition is the scheduler's own PodScheduled condition.
	Condition string `json:"condition,omitempty"`
	// Admission is muster's muster.dev/Admitted condition, if the pod has
	// one; ReasonCode the code the verdict was read from (the condition's,
	// or the gang's in the status), if any.
	Admission  string          `json:"admission,omitempty"`
	ReasonCode waitreason.Code `json:"reasonCode,omitempty"`
	// Details are what muster's fixed node filter reasons leave out: which
	// nodes, pools and counts (for NoNodeFits).
	Details  []string `json:"details,omitempty"`
	Events   []string `json:"events,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Explain derives the verdict. Checks run in the order the scheduler applies
// them, so the first that fails is the one that holds the pod; a decision
// muster recorded is read from its code (the pod's muster.dev/Admitted
// condition, else the gang's entry in the status), never from its wording.
func Explain(in Input) Explanation {
	x := newExplainer(in)
	if x.notMuster() {
		return x.e
	}
	x.placeQueue()
	x.describeGang()
	x.describePolicy()
	x.describeOrder()
	if x.e.Verdict != "" {
		return x.e // bound, finished, or no queue: nothing more to decide
	}
	for _, decide := range []func() bool{x.badAnnotation, x.gangSource, x.queueLimits, x.waitCode, x.scheduler} {
		if decide() {
			break
		}
	}
	return x.e
}

// explainer holds what Explain has found so far; its steps fill e.
type explainer struct {
	in Input
	e  Explanation
	// leaf is the pod's queue, when it has one.
	leaf *queue.Queue
	// stalled: the published status is old, muster-scheduler seems down.
	stalled bool
	// The pod's capacity policy and where it comes from, or why it has none.
	policy    capacity.Policy
	source    capacity.Source
	policyErr error
}

// newExplainer describes the pod and how fresh muster's status is, and
// settles the verdict of a pod that is bound or finished.
func newExplainer(in Input) *explainer {
	p := in.Pod
	x := &explainer{in: in, e: Explanation{Pod: p.Namespace + "/" + p.Name, Phase: string(p.Status.Phase), Node: p.Spec.NodeName}}
	x.e.Request = x.in.request().String()
	x.e.Condition = conditionLine(podScheduled(p), in.Now)
	x.e.Admission = conditionLine(status.Condition(p), in.Now)
	x.e.Events = eventLines(in.Events, 8)
	if in.Status != nil {
		if t, err := time.Parse(time.RFC3339, in.Status.UpdatedAt); err == nil {
			age := in.Now.Sub(t)
			x.e.StatusAge = age.Round(time.Second).String()
			if age > time.Minute {
				x.stalled = true
				x.e.Warnings = append(x.e.Warnings, fmt.Sprintf(
					"muster's published status is %s old: muster-scheduler is not running or not leading (check its pods and the Lease muster-scheduler in its namespace)", x.e.StatusAge))
			}
		}
	} else {
		x.e.Warnings = append(x.e.Warnings, "the status ConfigMap muster-queue-status could not be read: is muster-scheduler installed and running?")
	}
	switch {
	case p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed:
		x.e.Verdict, x.e.Reason = Finished, fmt.Sprintf("the pod has finished (%s); it holds no quota", p.Status.Phase)
	case p.Spec.NodeName != "":
		x.e.Verdict, x.e.Reason = Bound, fmt.Sprintf("the pod is bound to node %s", p.Spec.NodeName)
	}
	return x
}

// notMuster: a pending pod of another scheduler is none of muster's business.
func (x *explainer) notMuster() bool {
	p := x.in.Pod
	if x.e.Verdict != "" || p.Spec.SchedulerName == x.in.SchedulerName {
		return false
	}
	x.e.Verdict = NotMuster
	x.e.Reason = fmt.Sprintf("the pod's spec.schedulerName is %q: muster (%q) does not schedule it", p.Spec.SchedulerName, x.in.SchedulerName)
	x.e.Todo = []string{fmt.Sprintf("set spec.schedulerName: %s in the pod template to opt in", x.in.SchedulerName)}
	return true
}

// placeQueue finds the pod's queue as the scheduler does (a gang's comes
// from its source), or says why there is none.
func (x *explainer) placeQueue() {
	p, in := x.in.Pod, x.in
	label := p.Labels[queue.LabelQueue]
	if in.Gang != nil && in.Gang.QueueLabel != "" {
		label = in.Gang.QueueLabel
	}
	switch {
	case in.Status != nil && !in.Status.Config.Valid:
		if x.e.Verdict == "" {
			x.e.Verdict = NoQueueConfig
			x.e.Reason = "no valid queue configuration is in force, so muster admits nothing"
			if in.Status.Config.LastError != "" {
				x.e.Reason += ": " + in.Status.Config.LastError
			}
			x.e.Todo = todoNoQueueConfig
		}
	case in.Tree == nil:
		if in.TreeErr != nil {
			x.e.Warnings = append(x.e.Warnings, fmt.Sprintf("the queue configuration could not be read: %v", in.TreeErr))
		}
	default:
		q, perr := in.Tree.Place(p.Namespace, label)
		if perr != nil {
			if x.e.Verdict == "" {
				x.e.Verdict, x.e.Reason, x.e.Todo = NoQueue, perr.Msg, todoNoQueue(p.Namespace)
			}
			return
		}
		x.leaf = q
		x.e.Queue = q.Path
		if label != "" {
			x.e.QueueVia = "label " + queue.LabelQueue + "=" + label
			if in.Gang != nil && in.Gang.QueueLabel != "" && in.Gang.QueueLabel != p.Labels[queue.LabelQueue] {
				x.e.QueueVia += " on the gang's " + sourceNoun(in.Gang.Ref.Kind)
			}
		} else {
			x.e.QueueVia = "namespaceQueues"
		}
		x.e.Usage = usageLines(q, in.Status)
	}
}

func (x *explainer) describeGang() {
	if g := x.in.Gang; g != nil {
		x.e.Gang = g.Ref.String()
		x.e.GangLine = gangLine(g, gangStatus(x.in.Status, g.Ref))
	}
}

func (x *explainer) describePolicy() {
	var queuePolicy capacity.Policy
	if x.leaf != nil {
		queuePolicy = x.leaf.CapacityPolicy
	}
	x.policy, x.source, x.policyErr = capacity.PolicyOf(x.in.Pod.Annotations, x.in.Pod.Labels, queuePolicy)
	if x.policyErr == nil {
		x.source = x.source.WithQueue(x.e.Queue)
		x.e.Policy = fmt.Sprintf("%s (%s)", x.policy, x.source)
	}
}

// badAnnotation: annotations muster cannot use hold the pod until they are
// fixed.
func (x *explainer) badAnnotation() bool {
	bad := annotationProblems(x.in.Pod, x.in.Gang, x.policyErr)
	if len(bad) == 0 {
		return false
	}
	x.e.Verdict, x.e.Reason, x.e.Todo = BadAnnotation, strings.Join(bad, "; "), todoBadAnnotation
	return true
}

// gangSource: a gang whose source is missing, or short of members.
func (x *explainer) gangSource() bool {
	g := x.in.Gang
	switch {
	case g == nil:
		return false
	case g.Missing != "":
		x.e.Verdict, x.e.Reason, x.e.Todo = GangSource, g.Missing, todoGangSource
	case g.MinMember > 0 && g.Members < int(g.MinMember):
		x.e.Verdict = GangIncomplete
		x.e.Reason = fmt.Sprintf("%s needs %d members to start together and %d exist (%d missing); none is bound until all %d can be placed at once",
			g.Ref, g.MinMember, g.Members, int(g.MinMember)-g.Members, g.MinMember)
		x.e.Todo = []string{fmt.Sprintf("create the %d missing member(s), or lower the gang's minimum", int(g.MinMember)-g.Members)}
	default:
		return false
	}
	return true
}

// queueLimits: the queue's limits, for a plain pod, from the usage muster
// published (a gang's whole quota is checked at admission, which its
// status entry reports).
func (x *explainer) queueLimits() bool {
	if x.leaf == nil || x.in.Status == nil || x.in.Gang != nil && gangStatus(x.in.Status, x.in.Gang.Ref) != nil {
		return false
	}
	msg, never := overMax(x.leaf, x.in.Status, x.in.request())
	if msg == "" {
		return false
	}
	x.e.Verdict, x.e.Reason, x.e.Todo = QueueOverMax, msg, todoQueueAtMax
	if never {
		x.e.Verdict, x.e.Todo = NeverFits, todoNeverFitsQueue
	}
	return true
}

// scheduler: without a code, kube-scheduler's PodScheduled condition is
// what is known. Its reason, not its message, decides.
func (x *explainer) scheduler() bool {
	cond := podScheduled(x.in.Pod)
	switch {
	case cond == nil:
		x.e.Verdict = NotTriedYet
		x.e.Reason = "muster has not recorded a decision for this pod yet"
		if x.stalled || x.in.Status == nil {
			x.e.Reason += "; muster-scheduler does not seem to be running"
		}
	case cond.Status == v1.ConditionFalse && cond.Reason == v1.PodReasonUnschedulable:
		// Admitted (or never held back at admission), and no node takes it.
		x.e.Verdict, x.e.Reason, x.e.Todo = NodesUnfit, cond.Message, todoNodesUnfit
		x.e.Details = x.nodeDetails()
	default:
		x.e.Verdict, x.e.Reason = SchedulerStatus, cond.Message
	}
	return true
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// sourceNoun names what defines a gang of kind k ("PodGroup", "Spark
// driver"), as its source says.
func sourceNoun(k gang.Kind) string {
	if src := gang.SourceOf(k); src != nil {
		return src.Noun()
	}
	return string(k)
}

func podScheduled(p *v1.Pod) *v1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == v1.PodScheduled {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// conditionLine renders a condition: "TYPE=STATUS REASON (for AGE): MESSAGE".
func conditionLine(c *v1.PodCondition, now time.Time) string {
	if c == nil {
		return ""
	}
	s := fmt.Sprintf("%s=%s", c.Type, c.Status)
	if c.Reason != "" {
		s += " " + c.Reason
	}
	if !c.LastTransitionTime.IsZero() {
		s += fmt.Sprintf(" (for %s)", now.Sub(c.LastTransitionTime.Time).Round(time.Second))
	}
	if c.Message != "" {
		s += ": " + c.Message
	}
	return s
}

func eventLines(events []v1.Event, max int) []string {
	evs := append([]v1.Event(nil), events...)
	sort.SliceStable(evs, func(i, j int) bool { return eventTime(evs[i]).Before(eventTime(evs[j])) })
	if len(evs) > max {
		evs = evs[len(evs)-max:]
	}
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		line := fmt.Sprintf("%s  %s  %s", eventTime(ev).UTC().Format(time.RFC3339), ev.Type, ev.Reason)
		if ev.Count > 1 {
			line += fmt.Sprintf(" (x%d)", ev.Count)
		}
		out = append(out, line+"  "+ev.Message)
	}
	return out
}

func eventTime(ev v1.Event) time.Time {
	switch {
	case !ev.LastTimestamp.IsZero():
		return ev.LastTimestamp.Time
	case !ev.EventTime.IsZero():
		return ev.EventTime.Time
	}
	return ev.CreationTimestamp.Time
}

// annotationProblems parses every muster annotation on the pod with the
// parsers the scheduler uses.
func annotationProblems(p *v1.Pod, g *GangFacts, policyErr error) []string {
	var out []string
	if policyErr != nil {
		out = append(out, policyErr.Error())
	}
	if g != nil && g.SpecErr != nil {
		out = append(out, g.SpecErr.Error())
	}
	return out
}

func gangStatus(st *status.Report, ref gang.Ref) *status.Gang {
	if st == nil {
		return nil
	}
	for i := range st.PendingGangs {
		if st.PendingGangs[i].Gang == ref.String() {
			return &st.PendingGangs[i]
		}
	}
	return nil
}

func gangLine(g *GangFacts, gs *status.Gang) string {
	var parts []string
	if g.MinMember > 0 {
		parts = append(parts, fmt.Sprintf("min %d", g.MinMember))
	}
	parts = append(parts, fmt.Sprintf("%d member(s) exist, %d bound", g.Members, g.Placed))
	if gs != nil {
		parts = append(parts, fmt.Sprintf("%s since %s", gs.Phase, gs.Since))
		if gs.Placed > 0 {
			parts = append(parts, fmt.Sprintf("%d reserved or bound", gs.Placed))
		}
		if gs.Timeouts > 0 {
			parts = append(parts, fmt.Sprintf("timed out %d time(s)", gs.Timeouts))
		}
		if gs.Position > 0 {
			parts = append(parts, fmt.Sprintf("number %d among the gangs waiting for room in %s", gs.Position, gs.Queue))
		}
		if len(gs.Holding) > 0 {
			parts = append(parts, fmt.Sprintf("holds %s on %d node(s) as the head of its queue", compactQuantities(gs.Holding), gs.HoldingNodes))
		}
	}
	return strings.Join(parts, ", ")
}

// compactQuantities renders quantities as "cpu=4,memory=16Gi".
func compactQuantities(q map[string]string) string {
	names := make([]string, 0, len(q))
	for n := range q {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		names[i] = n + "=" + q[n]
	}
	return strings.Join(names, ",")
}
