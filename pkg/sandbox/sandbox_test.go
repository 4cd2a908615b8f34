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
)

// A small cluster where the training gang must wait for the batch pods.
const testCluster = `
pools:
  - {name: od, capacityType: on-demand, instanceType: m5.2xlarge, zone: zone-a, count: 2, cpu: "8", memory: 32Gi}
  - {name: spot-a, capacityType: spot, instanceType: m5.2xlarge, zone: zone-a, count: 1, cpu: "8", memory: 32Gi}
  - {name: spot-b, capacityType: spot, instanceType: c5.2xlarge, zone: zone-b, count: 1, cpu: "8", memory: 32Gi}
`

const testQueues = `
queues:
  - name: batch
  - name: ml
  - name: spark
namespaceQueues:
  ml-research: root.ml
  spark-etl: root.spark
  "*": root.batch
`

// The training gang binds as the batch pods end (54 to 66 s), around the
// notice on spot-b at 60 s: with the machine loaded, a worker may be placed
// on spot-b just before the notice and lost with the node, and a batch pod
// there may end just as the node goes. Either way both gangs reached their
// quorum and the report agrees with the cluster, which is what is checked.
const testTrace = `
name: test
events:
  - at: 0s
    batch: {name: jobs, namespace: batch, count: 4, pod: {cpu: "4", memory: 4Gi}, duration: 60s}
  - at: 5s
    training: {name: train, namespace: ml-research, workers: 3, worker: {cpu: "6", memory: 8Gi}, duration: 30s}
  - at: 10s
    spark: {name: etl, namespace: spark-etl, driver: {cpu: "1", memory: 2Gi}, executor: {cpu: "2", memory: 4Gi}, minExecutors: 1, executors: 2, duration: 60s}
  - at: 60s
    interrupt: {pool: spot-b, notice: 5s}
`

// TestSandboxTrace replays a short trace and checks the report against what
// the cluster shows.
func TestSandboxTrace(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	var out bytes.Buffer
	checked := false
	r, err := Run(ctx, Options{
		Out: &out, Trace: []byte(testTrace), Cluster: []byte(testCluster), Queues: []byte(testQueues),
		TimeScale: 10, Timeout: 3 * time.Minute,
		OnFinished: func(ctx context.Context, f Finished) error {
			checked = true
			cp, r := f.ControlPlane, f.Report
			pods, err := cp.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
			require.NoError(t, err)
			succeeded := 0
			for _, p := range pods.Items {
				if p.Status.Phase == v1.PodSucceeded {
					succeeded++
				}
				if p.Labels["spark-role"] == "driver" {
					n, err := cp.Client.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
					require.NoError(t, err)
					assert.Equal(t, capacity.OnDemand, capacity.TypeOf(n.Labels), "the driver ran on on-demand")
				}
			}
			assert.Equal(t, succeeded, r.Pods.Succeeded, "succeeded pods")
			return nil
		},
	})
	require.NoError(t, err, out.String())
	require.True(t, checked)
	assert.Zero(t, r.Gangs.PartiallyBound, "no gang was ever partially bound")
	assert.Equal(t, 2, r.Gangs.Total)
	assert.Equal(t, 2, r.Gangs.Admitted)
	assert.Zero(t, r.Pods.NeverBound)
	ml := queueReport(t, r, "root.ml")
	assert.Equal(t, 3, ml.Pods)
	assert.Greater(t, ml.WaitMax, 0.0, "the training gang waited for room")
	assert.Greater(t, r.TraceSeconds, 60.0)
	text := out.String()
	assert.Contains(t, text, "spot interruption notice")
	assert.Contains(t, text, "gangs partially bound")

	var js bytes.Buffer
	require.NoError(t, r.WriteJSON(&js))
	for _, key := range []string{`"scheduler": "muster"`, `"waitP95Seconds"`, `"shareOfFairShare"`, `"partiallyBound": 0`, `"appsLostToInterruptions"`} {
		assert.Contains(t, js.String(), key)
	}
}

// TestSandboxCompare replays a tiny trace with muster and with the default
// profile and prints both.
func TestSandboxCompare(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	var out bytes.Buffer
	trace := `
name: tiny
events:
  - at: 0s
    training: {name: train, namespace: ml-research, workers: 2, worker: {cpu: "2", memory: 2Gi}, duration: 20s}
  - at: 0s
    batch: {name: jobs, namespace: batch, count: 2, pod: {cpu: "1", memory: 1Gi}, duration: 20s}
`
	rs, err := Compare(ctx, Options{Out: &out, Trace: []byte(trace), Cluster: []byte(testCluster), Queues: []byte(testQueues), TimeScale: 10, Timeout: 2 * time.Minute})
	require.NoError(t, err, out.String())
	require.Len(t, rs, 2)
	assert.Equal(t, SchedulerMuster, rs[0].Scheduler)
	assert.Equal(t, SchedulerDefault, rs[1].Scheduler)
	for _, r := range rs {
		assert.Equal(t, 4, r.Pods.Submitted)
		assert.Equal(t, 4, r.Pods.Bound)
	}
	assert.Contains(t, out.String(), "side by side")
	assert.Regexp(t, `pods bound / submitted\s+4 / 4\s+4 / 4`, out.String())
}

func queueReport(t *testing.T, r *Report, q string) QueueReport {
	t.Helper()
	for _, qr := range r.Queues {
		if qr.Queue == q {
			return qr
		}
	}
	t.Fatalf("no queue %s in the report", q)
	return QueueReport{}
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

	out := &watchedWriter{want: "Replaying", seen: make(chan struct{})}
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
