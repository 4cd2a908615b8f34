// Package sandbox runs muster end to end on one machine: a real control plane
// in-process, simulated nodes and kubelet, muster-scheduler with its shipped
// configuration, and a demo workload, with live progress and a summary.
package sandbox

import (
	"context"
	"fmt"
	"io"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"muster.dev/muster/manifests"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/controlplane"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/pkg/simkubelet"
)

// Options configures a sandbox run.
type Options struct {
	// Out receives progress and the summary.
	Out io.Writer
	// Short runs a smaller workload faster (for tests and a quick look).
	Short bool
	// TimeScale speeds up declared time (arrivals, pod durations); the
	// scheduler itself runs in real time. Default 10, or 20 when Short.
	TimeScale float64
	// Timeout bounds the workload's run; default 5 minutes.
	Timeout time.Duration
	// Keep leaves everything running after the workload finishes, until ctx
	// ends, and prints a kubeconfig for kubectl.
	Keep bool
	// OnFinished, when set, is called after the summary with the control
	// plane still up, e.g. to check the summary against the cluster.
	OnFinished func(ctx context.Context, cp *controlplane.ControlPlane, s Summary) error
	// Clock is the sandbox's clock; default the real one.
	Clock clock.WithTicker
}

// Run runs the sandbox and returns its summary. It returns ctx's error if
// ctx ends before the workload finishes, having shut everything down.
func Run(ctx context.Context, opts Options) (*Summary, error) {
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.TimeScale <= 0 {
		opts.TimeScale = 10
		if opts.Short {
			opts.TimeScale = 20
		}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	out, clk := opts.Out, opts.Clock
	logger := klog.FromContext(ctx)

	fmt.Fprintln(out, "Starting a Kubernetes control plane in this process (etcd + kube-apiserver)...")
	started := clk.Now()
	cp, err := controlplane.Start(ctx, controlplane.Options{})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			logger.Error(err, "Stopping the control plane")
		}
	}()
	fmt.Fprintf(out, "  ready in %s at %s\n", clk.Since(started).Round(100*time.Millisecond), cp.Config.Host)

	for _, ns := range append([]string{"muster-system"}, tenants...) {
		if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	nodes := defaultNodes()
	if err := cluster.CreateNodes(ctx, cp.Client, nodes); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "Created %d simulated nodes (%s)\n", len(nodes), describePools())

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	kubelet := simkubelet.New(cp.Client, simkubelet.Options{Clock: clk, TimeScale: opts.TimeScale})
	kubeletDone := make(chan error, 1)
	go func() { kubeletDone <- kubelet.Run(runCtx) }()
	defer func() {
		cancel()
		<-kubeletDone
	}()

	sched, err := scheduler.StartInProcess(ctx, scheduler.InProcessOptions{
		Config: manifests.SchedulerConfig, Kubeconfig: cp.Kubeconfig, Dir: cp.Dir,
	})
	if err != nil {
		return nil, fmt.Errorf("starting muster-scheduler: %w", err)
	}
	defer func() {
		if err := sched.Stop(); err != nil {
			logger.Error(err, "muster-scheduler stopped with an error")
		}
	}()
	fmt.Fprintf(out, "Started muster-scheduler (manifests/scheduler-config.yaml, schedulerName %q)\n", scheduler.SchedulerName)

	factory := informers.NewSharedInformerFactory(cp.Client, 0)
	tr, err := newTracker(factory, clk)
	if err != nil {
		return nil, err
	}
	factory.Start(runCtx.Done())
	defer func() {
		cancel() // Shutdown waits for the informers, which stop with runCtx
		factory.Shutdown()
	}()
	factory.WaitForCacheSync(runCtx.Done())

	workload := demoWorkload(opts.Short)
	fmt.Fprintf(out, "Replaying the demo workload at %gx speed\n\n", opts.TimeScale)
	start := clk.Now()
	submitErr := make(chan error, 1)
	go func() { submitErr <- submit(runCtx, cp, tr, workload, opts.TimeScale, start, clk, out) }()

	if err := waitDone(runCtx, tr, workload, submitErr, sched, start, opts, out); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(out, "\nInterrupted; shutting down.")
			return nil, ctx.Err()
		}
		return nil, err
	}

	summary := tr.summary(start)
	fmt.Fprintf(out, "\n%s", summary)
	if opts.OnFinished != nil {
		if err := opts.OnFinished(ctx, cp, summary); err != nil {
			return &summary, err
		}
	}
	if opts.Keep {
		fmt.Fprintf(out, "\nThe sandbox keeps running. In another terminal:\n  export KUBECONFIG=%s\n  kubectl get pods -A -o wide\nPress Ctrl-C to stop it.\n", cp.Kubeconfig)
		<-ctx.Done()
		fmt.Fprintln(out, "Shutting down.")
	}
	return &summary, nil
}

// submit creates each arrival's pods at its scaled offset from start.
func submit(ctx context.Context, cp *controlplane.ControlPlane, tr *tracker, workload []arrival, scale float64, start time.Time, clk clock.Clock, out io.Writer) error {
	for _, a := range workload {
		at := time.Duration(float64(a.at) / scale)
		if wait := at - clk.Since(start); wait > 0 {
			select {
			case <-clk.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		tr.submitted(a.pods)
		if err := cluster.CreatePods(ctx, cp.Client, a.pods); err != nil {
			return err
		}
		fmt.Fprintf(out, "[%6.1fs] submitted %s\n", clk.Since(start).Seconds(), a.what)
	}
	return nil
}

// waitDone prints progress until every pod of the workload has finished.
func waitDone(ctx context.Context, tr *tracker, workload []arrival, submitErr <-chan error, sched *scheduler.InProcess, start time.Time, opts Options, out io.Writer) error {
	total := 0
	for _, a := range workload {
		total += len(a.pods)
	}
	ticker := opts.Clock.NewTicker(500 * time.Millisecond)
	defer ticker.Stop()
	deadline := opts.Clock.After(opts.Timeout)
	var last counts
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-submitErr:
			if err != nil {
				return fmt.Errorf("submitting the workload: %w", err)
			}
			submitErr = nil
		case <-sched.Done():
			return fmt.Errorf("muster-scheduler stopped: %w", sched.Err())
		case <-deadline:
			return fmt.Errorf("the workload did not finish within %s: %s", opts.Timeout, tr.counts())
		case <-ticker.C():
			c := tr.counts()
			if c != last {
				fmt.Fprintf(out, "[%6.1fs] %s\n", opts.Clock.Since(start).Seconds(), c)
				last = c
			}
			if c.submitted == total && c.succeeded+c.failed == total {
				return nil
			}
		}
	}
}

func describePools() string {
	spot, od := 0, 0
	zones, types := map[string]bool{}, map[string]bool{}
	for _, p := range defaultPools {
		if p.spot {
			spot += p.count
		} else {
			od += p.count
		}
		zones[p.zone], types[p.instanceType] = true, true
	}
	return fmt.Sprintf("%d on-demand, %d spot; %d instance types over %d zones", od, spot, len(types), len(zones))
}
