package sandbox

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTraceErrors(t *testing.T) {
	cases := map[string]struct {
		trace string
		want  []string
	}{
		"unknown field": {"events:\n  - at: 0s\n    batch: {name: a, namespace: b, count: 1, pod: {cpu: \"1\"}, duration: 1m, colour: red}\n",
			[]string{`unknown field "colour"`}},
		"bad duration": {"events:\n  - at: soon\n    batch: {name: a, namespace: b, count: 1, pod: {cpu: \"1\"}, duration: 1m}\n",
			[]string{`"soon" is not a duration`}},
		"every problem with its path": {`
events:
  - at: 0s
    batch: {name: A, namespace: b, count: 0, pod: {cpu: lots}, duration: 1m}
  - at: 1m
    spark: {name: s, namespace: ns, driver: {cpu: "1"}, executor: {cpu: "2"}, executors: 2, minExecutors: 3, duration: 0s}
  - at: 2m
    interrupt: {}
  - at: 3m
`, []string{
			`events[0].batch.name: "A" must be a lowercase name`,
			"events[0].batch.count: must be at least 1",
			`events[0].batch.pod.cpu: "lots" is not a positive quantity`,
			"events[1].spark.minExecutors: must be between 0 and executors (2)",
			"events[1].spark.duration: must be a positive duration",
			"events[2].interrupt: exactly one of pool and node must be set",
			"events[3]: exactly one of spark, training, batch, interrupt must be set, found 0",
		}},
		"duplicate app": {"events:\n  - at: 0s\n    batch: {name: a, namespace: b, count: 1, pod: {cpu: \"1\"}, duration: 1m}\n  - at: 1s\n    batch: {name: a, namespace: b, count: 1, pod: {cpu: \"1\"}, duration: 1m}\n",
			[]string{"events[1].batch.name: b/a is used twice (first at events[0])"}},
		"empty": {"events: []\n", []string{"events: a trace needs at least one event"}},
		"DRA and topology": {`
events:
  - at: 0s
    training: {name: a, namespace: ml, workers: 2, worker: {cpu: "1"}, devices: -1, topologyRequired: x/rack, topologyPreferred: x/rack, duration: 1m}
  - at: 1s
    training: {name: b, namespace: ml, workers: 2, worker: {cpu: "1"}, devices: 65, topologyRequired: "Not A Key", duration: 1m}
`, []string{
			"events[0].training.devices: must be between 0 and 64",
			"events[0].training: topologyRequired, topologyPreferred: annotations muster.dev/topology-required and muster.dev/topology-preferred: set one, not both",
			"events[1].training.devices: must be between 0 and 64",
			`events[1].training: topologyRequired, topologyPreferred:`,
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseTrace([]byte(tc.trace))
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestParseTraceSortsEvents(t *testing.T) {
	tr, err := ParseTrace([]byte("events:\n  - at: 2m\n    batch: {name: b, namespace: x, count: 1, pod: {cpu: \"1\"}, duration: 1m}\n  - at: 1m\n    batch: {name: a, namespace: x, count: 1, pod: {cpu: \"1\"}, duration: 1m}\n"))
	require.NoError(t, err)
	assert.Equal(t, "a", tr.Events[0].Batch.Name)
}

func TestParseClusterErrors(t *testing.T) {
	_, err := ParseCluster([]byte("pools:\n  - {capacityType: cheap, instanceType: m5, zone: a, count: 0, cpu: \"4\", memory: 1Gi}\n  - {capacityType: spot, instanceType: m5, zone: a, count: 1, cpu: x, memory: 1Gi}\n"))
	require.Error(t, err)
	for _, w := range []string{`pools[0].capacityType: "cheap" must be spot or on-demand`, "pools[0].count: must be at least 1", `pools[1].cpu: "x" is not a positive quantity`} {
		assert.Contains(t, err.Error(), w)
	}
	_, err = ParseCluster([]byte("pools:\n  - {capacityType: spot, instanceType: m5, zone: a, count: 1, cpu: \"4\", memory: 1Gi, devices: -2, rackSize: -1, block: \"no good\"}\n"))
	require.Error(t, err)
	for _, w := range []string{"pools[0].devices: must be between 0 and 64", "pools[0].rackSize: must not be negative", `pools[0].block: "no good" is not a label value`} {
		assert.Contains(t, err.Error(), w)
	}
}

// The built-in demo and short traces, cluster and queues are valid and
// consistent (interruptions name pools that exist).
func TestBuiltInInputs(t *testing.T) {
	for _, short := range []bool{false, true} {
		require.NoError(t, Validate(Options{Short: short}))
	}
	err := Validate(Options{Trace: []byte("events:\n  - at: 0s\n    interrupt: {pool: nowhere}\n")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `events[0].interrupt.pool: "nowhere" is not a pool of the cluster`)
	err = Validate(Options{Queues: []byte("queues:\n  - name: a\n    weight: 0\n")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "root.a.weight")
}
