package gang

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestDeadline(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	cases := map[string]struct {
		firstSeen, backoffUntil time.Time
		want                    time.Time
	}{
		"from the first member":                  {firstSeen: t0, want: t0.Add(time.Minute)},
		"from the end of the backoff":            {firstSeen: t0, backoffUntil: t0.Add(5 * time.Minute), want: t0.Add(6 * time.Minute)},
		"a backoff that ended before the member": {firstSeen: t0, backoffUntil: t0.Add(-time.Hour), want: t0.Add(time.Minute)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			info := Info{FirstSeen: tc.firstSeen, BackoffUntil: tc.backoffUntil, Spec: Spec{Timeout: time.Minute}}
			assert.Equal(t, tc.want, info.Deadline())
		})
	}
}
