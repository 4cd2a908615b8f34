// Package ops checks muster's operations artifacts against the code: the
// Grafana dashboard (manifests/dashboards/muster.json) and the alerts
// (manifests/prometheus-rule.yaml) may only query metrics that
// muster-scheduler exports, with labels those metrics have.
package ops

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	clientmetrics "k8s.io/client-go/tools/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
	schedmetrics "k8s.io/kubernetes/pkg/scheduler/metrics"

	musterMetrics "muster.dev/muster/pkg/metrics"
	// What cmd/muster-scheduler links: its init functions install the
	// metrics providers muster-scheduler has (client-go's, leader
	// election's). A provider it does not link registers nothing here, so
	// a query of its metrics fails the test.
	_ "muster.dev/muster/pkg/scheduler"
)

// targetLabels are the labels Prometheus adds to every series it scrapes
// (job, instance) and those the Prometheus Operator adds through a
// ServiceMonitor.
var targetLabels = []string{"job", "instance", "namespace", "service", "endpoint", "pod", "container"}

// synthetic are series that exist without any code exporting them: up is
// written by Prometheus for every scrape target (1 when the scrape
// succeeded).
var synthetic = map[string][]string{"up": nil}

// metricInfo is what the registry knows of one metric.
type metricInfo struct {
	labels map[string]bool
}

var (
	knownOnce sync.Once
	known     map[string]metricInfo
	knownErr  error
)

// knownMetrics registers what muster-scheduler registers (muster's metrics,
// kube-scheduler's, client-go's and leader election's) into the global
// registry it serves /metrics from, and returns every metric the registry
// describes, vectors without any series included.
func knownMetrics(t *testing.T) map[string]metricInfo {
	t.Helper()
	knownOnce.Do(func() { known, knownErr = describeRegistry() })
	require.NoError(t, knownErr)
	return known
}

func describeRegistry() (map[string]metricInfo, error) {
	musterMetrics.Register()
	schedmetrics.Register()
	// client-go registers its metrics (rest_client_*) when the first REST
	// client is built, leader election its own when the first elector is.
	clientmetrics.EnsureRegistered()
	if _, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: "muster-system", Name: "muster-scheduler"},
			LockConfig: resourcelock.ResourceLockConfig{Identity: "test"},
		},
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {}, OnStoppedLeading: func() {},
		},
		Name: "muster-scheduler",
	}); err != nil {
		return nil, fmt.Errorf("building a leader elector: %w", err)
	}

	// The registry itself is a prometheus.Collector; Describe walks every
	// registered collector, which Gather would not do for vectors that have
	// no series yet.
	reg, ok := legacyregistry.Registerer().(prometheus.Collector)
	if !ok {
		return nil, fmt.Errorf("legacyregistry's registerer is a %T, not a prometheus.Collector", legacyregistry.Registerer())
	}
	ch := make(chan *prometheus.Desc)
	go func() {
		reg.Describe(ch)
		close(ch)
	}()
	out := map[string]metricInfo{}
	for d := range ch {
		if d.Err() != nil {
			continue
		}
		name, labels, err := parseDesc(d.String())
		if err != nil {
			return nil, err
		}
		out[name] = metricInfo{labels: labels}
	}
	for name, labels := range synthetic {
		out[name] = metricInfo{labels: toSet(labels)}
	}
	return out, nil
}

// Desc has no accessors; its String is
// Desc{fqName: "...", help: "...", unit: "...", constLabels: {a="b",...}, variableLabels: {x,c(y),...}}.
var (
	descRE       = regexp.MustCompile(`^Desc\{fqName: "([^"]+)", help: .*, constLabels: \{(.*)\}, variableLabels: \{([^}]*)\}\}$`)
	constLabelRE = regexp.MustCompile(`(?:^|,)([a-zA-Z_][a-zA-Z0-9_]*)="`)
)

func parseDesc(s string) (string, map[string]bool, error) {
	m := descRE.FindStringSubmatch(s)
	if m == nil {
		return "", nil, fmt.Errorf("cannot parse %s", s)
	}
	labels := map[string]bool{}
	for _, c := range constLabelRE.FindAllStringSubmatch(m[2], -1) {
		labels[c[1]] = true
	}
	for _, v := range strings.Split(m[3], ",") {
		v = strings.TrimSuffix(strings.TrimPrefix(v, "c("), ")")
		if v != "" {
			labels[v] = true
		}
	}
	return m[1], labels, nil
}

func toSet(words []string) map[string]bool {
	m := map[string]bool{}
	for _, w := range words {
		m[w] = true
	}
	return m
}

func lookup(metrics map[string]metricInfo, name string) (metricInfo, map[string]bool, bool) {
	if info, ok := metrics[name]; ok {
		return info, nil, true
	}
	for suffix, extra := range map[string][]string{"_bucket": {"le"}, "_sum": nil, "_count": nil} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if info, ok := metrics[base]; ok {
				return info, toSet(extra), true
			}
		}
	}
	return metricInfo{}, nil, false
}

// suggest names known metrics that share the unknown one's first two words.
func suggest(metrics map[string]metricInfo, name string) string {
	parts := strings.SplitN(name, "_", 3)
	if len(parts) < 2 {
		return ""
	}
	prefix := parts[0] + "_" + parts[1]
	var near []string
	for m := range metrics {
		if strings.HasPrefix(m, prefix) {
			near = append(near, m)
		}
	}
	if len(near) == 0 {
		return ""
	}
	sort.Strings(near)
	return " (known: " + strings.Join(near, ", ") + ")"
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
