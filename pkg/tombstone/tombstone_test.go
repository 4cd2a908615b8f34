package tombstone

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestSet(t *testing.T) {
	tests := map[string]struct {
		addAt   []time.Duration // when "a" is added, from the start
		checkAt time.Duration
		want    bool
	}{
		"never added":                      {checkAt: 0, want: false},
		"just added":                       {addAt: []time.Duration{0}, checkAt: 0, want: true},
		"kept for at least keep":           {addAt: []time.Duration{59 * time.Second}, checkAt: 59*time.Second + time.Minute, want: true},
		"added late in a generation, kept": {addAt: []time.Duration{59 * time.Second}, checkAt: 119 * time.Second, want: true},
		"dropped after twice keep":         {addAt: []time.Duration{0}, checkAt: 2 * time.Minute, want: false},
		"added again, kept again":          {addAt: []time.Duration{0, 100 * time.Second}, checkAt: 150 * time.Second, want: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			start := time.Unix(1000, 0)
			clk := clocktesting.NewFakePassiveClock(start)
			s := New(clk, time.Minute)
			for _, at := range tc.addAt {
				clk.SetTime(start.Add(at))
				s.Add("a")
			}
			clk.SetTime(start.Add(tc.checkAt))
			assert.Equal(t, tc.want, s.Has("a"))
			assert.False(t, s.Has("b"), "a key never added")
		})
	}
}

func TestSetBounded(t *testing.T) {
	start := time.Unix(1000, 0)
	clk := clocktesting.NewFakePassiveClock(start)
	s := New(clk, time.Minute)
	for i := 0; i < 10; i++ {
		clk.SetTime(start.Add(time.Duration(i) * 30 * time.Second))
		for k := 0; k < 100; k++ {
			s.Add(string(rune('a'+i)) + string(rune(k)))
		}
		assert.LessOrEqual(t, s.Len(), 400, "at most two periods of keys (two adds of 100 per period)")
	}
}
