package capacity

// The spread rule (docs/reference.md): a gang's spot members are spread over
// spot pools so that no single pool holds more than half of them when another
// pool has room. One interruption tends to take a whole pool (one instance
// type in one zone), and a gang that loses most of its members at once is as
// good as lost; with at most half in any pool, a gang of two or more always
// keeps members elsewhere.

// MaxPerPool is the most of a gang's spotMembers one pool may hold while
// another pool has room: half, rounded up, and at least 1. Rounding up keeps
// the rule satisfiable with two pools for any gang size (rounding down would
// ask three pools of a gang of 3) while still leaving every gang of two or
// more with a member outside any one pool.
func MaxPerPool(spotMembers int) int {
	return max((spotMembers+1)/2, 1)
}

// SpreadAllows says whether one more of a gang's spot members may go to a
// pool that already holds countInPool of the gang's spotMembers. Past the
// limit only when no other pool has room: the rule spreads, it must not
// strand a gang that fits.
func SpreadAllows(countInPool, spotMembers int, otherPoolHasRoom bool) bool {
	return !otherPoolHasRoom || countInPool < MaxPerPool(spotMembers)
}

// SpreadScore ranks pools for the next spot member, 0..100: 100 for a pool
// holding none of the gang, falling linearly to 0 at MaxPerPool. Measuring
// against the limit rather than the gang size keeps the slope steep where it
// matters, so members drift to emptier pools well before the rule bites.
func SpreadScore(countInPool, spotMembers int) int64 {
	limit := int64(MaxPerPool(spotMembers))
	c := min(max(int64(countInPool), 0), limit)
	return MaxScore * (limit - c) / limit
}
