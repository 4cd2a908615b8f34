package capacity

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMaxPerPool(t *testing.T) {
	cases := map[string]struct{ members, want int }{
		"no members": {0, 1}, "negative": {-3, 1}, "one": {1, 1}, "two": {2, 1}, "three": {3, 2},
		"four": {4, 2}, "seven": {7, 4}, "eight": {8, 4}, "nine": {9, 5}, "hundred": {100, 50},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, MaxPerPool(tc.members))
		})
	}
}

func TestSpreadAllows(t *testing.T) {
	cases := map[string]struct {
		count, members int
		otherHasRoom   bool
		want           bool
	}{
		"empty pool":                               {0, 8, true, true},
		"fourth of eight":                          {3, 8, true, true},
		"fifth of eight, another pool has room":    {4, 8, true, false},
		"fifth of eight, no other pool has room":   {4, 8, false, true},
		"all eight in one pool when it is alone":   {7, 8, false, true},
		"second of two, another pool has room":     {1, 2, true, false},
		"single member":                            {0, 1, true, true},
		"second of three, another pool has room":   {1, 3, true, true},
		"third of three, another pool has room":    {2, 3, true, false},
		"already past the limit, others have room": {6, 8, true, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, SpreadAllows(tc.count, tc.members, tc.otherHasRoom))
		})
	}
}

func TestSpreadScore(t *testing.T) {
	cases := map[string]struct {
		count, members int
		want           int64
	}{
		"empty pool":          {0, 8, 100},
		"one of eight":        {1, 8, 75},
		"two of eight":        {2, 8, 50},
		"three of eight":      {3, 8, 25},
		"at the limit":        {4, 8, 0},
		"past the limit":      {6, 8, 0},
		"negative count":      {-1, 8, 100},
		"single member, none": {0, 1, 100},
		"single member, one":  {1, 1, 0},
		"no members":          {0, 0, 100},
		"one of nine":         {1, 9, 80},
		"two of nine":         {2, 9, 60},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, SpreadScore(tc.count, tc.members))
		})
	}
	for members := 0; members <= 20; members++ {
		for count := 1; count <= members+1; count++ {
			assert.LessOrEqual(t, SpreadScore(count, members), SpreadScore(count-1, members),
				"more members in the pool must not score higher (%d of %d)", count, members)
		}
	}
}

func TestAssignPools(t *testing.T) {
	cases := map[string]struct {
		counts, capacity map[string]int
		n                int
		want             map[string]int
		wantOK           bool
	}{
		"gang of 8 over four roomy pools": {
			capacity: map[string]int{"a": 8, "b": 8, "c": 8, "d": 8}, n: 8,
			want: map[string]int{"a": 2, "b": 2, "c": 2, "d": 2}, wantOK: true},
		"gang of 8 over four uneven pools": {
			capacity: map[string]int{"a": 8, "b": 8, "c": 2, "d": 1}, n: 8,
			want: map[string]int{"a": 3, "b": 2, "c": 2, "d": 1}, wantOK: true},
		"gang of 8 over two pools, one full: all in the other": {
			capacity: map[string]int{"full": 0, "roomy": 8}, n: 8,
			want: map[string]int{"roomy": 8}, wantOK: true},
		"gang of 8, one pool only": {
			capacity: map[string]int{"only": 10}, n: 8,
			want: map[string]int{"only": 8}, wantOK: true},
		"small pool fills, the rest packs the big one": {
			capacity: map[string]int{"big": 8, "small": 3}, n: 8,
			want: map[string]int{"big": 5, "small": 3}, wantOK: true},
		"members already placed count towards the pool": {
			counts: map[string]int{"a": 3}, capacity: map[string]int{"a": 10, "b": 10}, n: 5,
			want: map[string]int{"a": 1, "b": 4}, wantOK: true},
		"a pool at the limit gets none while another has room": {
			counts: map[string]int{"a": 4}, capacity: map[string]int{"a": 4, "b": 4}, n: 4,
			want: map[string]int{"b": 4}, wantOK: true},
		"placed members in a pool without capacity still count": {
			counts: map[string]int{"gone": 2, "a": 0}, capacity: map[string]int{"a": 5, "b": 5}, n: 4,
			want: map[string]int{"a": 2, "b": 2}, wantOK: true},
		"ties go to the smallest name": {
			capacity: map[string]int{"b": 1, "a": 1, "c": 1}, n: 1,
			want: map[string]int{"a": 1}, wantOK: true},
		"not enough room: partial plan": {
			capacity: map[string]int{"a": 2, "b": 1}, n: 5,
			want: map[string]int{"a": 2, "b": 1}, wantOK: false},
		"no pools": {n: 2, want: map[string]int{}, wantOK: false},
		"negative capacity is none": {
			capacity: map[string]int{"a": -3, "b": 2}, n: 2,
			want: map[string]int{"b": 2}, wantOK: true},
		"nothing to place": {
			capacity: map[string]int{"a": 2}, n: 0,
			want: map[string]int{}, wantOK: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := AssignPools(tc.counts, tc.capacity, tc.n)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.wantOK, ok)
		})
	}
}

// TestAssignPoolsHalfRule checks the rule over every small case: within
// capacity, all placed exactly when room allows, and a pool ends past the
// limit with new members only if no other pool has room left.
func TestAssignPoolsHalfRule(t *testing.T) {
	pools := []string{"a", "b", "c", "d"}
	for mask := 0; mask < 4*4*4*4; mask++ {
		capacity := map[string]int{}
		room := 0
		for i, p := range pools {
			capacity[p] = (mask >> (2 * i)) & 3
			room += capacity[p]
		}
		for placedMask := 0; placedMask < 16; placedMask++ {
			counts := map[string]int{}
			placed := 0
			for i, p := range pools {
				counts[p] = (placedMask >> i) & 1
				placed += counts[p]
			}
			for n := 0; n <= 9; n++ {
				name := fmt.Sprintf("capacity %v counts %v n %d", capacity, counts, n)
				plan, ok := AssignPools(counts, capacity, n)
				again, _ := AssignPools(counts, capacity, n)
				require.Equal(t, plan, again, "deterministic: %s", name)

				sum := 0
				for p, k := range plan {
					require.Positive(t, k, name)
					require.LessOrEqual(t, k, capacity[p], name)
					sum += k
				}
				require.Equal(t, min(n, room), sum, name)
				require.Equal(t, n <= room, ok, name)

				limit := MaxPerPool(placed + n)
				for p, k := range plan {
					if counts[p]+k <= limit {
						continue
					}
					for _, q := range pools {
						if q != p {
							require.Equal(t, capacity[q], plan[q], "%s: %s past the limit %d while %s has room", name, p, limit, q)
						}
					}
				}
			}
		}
	}
}
