package capacity

// EligibleFor is the gang planner's node test for members whose class has
// policies[class]: base (the pod's own constraints: taints, selectors,
// affinity) and Eligible on the node's view.
func EligibleFor(base func(class, node int) bool, views []NodeView, policies []Policy, strict bool) func(class, node int) bool {
	return func(class, n int) bool {
		return base(class, n) && Eligible(policies[class], views[n], strict)
	}
}
