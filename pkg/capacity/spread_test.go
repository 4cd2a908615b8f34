package capacity

import (
	"testing"

	"github.com/stretchr/testify/assert"
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
