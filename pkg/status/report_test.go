package status

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEncodeFitsAConfigMap(t *testing.T) {
	tests := []struct {
		name        string
		gangs       int
		wantOmitted bool
	}{
		{name: "small report, whole", gangs: 10},
		{name: "20,000 pending gangs, trimmed to the oldest", gangs: 20000, wantOmitted: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Report{UpdatedAt: "2026-11-27T12:00:00Z", Config: Config{Valid: true}}
			for i := 0; i < 1000; i++ {
				r.Queues = append(r.Queues, Queue{Queue: fmt.Sprintf("root.q%d", i), Allocated: map[string]string{"cpu": "12"}})
			}
			for i := 0; i < tc.gangs; i++ {
				r.PendingGangs = append(r.PendingGangs, Gang{Gang: fmt.Sprintf("PodGroup ns/gang-%05d", i), Queue: "root.q1",
					Phase: "Pending", Reason: strings.Repeat("not enough room yet ", 3)})
			}
			b, err := Encode(r)
			require.NoError(t, err)
			assert.LessOrEqual(t, len(b), MaxSize)
			got, err := Decode(b)
			require.NoError(t, err)
			assert.Len(t, got.Queues, 1000, "the queues are always whole")
			assert.Equal(t, tc.gangs, len(got.PendingGangs)+got.PendingGangsOmitted, "every gang is listed or counted")
			if !tc.wantOmitted {
				assert.Zero(t, got.PendingGangsOmitted)
				return
			}
			require.Positive(t, got.PendingGangsOmitted)
			assert.Equal(t, "PodGroup ns/gang-00000", got.PendingGangs[0].Gang, "the oldest are kept")
			assert.Greater(t, len(b), MaxSize*9/10, "not trimmed far more than needed")
		})
	}
}
