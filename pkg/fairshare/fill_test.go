package fairshare

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// Unit tests of progressiveFill's steps; share_test.go and
// property_test.go test Compute whole.

func TestPace(t *testing.T) {
	of := resources.Vector{cpu: cores(8), gpu: 4}
	cases := map[string]struct {
		need      resources.Vector
		weight    float64
		wantRate  map[v1.ResourceName]float64
		wantReach float64
	}{
		"one resource: the whole capacity per unit of level": {
			need: resources.Vector{cpu: cores(4)}, weight: 1,
			wantRate: map[v1.ResourceName]float64{cpu: 8000}, wantReach: 0.5,
		},
		"the dominant resource sets the pace of all": {
			need: resources.Vector{cpu: cores(2), gpu: 2}, weight: 1,
			wantRate: map[v1.ResourceName]float64{cpu: 4000, gpu: 4}, wantReach: 0.5,
		},
		"twice the weight: twice as fast, there in half the level": {
			need: resources.Vector{cpu: cores(4)}, weight: 2,
			wantRate: map[v1.ResourceName]float64{cpu: 16000}, wantReach: 0.25,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rate, reach := pace(tc.need, of, tc.weight)
			assert.Equal(t, tc.wantRate, rate)
			assert.InDelta(t, tc.wantReach, reach, 1e-12)
		})
	}
}

// TestFillingRise: the level after each rise and what each child has by
// then (cpus), until no child grows.
func TestFillingRise(t *testing.T) {
	capacity := resources.Vector{cpu: cores(8)}
	cases := map[string]struct {
		weights []float64
		wants   []float64 // cpus, nothing allocated yet
		rest    float64
		want    []string // per rise
	}{
		"plenty: both stop at what they want together": {
			weights: []float64{1, 1}, wants: []float64{2, 2}, rest: 8,
			want: []string{"level 0.25: 2 2"},
		},
		"a resource runs out: each stops with its weighted part": {
			weights: []float64{1, 1}, wants: []float64{8, 8}, rest: 4,
			want: []string{"level 0.25: 2 2"},
		},
		"weights 1:3": {
			weights: []float64{1, 3}, wants: []float64{8, 8}, rest: 8,
			want: []string{"level 0.25: 2 6"},
		},
		"one wants little and stops first; the other goes on": {
			weights: []float64{1, 1}, wants: []float64{1, 8}, rest: 6,
			want: []string{"level 0.125: 1 0", "level 0.625: 1 5"},
		},
		"nobody wants more": {
			weights: []float64{1, 1}, wants: []float64{0, 0}, rest: 6,
			want: []string{},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			kids := make([]*queue.Queue, len(tc.weights))
			wants := make([]resources.Vector, len(tc.weights))
			alloc := make([]resources.Vector, len(tc.weights))
			for i, w := range tc.weights {
				kids[i] = &queue.Queue{Name: fmt.Sprint(i), Weight: w}
				wants[i] = resources.Vector{cpu: cores(tc.wants[i])}
				alloc[i] = resources.Vector{}
			}
			rest := resources.Vector{cpu: cores(tc.rest)}
			f := newFilling(kids, wants, alloc, rest, capacity, capacity)
			got := []string{}
			for f.rise() {
				has := make([]string, len(kids))
				for i := range kids {
					has[i] = fmt.Sprint(float64(f.extra[i][cpu]) / 1000)
				}
				got = append(got, fmt.Sprintf("level %v: %s", f.level, strings.Join(has, " ")))
				if len(got) > len(kids) {
					break // each rise stops a child
				}
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestTrimToRest(t *testing.T) {
	cases := map[string]struct {
		extra []resources.Vector
		rest  resources.Vector
		want  []resources.Vector
	}{
		"within rest: as it is": {
			extra: []resources.Vector{{gpu: 3}, {gpu: 3}}, rest: resources.Vector{gpu: 7},
			want: []resources.Vector{{gpu: 3}, {gpu: 3}},
		},
		"a unit over: the last child gives it back": {
			extra: []resources.Vector{{gpu: 3}, {gpu: 3}, {gpu: 3}}, rest: resources.Vector{gpu: 8},
			want: []resources.Vector{{gpu: 3}, {gpu: 3}, {gpu: 2}},
		},
		"more than the last child has: then the one before": {
			extra: []resources.Vector{{gpu: 3}, {gpu: 1}, {}}, rest: resources.Vector{gpu: 2},
			want: []resources.Vector{{gpu: 2}, {gpu: 0}, {gpu: 0}},
		},
		"each resource on its own; one not in rest is left alone": {
			extra: []resources.Vector{{gpu: 2, cpu: 5}, {gpu: 2, mem: 9}}, rest: resources.Vector{gpu: 3, cpu: 5},
			want: []resources.Vector{{gpu: 2, cpu: 5}, {gpu: 1, mem: 9}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			trimToRest(tc.extra, tc.rest)
			assert.Equal(t, tc.want, tc.extra)
		})
	}
}
