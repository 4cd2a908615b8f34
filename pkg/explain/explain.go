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
	"k8s.io/apimachinery/pkg/api/resource"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
	"muster.dev/muster/pkg/status"
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
	Now    time.Time
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

	Usage []QueueLine `json:"queues,omitempty"`
	// StatusAge is how old the published status is; a stale status means
	// muster-scheduler is not running or not leading.
	StatusAge string `json:"statusAge,omitempty"`
	// Condition is the scheduler's own PodScheduled condition.
	Condition string   `json:"condition,omitempty"`
	Events    []string `json:"events,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
}

// Explain derives the verdict. Checks run in the order the scheduler applies
// them, so the first that fails is the one that holds the pod.
func Explain(in Input) Explanation {
	p := in.Pod
	e := Explanation{Pod: p.Namespace + "/" + p.Name, Phase: string(p.Status.Phase), Node: p.Spec.NodeName}
	req := resources.PodRequest(p)
	e.Request = req.String()
	e.Condition = conditionLine(p, in.Now)
	e.Events = eventLines(in.Events, 8)
	var stalled bool
	if in.Status != nil {
		if t, err := time.Parse(time.RFC3339, in.Status.UpdatedAt); err == nil {
			age := in.Now.Sub(t)
			e.StatusAge = age.Round(time.Second).String()
			if age > time.Minute {
				stalled = true
				e.Warnings = append(e.Warnings, fmt.Sprintf(
					"muster's published status is %s old: muster-scheduler is not running or not leading (check its pods and the Lease muster-scheduler in its namespace)", e.StatusAge))
			}
		}
	} else {
		e.Warnings = append(e.Warnings, "the status ConfigMap muster-queue-status could not be read: is muster-scheduler installed and running?")
	}

	// Where the pod stands before any scheduling question.
	switch {
	case p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed:
		e.Verdict, e.Reason = Finished, fmt.Sprintf("the pod has finished (%s); it holds no quota", p.Status.Phase)
	case p.Spec.NodeName != "":
		e.Verdict, e.Reason = Bound, fmt.Sprintf("the pod is bound to node %s", p.Spec.NodeName)
	case p.Spec.SchedulerName != in.SchedulerName:
		e.Verdict = NotMuster
		e.Reason = fmt.Sprintf("the pod's spec.schedulerName is %q: muster (%q) does not schedule it", p.Spec.SchedulerName, in.SchedulerName)
		e.Todo = []string{fmt.Sprintf("set spec.schedulerName: %s in the pod template to opt in", in.SchedulerName)}
		return e
	}

	// The queue. A gang's queue comes from its source.
	label := p.Labels[queue.LabelQueue]
	if in.Gang != nil && in.Gang.QueueLabel != "" {
		label = in.Gang.QueueLabel
	}
	var leaf *queue.Queue
	switch {
	case in.Status != nil && !in.Status.Config.Valid:
		if e.Verdict == "" {
			e.Verdict = NoQueueConfig
			e.Reason = "no valid queue configuration is in force, so muster admits nothing"
			if in.Status.Config.LastError != "" {
				e.Reason += ": " + in.Status.Config.LastError
			}
			e.Todo = []string{"fix the queue ConfigMap (check it first with `muster validate -f queues.yaml`)"}
		}
	case in.Tree == nil:
		if in.TreeErr != nil {
			e.Warnings = append(e.Warnings, fmt.Sprintf("the queue configuration could not be read: %v", in.TreeErr))
		}
	default:
		q, perr := in.Tree.Place(p.Namespace, label)
		if perr != nil {
			if e.Verdict == "" {
				e.Verdict, e.Reason = NoQueue, perr.Msg
				e.Todo = []string{
					fmt.Sprintf("set the label %s to a leaf queue that admits namespace %s (`muster status` lists them)", queue.LabelQueue, p.Namespace),
					"or ask the cluster admin to add the namespace to a queue's namespaces or to namespaceQueues",
				}
			}
		} else {
			leaf = q
			e.Queue = q.Path
			if label != "" {
				e.QueueVia = "label " + queue.LabelQueue + "=" + label
				if in.Gang != nil && in.Gang.QueueLabel != "" && in.Gang.QueueLabel != p.Labels[queue.LabelQueue] {
					e.QueueVia += " on the gang's " + sourceNoun(in.Gang.Ref.Kind)
				}
			} else {
				e.QueueVia = "namespaceQueues"
			}
			e.Usage = usageLines(q, in.Status)
		}
	}

	if in.Gang != nil {
		e.Gang = in.Gang.Ref.String()
		e.GangLine = gangLine(in.Gang, gangStatus(in.Status, in.Gang.Ref))
	}

	role := capacity.RoleOf(p.Labels)
	var queuePolicy capacity.Policy
	if leaf != nil {
		queuePolicy = leaf.CapacityPolicy
	}
	policy, source, perr := capacity.PolicyFor(p.Annotations, role, queuePolicy)
	if perr == nil {
		e.Policy = fmt.Sprintf("%s (%s)", policy, source.WithQueue(e.Queue))
	}
	if e.Verdict != "" {
		return e
	}

	// Annotations muster cannot use: the pod waits until they are fixed.
	if bad := annotationProblems(p, in.Gang, perr); len(bad) > 0 {
		e.Verdict = BadAnnotation
		e.Reason = strings.Join(bad, "; ")
		e.Todo = []string{"fix the annotation in the pod template (or on the Spark driver) and recreate the pod; muster does not guess a value"}
		return e
	}

	if g := in.Gang; g != nil {
		switch {
		case g.Missing != "":
			e.Verdict, e.Reason = GangSource, g.Missing
			e.Todo = []string{"create what the gang refers to; until then none of its members is bound"}
			return e
		case g.MinMember > 0 && g.Members < int(g.MinMember):
			e.Verdict = GangIncomplete
			e.Reason = fmt.Sprintf("%s needs %d members to start together and %d exist (%d missing); none is bound until all %d can be placed at once",
				g.Ref, g.MinMember, g.Members, int(g.MinMember)-g.Members, g.MinMember)
			e.Todo = []string{fmt.Sprintf("create the %d missing member(s), or lower the gang's minimum", int(g.MinMember)-g.Members)}
			return e
		}
	}

	// The queue's limits, for a plain pod (a gang's whole quota is checked
	// at admission, which its status line reports).
	if leaf != nil && in.Status != nil && (in.Gang == nil || gangStatus(in.Status, in.Gang.Ref) == nil) {
		if msg, never := overMax(leaf, in.Status, req); msg != "" {
			e.Verdict, e.Reason = QueueOverMax, msg
			e.Todo = []string{"it is admitted by itself when running pods of the queue finish; to run more at once, ask the admin to raise the queue's max"}
			if never {
				e.Verdict = NeverFits
				e.Todo = []string{"the pod asks for more than the queue may ever hold: make it smaller or ask the admin to raise max"}
			}
			return e
		}
	}

	if g := in.Gang; g != nil {
		if gs := gangStatus(in.Status, g.Ref); gs != nil {
			e.Verdict = GangWaiting
			e.Reason = fmt.Sprintf("%s is %s: %s", g.Ref, strings.ToLower(gs.Phase), nonEmpty(gs.Reason, "waiting for its members to be placed"))
			e.Todo = gangTodo(gs.Reason)
			return e
		}
	}

	cond := podScheduled(p)
	switch {
	case cond == nil:
		e.Verdict = NotTriedYet
		e.Reason = "muster has not recorded a decision for this pod yet"
		if stalled || in.Status == nil {
			e.Reason += "; muster-scheduler does not seem to be running"
		}
	case strings.Contains(cond.Message, "never fit") || strings.Contains(cond.Message, "can never"):
		e.Verdict, e.Reason = NeverFits, cond.Message
		e.Todo = []string{"make the pod (or gang) smaller, or ask the admin for bigger nodes or a higher queue max"}
	case strings.Contains(cond.Message, "nodes are available"):
		e.Verdict, e.Reason = NodesUnfit, cond.Message
		e.Todo = []string{"no node can take the pod right now; it is retried as pods finish and nodes change",
			"check the pod's node selector, affinity, tolerations and capacity policy against the nodes"}
	default:
		e.Verdict, e.Reason = SchedulerStatus, cond.Message
	}
	return e
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

// gangTodo suggests what helps a gang waiting for admission, from the reason
// muster published.
func gangTodo(reason string) []string {
	switch {
	case strings.Contains(reason, "quota"):
		return []string{"the gang is admitted as a whole once its queue has room for all of it; running pods of the queue must finish first",
			"or ask the admin to raise the queue's max"}
	case strings.Contains(reason, "fair share"):
		return []string{"other queues are below their fair share; the gang is admitted when its queue's turn comes"}
	case strings.Contains(reason, "not enough room"):
		return []string{"the nodes cannot hold the whole gang at once yet; it is admitted when enough frees up (muster never binds part of it)"}
	case strings.Contains(reason, "backing off"), strings.Contains(reason, "timed out"):
		return []string{"the gang timed out and backs off before the next try; if it keeps timing out, make it smaller or raise its timeout"}
	}
	return nil
}

func podScheduled(p *v1.Pod) *v1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == v1.PodScheduled {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func conditionLine(p *v1.Pod, now time.Time) string {
	c := podScheduled(p)
	if c == nil {
		return ""
	}
	s := fmt.Sprintf("PodScheduled=%s", c.Status)
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

// overMax checks the pod's request against the queue and every ancestor's
// own max, with the usage muster published. never is true when the request
// alone exceeds a max.
func overMax(leaf *queue.Queue, st *status.Report, req resources.Vector) (string, bool) {
	for _, q := range leaf.Ancestors() {
		if len(q.Max) == 0 {
			continue
		}
		line := findQueue(st, q.Path)
		if line == nil {
			continue
		}
		used := vector(line.Allocated).Plus(vector(line.Reserved))
		for _, r := range q.Max.Names() {
			if req[r] == 0 {
				continue
			}
			if req[r] > q.Max[r] {
				return fmt.Sprintf("the pod requests %s %s but queue %s's max is %s: it can never be admitted there",
					resources.Format(r, req[r]), r, q.Path, resources.Format(r, q.Max[r])), true
			}
			if used[r]+req[r] > q.Max[r] {
				return fmt.Sprintf("queue %s is at its max for %s: %s in use (allocated + reserved) + %s requested > %s max",
					q.Path, r, resources.Format(r, used[r]), resources.Format(r, req[r]), resources.Format(r, q.Max[r])), false
			}
		}
	}
	return "", false
}

func findQueue(st *status.Report, path string) *status.Queue {
	if st == nil {
		return nil
	}
	for i := range st.Queues {
		if st.Queues[i].Queue == path {
			return &st.Queues[i]
		}
	}
	return nil
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
	}
	return strings.Join(parts, ", ")
}

// usageLines returns the leaf's and its ancestors' published lines.
func usageLines(leaf *queue.Queue, st *status.Report) []QueueLine {
	var out []QueueLine
	for _, q := range leaf.Ancestors() {
		line := findQueue(st, q.Path)
		if line == nil {
			continue
		}
		ql := QueueLine{Queue: *line}
		if len(q.Max) > 0 {
			ql.OwnMax = q.Max.Quantities()
		}
		out = append(out, ql)
	}
	return out
}

// vector parses a status quantity map; unparsable entries are skipped (the
// scheduler wrote them, so they parse).
func vector(m map[string]string) resources.Vector {
	v := resources.Vector{}
	for k, s := range m {
		q, err := resource.ParseQuantity(s)
		if err != nil {
			continue
		}
		name := v1.ResourceName(k)
		v[name] = resources.FromQuantity(name, q)
	}
	return v
}
