package capacity

// MaxScore is the top of the score range: kube-scheduler's MaxNodeScore,
// which every score plugin's result must stay within.
const MaxScore int64 = 100

// Weights split the MusterCapacity score between its concerns; the plugin
// fills them from MusterCapacityArgs (each 0..100, validated there).
type Weights struct {
	Policy, Spread, Disruption int32
}

// ScoreInput is what the plugin knows about one node for one pod.
type ScoreInput struct {
	// PolicyPreference is Preference(policy, TypeOf(node)), 0..100.
	PolicyPreference int64
	// SpreadScore is SpreadScore(...) for a gang's spot member on a spot
	// node, 0..100, 100 best for spreading. Pass 100 where spreading does
	// not apply (not a gang, not spot): an on-demand node has no pool to
	// crowd.
	SpreadScore int64
	// Disrupted is Disruption(...)'s verdict on the node.
	Disrupted bool
}

// Score combines the concerns into one node score, 0..100.
//
// A disrupted node scores 0, full stop: nothing else about a node that is
// going away matters, and 0 is the lowest a score can be, so no healthy node
// with the same inputs (or any inputs) ranks below it. A healthy node gets
// full marks (100) for the disruption concern, and the total is the weighted
// mean
//
//	(Policy·PolicyPreference + Spread·SpreadScore + Disruption·100) / (Policy+Spread+Disruption)
//
// rounded half up. So the Disruption weight sets the floor a healthy node
// keeps above a disrupted one, 100·Disruption/sum, and dilutes the other two.
// Inputs out of 0..100 are clamped and negative weights read as 0, so the
// result always stays in range; with all weights 0 (which the args
// validation refuses) only the disruption verdict is left: healthy 100.
//
// kube-scheduler then multiplies this score by the plugin's weight in the
// profile and adds it to the other score plugins' (NodeResourcesFit,
// InterPodAffinity, ...): the profile weight decides how much capacity
// placement counts against packing and affinity, these weights only how the
// plugin's own 0..100 is shared. To make "disrupted scores lowest" beat the
// other plugins' preferences, the profile weight must be large enough; the
// plugin's Filter keeps new gang members off disrupted nodes regardless.
func Score(w Weights, in ScoreInput) int64 {
	if in.Disrupted {
		return 0
	}
	wp, ws, wd := nonNeg(w.Policy), nonNeg(w.Spread), nonNeg(w.Disruption)
	sum := wp + ws + wd
	if sum == 0 {
		return MaxScore
	}
	total := wp*clamp(in.PolicyPreference) + ws*clamp(in.SpreadScore) + wd*MaxScore
	return (total + sum/2) / sum
}

func nonNeg(w int32) int64 {
	if w < 0 {
		return 0
	}
	return int64(w)
}

func clamp(s int64) int64 {
	return min(max(s, 0), MaxScore)
}
