package integration

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/test/framework"
)

func cpu(q string) map[v1.ResourceName]string { return map[v1.ResourceName]string{v1.ResourceCPU: q} }

// TestFoundationOptIn: muster binds the pods that ask for it, on real nodes,
// and never touches a pod meant for another scheduler.
func TestFoundationOptIn(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	createNodes(t, node("optin-1", "4", "8Gi", nil), node("optin-2", "4", "8Gi", nil))
	s := startMuster(t)
	// Metrics are process-wide and earlier tests' schedulers counted too.
	attempts := map[string]string{"profile": "muster"}
	baseline := sumMetric(scrape(t, s.Addr), "scheduler_schedule_attempts_total", attempts)

	// The other scheduler's pod first: muster's queue orders by arrival, so
	// had muster taken it, it would have tried it before its own pod.
	pods := []cluster.Pod{
		{Namespace: ns, Name: "for-default", Requests: cpu("1")},
		{Namespace: ns, Name: "for-other", SchedulerName: "other-scheduler", Requests: cpu("1")},
	}
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, pods))
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{
		{Namespace: ns, Name: "for-muster", SchedulerName: scheduler.SchedulerName, Requests: cpu("1")},
	}))

	bound := waitBound(t, ns, "for-muster", 30*time.Second)
	assert.Contains(t, []string{"optin-1", "optin-2"}, bound.Spec.NodeName)
	waitFor(t, 10*time.Second, "the Scheduled event", func(ctx context.Context) (bool, error) {
		ev := scheduledEvents(t, ns, "for-muster")
		return len(ev) == 1, nil
	})
	ev := scheduledEvents(t, ns, "for-muster")
	assert.Equal(t, scheduler.SchedulerName, ev[0].ReportingController, "the binding event names muster")

	for _, p := range pods {
		got, err := env.cp.Client.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
		require.NoError(t, err)
		assert.Empty(t, got.Spec.NodeName, "pod %s was bound by muster", p.Name)
		assert.Empty(t, got.Status.Conditions, "muster wrote a condition on pod %s", p.Name)
		assert.Empty(t, scheduledEvents(t, ns, p.Name))
	}
	assert.Equal(t, 1.0, sumMetric(scrape(t, s.Addr), "scheduler_schedule_attempts_total", attempts)-baseline,
		"muster attempted exactly its own pod")
}

// TestFoundationShippedConfig: muster-scheduler runs from
// manifests/scheduler-config.yaml, with every muster plugin enabled and
// its args decoded, and serves /healthz, /readyz and /metrics.
func TestFoundationShippedConfig(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	createNodes(t, node("shipped-1", "8", "16Gi", nil))
	s := startMuster(t)

	for _, path := range []string{"/healthz", "/livez"} {
		code, body := get(t, s.Addr, path)
		assert.Equal(t, http.StatusOK, code, "%s: %s", path, body)
	}
	waitFor(t, 30*time.Second, "/readyz", func(context.Context) (bool, error) {
		code, _ := get(t, s.Addr, "/readyz")
		return code == http.StatusOK, nil
	})

	// The effective configuration, as the scheduler itself reports it.
	code, body := get(t, s.Addr, "/configz")
	require.Equal(t, http.StatusOK, code, body)
	var cz struct {
		Componentconfig struct {
			ClientConnection struct {
				QPS   float64 `json:"qps"`
				Burst int     `json:"burst"`
			} `json:"clientConnection"`
			Profiles []struct {
				SchedulerName string `json:"schedulerName"`
				Plugins       struct {
					MultiPoint struct {
						Enabled []struct {
							Name string `json:"name"`
						} `json:"enabled"`
					} `json:"multiPoint"`
				} `json:"plugins"`
				PluginConfig []struct {
					Name string          `json:"name"`
					Args json.RawMessage `json:"args"`
				} `json:"pluginConfig"`
			} `json:"profiles"`
		} `json:"componentconfig"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &cz))
	cfg := cz.Componentconfig
	assert.Greater(t, cfg.ClientConnection.QPS, 50.0)
	assert.Greater(t, cfg.ClientConnection.Burst, 100)
	require.Len(t, cfg.Profiles, 1)
	assert.Equal(t, scheduler.SchedulerName, cfg.Profiles[0].SchedulerName)
	var enabled []string
	for _, p := range cfg.Profiles[0].Plugins.MultiPoint.Enabled {
		enabled = append(enabled, p.Name)
	}
	args := map[string]string{}
	for _, pc := range cfg.Profiles[0].PluginConfig {
		args[pc.Name] = string(pc.Args)
	}
	for _, name := range scheduler.PluginNames {
		assert.Contains(t, enabled, name)
		assert.Contains(t, args[name], `"kind":"`+name+`Args"`)
	}
	assert.Contains(t, args["MusterQueue"], `"queuesConfigMap":"muster-queues"`)

	// Scheduling shows up in the scheduler's own metrics (process-wide, so
	// counted from here).
	scheduled := map[string]string{"profile": "muster", "result": "scheduled"}
	baseline := sumMetric(scrape(t, s.Addr), "scheduler_schedule_attempts_total", scheduled)
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{
		{Namespace: ns, Name: "p", SchedulerName: scheduler.SchedulerName, Requests: cpu("1")},
	}))
	waitBound(t, ns, "p", 30*time.Second)
	waitFor(t, 10*time.Second, "the attempt in /metrics", func(context.Context) (bool, error) {
		return sumMetric(scrape(t, s.Addr), "scheduler_schedule_attempts_total", scheduled)-baseline == 1, nil
	})
}

// TestFoundationLeaderElection runs two muster-scheduler binaries on the
// shipped config: one leads and schedules, the other waits; when the leader
// dies the other takes over, and no pod is bound twice.
func TestFoundationLeaderElection(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	createNodes(t, node("le-1", "16", "32Gi", nil), node("le-2", "16", "32Gi", nil))
	leases := env.cp.Client.CoordinationV1().Leases(musterNamespace)
	t.Cleanup(func() { _ = leases.Delete(context.Background(), "muster-scheduler", metav1.DeleteOptions{}) })

	args := []string{
		"--config", filepath.Join(framework.RepoRoot(t), "manifests", "scheduler-config.yaml"),
		"--kubeconfig", env.cp.Kubeconfig,
		"--secure-port=0", "-v=2",
		// Short lease times keep the test quick; the mechanism is the same.
		"--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s", "--leader-elect-retry-period=500ms",
	}
	holder := func(ctx context.Context) string {
		l, err := leases.Get(ctx, "muster-scheduler", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}

	a := startBinary(t, ctx, args...)
	var first string
	waitFor(t, 60*time.Second, "the first instance to take the lease", func(ctx context.Context) (bool, error) {
		first = holder(ctx)
		return first != "", nil
	})
	b := startBinary(t, ctx, args...)
	waitFor(t, 60*time.Second, "the second instance to wait for the lease", func(context.Context) (bool, error) {
		return strings.Contains(b.Out.String(), "Attempting to acquire leader lease"), nil
	})

	createBatch := func(prefix string, n int) []string {
		var names []string
		var pods []cluster.Pod
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("%s-%d", prefix, i)
			names = append(names, name)
			pods = append(pods, cluster.Pod{Namespace: ns, Name: name, SchedulerName: scheduler.SchedulerName, Requests: cpu("500m")})
		}
		require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, pods))
		for _, name := range names {
			waitBound(t, ns, name, 60*time.Second)
		}
		return names
	}
	bindsBy := func(p *process) int { return strings.Count(p.Out.String(), "Successfully bound pod to node") }

	// The binaries log and record Events asynchronously (klog flushes every
	// few seconds): wait for what is written before judging it, and before
	// a SIGKILL would lose it.
	waitEvents := func(names []string) {
		for _, name := range names {
			waitFor(t, 30*time.Second, "the Scheduled event of "+name, func(context.Context) (bool, error) {
				return len(scheduledEvents(t, ns, name)) > 0, nil
			})
		}
	}
	before := createBatch("before", 5)
	waitFor(t, 30*time.Second, "the leader to log its 5 binds", func(context.Context) (bool, error) { return bindsBy(a) >= 5, nil })
	waitEvents(before)
	assert.Equal(t, 5, bindsBy(a), "the leader binds every pod")
	assert.Equal(t, 0, bindsBy(b), "the follower binds nothing")

	// Kill the leader outright, as a node failure would.
	require.NoError(t, a.Cmd.Process.Signal(syscall.SIGKILL))
	<-a.Done()
	waitFor(t, 60*time.Second, "the second instance to take over the lease", func(ctx context.Context) (bool, error) {
		h := holder(ctx)
		return h != "" && h != first, nil
	})
	after := createBatch("after", 5)
	waitFor(t, 30*time.Second, "the new leader to log its 5 binds", func(context.Context) (bool, error) { return bindsBy(b) >= 5, nil })
	assert.Equal(t, 5, bindsBy(b), "the new leader binds the new pods")
	waitEvents(after)
	for _, name := range append(before, after...) {
		assert.Len(t, scheduledEvents(t, ns, name), 1, "pod %s bound once", name)
	}
}

// TestFoundationBadConfig: a bad --config stops muster-scheduler at start,
// with a message that names the problem.
func TestFoundationBadConfig(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(framework.RepoRoot(t), "manifests", "scheduler-config.yaml"))
	require.NoError(t, err)
	// klog quotes the error, so the expectations avoid quote characters.
	cases := map[string]struct {
		config string // empty: the file does not exist
		want   []string
	}{
		"missing file": {"", []string{"no such file or directory"}},
		"not YAML":     {"profiles: [\n", []string{"yaml"}},
		"unknown args field": {strings.Replace(string(good), "backoffSeconds: 10", "backoffSecs: 10", 1),
			[]string{"decoding args for plugin MusterGang", "unknown field", "backoffSecs"}},
		"args out of range": {strings.Replace(string(good), "policyWeight: 60", "policyWeight: 500", 1),
			[]string{"MusterCapacityArgs.policyWeight: Invalid value: 500: must be between 0 and 100"}},
		"misspelt plugin": {strings.Replace(string(good), "- name: MusterGang\n", "- name: MusterGnag\n", 1),
			[]string{"MusterGnag", "does not exist"}},
		"bad status ConfigMap": {strings.Replace(string(good), "statusConfigMap: muster-queue-status", "statusConfigMap: Muster_Status", 1),
			[]string{"MusterQueueArgs.statusConfigMap: Invalid value", "Muster_Status"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			path := filepath.Join(t.TempDir(), "config.yaml")
			if tc.config != "" {
				require.NoError(t, os.WriteFile(path, []byte(tc.config), 0o644))
			}
			p := startBinary(t, ctx, "--config", path, "--kubeconfig", env.cp.Kubeconfig, "--secure-port=0", "--leader-elect=false")
			select {
			case <-p.Done():
			case <-ctx.Done():
				t.Fatalf("muster-scheduler kept running with a bad config:\n%s", p.Out.String())
			}
			require.Error(t, p.Err(), "exit status")
			for _, want := range tc.want {
				assert.Contains(t, p.Out.String(), want)
			}
		})
	}
}

func scheduledEvents(t *testing.T, ns, pod string) []v1.Event {
	t.Helper()
	list, err := env.cp.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.AndSelectors(
			fields.OneTermEqualSelector("involvedObject.name", pod),
			fields.OneTermEqualSelector("reason", "Scheduled"),
		).String(),
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	require.NoError(t, err)
	return list.Items
}

// get fetches a path from a scheduler's secure endpoint (self-signed).
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the scheduler's self-signed cert
	}}
	resp, err := client.Get("https://" + addr + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// scrape returns the metric families of a scheduler's /metrics.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, addr, "/metrics")
	require.Equal(t, http.StatusOK, code)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := parser.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	return mf
}

// sumMetric adds up the samples of a counter or gauge whose labels include want.
func sumMetric(mf map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	fam, ok := mf[name]
	if !ok {
		return 0
	}
	var sum float64
	for _, m := range fam.GetMetric() {
		if !labelsMatch(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		}
	}
	return sum
}

// labelsMatch says whether the sample has every label of want.
func labelsMatch(m *dto.Metric, want map[string]string) bool {
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}
