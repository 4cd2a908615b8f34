package sandbox

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/controlplane"
	"muster.dev/muster/pkg/scheduler"
)

// TestFoundationSandbox runs the sandbox's short mode to the end and checks
// its summary against what the cluster itself shows.
func TestFoundationSandbox(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	var out bytes.Buffer
	checked := false
	summary, err := Run(ctx, Options{
		Out: &out, Short: true, Timeout: 3 * time.Minute,
		OnFinished: func(ctx context.Context, cp *controlplane.ControlPlane, s Summary) error {
			checked = true
			pods, err := cp.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
			require.NoError(t, err)
			nodes, err := cp.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			require.NoError(t, err)
			nodeLabels := map[string]map[string]string{}
			for _, n := range nodes.Items {
				nodeLabels[n.Name] = n.Labels
			}
			bound, succeeded := 0, 0
			byType, byZone, byTenant := map[string]int{}, map[string]int{}, map[string]int{}
			for _, p := range pods.Items {
				assert.Equal(t, scheduler.SchedulerName, p.Spec.SchedulerName)
				if p.Spec.NodeName == "" {
					continue
				}
				bound++
				if p.Status.Phase == v1.PodSucceeded {
					succeeded++
				}
				byType[string(capacity.TypeOf(nodeLabels[p.Spec.NodeName]))]++
				byZone[nodeLabels[p.Spec.NodeName][cluster.LabelZone]]++
				byTenant[p.Namespace]++
			}
			assert.Equal(t, len(pods.Items), s.Pods, "pods submitted")
			assert.Equal(t, bound, s.Bound, "pods bound")
			assert.Equal(t, succeeded, s.Succeeded, "pods succeeded")
			assert.Equal(t, byType, s.ByCapacityType)
			assert.Equal(t, byZone, s.ByZone)
			assert.Equal(t, byTenant, s.ByTenant)
			return nil
		},
	})
	require.NoError(t, err, out.String())
	require.True(t, checked, "OnFinished ran")
	assert.Positive(t, summary.Pods)
	assert.Equal(t, summary.Pods, summary.Bound, "every pod was bound")
	assert.Equal(t, summary.Pods, summary.Succeeded, "every pod finished")
	assert.LessOrEqual(t, summary.TimeToBind.P50, summary.TimeToBind.P95)
	assert.LessOrEqual(t, summary.TimeToBind.P95, summary.TimeToBind.Max)
	assert.Positive(t, summary.TimeToBind.Max)

	text := out.String()
	assert.Contains(t, text, "submitted Spark app")
	assert.Contains(t, text, summary.String(), "the summary is printed")
	assert.Contains(t, summary.String(), "bound")
}

// TestSandboxInterrupt: stopping the sandbox mid-run (Ctrl-C) returns at
// once and leaves nothing behind.
func TestSandboxInterrupt(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A temp directory of the test's own, so that control planes of other
	// test packages running at the same time do not count.
	t.Setenv("TMPDIR", t.TempDir())
	before := controlPlaneDirs(t)

	out := &watchedWriter{want: "submitted", seen: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Options{Out: out, TimeScale: 1, Timeout: 10 * time.Minute})
		done <- err
	}()
	select {
	case <-out.seen:
	case err := <-done:
		t.Fatalf("sandbox ended before the workload started: %v\n%s", err, out.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("the workload did not start:\n%s", out.String())
	}
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(time.Minute):
		t.Fatal("the sandbox did not stop within a minute of being interrupted")
	}
	assert.Contains(t, out.String(), "Interrupted")
	assert.Equal(t, before, controlPlaneDirs(t), "the control plane's directory was removed")
}

func controlPlaneDirs(t *testing.T) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(os.TempDir(), "muster-controlplane-*"))
	require.NoError(t, err)
	return m
}

// watchedWriter collects output and signals when it first contains want.
type watchedWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *watchedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func (w *watchedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
