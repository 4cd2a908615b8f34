package reliability

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	pgclientset "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

// soakDuration is SOAK_DURATION (`make soak`: an hour by default), else the
// short version CI runs.
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	if s := os.Getenv("SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		require.NoError(t, err, "SOAK_DURATION")
		return d
	}
	return 60 * time.Second
}

// sample is one reading of the scheduler's /metrics.
type sample struct {
	At         time.Duration
	Goroutines float64
	RSS        float64 // process_resident_memory_bytes
	Heap       float64 // go_memstats_heap_alloc_bytes
	// Pods is how many pods exist (bound or not): what the scheduler's
	// informers must hold, so memory follows it.
	Pods  int
	Bound int // pods bound so far (by the test's watch)
}

// TestReliabilitySoak churns the cluster under one muster-scheduler binary
// for SOAK_DURATION (60 s without it): plain pods and gangs (annotation and
// PodGroup) that run a few seconds, gangs deleted in flight, finished pods
// and PodGroups cleaned up, queue edits (valid and invalid), a node added
// and removed. It samples the binary's goroutines, resident memory and heap
// from /metrics, writes them to SOAK_OUT (a CSV file; default in the temp
// directory), and checks that goroutines and memory stay flat after the
// warm-up, that no pod was bound twice, that no gang was left partly bound,
// and that once the churn stops nothing stays reserved.
func TestReliabilitySoak(t *testing.T) {
	d := soakDuration(t)
	period := max(time.Second, d/120)
	ns := framework.NewNamespace(t)
	deleteLeaseAtEnd(t)
	queues := func(maxCPU string) string { return tenantQueues(maxCPU, ns) }
	setQueues(t, queues("40"))
	for i := 0; i < 4; i++ {
		framework.CreateNodes(t, framework.Node(fmt.Sprintf("soak-%d", i), "16", "64Gi", nil))
	}
	w := watchPods(t, ns)
	// The heap profile too, for a leak's diagnosis (see heapProfile).
	p := startBinary(t, "--authorization-always-allow-paths=/debug/pprof/*")
	waitFor(t, 60*time.Second, "muster to lead", func(ctx context.Context) bool { return leaseHolder(ctx) != "" })
	waitFor(t, 60*time.Second, "/metrics", func(context.Context) bool {
		_, err := scrapeGauges(p.Addr, "go_goroutines")
		return err == nil
	})

	ctx, stop := context.WithTimeout(context.Background(), d)
	defer stop()
	c := &churn{pgs: framework.PodGroupClient(t), ns: ns, w: w, rnd: rand.New(rand.NewSource(1))}
	t.Cleanup(func() {
		_ = framework.CP.Client.CoreV1().Nodes().Delete(context.Background(), "soak-churn", metav1.DeleteOptions{})
	})
	var wg sync.WaitGroup
	loop := func(every time.Duration, fn func(ctx context.Context)) { onTick(ctx, &wg, every, fn) }
	loop(250*time.Millisecond, c.plainPod)
	loop(time.Second, c.gang)
	loop(2*time.Second, c.cleanUp)
	loop(5*time.Second, func(ctx context.Context) { c.editQueues(ctx, queues) })
	loop(7*time.Second, c.nodeChurn)

	out := os.Getenv("SOAK_OUT")
	if out == "" {
		out = filepath.Join(os.TempDir(), fmt.Sprintf("muster-soak-%d.csv", os.Getpid()))
	}
	var samples []sample
	start := time.Now()
	tick := time.NewTicker(period)
	profiled := false
sampling:
	for {
		select {
		case <-ctx.Done():
			break sampling
		case <-tick.C:
		}
		if !profiled && time.Since(start) >= d/2 {
			// Half-way and at the end: `go tool pprof -base` of the two
			// shows what grew over the second half, if anything did.
			profiled = true
			heapProfile(t, p.Addr, strings.TrimSuffix(out, filepath.Ext(out))+"-heap-half.pb.gz")
		}
		g, err := scrapeGauges(p.Addr, "go_goroutines", "process_resident_memory_bytes", "go_memstats_heap_alloc_bytes")
		if err != nil {
			t.Logf("sample: %v", err)
			continue
		}
		wr := w.report()
		samples = append(samples, sample{At: time.Since(start), Goroutines: g["go_goroutines"],
			RSS: g["process_resident_memory_bytes"], Heap: g["go_memstats_heap_alloc_bytes"], Pods: wr.Exist, Bound: wr.Bound})
	}
	tick.Stop()
	wg.Wait()
	require.False(t, p.Exited(), "muster-scheduler is running")
	c.mu.Lock()
	errs := c.errs
	c.mu.Unlock()
	assert.Empty(t, errs, "the churn's own requests")

	heapProfile(t, p.Addr, strings.TrimSuffix(out, filepath.Ext(out))+"-heap-end.pb.gz")
	require.NoError(t, writeSamples(out, samples))
	t.Logf("%d samples every %s written to %s", len(samples), period, out)

	// Flat: after a warm-up (the first fifth), the last quarter's median
	// is within 1.5x of the first quarter's (goroutines: plus a few, for
	// the in-flight work of the moment). Memory is judged only in runs of
	// 20 minutes or more: within a minute the scheduler's informers fill
	// with the pods that exist (their number climbs while pods that
	// finished wait to be cleaned up, more so on a busy machine), which a
	// minute cannot tell from a leak; a goroutine leak shows at once.
	require.GreaterOrEqual(t, len(samples), 20, "enough samples")
	steady := samples[len(samples)/5:]
	q := len(steady) / 4
	first, last := steady[:q], steady[len(steady)-q:]
	stat := func(f func(sample) float64) (float64, float64) { return median(first, f), median(last, f) }
	g1, g2 := stat(func(s sample) float64 { return s.Goroutines })
	r1, r2 := stat(func(s sample) float64 { return s.RSS })
	h1, h2 := stat(func(s sample) float64 { return s.Heap })
	p1, p2 := stat(func(s sample) float64 { return float64(s.Pods) })
	bound := samples[len(samples)-1].Bound
	t.Logf("soak %s: %d pods bound (%.1f/s); goroutines %0.f -> %0.f; RSS %.0f MiB -> %.0f MiB; heap %.0f MiB -> %.0f MiB; pods existing %.0f -> %.0f (medians of the first and last quarter after warm-up); %d queue edits (%d invalid), %d node changes, %d gangs deleted in flight",
		d, bound, float64(bound)/d.Seconds(), g1, g2, r1/(1<<20), r2/(1<<20), h1/(1<<20), h2/(1<<20), p1, p2, c.edits, c.invalid, c.nodeChanges, c.doomed)
	assert.LessOrEqual(t, g2, 1.5*g1+20, "goroutines stay flat")
	long := d >= 20*time.Minute
	if long {
		assert.LessOrEqual(t, r2, 1.5*r1, "resident memory stays flat")
		assert.LessOrEqual(t, h2, 1.5*h1, "heap stays flat")
	}
	// Over the second half, a trend: the rise each series' line makes
	// over that half (see trendOf), against the noise (twice the rise's
	// standard error) and a floor below which a rise does not matter (3% of
	// the level; goroutines: 3). Short runs have too few
	// samples and too little time for a trend to show; only long runs are
	// judged on it.
	half := samples[len(samples)/2:]
	for _, series := range []struct {
		name  string
		f     func(sample) float64
		floor func(mean float64) float64
	}{
		{"goroutines", func(s sample) float64 { return s.Goroutines }, func(float64) float64 { return 3 }},
		{"RSS", func(s sample) float64 { return s.RSS }, func(m float64) float64 { return 0.03 * m }},
		{"heap", func(s sample) float64 { return s.Heap }, func(m float64) float64 { return 0.03 * m }},
	} {
		tr := trendOf(half, series.f)
		allowed := max(2*tr.RiseSE, series.floor(tr.Mean))
		t.Logf("second half, %s: mean %.4g, rise over it %+.4g (+/- %.2g), allowed %.4g", series.name, tr.Mean, tr.Rise, tr.RiseSE, allowed)
		if long {
			assert.LessOrEqual(t, tr.Rise, allowed, "%s flat over the second half", series.name)
		}
	}

	// The churn stops: what is left finishes or binds, nothing stays reserved.
	waitStatus(t, 90*time.Second, time.Now(), "nothing reserved and no gang pending once the churn stops", func(r status.Report) bool {
		return nothingReserved(r) && len(r.PendingGangs) == 0 && r.Config.Valid
	})
	// The watch sees the last binds a moment after the status does.
	waitFor(t, 30*time.Second, "the watch to see every gang whole", func(context.Context) bool { return len(w.report().Partial) == 0 })
	rep := w.report()
	assert.Empty(t, rep.Rebinds, "no pod bound twice")
	assert.Empty(t, rep.Partial, "no gang left partly bound")
	t.Logf("watch: longest partial %s, most gangs partial at once %d", rep.Longest, rep.MaxPartial)
}

// trend is a series' trend over some samples: its mean, and the rise its
// line makes from the first sample to the last, with that rise's standard
// error. The line is Theil-Sen's (the median of the slopes between every two
// samples), which a few spikes do not tilt as they tilt a least-squares line
// (goroutines sit at a floor with spikes of in-flight work); the noise is
// the residuals' median absolute deviation, scaled to a standard deviation,
// and the rise's standard error that of a line through so many evenly spaced
// samples with that noise.
type trend struct{ Mean, Rise, RiseSE float64 }

func trendOf(s []sample, f func(sample) float64) trend {
	n := len(s)
	if n < 3 {
		return trend{}
	}
	x := func(i int) float64 { return s[i].At.Seconds() }
	var slopes []float64
	sum := 0.0
	for i := 0; i < n; i++ {
		sum += f(s[i])
		for j := i + 1; j < n; j++ {
			if dx := x(j) - x(i); dx > 0 {
				slopes = append(slopes, (f(s[j])-f(s[i]))/dx)
			}
		}
	}
	slope := medianOf(slopes)
	intercepts := make([]float64, n)
	for i := range s {
		intercepts[i] = f(s[i]) - slope*x(i)
	}
	b := medianOf(intercepts)
	dev := make([]float64, n)
	for i := range s {
		dev[i] = math.Abs(f(s[i]) - (b + slope*x(i)))
	}
	sigma := 1.4826 * medianOf(dev)
	span := x(n-1) - x(0)
	return trend{Mean: sum / float64(n), Rise: slope * span, RiseSE: sigma * math.Sqrt(12/float64(n))}
}

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = append([]float64(nil), v...)
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// heapProfile saves the scheduler's heap profile (pprof) to path; a failure
// is logged, not fatal: the profile is for diagnosis.
func heapProfile(t *testing.T, addr, path string) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the scheduler's self-signed cert
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + addr + "/debug/pprof/heap?gc=1")
	if err != nil {
		t.Logf("heap profile: %v", err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Logf("heap profile: status %d, %v", resp.StatusCode, err)
		return
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Logf("heap profile: %v", err)
		return
	}
	t.Logf("heap profile written to %s", path)
}

func median(s []sample, f func(sample) float64) float64 {
	v := make([]float64, len(s))
	for i := range s {
		v[i] = f(s[i])
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

func writeSamples(path string, samples []sample) error {
	var b strings.Builder
	b.WriteString("seconds,goroutines,rss_bytes,heap_alloc_bytes,pods_existing,pods_bound\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "%.1f,%.0f,%.0f,%.0f,%d,%d\n", s.At.Seconds(), s.Goroutines, s.RSS, s.Heap, s.Pods, s.Bound)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("writing soak samples: %w", err)
	}
	return nil
}

// churn is the soak's workload.
type churn struct {
	pgs pgclientset.Interface
	ns  string
	w   *podWatch
	rnd *rand.Rand

	mu                                  sync.Mutex
	n                                   int
	edits, invalid, nodeChanges, doomed int
	sparkApps, sparkDoomed              int
	nodeUp                              bool
	errs                                []string
	// retryFor is how long a request is retried while it fails (through
	// an apiserver outage); 0: a failure is recorded at once.
	retryFor time.Duration
	// editMu serialises queue edits; frozen stops them (freezeInvalid).
	editMu sync.Mutex
	frozen bool
}

// try makes a request, retrying it for c.retryFor while it fails; done
// tells the errors that mean the request's work is done (a create that
// landed before its answer was lost, a delete of what is gone).
func (c *churn) try(ctx context.Context, req func(context.Context) error, done func(error) bool) error {
	deadline := time.Now().Add(c.retryFor)
	for {
		err := req(ctx)
		if err == nil || done(err) {
			return nil
		}
		if !time.Now().Before(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond): // a retry's pause, not a wait for state
		}
	}
}

func (c *churn) createPod(ctx context.Context, p podSpec) error {
	return c.try(ctx, func(ctx context.Context) error { return createPodErr(ctx, c.ns, p) }, apierrors.IsAlreadyExists)
}

func (c *churn) deletePod(ctx context.Context, name string) error {
	zero := int64(0)
	return c.try(ctx, func(ctx context.Context) error {
		return framework.CP.Client.CoreV1().Pods(c.ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	}, apierrors.IsNotFound)
}

func (c *churn) next() (int, *rand.Rand) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.n, c.rnd
}

func (c *churn) fail(ctx context.Context, err error) {
	if err == nil || ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) < 20 {
		c.errs = append(c.errs, err.Error())
	}
}

func (c *churn) plainPod(ctx context.Context) {
	n, rnd := c.next()
	c.mu.Lock()
	dur := time.Duration(2000+rnd.Intn(3000)) * time.Millisecond
	c.mu.Unlock()
	c.fail(ctx, c.createPod(ctx, podSpec{name: fmt.Sprintf("p%d", n), cpu: "500m", duration: dur}))
}

// gang creates a gang of 2-6 members; every fifth is a PodGroup, and every
// seventh is deleted right after it is created (while it is being admitted
// or bound).
func (c *churn) gang(ctx context.Context) {
	// A gang once started is created whole even if the churn stops
	// meanwhile: a gang left short of members waits, rightly, for ever.
	ctx = context.WithoutCancel(ctx)
	n, rnd := c.next()
	c.mu.Lock()
	size := 2 + rnd.Intn(5)
	cpu := []string{"500m", "1"}[rnd.Intn(2)]
	doomed := n%7 == 0
	if doomed {
		c.doomed++
	}
	c.mu.Unlock()
	name := fmt.Sprintf("g%d", n)
	var pods []podSpec
	if n%5 == 0 {
		pg := &schedv1alpha1.PodGroup{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: name}, Spec: schedv1alpha1.PodGroupSpec{MinMember: int32(size)}}
		if err := c.try(ctx, func(ctx context.Context) error {
			_, err := c.pgs.SchedulingV1alpha1().PodGroups(c.ns).Create(ctx, pg, metav1.CreateOptions{})
			return err
		}, apierrors.IsAlreadyExists); err != nil {
			c.fail(ctx, err)
			return
		}
		for i := 0; i < size; i++ {
			pods = append(pods, podSpec{name: fmt.Sprintf("%s-%d", name, i), cpu: cpu, labels: map[string]string{gang.LabelPodGroup: name}})
		}
	} else {
		pods = annotationGang(name, size, cpu)
	}
	if !doomed {
		c.w.expect(c.ns+"/"+name, size)
	}
	for _, p := range pods {
		p.duration = 3 * time.Second
		c.fail(ctx, c.createPod(ctx, p))
	}
	if doomed {
		for _, p := range pods {
			c.fail(ctx, c.deletePod(ctx, p.name))
		}
		if n%5 == 0 {
			c.fail(ctx, c.try(ctx, func(ctx context.Context) error {
				return c.pgs.SchedulingV1alpha1().PodGroups(c.ns).Delete(ctx, name, metav1.DeleteOptions{})
			}, apierrors.IsNotFound))
		}
	}
}

// cleanUp deletes finished pods, and PodGroups none of whose pods is left
// unfinished, so that the cluster's size stays steady. A finished pod the
// test's watch has not seen bound yet (it may be reconnecting after an
// apiserver outage) is left for a later round: deleted first, its bind
// would never be seen.
func (c *churn) cleanUp(ctx context.Context) {
	var pods *v1.PodList
	if err := c.try(ctx, func(ctx context.Context) (err error) {
		pods, err = framework.CP.Client.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{})
		return err
	}, never); err != nil {
		c.fail(ctx, err)
		return
	}
	live := map[string]bool{}
	for _, p := range pods.Items {
		if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			if c.w.seen(p.UID) {
				c.fail(ctx, c.deletePod(ctx, p.Name))
			}
			continue
		}
		if g := p.Labels[gang.LabelPodGroup]; g != "" {
			live[g] = true
		}
	}
	var pgs *schedv1alpha1.PodGroupList
	if err := c.try(ctx, func(ctx context.Context) (err error) {
		pgs, err = c.pgs.SchedulingV1alpha1().PodGroups(c.ns).List(ctx, metav1.ListOptions{})
		return err
	}, never); err != nil {
		c.fail(ctx, err)
		return
	}
	for _, pg := range pgs.Items {
		if !live[pg.Name] && time.Since(pg.CreationTimestamp.Time) > 5*time.Second {
			c.fail(ctx, c.try(ctx, func(ctx context.Context) error {
				return c.pgs.SchedulingV1alpha1().PodGroups(c.ns).Delete(ctx, pg.Name, metav1.DeleteOptions{})
			}, apierrors.IsNotFound))
		}
	}
}

// editQueues alternates the tenant's max, with an invalid edit now and then
// (refused; the last good configuration stays).
func (c *churn) editQueues(ctx context.Context, queues func(string) string) {
	c.editMu.Lock()
	defer c.editMu.Unlock()
	if c.frozen {
		return
	}
	c.mu.Lock()
	c.edits++
	k := c.edits
	c.mu.Unlock()
	body := queues([]string{"40", "24"}[k%2])
	if k%4 == 0 {
		body = invalidQueues
		c.mu.Lock()
		c.invalid++
		c.mu.Unlock()
	}
	c.writeQueues(ctx, body)
}

// invalidQueues is an edit muster must refuse.
const invalidQueues = "queues:\n  - name: tenant\n    max: {cpu: nonsense}\n"

// freezeInvalid writes an invalid edit, as an admin's typo, and stops the
// edits until thaw: the ConfigMap stays invalid meanwhile.
func (c *churn) freezeInvalid(ctx context.Context) {
	c.editMu.Lock()
	defer c.editMu.Unlock()
	c.frozen = true
	c.mu.Lock()
	c.edits++
	c.invalid++
	c.mu.Unlock()
	c.writeQueues(ctx, invalidQueues)
}

func (c *churn) thaw() {
	c.editMu.Lock()
	defer c.editMu.Unlock()
	c.frozen = false
}

func (c *churn) writeQueues(ctx context.Context, body string) {
	cms := framework.CP.Client.CoreV1().ConfigMaps(musterNamespace)
	c.fail(ctx, c.try(ctx, func(ctx context.Context) error {
		cm, err := cms.Get(ctx, "muster-queues", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cm.Data["queues.yaml"] = body
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	}, never))
}

// nodeChurn adds a node, or removes it again (with whatever runs there).
func (c *churn) nodeChurn(ctx context.Context) {
	c.mu.Lock()
	up := c.nodeUp
	c.nodeUp = !up
	c.nodeChanges++
	c.mu.Unlock()
	if !up {
		c.fail(ctx, c.try(ctx, func(ctx context.Context) error {
			return cluster.CreateNodes(ctx, framework.CP.Client, []cluster.Node{framework.Node("soak-churn", "8", "32Gi", nil)})
		}, apierrors.IsAlreadyExists))
		return
	}
	c.fail(ctx, c.try(ctx, func(ctx context.Context) error {
		return framework.CP.Client.CoreV1().Nodes().Delete(ctx, "soak-churn", metav1.DeleteOptions{})
	}, apierrors.IsNotFound))
}

// never: no error means the request's work is done.
func never(error) bool { return false }

// TestTrendOf: the soak's trend finds a leak and ignores spikes on a floor.
func TestTrendOf(t *testing.T) {
	series := func(f func(i int) float64) []sample {
		out := make([]sample, 60)
		for i := range out {
			out[i] = sample{At: time.Duration(i) * 30 * time.Second, Goroutines: f(i)}
		}
		return out
	}
	g := func(s sample) float64 { return s.Goroutines }
	tests := map[string]struct {
		f        func(i int) float64
		min, max float64 // the rise over the series
		leak     bool    // beyond twice its standard error and 3
	}{
		"flat":                    {f: func(int) float64 { return 276 }, min: 0, max: 0},
		"floor with late spikes":  {f: func(i int) float64 { return 276 + float64(map[bool]int{true: 15}[i > 50 && i%2 == 0]) }, min: 0, max: 0.5},
		"one goroutine a minute":  {f: func(i int) float64 { return 276 + float64(i/2) }, min: 28, max: 30, leak: true},
		"leak under noise":        {f: func(i int) float64 { return 276 + float64(i)/4 + float64(i%5*2) }, min: 13, max: 16, leak: true},
		"noise, no leak":          {f: func(i int) float64 { return 276 + float64(i%5*2) }, min: -1, max: 1},
		"a leak that levels off":  {f: func(i int) float64 { return 276 + math.Min(float64(i), 10) }, min: 0, max: 2},
		"sawtooth heap, no trend": {f: func(i int) float64 { return 20e6 + float64(i%7)*1e6 }, min: -1e6, max: 1e6},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tr := trendOf(series(tc.f), g)
			assert.GreaterOrEqual(t, tr.Rise, tc.min)
			assert.LessOrEqual(t, tr.Rise, tc.max)
			assert.Equal(t, tc.leak, tr.Rise > max(2*tr.RiseSE, 3), "rise %.3g, SE %.3g", tr.Rise, tr.RiseSE)
		})
	}
}
