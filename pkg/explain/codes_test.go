package explain

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/pkg/waitreason"
)

// waiting gives the pod muster's condition, False with the code.
func waiting(code waitreason.Code, msg string) func(*v1.Pod) {
	return func(p *v1.Pod) {
		p.Status.Conditions = append(p.Status.Conditions, v1.PodCondition{Type: waitreason.ConditionType, Status: v1.ConditionFalse,
			Reason: string(code), Message: msg, LastTransitionTime: metav1.NewTime(now.Add(-2 * time.Minute))})
	}
}

// TestExplainFromCodes: the verdict follows the code muster recorded, for
// a plain pod and for a gang's member, whatever the message says: every
// message here says "quota", "never fit" and "fair share" at once.
func TestExplainFromCodes(t *testing.T) {
	tree, err := queue.Parse([]byte(queuesYAML))
	require.NoError(t, err)
	gref := gang.Ref{Kind: gang.KindPodGroup, Namespace: "team-a", Name: "train"}
	const words = "waiting for quota; it can never fit; fair share; not enough room"
	cases := map[waitreason.Code]struct{ plain, gang Verdict }{
		waitreason.MembersMissing:        {GangIncomplete, GangIncomplete},
		waitreason.MembersGated:          {GangIncomplete, GangIncomplete},
		waitreason.GangSourceMissing:     {GangSource, GangSource},
		waitreason.InvalidGang:           {BadAnnotation, BadAnnotation},
		waitreason.InvalidCapacityPolicy: {BadAnnotation, BadAnnotation},
		waitreason.NoQueueConfig:         {NoQueueConfig, NoQueueConfig},
		waitreason.NoQueue:               {NoQueue, NoQueue},
		waitreason.QueueAtMax:            {QueueOverMax, GangWaiting},
		waitreason.FairShare:             {QueueOverMax, GangWaiting},
		waitreason.NeverFitsQueue:        {NeverFits, NeverFits},
		waitreason.NeverFitsCluster:      {NeverFits, NeverFits},
		waitreason.NotEnoughRoom:         {GangWaiting, GangWaiting},
		waitreason.MinResources:          {GangWaiting, GangWaiting},
		waitreason.ReclaimUnderWay:       {GangWaiting, GangWaiting},
		waitreason.BackingOff:            {GangWaiting, GangWaiting},
		waitreason.Released:              {GangWaiting, GangWaiting},
	}
	for _, code := range codesInSource(t) {
		if code == waitreason.Admitted {
			continue
		}
		want, ok := cases[code]
		if !assert.Truef(t, ok, "code %s has no case here", code) {
			continue
		}
		t.Run(string(code), func(t *testing.T) {
			in := Input{Pod: pod("team-a", "1", waiting(code, words)), Tree: tree, Status: report("0"), SchedulerName: "muster", Now: now}
			e := Explain(in)
			assert.Equal(t, want.plain, e.Verdict, "plain pod, condition")
			assert.Equal(t, code, e.ReasonCode)
			assert.Equal(t, words, e.Reason, "the message is shown as it is")
			assert.NotEmpty(t, e.Todo)
			assert.Contains(t, e.Admission, "muster.dev/Admitted=False "+string(code)+" (for 2m0s): ")

			in.Gang = &GangFacts{Ref: gref, MinMember: 2, Members: 2}
			e = Explain(in)
			assert.Equal(t, want.gang, e.Verdict, "gang member, condition")
			assert.NotEmpty(t, e.Todo)

			// No condition: the gang's entry in the status.
			in.Pod = pod("team-a", "1")
			in.Status = report("0", status.Gang{Gang: gref.String(), Phase: "Pending", ReasonCode: code, Reason: words})
			e = Explain(in)
			assert.Equal(t, want.gang, e.Verdict, "gang member, status entry")
			assert.Equal(t, code, e.ReasonCode)
			assert.Equal(t, "PodGroup team-a/train is pending: "+words, e.Reason)
		})
	}
}

// TestExplainAdmittedPodNoNodeFits: a pod muster admitted after a wait
// (condition True) that no node takes is NoNodeFits, with the details its
// node filters' fixed reasons leave out.
func TestExplainAdmittedPodNoNodeFits(t *testing.T) {
	tree, err := queue.Parse([]byte(queuesYAML))
	require.NoError(t, err)
	gref := gang.Ref{Kind: gang.KindAnnotation, Namespace: "team-a", Name: "g"}
	p := pod("team-a", "1", unschedulable("0/6 nodes are available: 2 node is being taken away; no new gang members go there, "+
		"2 spot pool already holds half of the gang's spot members; another pool has room, 2 node is on-demand; the pod's capacity policy is require-spot."),
		func(p *v1.Pod) {
			p.Annotations[capacity.AnnotationPolicy] = string(capacity.RequireSpot)
			p.Status.Conditions = append(p.Status.Conditions, v1.PodCondition{Type: waitreason.ConditionType, Status: v1.ConditionTrue,
				Reason: string(waitreason.Admitted), Message: "admitted to queue root.analytics.adhoc"})
		})
	spot := func(name, pool string) NodeFacts {
		return NodeFacts{Name: name, View: capacity.NodeView{Type: capacity.Spot, Pool: pool}}
	}
	nodes := []NodeFacts{
		{Name: "od-0", View: capacity.NodeView{Type: capacity.OnDemand, Pool: "m5/a"}},
		{Name: "od-1", View: capacity.NodeView{Type: capacity.OnDemand, Pool: "m5/a"}},
		spot("spot-a0", "m5/a"), spot("spot-a1", "m5/a"),
		{Name: "spot-b0", View: capacity.NodeView{Type: capacity.Spot, Pool: "m5/b", Disrupted: true, Reason: "cordoned"}},
		{Name: "spot-b1", View: capacity.NodeView{Type: capacity.Spot, Pool: "m5/b", Disrupted: true, Reason: "tainted karpenter.sh/disrupted (Karpenter disruption)"}},
	}
	e := Explain(Input{Pod: p, SchedulerName: "muster", Now: now, Tree: tree, Status: report("0"),
		Gang: &GangFacts{Ref: gref, MinMember: 4, Members: 4, Placed: 2}, Nodes: nodes, GangNodes: []string{"spot-a0", "spot-a1"}})
	assert.Equal(t, NodesUnfit, e.Verdict)
	assert.Empty(t, e.ReasonCode, "admitted: no wait reason")
	assert.Equal(t, []string{
		"2 of 6 node(s) are not spot, which the capacity policy require-spot (annotation) requires",
		"2 node(s) are being taken away and get no new gang members: spot-b0 (cordoned), spot-b1 (tainted karpenter.sh/disrupted (Karpenter disruption))",
		"the gang's members per spot pool: m5/a 2; while another pool has room, one pool takes at most 2 of the gang's 4",
	}, e.Details)
	assert.Equal(t, "muster.dev/Admitted=True Admitted: admitted to queue root.analytics.adhoc", e.Admission)
}

// TestExplainUnknownCode: a code this explain does not know (a newer
// muster's) is not guessed at: kube-scheduler's condition decides.
func TestExplainUnknownCode(t *testing.T) {
	tree, err := queue.Parse([]byte(queuesYAML))
	require.NoError(t, err)
	p := pod("team-a", "1", waiting("SomethingNew", "queue is at its max"), unschedulable("0/3 nodes are available: queue is at its max."))
	e := Explain(Input{Pod: p, SchedulerName: "muster", Now: now, Tree: tree, Status: report("0")})
	assert.Equal(t, NodesUnfit, e.Verdict)
}

// codesInSource lists the waitreason.Code constants as pkg/waitreason
// declares them, so that a new code without a meaning fails here.
func codesInSource(t *testing.T) []waitreason.Code {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../waitreason/waitreason.go", nil, 0)
	require.NoError(t, err)
	var out []waitreason.Code
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
			return false
		}
		for _, v := range vs.Values {
			s, err := strconv.Unquote(v.(*ast.BasicLit).Value)
			require.NoError(t, err)
			out = append(out, waitreason.Code(s))
		}
		return false
	})
	require.Len(t, out, 17, "the codes of pkg/waitreason")
	return out
}
