package reliability

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/manifests"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/resources"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

const musterNamespace = framework.MusterNamespace

// Lease times for the binaries: shorter than the shipped defaults (15 s,
// 10 s, 2 s), so that a takeover after a SIGKILL is quick; the mechanism is
// the same. Not much shorter: a leader that cannot renew within the renew
// deadline rightly steps down, and with 3 s a new leader on the loaded
// test machine (two `make test` and a build on two cores) sometimes did.
const (
	leaseDuration = 8 * time.Second
	renewDeadline = 6 * time.Second
	retryPeriod   = 500 * time.Millisecond
)

// schedulerConfig is the shipped configuration with the status ConfigMap
// refreshed every second, so that tests see reservations come and go.
func schedulerConfig() []byte {
	return bytes.Replace(manifests.SchedulerConfig, []byte("statusIntervalSeconds: 5"), []byte("statusIntervalSeconds: 1"), 1)
}

// startMuster runs muster in-process (no leader election) until the test ends.
func startMuster(t *testing.T) *scheduler.InProcess {
	t.Helper()
	return framework.StartScheduler(t, schedulerConfig())
}

// proc is a muster-scheduler binary running in the background.
type proc struct {
	*framework.Process
	// Addr serves /metrics and /healthz.
	Addr string
	// Name is its argv[0] and field manager ("" for the binary's name).
	Name string
}

// startBinary runs muster-scheduler with schedulerConfig and leader election
// (short lease times), and extra args; it is killed when the test ends.
// With MUSTER_TEST_LOG_DIR set, its whole output is written there then.
func startBinary(t *testing.T, extra ...string) *proc {
	t.Helper()
	return startBinaryAs(t, "", extra...)
}

// startBinaryAs is startBinary with the process named name (its argv[0]):
// its API clients then send name as their user agent, which the apiserver
// records as the field manager of every write the process makes, so that
// each replica's writes can be told apart. "" keeps the binary's name.
func startBinaryAs(t *testing.T, name string, extra ...string) *proc {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "scheduler-config.yaml")
	require.NoError(t, os.WriteFile(cfg, schedulerConfig(), 0o600))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	args := append([]string{
		"--config", cfg, "--kubeconfig", framework.CP.Kubeconfig, "-v=2",
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
		"--leader-elect-lease-duration=" + leaseDuration.String(),
		"--leader-elect-renew-deadline=" + renewDeadline.String(),
		"--leader-elect-retry-period=" + retryPeriod.String(),
	}, extra...)
	cmd := exec.Command(framework.SchedulerBinary(t), args...)
	if name != "" {
		cmd.Args[0] = name
	}
	p := &proc{Process: framework.StartProcess(t, cmd), Addr: fmt.Sprintf("127.0.0.1:%d", port), Name: name}
	t.Cleanup(func() {
		p.Kill(t)
		if dir := os.Getenv("MUSTER_TEST_LOG_DIR"); dir != "" {
			// The whole output, for runs too long to read in the test's log.
			file := filepath.Join(dir, fmt.Sprintf("%s-%s-%d.log", strings.ReplaceAll(t.Name(), "/", "_"), filepath.Base(cmd.Args[0]), p.Cmd.Process.Pid))
			if err := os.WriteFile(file, []byte(p.Out.String()), 0o644); err != nil {
				t.Logf("keeping the output of muster-scheduler: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("output of %s (pid %d):\n%s", filepath.Base(cmd.Args[0]), p.Cmd.Process.Pid, tail(p.Out.String(), 200))
		}
	})
	return p
}

// Kill sends SIGKILL, as a node failure or the OOM killer would, and waits
// until the process is gone.
func (p *proc) Kill(t *testing.T) {
	t.Helper()
	if p.Exited() {
		return
	}
	require.NoError(t, p.Cmd.Process.Signal(syscall.SIGKILL))
	<-p.Done()
}

// Count counts the lines of output that contain s.
func (p *proc) Count(s string) int { return strings.Count(p.Out.String(), s) }

func tail(s string, lines int) string {
	all := strings.Split(s, "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// leaseHolder is who holds muster's lease ("" when nobody does).
func leaseHolder(ctx context.Context) string {
	l, err := framework.CP.Client.CoordinationV1().Leases(musterNamespace).Get(ctx, status.LeaseName, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// deleteLeaseAtEnd removes the lease when the test ends, so that the next
// test's binaries do not wait for a dead holder's lease to expire.
func deleteLeaseAtEnd(t *testing.T) {
	t.Cleanup(func() {
		_ = framework.CP.Client.CoordinationV1().Leases(musterNamespace).Delete(context.Background(), status.LeaseName, metav1.DeleteOptions{})
	})
}

// scrapeGauges reads the unlabelled samples of a scheduler's /metrics.
func scrapeGauges(addr string, names ...string) (map[string]float64, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the scheduler's self-signed cert
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + addr + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading /metrics: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: status %d: %s", resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parsing /metrics: %w", err)
	}
	out := map[string]float64{}
	for _, name := range names {
		fam, ok := mf[name]
		if !ok || len(fam.GetMetric()) == 0 {
			return nil, fmt.Errorf("/metrics has no %s", name)
		}
		m := fam.GetMetric()[0]
		switch {
		case m.Gauge != nil:
			out[name] = m.GetGauge().GetValue()
		case m.Counter != nil:
			out[name] = m.GetCounter().GetValue()
		case m.Untyped != nil:
			out[name] = m.GetUntyped().GetValue()
		}
	}
	return out, nil
}

// setQueues writes queues.yaml into the muster-queues ConfigMap, creating
// it if needed; the ConfigMap and the status are removed when the test ends.
func setQueues(t *testing.T, queuesYAML string) {
	t.Helper()
	framework.SetQueues(t, queuesYAML)
}

// tenantQueues is a queue tree with one leaf, root.tenant, limited to
// maxCPU, for the namespaces given.
func tenantQueues(maxCPU string, namespaces ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "queues:\n  - name: tenant\n    max: {cpu: %q}\nnamespaceQueues:\n", maxCPU)
	for _, ns := range namespaces {
		fmt.Fprintf(&b, "  %s: root.tenant\n", ns)
	}
	return b.String()
}

// readStatus reads the published status report.
func readStatus(ctx context.Context) (status.Report, error) {
	cm, err := framework.CP.Client.CoreV1().ConfigMaps(musterNamespace).Get(ctx, "muster-queue-status", metav1.GetOptions{})
	if err != nil {
		return status.Report{}, err
	}
	return status.Decode([]byte(cm.Data[status.Key]))
}

// waitStatus waits for a report written at or after since that satisfies
// cond, and returns it.
func waitStatus(t *testing.T, timeout time.Duration, since time.Time, what string, cond func(status.Report) bool) status.Report {
	t.Helper()
	var r status.Report
	var last status.Report
	err := pollUntil(timeout, func(ctx context.Context) bool {
		rep, err := readStatus(ctx)
		if err != nil {
			return false
		}
		last = rep
		at, err := time.Parse(time.RFC3339, rep.UpdatedAt)
		if err != nil || at.Before(since.Truncate(time.Second)) {
			return false
		}
		r = rep
		return cond(rep)
	})
	require.NoError(t, err, "waiting for the status to show %s; last report: %+v", what, last)
	return r
}

func pollUntil(timeout time.Duration, cond func(ctx context.Context) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond(ctx) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not within %s", timeout)
		case <-tick.C:
		}
	}
}

// queueLine returns a queue's line of the report.
func queueLine(r status.Report, path string) (status.Queue, bool) {
	for _, q := range r.Queues {
		if q.Queue == path {
			return q, true
		}
	}
	return status.Queue{}, false
}

// cpuOf parses a quantity map's cpu in millicores (0 when absent).
func cpuOf(m map[string]string) int64 {
	q, err := resource.ParseQuantity(m["cpu"])
	if m["cpu"] == "" || err != nil {
		return 0
	}
	return resources.FromQuantity(v1.ResourceCPU, q)
}

// nothingReserved: no queue holds a reservation.
func nothingReserved(r status.Report) bool {
	for _, q := range r.Queues {
		if len(q.Reserved) > 0 {
			return false
		}
	}
	return true
}

// pendingGang returns a gang's line among the pending gangs of the report.
func pendingGang(r status.Report, ref string) (status.Gang, bool) {
	for _, g := range r.PendingGangs {
		if g.Gang == ref {
			return g, true
		}
	}
	return status.Gang{}, false
}

// podSpec describes a pod to create: a muster pod of cpu, with labels,
// annotations, and optionally a node selector and a scheduling gate.
type podSpec struct {
	name, cpu    string
	labels       map[string]string
	annotations  map[string]string
	nodeSelector map[string]string
	gated        bool
	duration     time.Duration
}

// gateName is the scheduling gate tests put on a member to hold it back.
const gateName = "muster.dev/test-hold"

func createPods(t *testing.T, ns string, specs ...podSpec) {
	t.Helper()
	for _, s := range specs {
		require.NoError(t, createPodErr(context.Background(), ns, s))
	}
}

// ungate lifts the test's scheduling gate from a pod.
func ungate(t *testing.T, ns, name string) {
	t.Helper()
	ctx := context.Background()
	p, err := framework.CP.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	p.Spec.SchedulingGates = nil
	_, err = framework.CP.Client.CoreV1().Pods(ns).Update(ctx, p, metav1.UpdateOptions{})
	require.NoError(t, err)
}

// annotationGang returns the pods of an annotation gang of n members of cpu
// each, all needed (min-member n).
func annotationGang(name string, n int, cpu string) []podSpec {
	out := make([]podSpec, n)
	for i := range out {
		out[i] = podSpec{
			name: fmt.Sprintf("%s-%d", name, i), cpu: cpu,
			labels:      map[string]string{gang.LabelGang: name},
			annotations: map[string]string{gang.AnnotationMinMember: strconv.Itoa(n)},
		}
	}
	return out
}

// podGroupGang creates a PodGroup of minMember n and returns its n pods.
func podGroupGang(t *testing.T, ns, name string, n int, cpu string) []podSpec {
	t.Helper()
	pg := &schedv1alpha1.PodGroup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: schedv1alpha1.PodGroupSpec{MinMember: int32(n)}}
	_, err := framework.PodGroupClient(t).SchedulingV1alpha1().PodGroups(ns).Create(context.Background(), pg, metav1.CreateOptions{})
	require.NoError(t, err)
	out := make([]podSpec, n)
	for i := range out {
		out[i] = podSpec{name: fmt.Sprintf("%s-%d", name, i), cpu: cpu, labels: map[string]string{gang.LabelPodGroup: name}}
	}
	return out
}

// gangName is the gang a pod belongs to ("" for none): its PodGroup,
// annotation gang or Spark application name.
func gangName(p *v1.Pod) string {
	for _, label := range []string{gang.LabelPodGroup, gang.LabelGang, gang.LabelSparkApp} {
		if g := p.Labels[label]; g != "" {
			return p.Namespace + "/" + g
		}
	}
	return ""
}

// podWatch follows every change of the pods of some namespaces from the
// start, through a watch (the apiserver's order, not sampling), and keeps
// the evidence: every pod's first node, any change of it (a double bind),
// and for each gang how long it was partly bound.
type podWatch struct {
	mu     sync.Mutex
	quorum map[string]int // gang -> quorum, registered by expect
	node   map[types.UID]string
	// rebinds lists pods whose node changed once set.
	rebinds []string
	ever    map[string]map[types.UID]bool // gang -> members ever bound
	// partialSince: gangs partly bound right now; longest: their longest
	// stretch; maxPartial: most gangs partly bound at one moment.
	partialSince map[string]time.Time
	longest      map[string]time.Duration
	longestFrom  map[string]time.Time
	// over1s: every stretch of a second or more.
	over1s     []stretch
	maxPartial int
	lastBind   time.Time
	bound      int
	// exist: the pods that exist now, bound or not.
	exist map[types.UID]bool
}

func watchPods(t *testing.T, namespaces ...string) *podWatch {
	t.Helper()
	w := &podWatch{quorum: map[string]int{}, node: map[types.UID]string{}, ever: map[string]map[types.UID]bool{},
		partialSince: map[string]time.Time{}, longest: map[string]time.Duration{}, longestFrom: map[string]time.Time{},
		exist: map[types.UID]bool{}}
	framework.WatchPods(t, cache.ResourceEventHandlerFuncs{
		AddFunc:    w.observe,
		UpdateFunc: func(_, o any) { w.observe(o) },
		DeleteFunc: w.gone,
	}, namespaces...)
	return w
}

// expect registers a gang and its quorum.
func (w *podWatch) expect(gang string, quorum int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.quorum[gang] = quorum
}

func (w *podWatch) gone(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	if p, ok := o.(*v1.Pod); ok {
		w.mu.Lock()
		delete(w.exist, p.UID)
		w.mu.Unlock()
	}
}

func (w *podWatch) observe(o any) {
	p, ok := o.(*v1.Pod)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.exist[p.UID] = true
	if p.Spec.NodeName == "" {
		return
	}
	if first, seen := w.node[p.UID]; seen {
		if first != p.Spec.NodeName {
			w.rebinds = append(w.rebinds, fmt.Sprintf("%s/%s: %s then %s", p.Namespace, p.Name, first, p.Spec.NodeName))
		}
		return
	}
	w.node[p.UID] = p.Spec.NodeName
	w.bound++
	w.lastBind = time.Now()
	g := gangName(p)
	if g == "" {
		return
	}
	if w.ever[g] == nil {
		w.ever[g] = map[types.UID]bool{}
	}
	w.ever[g][p.UID] = true
	n, q, now := len(w.ever[g]), w.quorum[g], time.Now()
	if q == 0 {
		return
	}
	if n < q {
		if _, ok := w.partialSince[g]; !ok {
			w.partialSince[g] = now
		}
	} else if since, ok := w.partialSince[g]; ok {
		d := now.Sub(since)
		if d > w.longest[g] {
			w.longest[g], w.longestFrom[g] = d, since
		}
		if d >= time.Second {
			w.over1s = append(w.over1s, stretch{Gang: g, From: since, For: d})
		}
		delete(w.partialSince, g)
	}
	w.maxPartial = max(w.maxPartial, len(w.partialSince))
}

// complete counts the registered gangs whose quorum has been bound.
func (w *podWatch) complete() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for g, q := range w.quorum {
		if len(w.ever[g]) >= q {
			n++
		}
	}
	return n
}

// seen reports whether the watch has seen the pod bound.
func (w *podWatch) seen(uid types.UID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.node[uid]
	return ok
}

// incomplete lists the registered gangs whose quorum was never seen bound,
// with how many members were.
func (w *podWatch) incomplete() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for g, q := range w.quorum {
		if n := len(w.ever[g]); n < q {
			out = append(out, fmt.Sprintf("%s (%d of %d)", g, n, q))
		}
	}
	sort.Strings(out)
	return out
}

// everBound counts a gang's members ever seen bound.
func (w *podWatch) everBound(gang string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ever[gang])
}

// stretch is a time a gang spent partly bound.
type stretch struct {
	Gang string
	From time.Time
	For  time.Duration
}

// report is what the watch saw.
type watchReport struct {
	Bound   int
	Exist   int // pods that exist now
	Rebinds []string
	Partial []string      // gangs partly bound now
	Longest time.Duration // longest stretch any gang spent partly bound
	// LongestGang spent it, from LongestFrom.
	LongestGang string
	LongestFrom time.Time
	// Over1s lists the stretches of a second or more that ended.
	Over1s     []stretch
	MaxPartial int // most gangs partly bound at once
	LastBind   time.Time
}

func (w *podWatch) report() watchReport {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := watchReport{Bound: w.bound, Exist: len(w.exist), Rebinds: append([]string{}, w.rebinds...), MaxPartial: w.maxPartial, LastBind: w.lastBind,
		Over1s: append([]stretch{}, w.over1s...)}
	longest := func(g string, d time.Duration, from time.Time) {
		if d > r.Longest {
			r.Longest, r.LongestGang, r.LongestFrom = d, g, from
		}
	}
	for g, d := range w.longest {
		longest(g, d, w.longestFrom[g])
	}
	for g, since := range w.partialSince {
		r.Partial = append(r.Partial, g)
		longest(g, time.Since(since), since)
	}
	return r
}

// waitPodCondition waits until a pod's PodScheduled condition is False with
// a message containing want.
func waitUnschedulable(t *testing.T, ns, name string, timeout time.Duration, want string) {
	t.Helper()
	var last string
	err := pollUntil(timeout, func(ctx context.Context) bool {
		p, err := framework.CP.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range p.Status.Conditions {
			if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse {
				last = c.Message
				return strings.Contains(c.Message, want)
			}
		}
		return false
	})
	require.NoError(t, err, "waiting for %s/%s to be unschedulable with %q (last: %q)", ns, name, want, last)
}

// createPodErr creates one pod of spec, returning the error.
func createPodErr(ctx context.Context, ns string, s podSpec) error {
	obj, err := cluster.Pod{Namespace: ns, Name: s.name, SchedulerName: scheduler.SchedulerName,
		Requests: map[v1.ResourceName]string{v1.ResourceCPU: s.cpu}, Labels: s.labels, Annotations: s.annotations, Duration: s.duration}.Object()
	if err != nil {
		return err
	}
	obj.Spec.NodeSelector = s.nodeSelector
	if s.gated {
		obj.Spec.SchedulingGates = []v1.PodSchedulingGate{{Name: gateName}}
	}
	if _, err := framework.CP.Client.CoreV1().Pods(ns).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating pod %s/%s: %w", ns, s.name, err)
	}
	return nil
}

// onTick runs fn every interval on a goroutine of its own, counted in wg,
// until ctx ends (the churn loops of the soak and the chaos run).
func onTick(ctx context.Context, wg *sync.WaitGroup, interval time.Duration, fn func(context.Context)) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				fn(ctx)
			}
		}
	}()
}
