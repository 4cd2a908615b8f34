package capacity

import (
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Keys that mark a node as being taken away. Each was checked against the
// project that sets it; see the notes by each group.
const (
	// PrefixNTH is the AWS node termination handler's key prefix, for taints
	// and labels alike. NTH taints only with TAINT_NODE=true (off by default);
	// otherwise it cordons, which Disruption also catches.
	PrefixNTH = "aws-node-termination-handler/"
	// The taints NTH v1.x sets (pkg/node/node.go), one per kind of event.
	TaintNTHSpotITN                 = PrefixNTH + "spot-itn"
	TaintNTHASGLifecycleTermination = PrefixNTH + "asg-lifecycle-termination"
	TaintNTHScheduledMaintenance    = PrefixNTH + "scheduled-maintenance"
	TaintNTHRebalanceRecommendation = PrefixNTH + "rebalance-recommendation"

	// TaintKarpenterDisrupted is Karpenter v1's (karpenter.sh/v1
	// DisruptedTaintKey) NoSchedule taint on a node it is about to remove,
	// with no value.
	TaintKarpenterDisrupted = "karpenter.sh/disrupted"
	// TaintKarpenterDisruption is the v1beta1 (Karpenter v0.32-v0.37) taint,
	// karpenter.sh/disruption=disrupting:NoSchedule. Only the "disrupting"
	// value counts: it is the one value Karpenter used for removal.
	TaintKarpenterDisruption      = "karpenter.sh/disruption"
	KarpenterDisruptingTaintValue = "disrupting"

	// cluster-autoscaler (utils/taints): ToBeDeleted (NoSchedule) once it
	// has decided to remove the node, DeletionCandidate (PreferNoSchedule)
	// while the node is unneeded and waiting out scale-down-unneeded-time.
	TaintCAToBeDeleted       = "ToBeDeletedByClusterAutoscaler"
	TaintCADeletionCandidate = "DeletionCandidateOfClusterAutoscaler"

	// KeyGKEImpendingTermination is set by GKE's node termination /
	// maintenance handlers before a preemption or host maintenance. Seen as
	// a NoSchedule taint in practice; GKE does not document it as a public
	// API, so muster also honours it as a label in case a handler labels
	// instead.
	KeyGKEImpendingTermination = "cloud.google.com/impending-node-termination"
)

// taintRule is one taint that says a node is going away.
type taintRule struct {
	key, value string // value "" matches any value
	why        string
}

// taintRules in the order Disruption reports them: the most imminent
// reclamation first, so the reason names what will actually happen first.
var taintRules = []taintRule{
	{TaintNTHSpotITN, "", "spot interruption notice"},
	{TaintNTHASGLifecycleTermination, "", "ASG scale-in"},
	{TaintNTHScheduledMaintenance, "", "EC2 scheduled maintenance"},
	{TaintNTHRebalanceRecommendation, "", "EC2 rebalance recommendation"},
	{TaintKarpenterDisrupted, "", "Karpenter disruption"},
	{TaintKarpenterDisruption, KarpenterDisruptingTaintValue, "Karpenter disruption"},
	{KeyGKEImpendingTermination, "", "GKE node termination"},
	{TaintCAToBeDeleted, "", "cluster-autoscaler scale-down"},
	{TaintCADeletionCandidate, "", "cluster-autoscaler scale-down candidate"},
}

// Disruption says whether a node is being taken away, and why, in a short
// phrase for events and logs. Such a node scores lowest and receives no new
// gang members: a gang placed there would lose a member within minutes.
//
// The checks run in a fixed order and the first that applies is reported,
// whatever the order of the taints: the known taints above, then any other
// aws-node-termination-handler/ taint (smallest key first, for newer NTH
// versions), then the GKE and NTH labels, and cordoning last: it is the least
// specific, since most of the schemes above cordon as well.
func Disruption(labels map[string]string, taints []v1.Taint, unschedulable bool) (reason string, disrupted bool) {
	for _, r := range taintRules {
		for _, t := range taints {
			if t.Key == r.key && (r.value == "" || t.Value == r.value) {
				shown := r.key
				if r.value != "" {
					shown += "=" + r.value
				}
				return "tainted " + shown + " (" + r.why + ")", true
			}
		}
	}
	var nth []string
	for _, t := range taints {
		if strings.HasPrefix(t.Key, PrefixNTH) {
			nth = append(nth, t.Key)
		}
	}
	if len(nth) > 0 {
		sort.Strings(nth)
		return "tainted " + nth[0] + " (node termination handler)", true
	}

	if _, ok := labels[KeyGKEImpendingTermination]; ok {
		return "labelled " + KeyGKEImpendingTermination + " (GKE node termination)", true
	}
	// NTH labels a node it is draining for a scheduled event (event-id,
	// action=UncordonAfterReboot, action-time) and removes the labels once
	// the node is back; muster counts any of its labels (docs/reference.md).
	nth = nth[:0]
	for k := range labels {
		if strings.HasPrefix(k, PrefixNTH) {
			nth = append(nth, k)
		}
	}
	if len(nth) > 0 {
		sort.Strings(nth)
		return "labelled " + nth[0] + " (node termination handler)", true
	}

	// The node lifecycle controller mirrors spec.unschedulable as this
	// taint; either is a cordon.
	if unschedulable {
		return "cordoned", true
	}
	for _, t := range taints {
		if t.Key == v1.TaintNodeUnschedulable {
			return "cordoned", true
		}
	}
	return "", false
}
