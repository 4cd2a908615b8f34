package metrics

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/component-base/metrics/testutil"
)

// The counters alerts and dashboards take increase() of exist at 0 before
// anything is counted, so that the first count is an increase.
func TestCountersStartAtZero(t *testing.T) {
	Register()
	InitQueues([]string{"root.ml", "root.batch"})
	GangTimeouts.WithLabelValues("root.batch").Inc()
	InitQueues([]string{"root.batch"}) // a reload keeps what was counted

	want := `
# HELP muster_config_reloads_total [ALPHA] Queue configurations (ConfigMap muster-queues) applied (success) or refused as a whole (invalid).
# TYPE muster_config_reloads_total counter
muster_config_reloads_total{result="invalid"} 0
muster_config_reloads_total{result="success"} 0
# HELP muster_gang_timeouts_total [ALPHA] Gangs that did not reach their quorum within their timeout.
# TYPE muster_gang_timeouts_total counter
muster_gang_timeouts_total{queue="root.batch"} 1
muster_gang_timeouts_total{queue="root.ml"} 0
# HELP muster_preemptions_total [ALPHA] Pods preempted by muster, by the preemptor's queue and reason (reclaim, priority).
# TYPE muster_preemptions_total counter
muster_preemptions_total{queue="root.batch",reason="priority"} 0
muster_preemptions_total{queue="root.batch",reason="reclaim"} 0
muster_preemptions_total{queue="root.ml",reason="priority"} 0
muster_preemptions_total{queue="root.ml",reason="reclaim"} 0
`
	require.NoError(t, testutil.GatherAndCompare(legacyregistry.DefaultGatherer, strings.NewReader(want),
		"muster_config_reloads_total", "muster_gang_timeouts_total", "muster_preemptions_total"))
}
