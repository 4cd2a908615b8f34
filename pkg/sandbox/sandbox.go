// Package sandbox runs muster end to end on one machine: a real control plane
// in-process, simulated spot and on-demand nodes and kubelet, muster-scheduler
// with its shipped configuration, and a trace of Spark applications, ML
// training gangs, batch pods and spot interruptions. It shows live progress
// and reports, per queue and overall, what the scheduler did; with the
// default kube-scheduler profile too, for a side-by-side what-if.
package sandbox

import (
	"context"
	"embed"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"muster.dev/muster/manifests"
	"muster.dev/muster/pkg/controlplane"
	"muster.dev/muster/pkg/podgroup"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/pkg/simkubelet"
)

//go:embed demo/*.yaml
var demo embed.FS

// Schedulers a run can use.
const (
	SchedulerMuster  = "muster"
	SchedulerDefault = "default"
)

// Options configures a sandbox run.
type Options struct {
	// Out receives progress and the report.
	Out io.Writer
	// Live redraws a compact view in place (a terminal); otherwise progress
	// is plain lines.
	Live bool
	// Trace, Cluster and Queues are the files' contents; empty means the
	// built-in demo (or the short trace with Short).
	Trace, Cluster, Queues []byte
	Short                  bool
	// TimeScale speeds declared time up (arrivals, run times, notices); the
	// scheduler itself runs in real time. Default 40.
	TimeScale float64
	// Timeout bounds the run in real time; default: the trace's length at
	// its time scale, plus five minutes.
	Timeout time.Duration
	// Scheduler is SchedulerMuster (default) or SchedulerDefault.
	Scheduler string
	// Keep leaves everything running after the report, until ctx ends, and
	// prints a kubeconfig for kubectl.
	Keep bool
	// OnFinished, when set, is called after the report with everything
	// still up (control plane, scheduler, Prometheus), e.g. to check the
	// report against the cluster.
	OnFinished func(ctx context.Context, f Finished) error
	// Prometheus is the path of a prometheus binary (LookPrometheus) to run
	// beside the scheduler, scraping its metrics every ScrapeInterval
	// (default 1s) with muster's alerts loaded; empty: none.
	Prometheus     string
	ScrapeInterval time.Duration
	Clock          clock.WithTickerAndDelayedExecution
	// Seed drives the variation of pod run times (within 10% of the
	// declared ones), so that a run can be repeated exactly; default 1.
	Seed int64
}

// Finished is what OnFinished is handed.
type Finished struct {
	ControlPlane *controlplane.ControlPlane
	Report       Report
	// PrometheusURL is the sandbox's Prometheus (Options.Prometheus), or
	// empty.
	PrometheusURL string
}

// inputs are the parsed files of a run.
type inputs struct {
	trace   *Trace
	cluster *ClusterSpec
	queues  []byte
	tree    *queue.Tree
}

// load parses and checks every input before anything starts.
func load(opts Options) (*inputs, error) {
	read := func(given []byte, name string) ([]byte, error) {
		if len(given) > 0 {
			return given, nil
		}
		return demo.ReadFile("demo/" + name)
	}
	traceName := "trace.yaml"
	if opts.Short {
		traceName = "short.yaml"
	}
	in := &inputs{}
	b, err := read(opts.Trace, traceName)
	if err != nil {
		return nil, err
	}
	if in.trace, err = ParseTrace(b); err != nil {
		return nil, err
	}
	if b, err = read(opts.Cluster, "cluster.yaml"); err != nil {
		return nil, err
	}
	if in.cluster, err = ParseCluster(b); err != nil {
		return nil, err
	}
	if in.queues, err = read(opts.Queues, "queues.yaml"); err != nil {
		return nil, err
	}
	if in.tree, err = queue.Parse(in.queues); err != nil {
		return nil, fmt.Errorf("the queue file is invalid:\n%w", err)
	}
	// Interruptions must name pools and nodes of this cluster.
	pools, nodes := map[string]bool{}, map[string]bool{}
	for _, p := range in.cluster.Pools {
		pools[p.poolName()] = true
		for _, n := range poolNodes(p) {
			nodes[n.Name] = true
		}
	}
	var p problems
	for i, e := range in.trace.Events {
		if e.Interrupt == nil {
			continue
		}
		if e.Interrupt.Pool != "" && !pools[e.Interrupt.Pool] {
			p.add(fmt.Sprintf("events[%d].interrupt.pool", i), "%q is not a pool of the cluster", e.Interrupt.Pool)
		}
		if e.Interrupt.Node != "" && !nodes[e.Interrupt.Node] {
			p.add(fmt.Sprintf("events[%d].interrupt.node", i), "%q is not a node of the cluster", e.Interrupt.Node)
		}
	}
	return in, p.err("the trace")
}

func (o *Options) defaults() {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.TimeScale <= 0 {
		o.TimeScale = 40
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Scheduler == "" {
		o.Scheduler = SchedulerMuster
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.ScrapeInterval <= 0 {
		o.ScrapeInterval = DefaultScrapeInterval
	}
}

// Validate checks the inputs of a run without starting anything.
func Validate(opts Options) error {
	_, err := load(opts)
	return err
}

// Run replays the trace once and returns the report. It returns ctx's error
// if ctx ends first, having shut everything down.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.defaults()
	in, err := load(opts)
	if err != nil {
		return nil, err
	}
	return run(ctx, opts, in)
}

// Compare replays the trace with muster and then with kube-scheduler's
// default profile, each on a fresh control plane, and prints both side by side.
func Compare(ctx context.Context, opts Options) ([]Report, error) {
	opts.defaults()
	in, err := load(opts)
	if err != nil {
		return nil, err
	}
	var out []Report
	for _, s := range []string{SchedulerMuster, SchedulerDefault} {
		o := opts
		o.Scheduler, o.Keep = s, false
		fmt.Fprintf(opts.Out, "\n=== %s ===\n", s)
		r, err := run(ctx, o, in)
		if err != nil {
			return out, err
		}
		out = append(out, *r)
	}
	fmt.Fprintf(opts.Out, "\nThe same trace, side by side:\n\n")
	printReports(opts.Out, out...)
	return out, nil
}

func run(ctx context.Context, opts Options, in *inputs) (*Report, error) {
	s := &session{opts: opts, in: in, out: opts.Out, clk: opts.Clock, logger: klog.FromContext(ctx)}
	defer s.close()
	steps := []func(context.Context) error{s.startControlPlane, s.startWorld, s.startScheduler, s.startPrometheus, s.startInformers}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	if err := s.replay(ctx); err != nil {
		return nil, err
	}
	return s.finish(ctx)
}

// session is one replay: what it started, stopped in reverse order by close.
type session struct {
	opts   Options
	in     *inputs
	out    io.Writer
	clk    clock.WithTickerAndDelayedExecution
	logger klog.Logger

	cp      *controlplane.ControlPlane
	factory informers.SharedInformerFactory
	obs     *observer
	w       *world
	sched   *scheduler.InProcess
	prom    *prometheusServer
	// runCtx ends the kubelet, the informers and the replay.
	runCtx context.Context
	cancel context.CancelFunc
	stops  []func()
}

func (s *session) close() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
}

// startControlPlane starts etcd and kube-apiserver, with muster's namespace
// and the queue ConfigMap.
func (s *session) startControlPlane(ctx context.Context) error {
	fmt.Fprintf(s.out, "Starting a Kubernetes control plane in this process (etcd + kube-apiserver)...\n")
	started := s.clk.Now()
	cp, err := controlplane.Start(ctx, controlplane.Options{})
	if err != nil {
		return err
	}
	s.cp = cp
	s.stops = append(s.stops, func() {
		if err := cp.Stop(); err != nil {
			s.logger.Error(err, "Stopping the control plane")
		}
	})
	fmt.Fprintf(s.out, "  ready in %s at %s\n", s.clk.Since(started).Round(100*time.Millisecond), cp.Config.Host)
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "muster-system"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if _, err := cp.Client.CoreV1().ConfigMaps("muster-system").Create(ctx, &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "muster-queues", Namespace: "muster-system"},
		Data:       map[string]string{queue.ConfigKey: string(s.in.queues)},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the queue ConfigMap: %w", err)
	}
	return nil
}

// startWorld creates the simulated nodes and starts the simulated kubelet.
func (s *session) startWorld(ctx context.Context) error {
	pg, err := podgroup.NewClient(s.cp.Config)
	if err != nil {
		return err
	}
	s.runCtx, s.cancel = context.WithCancel(ctx)
	s.stops = append(s.stops, s.cancel)
	s.factory = informers.NewSharedInformerFactory(s.cp.Client, 0)
	s.obs = newObserver(s.clk, s.in.tree, s.factory.Core().V1().Nodes().Lister(), s.opts.TimeScale)
	s.w = &world{client: s.cp.Client, pg: pg, clock: s.clk, scale: s.opts.TimeScale, cluster: s.in.cluster, obs: s.obs,
		logger: s.logger, apps: map[string]*app{}, schedulerName: scheduler.SchedulerName,
		rng: rand.New(rand.NewPCG(uint64(s.opts.Seed), 0x6d7573746572))}
	if err := s.w.nodes(ctx); err != nil {
		return err
	}
	nodeCount := 0
	for _, p := range s.in.cluster.Pools {
		nodeCount += p.Count
	}
	fmt.Fprintf(s.out, "Created %d simulated nodes in %d pools\n", nodeCount, len(s.in.cluster.Pools))

	// DRA: claims made from templates, given back when their pods are done.
	if err := controlplane.RunResourceClaimController(s.runCtx, s.cp.Client); err != nil {
		return err
	}
	kubelet := simkubelet.New(s.cp.Client, simkubelet.Options{Clock: s.clk, TimeScale: s.opts.TimeScale})
	kubeletDone := make(chan error, 1)
	go func() { kubeletDone <- kubelet.Run(s.runCtx) }()
	s.stops = append(s.stops, func() {
		s.cancel()
		<-kubeletDone
	})
	return nil
}

// startScheduler starts muster-scheduler, or the default profile.
func (s *session) startScheduler(ctx context.Context) error {
	config, label := manifests.SchedulerConfig, "muster-scheduler (manifests/scheduler-config.yaml)"
	if s.opts.Scheduler == SchedulerDefault {
		config, label = scheduler.DefaultProfileConfig("default-scheduler"), "kube-scheduler's default profile (no queues, no gangs)"
		s.w.schedulerName = "default-scheduler"
	}
	// Leader election as shipped (lease muster-system/muster-scheduler),
	// as a replica of the Deployment runs it.
	sched, err := scheduler.StartInProcess(ctx, scheduler.InProcessOptions{Config: config, Kubeconfig: s.cp.Kubeconfig, Dir: s.cp.Dir,
		LeaderElect: s.opts.Scheduler == SchedulerMuster})
	if err != nil {
		return fmt.Errorf("starting the scheduler: %w", err)
	}
	s.sched = sched
	s.stops = append(s.stops, func() {
		if err := sched.Stop(); err != nil {
			s.logger.Error(err, "The scheduler stopped with an error")
		}
	})
	fmt.Fprintf(s.out, "Started %s\n", label)
	return nil
}

// startPrometheus starts Prometheus scraping the scheduler, if asked to.
// Its data lives in the control plane's directory, removed with it.
func (s *session) startPrometheus(ctx context.Context) error {
	if s.opts.Prometheus == "" {
		return nil
	}
	job := PrometheusJob
	if s.opts.Scheduler == SchedulerDefault {
		job = "default-scheduler"
	}
	p, err := startPrometheus(ctx, s.opts.Prometheus, filepath.Join(s.cp.Dir, "prometheus"), job, s.sched.Addr, s.opts.ScrapeInterval)
	if err != nil {
		return err
	}
	s.prom = p
	s.stops = append(s.stops, func() {
		if err := p.stop(); err != nil {
			s.logger.Error(err, "Stopping Prometheus")
		}
	})
	fmt.Fprintf(s.out, "Started Prometheus at %s (job %s, scraping %s every %s, muster's alerts loaded)\n", p.URL, job, s.sched.Addr, s.opts.ScrapeInterval)
	return nil
}

// startInformers starts the pod watches of the observer and the world.
func (s *session) startInformers(context.Context) error {
	podInformer := s.factory.Core().V1().Pods().Informer()
	if err := s.obs.watch(podInformer); err != nil {
		return err
	}
	if err := s.w.watch(s.runCtx, podInformer); err != nil {
		return err
	}
	s.factory.Start(s.runCtx.Done())
	s.stops = append(s.stops, func() {
		s.cancel() // Shutdown waits for the informers, which stop with runCtx
		s.factory.Shutdown()
	})
	s.factory.WaitForCacheSync(s.runCtx.Done())
	return nil
}

// traceName is the trace's name for the output.
func (s *session) traceName() string {
	if s.in.trace.Name == "" {
		return "trace"
	}
	return s.in.trace.Name
}

// replay plays the trace and shows the live view until everything has run,
// or the timeout (by default the trace's length, scaled, plus 5 minutes).
func (s *session) replay(ctx context.Context) error {
	last := time.Duration(0)
	for _, e := range s.in.trace.Events {
		last = max(last, e.At.Duration)
	}
	timeout := s.opts.Timeout
	if timeout <= 0 {
		timeout = time.Duration(float64(last)/s.opts.TimeScale) + 5*time.Minute
	}
	fmt.Fprintf(s.out, "Replaying %s (%d events) at %gx speed\n\n", s.traceName(), len(s.in.trace.Events), s.opts.TimeScale)
	s.obs.start = s.clk.Now()
	playErr := make(chan error, 1)
	go func() { playErr <- s.w.play(s.runCtx, s.in.trace, s.obs.start) }()

	view := newLiveView(s.out, s.opts.Live, s.in.tree)
	defer view.done()
	ticker := s.clk.NewTicker(time.Second)
	defer ticker.Stop()
	deadline := s.clk.After(timeout)
	played := false
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(s.out, "\nInterrupted; shutting down.")
			return ctx.Err()
		case err := <-playErr:
			if err != nil {
				return fmt.Errorf("replaying the trace: %w", err)
			}
			played, playErr = true, nil
		case <-s.sched.Done():
			return fmt.Errorf("the scheduler stopped: %w", s.sched.Err())
		case <-deadline:
			fmt.Fprintf(s.out, "\nStopped after %s: some pods never ran (see the report).\n", timeout)
			return nil
		case <-ticker.C():
			view.show(s.obs.sample(), s.obs)
			if played && s.obs.finished() {
				return nil
			}
		}
	}
}

// finish prints the report, hands it to OnFinished, and with Keep waits
// for Ctrl-C.
func (s *session) finish(ctx context.Context) (*Report, error) {
	timedOut := 0
	if evs, err := s.cp.Client.CoreV1().Events("").List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("reason", "GangTimedOut").String()}); err == nil {
		seen := map[string]bool{}
		for _, e := range evs.Items {
			seen[e.InvolvedObject.Namespace+"/"+e.InvolvedObject.Name] = true
		}
		timedOut = len(seen)
	}
	report := s.obs.report(s.opts.Scheduler, s.traceName(), timedOut)
	fmt.Fprintln(s.out)
	report.Print(s.out)
	f := Finished{ControlPlane: s.cp, Report: report}
	if s.prom != nil {
		f.PrometheusURL = s.prom.URL
	}
	if s.opts.OnFinished != nil {
		if err := s.opts.OnFinished(ctx, f); err != nil {
			return &report, err
		}
	}
	if s.opts.Keep {
		fmt.Fprintf(s.out, "\nThe sandbox keeps running. In another terminal:\n  export KUBECONFIG=%s\n  kubectl get pods -A -o wide\n  muster status --kubeconfig %s\n", s.cp.Kubeconfig, s.cp.Kubeconfig)
		if s.prom != nil {
			fmt.Fprintf(s.out, "Prometheus: %s (graph: %s/graph, alerts: %s/alerts; the dashboard's queries work with job=%q)\n", s.prom.URL, s.prom.URL, s.prom.URL, PrometheusJob)
		}
		fmt.Fprintf(s.out, "Press Ctrl-C to stop it.\n")
		<-ctx.Done()
		fmt.Fprintln(s.out, "Shutting down.")
	}
	return &report, nil
}
