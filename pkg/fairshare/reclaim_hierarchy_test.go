package fairshare

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// A victim's parent below its guarantee protects it, even when the victim's
// own leaf guarantees nothing; a parent the preemptor shares does not.
func TestReclaimRespectsAncestorGuarantees(t *testing.T) {
	tree, err := queue.Parse([]byte(`
queues:
  - name: analytics
    guaranteed: {cpu: "8"}
    queues:
      - name: etl
      - name: adhoc
        guaranteed: {cpu: "2"}
  - name: ml
    guaranteed: {cpu: "4"}
  - name: batch
`))
	require.NoError(t, err)
	cpu := func(n int64) resources.Vector { return resources.Vector{v1.ResourceCPU: n * 1000} }
	now := time.Now()
	victims := []Victim{
		{Key: "etl-1", Queue: "root.analytics.etl", Node: 0, Request: cpu(2), Started: now, DisruptionAllowed: true},
		{Key: "etl-2", Queue: "root.analytics.etl", Node: 0, Request: cpu(2), Started: now, DisruptionAllowed: true},
	}
	usage := map[string]resources.Vector{
		"root": cpu(4), "root.analytics": cpu(4), "root.analytics.etl": cpu(4),
	}
	in := func(preemptor string) ReclaimInput {
		return ReclaimInput{Tree: tree, Usage: usage, Queue: tree.Get(preemptor),
			Members: []gang.Member{{Name: "p", Request: cpu(2)}},
			Nodes:   []gang.Node{{Name: "n", Free: resources.Vector{}}}, Victims: victims}
	}
	// ml (below its guarantee) may not take from etl: analytics holds 4 of its guaranteed 8.
	plan, why := Reclaim(in("root.ml"))
	assert.Nil(t, plan)
	assert.Contains(t, message(why), "victim queues keep their guarantees")
	// adhoc shares analytics with etl: moving capacity inside analytics is fine.
	plan, why = Reclaim(in("root.analytics.adhoc"))
	require.NotNil(t, plan, why)
	assert.Len(t, plan.Victims, 1)
}
