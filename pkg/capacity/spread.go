package capacity

import "sort"

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

// AssignPools plans where n more spot members of a gang go. counts holds the
// gang's members already in each pool, capacityPerPool how many more each
// pool can take (a pool missing from it takes none). It returns the number of
// new members per pool (pools given none are left out) and whether all n fit;
// when they do not, the partial plan shows how many did.
//
// Members go one at a time to the pool that holds the fewest of the gang
// among those with room, ties to the smallest pool name, so the plan is
// deterministic and as even as capacity allows. That honours the half rule
// whenever it can be honoured: while members remain unplaced at most one pool
// can be at the limit (two would already hold the whole gang), so the
// fewest-first choice goes past the limit only when that pool is the only
// one with room, which is the packing fallback the rule allows.
func AssignPools(counts map[string]int, capacityPerPool map[string]int, n int) (map[string]int, bool) {
	plan := map[string]int{}
	pools := make([]string, 0, len(capacityPerPool))
	for p, c := range capacityPerPool {
		if c > 0 {
			pools = append(pools, p)
		}
	}
	sort.Strings(pools)
	for placed := 0; placed < n; placed++ {
		best := ""
		for _, p := range pools {
			if plan[p] >= capacityPerPool[p] {
				continue
			}
			if best == "" || counts[p]+plan[p] < counts[best]+plan[best] {
				best = p
			}
		}
		if best == "" {
			return plan, false
		}
		plan[best]++
	}
	return plan, true
}
