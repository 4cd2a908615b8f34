// Package metrics defines muster's Prometheus metrics (docs/reference.md) through
// k8s.io/component-base/metrics, registered once into the registry that
// kube-scheduler serves on /metrics. The pure core never imports this
// package; the plugins report to it.
package metrics

import (
	"sync"
	"sync/atomic"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"

	"muster.dev/muster/pkg/fairshare"
)

const subsystem = "muster"

// Label values.
const (
	ReloadSuccess = "success"
	ReloadInvalid = "invalid"
)

var (
	// ConfigReloads counts queue configurations applied or refused.
	ConfigReloads = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem:      subsystem,
		Name:           "config_reloads_total",
		Help:           "Queue configurations (ConfigMap muster-queues) applied (success) or refused as a whole (invalid).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})

	// GangAdmissionWait observes how long gangs waited for admission.
	GangAdmissionWait = metrics.NewHistogramVec(&metrics.HistogramOpts{
		Subsystem:      subsystem,
		Name:           "gang_admission_wait_seconds",
		Help:           "Time from a gang's first pod arriving to the gang being admitted whole.",
		Buckets:        metrics.ExponentialBuckets(0.1, 2, 16),
		StabilityLevel: metrics.ALPHA,
	}, []string{"queue"})

	// GangTimeouts counts gangs whose members were released after their timeout.
	GangTimeouts = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem:      subsystem,
		Name:           "gang_timeouts_total",
		Help:           "Gangs that did not reach their quorum within their timeout.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"queue"})

	// Preemptions counts pods preempted, by the preemptor's queue and reason.
	Preemptions = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem:      subsystem,
		Name:           "preemptions_total",
		Help:           "Pods preempted by muster, by the preemptor's queue and reason (reclaim, priority).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"queue", "reason"})

	// Placements counts pods bound, by capacity type and role.
	Placements = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem:      subsystem,
		Name:           "placements_total",
		Help:           "Pods bound by muster, by the node's capacity type (spot, on-demand) and the pod's role (driver, executor, other).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"capacity_type", "role"})

	queueResourceDesc = metrics.NewDesc(subsystem+"_queue_resource",
		"Resources of a queue's subtree by type: guaranteed, max, allocated, reserved, pending, fair_share.",
		[]string{"queue", "resource", "type"}, nil, metrics.ALPHA, "")
	queuePodsDesc = metrics.NewDesc(subsystem+"_queue_pods",
		"Pods of a queue's subtree by state: pending, running.",
		[]string{"queue", "state"}, nil, metrics.ALPHA, "")
)

// QueueSample is one queue's gauges at a point in time.
type QueueSample struct {
	Queue string
	// Resources maps a type (guaranteed, max, ...) to resource name -> amount
	// in the unit Prometheus users expect (cores for cpu, bytes, counts).
	Resources map[string]map[string]float64
	// Pods maps a state (pending, running) to a count.
	Pods map[string]int
}

// QueueSource produces the queue gauges at scrape time.
type QueueSource func() []QueueSample

var (
	registerOnce sync.Once
	queueSource  atomic.Pointer[QueueSource]
)

// Register registers muster's metrics; later calls do nothing. The reload
// results are exported at 0 from the start: a counter that first appears
// at 1 is no increase to Prometheus (increase() and rate() need two
// samples), so the first refused edit after a restart would not fire
// MusterConfigReloadRefused.
func Register() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(ConfigReloads, GangAdmissionWait, GangTimeouts, Preemptions, Placements)
		legacyregistry.CustomMustRegister(&queueCollector{})
		for _, r := range []string{ReloadSuccess, ReloadInvalid} {
			ConfigReloads.WithLabelValues(r)
		}
	})
}

// InitQueues exports the per-queue counters (gang timeouts, preemptions by
// reason) at 0 for the given leaf queues, for the reason Register does so
// for the reload results: so that the first timeout or preemption of a
// queue is an increase, and the dashboard's panels show 0 rather than "no
// data". Counters already counting keep their value.
func InitQueues(leaves []string) {
	for _, q := range leaves {
		GangTimeouts.WithLabelValues(q)
		for _, r := range []string{fairshare.ReasonReclaim, fairshare.ReasonPriority} {
			Preemptions.WithLabelValues(q, r)
		}
	}
}

// SetQueueSource sets where the queue gauges come from (the running
// scheduler's queue ledger); nil removes them.
func SetQueueSource(src QueueSource) {
	if src == nil {
		queueSource.Store(nil)
		return
	}
	queueSource.Store(&src)
}

// queueCollector computes the queue gauges from the live ledger when
// scraped, so they are never stale and cost nothing between scrapes.
type queueCollector struct {
	metrics.BaseStableCollector
}

func (c *queueCollector) DescribeWithStability(ch chan<- *metrics.Desc) {
	ch <- queueResourceDesc
	ch <- queuePodsDesc
}

func (c *queueCollector) CollectWithStability(ch chan<- metrics.Metric) {
	src := queueSource.Load()
	if src == nil {
		return
	}
	for _, s := range (*src)() {
		for typ, res := range s.Resources {
			for name, v := range res {
				ch <- metrics.NewLazyConstMetric(queueResourceDesc, metrics.GaugeValue, v, s.Queue, name, typ)
			}
		}
		for state, n := range s.Pods {
			ch <- metrics.NewLazyConstMetric(queuePodsDesc, metrics.GaugeValue, float64(n), s.Queue, state)
		}
	}
}
