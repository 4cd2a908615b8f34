package explain

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
)

// TestExplainGangOfEachSource: whatever its source, a gang short of members
// is GangIncomplete, and a queue label taken from what defines the gang is
// named after it.
func TestExplainGangOfEachSource(t *testing.T) {
	tree, err := queue.Parse([]byte(queuesYAML))
	require.NoError(t, err)
	cases := map[gang.Kind]string{
		gang.KindPodGroup:   "label muster.dev/queue=adhoc on the gang's PodGroup",
		gang.KindWorkload:   "label muster.dev/queue=adhoc on the gang's PodGroup",
		gang.KindSpark:      "label muster.dev/queue=adhoc on the gang's Spark driver",
		gang.KindRayCluster: "label muster.dev/queue=adhoc on the gang's RayCluster",
		gang.KindJobSet:     "label muster.dev/queue=adhoc on the gang's JobSet",
	}
	for kind, via := range cases {
		t.Run(string(kind), func(t *testing.T) {
			ref := gang.Ref{Kind: kind, Namespace: "team-a", Name: "g"}
			e := Explain(Input{Pod: pod("team-a", "1"), SchedulerName: "muster", Now: now, Tree: tree, Status: report("0"),
				Gang: &GangFacts{Ref: ref, MinMember: 4, Members: 3, QueueLabel: "adhoc"}})
			assert.Equal(t, GangIncomplete, e.Verdict, "reason: %s", e.Reason)
			assert.Equal(t, ref.String()+" needs 4 members to start together and 3 exist (1 missing); none is bound until all 4 can be placed at once", e.Reason)
			assert.Equal(t, via, e.QueueVia)
		})
	}
}
