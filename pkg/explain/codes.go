package explain

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/pkg/waitreason"
)

// meaning is what a wait reason tells a tenant: the verdict and what to
// do, and for a gang's member where that differs (a gang waits for its
// queue's room as a whole).
type meaning struct {
	verdict     Verdict
	todo        []string
	gangVerdict Verdict
	gangTodo    []string
}

// meanings maps every code muster records to its verdict. A code missing
// here (a newer muster's) leaves the verdict to kube-scheduler's condition.
// NoQueue's todo names the namespace (todoNoQueue).
var meanings = map[waitreason.Code]meaning{
	waitreason.MembersMissing:        {verdict: GangIncomplete, todo: []string{"create the missing member(s), or lower the gang's minimum"}},
	waitreason.MembersGated:          {verdict: GangIncomplete, todo: todoGated},
	waitreason.GangSourceMissing:     {verdict: GangSource, todo: todoGangSource},
	waitreason.InvalidGang:           {verdict: BadAnnotation, todo: todoBadAnnotation},
	waitreason.InvalidCapacityPolicy: {verdict: BadAnnotation, todo: todoBadAnnotation},
	waitreason.NoQueueConfig:         {verdict: NoQueueConfig, todo: todoNoQueueConfig},
	waitreason.NoQueue:               {verdict: NoQueue},
	waitreason.QueueAtMax:            {verdict: QueueOverMax, todo: todoQueueAtMax, gangVerdict: GangWaiting, gangTodo: todoGangQuota},
	waitreason.FairShare:             {verdict: QueueOverMax, todo: todoFairShare, gangVerdict: GangWaiting, gangTodo: todoGangFairShare},
	waitreason.NeverFitsQueue:        {verdict: NeverFits, todo: todoNeverFitsQueue, gangTodo: todoNeverFits},
	waitreason.NeverFitsCluster:      {verdict: NeverFits, todo: todoNeverFits},
	waitreason.NotEnoughRoom:         {verdict: GangWaiting, todo: todoNotEnoughRoom},
	waitreason.MinResources:          {verdict: GangWaiting, todo: todoMinResources},
	waitreason.ReclaimUnderWay:       {verdict: GangWaiting, todo: todoReclaim},
	waitreason.BackingOff:            {verdict: GangWaiting, todo: todoBackingOff},
	waitreason.Released:              {verdict: GangWaiting, todo: todoReleased},
}

// forGang is the meaning for a gang's member.
func (m meaning) forGang() meaning {
	if m.gangVerdict != "" {
		m.verdict = m.gangVerdict
	}
	if m.gangTodo != nil {
		m.todo = m.gangTodo
	}
	return m
}

// What to do, by reason.
var (
	todoNoQueueConfig = []string{"fix the queue ConfigMap (check it first with `muster validate -f queues.yaml`)"}
	todoBadAnnotation = []string{"fix the annotation in the pod template (or on the Spark driver) and recreate the pod; muster does not guess a value"}
	todoGangSource    = []string{"create what the gang refers to; until then none of its members is bound"}
	todoGated         = []string{"pods held by scheduling gates do not count toward the gang's minimum; whatever set the gates (spec.schedulingGates) must lift them"}
	todoQueueAtMax    = []string{"it is admitted by itself when running pods of the queue finish; to run more at once, ask the admin to raise the queue's max"}
	todoGangQuota     = []string{"the gang is admitted as a whole once its queue has room for all of it; running pods of the queue must finish first",
		"or ask the admin to raise the queue's max"}
	todoFairShare      = []string{"other queues are below their fair share; the pod is admitted when its queue's turn comes"}
	todoGangFairShare  = []string{"other queues are below their fair share; the gang is admitted when its queue's turn comes"}
	todoNeverFitsQueue = []string{"the pod asks for more than the queue may ever hold: make it smaller or ask the admin to raise max"}
	todoNeverFits      = []string{"make the pod (or gang) smaller, or ask the admin for bigger nodes or a higher queue max"}
	todoNotEnoughRoom  = []string{"the nodes cannot hold the whole gang at once yet; it is admitted when enough frees up (muster never binds part of it)"}
	todoMinResources   = []string{"the PodGroup's minResources must be free in total before the gang is admitted; it is admitted when enough frees up, or lower minResources"}
	todoReclaim        = []string{"pods of queues above their guaranteed are being preempted to make room; the gang is admitted once they have exited"}
	todoBackingOff     = []string{"the gang timed out and backs off before the next try; if it keeps timing out, make it smaller or raise its timeout"}
	todoReleased       = []string{"the gang's admission was undone (see the reason); it is admitted again from scratch"}
	todoNodesUnfit     = []string{"no node can take the pod right now; it is retried as pods finish and nodes change",
		"check the pod's node selector, affinity, tolerations and capacity policy against the nodes"}
)

func todoNoQueue(namespace string) []string {
	return []string{
		fmt.Sprintf("set the label %s to a leaf queue that admits namespace %s (`muster status` lists them)", queue.LabelQueue, namespace),
		"or ask the cluster admin to add the namespace to a queue's namespaces or to namespaceQueues",
	}
}

// waitCode gives the verdict of the reason muster recorded: the code of
// the pod's muster.dev/Admitted condition while it is False, else the code
// of its gang's entry in the status. The message comes along for people;
// it is never read for the verdict.
func (x *explainer) waitCode() bool {
	var gs *status.Gang
	if x.in.Gang != nil {
		gs = gangStatus(x.in.Status, x.in.Gang.Ref)
	}
	gangMsg := func() string {
		return fmt.Sprintf("%s is %s: %s", x.in.Gang.Ref, strings.ToLower(gs.Phase), nonEmpty(gs.Reason, "waiting for its members to be placed"))
	}
	var code waitreason.Code
	var msg string
	if c := status.Condition(x.in.Pod); c != nil && c.Status == v1.ConditionFalse {
		code, msg = waitreason.Code(c.Reason), c.Message
	} else if gs != nil {
		code, msg = gs.ReasonCode, gangMsg()
	}
	m, known := meanings[code]
	if !known {
		if gs == nil {
			return false
		}
		// A gang entry without a code muster knows: it waits for admission.
		code, msg, m = gs.ReasonCode, gangMsg(), meaning{verdict: GangWaiting, todo: todoNotEnoughRoom}
	}
	if x.in.Gang != nil {
		m = m.forGang()
	}
	x.e.Verdict, x.e.Reason, x.e.ReasonCode, x.e.Todo = m.verdict, msg, code, m.todo
	if code == waitreason.NoQueue {
		x.e.Todo = todoNoQueue(x.in.Pod.Namespace)
	}
	return true
}
