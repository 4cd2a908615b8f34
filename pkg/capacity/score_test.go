package capacity

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestScore(t *testing.T) {
	defaults := Weights{Policy: 60, Spread: 30, Disruption: 10}
	cases := map[string]struct {
		w    Weights
		in   ScoreInput
		want int64
	}{
		"best node":                        {defaults, ScoreInput{PolicyPreference: 100, SpreadScore: 100}, 100},
		"policy mismatch":                  {defaults, ScoreInput{PolicyPreference: 0, SpreadScore: 100}, 40},
		"crowded pool":                     {defaults, ScoreInput{PolicyPreference: 100, SpreadScore: 0}, 70},
		"worst healthy node keeps a floor": {defaults, ScoreInput{}, 10},
		"disrupted best node":              {defaults, ScoreInput{PolicyPreference: 100, SpreadScore: 100, Disrupted: true}, 0},
		"disrupted worst node":             {defaults, ScoreInput{Disrupted: true}, 0},
		"policy only":                      {Weights{Policy: 100}, ScoreInput{PolicyPreference: 0, SpreadScore: 100}, 0},
		"spread only":                      {Weights{Spread: 5}, ScoreInput{PolicyPreference: 0, SpreadScore: 75}, 75},
		"disruption only":                  {Weights{Disruption: 1}, ScoreInput{}, 100},
		"disruption only, disrupted":       {Weights{Disruption: 1}, ScoreInput{Disrupted: true}, 0},
		"rounds half up":                   {Weights{1, 1, 1}, ScoreInput{PolicyPreference: 1, SpreadScore: 0}, 34}, // 101/3 = 33.67
		"rounds down below half":           {Weights{1, 1, 1}, ScoreInput{PolicyPreference: 0, SpreadScore: 0}, 33}, // 100/3 = 33.33
		"all weights zero, healthy":        {Weights{}, ScoreInput{}, 100},
		"all weights zero, disrupted":      {Weights{}, ScoreInput{PolicyPreference: 100, SpreadScore: 100, Disrupted: true}, 0},
		"inputs above range are clamped":   {defaults, ScoreInput{PolicyPreference: 500, SpreadScore: 101}, 100},
		"inputs below range are clamped":   {defaults, ScoreInput{PolicyPreference: -50, SpreadScore: -1}, 10},
		"negative weights read as zero":    {Weights{Policy: -100, Spread: 50}, ScoreInput{PolicyPreference: 0, SpreadScore: 50}, 50},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, Score(tc.w, tc.in))
		})
	}
}

// TestScoreBounds runs every combination of a spread of weights (zeros,
// extremes, out of range) and inputs: the score stays in 0..100, a disrupted
// node scores 0, and no healthy node scores below a disrupted one.
func TestScoreBounds(t *testing.T) {
	weights := []int32{-1, 0, 1, 7, 33, 99, 100, 1 << 30}
	inputs := []int64{-10, 0, 1, 49, 50, 99, 100, 1000}
	for _, wp := range weights {
		for _, ws := range weights {
			for _, wd := range weights {
				w := Weights{wp, ws, wd}
				for _, pp := range inputs {
					for _, sp := range inputs {
						healthy := Score(w, ScoreInput{PolicyPreference: pp, SpreadScore: sp})
						disrupted := Score(w, ScoreInput{PolicyPreference: pp, SpreadScore: sp, Disrupted: true})
						if !assert.GreaterOrEqual(t, healthy, int64(0), "%+v %d %d", w, pp, sp) ||
							!assert.LessOrEqual(t, healthy, MaxScore, "%+v %d %d", w, pp, sp) ||
							!assert.Zero(t, disrupted, "%+v %d %d", w, pp, sp) {
							return
						}
					}
				}
			}
		}
	}
}
