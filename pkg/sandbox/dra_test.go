package sandbox

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2/ktesting"
)

// TestSandboxDRA: the simulated DRA driver publishes the GPU nodes' devices,
// a training takes them through ResourceClaims, muster keeps it in one rack
// as required, and the report says which.
func TestSandboxDRA(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	var out bytes.Buffer
	r, err := Run(ctx, Options{
		Out: &out,
		Cluster: []byte(`
pools:
  - {name: cpu, capacityType: on-demand, instanceType: m5.2xlarge, zone: zone-a, count: 1, cpu: "8", memory: 32Gi}
  - {name: gpu, capacityType: on-demand, instanceType: p4d, zone: zone-a, count: 4, cpu: "8", memory: 32Gi, devices: 2, block: b0, rackSize: 2}
`),
		Queues: []byte("queues:\n  - name: ml\n    max: {deviceclass/gpu.sandbox.muster.dev: \"4\"}\nnamespaceQueues:\n  \"*\": root.ml\n"),
		Trace: []byte(`
name: dra
events:
  - at: 0s
    training: {name: a, namespace: ml, workers: 4, worker: {cpu: "1", memory: 1Gi}, devices: 1, topologyRequired: sandbox.muster.dev/rack, duration: 20s}
  - at: 1s
    training: {name: b, namespace: ml, workers: 4, worker: {cpu: "1", memory: 1Gi}, devices: 1, topologyRequired: sandbox.muster.dev/rack, duration: 20s}
`),
		TimeScale: 10, Timeout: 2 * time.Minute,
	})
	require.NoError(t, err, out.String())
	assert.Equal(t, 2, r.Gangs.Admitted, "both trainings ran, one after the other (the queue's max is 4 devices)")
	assert.Zero(t, r.Gangs.PartiallyBound)
	require.Len(t, r.Domains, 2)
	for _, d := range r.Domains {
		assert.Equal(t, 4, d.Workers, d.Gang)
		assert.Len(t, d.Racks, 1, "%s in one rack: %v", d.Gang, d.Racks)
	}
	q := queueReport(t, r, "root.ml")
	assert.Greater(t, q.WaitMax, 15.0, "the second training waited for the first's devices (queue max)")
	assert.Contains(t, out.String(), "racks / blocks")
}
