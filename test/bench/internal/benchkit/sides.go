package benchkit

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"

	"muster.dev/muster/manifests"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/test/framework"
)

// Side is one of the schedulers compared: a KubeSchedulerConfiguration run
// in-process, or (Config nil) the raw bind limit.
type Side struct {
	// Name is the sub-benchmark's name.
	Name string
	// Profile is the schedulerName pods of this side ask for.
	Profile string
	// Config is the scheduler's configuration; nil is the limit binder.
	Config []byte
}

// The sides. Every scheduler has the client QPS/burst of muster's shipped
// configuration (manifests/scheduler-config.yaml).
var (
	// Muster is muster with every plugin on, as shipped.
	Muster = Side{Name: "muster", Profile: scheduler.SchedulerName, Config: manifests.SchedulerConfig}
	// Default is kube-scheduler's default profile.
	Default = Side{Name: "default", Profile: "default-scheduler", Config: profileConfig("default-scheduler", "")}
	// UpstreamGang is kube-scheduler's default profile in a process with
	// the GenericWorkload feature gate on, which adds the in-tree
	// GangScheduling plugin (Workload API pod groups).
	UpstreamGang = Side{Name: "upstream-gang", Profile: "upstream-gang", Config: profileConfig("upstream-gang", "")}
	// DefaultNoGang is the default profile with GangScheduling off: members
	// of a gang are scheduled one by one.
	DefaultNoGang = Side{Name: "default-nogang", Profile: "default-nogang", Config: profileConfig("default-nogang", `
    plugins:
      multiPoint:
        disabled:
          - name: GangScheduling`)}
	// Limit binds pending pods round-robin onto nodes, with no filtering
	// or scoring: the ceiling of the control plane.
	Limit = Side{Name: "limit", Profile: "bench-limit"}
)

// ClientQPS returns the client QPS and burst of muster's shipped configuration.
func ClientQPS() (float32, int) {
	var doc struct {
		ClientConnection struct {
			QPS   float32 `json:"qps"`
			Burst int     `json:"burst"`
		} `json:"clientConnection"`
	}
	if err := yaml.Unmarshal(manifests.SchedulerConfig, &doc); err != nil || doc.ClientConnection.QPS == 0 {
		return 50, 100 // kube-scheduler's defaults
	}
	return doc.ClientConnection.QPS, doc.ClientConnection.Burst
}

func profileConfig(name, profile string) []byte {
	qps, burst := ClientQPS()
	return fmt.Appendf(nil, `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: false
clientConnection:
  qps: %v
  burst: %d
profiles:
  - schedulerName: %s%s
`, qps, burst, name, profile)
}

// Result is one side's run.
type Result struct {
	Side string
	// Pods bound, and the time from the first bind to the last.
	Pods int
	Took time.Duration
	// Start is when the scheduler was started (pods existed before).
	Start time.Time
	// Attempts is the scheduler's scheduling_attempt_duration_seconds over
	// the run (empty for the limit).
	Attempts Histogram
	// Process CPU seconds, mean cores busy and peak live heap (MiB) during
	// the run: the scheduler, apiserver and etcd together.
	CPU, Cores, HeapMiB float64
	// Requests are the apiserver's busiest requests during the run.
	Requests []string
	// ExtensionPoints is the time the scheduler spent in each extension
	// point over the run (those above 10ms).
	ExtensionPoints map[string]string
}

// PodsPerSec is the throughput from the first bind to the last.
func (r Result) PodsPerSec() float64 {
	if r.Took <= 0 {
		return 0
	}
	return float64(r.Pods-1) / r.Took.Seconds()
}

// Report reports the result's metrics on b.
func (r Result) Report(b *testing.B) {
	b.ReportMetric(r.PodsPerSec(), "pods/s")
	if r.Attempts.Count > 0 {
		b.ReportMetric(1000*r.Attempts.Quantile(0.5), "p50-ms")
		b.ReportMetric(1000*r.Attempts.Quantile(0.99), "p99-ms")
	}
	b.ReportMetric(r.CPU, "cpu-s")
	b.ReportMetric(r.HeapMiB, "heap-MiB")
}

// String is a one-line summary for logs.
func (r Result) String() string {
	return fmt.Sprintf("%s: %d pods in %.2fs = %.0f pods/s, attempt p50 %.1fms p99 %.1fms (%d attempts), cpu %.1fs (%.2f cores), heap peak %.0f MiB; requests %v; extension points %v",
		r.Side, r.Pods, r.Took.Seconds(), r.PodsPerSec(), 1000*r.Attempts.Quantile(0.5), 1000*r.Attempts.Quantile(0.99), int(r.Attempts.Count), r.CPU, r.Cores, r.HeapMiB, r.Requests, r.ExtensionPoints)
}

// RunOptions are the optional parts of Run.
type RunOptions struct {
	// Flags are extra scheduler flags.
	Flags []string
	// Timeout bounds the wait for the pods to bind (default 10 minutes).
	Timeout time.Duration
	// Done is called with the scheduler's endpoint before it stops.
	Done func(addr string)
	// Wait, when set, replaces waiting for n binds.
	Wait func(start time.Time)
}

// Run starts the side's scheduler (the pods exist already, in ns), waits
// until n pods of w are bound, stops it, and returns what it measured. The
// timer of b runs only while the scheduler does.
func Run(b *testing.B, side Side, ns string, nodes []string, w *Watch, n int, o RunOptions) Result {
	b.Helper()
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Minute
	}
	before := AttemptHistogram(b, side.Profile)
	requests := Requests(b)
	points := ExtensionPoints(b, side.Profile)
	r := Result{Side: side.Name, Pods: n}
	b.ResetTimer()
	usage := StartUsage()
	r.Start = time.Now()
	var (
		stop func() error
		addr string
	)
	if side.Config == nil {
		stop = StartLimitBinder(b, framework.CP.Config, ns, side.Profile, nodes)
	} else {
		s := framework.StartScheduler(b, side.Config, o.Flags...)
		stop, addr = s.Stop, s.Addr
	}
	if o.Wait != nil {
		o.Wait(r.Start)
	} else {
		w.WaitBound(b, n, o.Timeout)
	}
	b.StopTimer()
	r.CPU, r.Cores, r.HeapMiB = usage.Stop()
	first, last := w.Span()
	r.Took = last.Sub(first)
	r.Pods = w.Bound()
	r.Attempts = AttemptHistogram(b, side.Profile).Sub(before)
	r.Requests = RequestsDelta(requests, Requests(b), 6)
	for k, v := range ExtensionPoints(b, side.Profile) {
		if d := v - points[k]; d >= 0.01 {
			if r.ExtensionPoints == nil {
				r.ExtensionPoints = map[string]string{}
			}
			r.ExtensionPoints[k] = fmt.Sprintf("%.2fs", d)
		}
	}
	if o.Done != nil && addr != "" {
		o.Done(addr)
	}
	if err := stop(); err != nil {
		b.Fatal(err)
	}
	return r
}

// Compact compacts and defragments etcd, so that runs one after another
// start from the same kind of store.
func Compact(b testing.TB) {
	b.Helper()
	if err := framework.CP.Compact(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// Order returns the order of runs of the sides: forward then backward, and
// in the second round backward then forward (for two sides: ABBA BAAB).
// Runs slow down as the process goes on (the first is always the fastest);
// this order gives every side every position equally.
func Order(rounds int, sides ...Side) []Side {
	fwd := sides
	bwd := make([]Side, len(sides))
	for i, s := range sides {
		bwd[len(sides)-1-i] = s
	}
	var out []Side
	for r := range rounds {
		if r%2 == 0 {
			out = append(append(out, fwd...), bwd...)
		} else {
			out = append(append(out, bwd...), fwd...)
		}
	}
	return out
}

// StartLimitBinder binds every pending pod of ns that asks for
// schedulerName onto nodes, round-robin, through a client with muster's
// QPS/burst and as many workers as bind calls in flight in kube-scheduler
// (one goroutine per bind): no filtering, no scoring, no cache. It returns
// a function that stops it.
func StartLimitBinder(b testing.TB, cfg *rest.Config, ns, schedulerName string, nodes []string) func() error {
	b.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = ClientQPS()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.AndSelectors(fields.OneTermEqualSelector("spec.schedulerName", schedulerName),
				fields.OneTermEqualSelector("spec.nodeName", "")).String()
		}))
	pending := make(chan *v1.Pod, 1<<16)
	var seen sync.Map
	_, err = f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(o any) {
		if p, ok := o.(*v1.Pod); ok {
			if _, dup := seen.LoadOrStore(p.Name, true); !dup {
				pending <- p
			}
		}
	}})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	var (
		next   atomic.Uint64
		wg     sync.WaitGroup
		errsMu sync.Mutex
		errs   []string
	)
	const workers = 64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case p := <-pending:
					node := nodes[int(next.Add(1)-1)%len(nodes)]
					err := client.CoreV1().Pods(p.Namespace).Bind(ctx, &v1.Binding{
						ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, UID: p.UID},
						Target:     v1.ObjectReference{Kind: "Node", Name: node},
					}, metav1.CreateOptions{})
					if err != nil && ctx.Err() == nil {
						errsMu.Lock()
						errs = append(errs, fmt.Sprintf("%s: %v", p.Name, err))
						errsMu.Unlock()
					}
				}
			}
		}()
	}
	f.Start(ctx.Done())
	return func() error {
		cancel()
		wg.Wait()
		f.Shutdown()
		if len(errs) > 0 {
			return fmt.Errorf("limit binder: %d binds failed, e.g. %s", len(errs), strings.Join(errs[:min(3, len(errs))], "; "))
		}
		return nil
	}
}

// Rounds is how many rounds of Order a comparison runs: BENCH_ROUNDS when
// set, else one in short mode and full otherwise.
func Rounds(full int) int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	if testing.Short() {
		return 1
	}
	return full
}
