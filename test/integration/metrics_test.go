package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
)

// TestMetricsEndpoint: after a small workload that touches every path (a
// config reload accepted and one refused, plain pods on spot and on-demand,
// a gang admitted after reclaiming its queue's guarantee, a gang timing
// out), the scheduler's real /metrics endpoint carries every metric of
// docs/reference.md with its labels and values that match what happened.
func TestMetricsEndpoint(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	createNodes(t,
		node("metrics-od", "4", "16Gi", map[string]string{capacity.LabelMuster: "on-demand"}),
		node("metrics-spot", "4", "16Gi", map[string]string{capacity.LabelMuster: "spot"}))
	cm := setQueues(t, fmt.Sprintf(`
queues:
  - name: owner
    guaranteed: {cpu: "4"}
    namespaces: [%q]
  - name: borrower
    max: {cpu: "8"}
    namespaces: [%q]
namespaceQueues:
  %s: root.borrower
`, ns, ns, ns))
	s := startMuster(t)
	before := scrape(t, s.Addr)
	base := func(name string, labels map[string]string) float64 { return sumMetric(before, name, labels) }

	// The borrower fills the cluster.
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "fill", 8, "1", 0, nil)))
	waitFor(t, time.Minute, "the borrower to fill both nodes", func(context.Context) (bool, error) { return countBound(t, ns) == 8, nil })

	// A gang in the owner queue, below its guarantee: admitted after reclaim.
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, gangPods(ns, "train", 2, "1", 0,
		map[string]string{gang.LabelGang: "train", queue.LabelQueue: "owner"}, map[string]string{gang.AnnotationMinMember: "2"})))
	waitBound(t, ns, "train-0", time.Minute)
	waitBound(t, ns, "train-1", time.Minute)

	// A gang that cannot complete (3 of 4 members exist) times out.
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, gangPods(ns, "short", 3, "1", 0,
		map[string]string{gang.LabelGang: "short", queue.LabelQueue: "owner"},
		map[string]string{gang.AnnotationMinMember: "4", gang.AnnotationTimeout: "1s"})))

	// A refused edit.
	cm.Data[queue.ConfigKey] = "queues: [{name: owner, weight: -1}]"
	_, err := env.cp.Client.CoreV1().ConfigMaps(musterNamespace).Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)

	var mf map[string]*dto.MetricFamily
	waitFor(t, time.Minute, "the timeout and the refused edit in /metrics", func(context.Context) (bool, error) {
		mf = scrape(t, s.Addr)
		return sumMetric(mf, "muster_gang_timeouts_total", map[string]string{"queue": "root.owner"}) > base("muster_gang_timeouts_total", map[string]string{"queue": "root.owner"}) &&
			sumMetric(mf, "muster_config_reloads_total", map[string]string{"result": "invalid"}) > base("muster_config_reloads_total", map[string]string{"result": "invalid"}), nil
	})

	delta := func(name string, labels map[string]string) float64 {
		return sumMetric(mf, name, labels) - base(name, labels)
	}
	assert.GreaterOrEqual(t, sumMetric(mf, "muster_config_reloads_total", map[string]string{"result": "success"}), 1.0)
	assert.Equal(t, 1.0, delta("muster_config_reloads_total", map[string]string{"result": "invalid"}))
	assert.Equal(t, 2.0, delta("muster_preemptions_total", map[string]string{"queue": "root.owner", "reason": "reclaim"}),
		"two borrower pods preempted for the 2-CPU gang, no more")
	assert.Equal(t, 10.0, delta("muster_placements_total", map[string]string{"role": "other"}), "8 fillers + 2 gang members bound")
	assert.Equal(t, 10.0, delta("muster_placements_total", map[string]string{"capacity_type": "spot"})+delta("muster_placements_total", map[string]string{"capacity_type": "on-demand"}))
	assert.Positive(t, delta("muster_placements_total", map[string]string{"capacity_type": "spot"}))
	assert.Positive(t, delta("muster_placements_total", map[string]string{"capacity_type": "on-demand"}))
	assert.GreaterOrEqual(t, delta("muster_gang_timeouts_total", map[string]string{"queue": "root.owner"}), 1.0)

	// The admission wait histogram: one observation for the owner's gang.
	h := histogram(mf, "muster_gang_admission_wait_seconds", "root.owner")
	require.NotNil(t, h, "muster_gang_admission_wait_seconds{queue=root.owner}")
	assert.GreaterOrEqual(t, h.GetSampleCount(), uint64(1))
	assert.Positive(t, h.GetSampleSum())

	// The queue gauges, straight from the ledger at scrape time.
	gaugeOf := func(q, res, typ string) float64 {
		return sumMetric(mf, "muster_queue_resource", map[string]string{"queue": q, "resource": res, "type": typ})
	}
	assert.Equal(t, 4.0, gaugeOf("root.owner", "cpu", "guaranteed"))
	assert.Equal(t, 8.0, gaugeOf("root.borrower", "cpu", "max"))
	assert.Equal(t, 2.0, gaugeOf("root.owner", "cpu", "allocated"), "the gang's two members")
	assert.Equal(t, 6.0, gaugeOf("root.borrower", "cpu", "allocated"), "eight fillers less two preempted")
	assert.Equal(t, 3.0, gaugeOf("root.owner", "cpu", "pending"), "the short gang's three members wait")
	for _, typ := range []string{"guaranteed", "allocated", "reserved", "pending", "fair_share"} {
		assert.True(t, hasSeries(mf, "muster_queue_resource", map[string]string{"queue": "root.owner", "resource": "cpu", "type": typ}),
			"a series for type %s, even when it is 0", typ)
	}
	assert.Positive(t, gaugeOf("root.owner", "cpu", "fair_share"))
	assert.Equal(t, 2.0, sumMetric(mf, "muster_queue_pods", map[string]string{"queue": "root.owner", "state": "running"}))
	assert.Equal(t, 3.0, sumMetric(mf, "muster_queue_pods", map[string]string{"queue": "root.owner", "state": "pending"}), "the short gang")
}

func histogram(mf map[string]*dto.MetricFamily, name, queueName string) *dto.Histogram {
	fam, ok := mf[name]
	if !ok {
		return nil
	}
	for _, m := range fam.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "queue" && l.GetValue() == queueName {
				return m.GetHistogram()
			}
		}
	}
	return nil
}

func hasSeries(mf map[string]*dto.MetricFamily, name string, want map[string]string) bool {
	fam, ok := mf[name]
	if !ok {
		return false
	}
	for _, m := range fam.GetMetric() {
		if labelsMatch(m, want) {
			return true
		}
	}
	return false
}
