package scheduler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/component-base/configz"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

// DefaultProfileConfig is a KubeSchedulerConfiguration with kube-scheduler's
// default profile only, under the given schedulerName: the baseline muster is
// compared with.
func DefaultProfileConfig(schedulerName string) []byte {
	return fmt.Appendf(nil, `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: false
clientConnection:
  qps: 500
  burst: 1000
profiles:
  - schedulerName: %s
`, schedulerName)
}

// inProcessRunning guards against a second concurrent in-process scheduler:
// kube-scheduler's Run registers process-wide state (configz) that only one
// instance may hold. Run them one after another, or run the binary.
var inProcessRunning atomic.Bool

// InProcessOptions configures a scheduler run inside the current process.
type InProcessOptions struct {
	// Config is the KubeSchedulerConfiguration document, e.g.
	// manifests.SchedulerConfig or DefaultProfileConfig(...).
	Config []byte
	// Kubeconfig of the cluster; it fills clientConnection.kubeconfig
	// unless the config names one.
	Kubeconfig string
	// Dir receives the effective config file; it must exist.
	Dir string
	// Flags are extra kube-scheduler flags.
	Flags []string
	// LeaderElect keeps leader election as the configuration says (the
	// shipped one: on, lease muster-system/muster-scheduler) instead of
	// turning it off. The elector then runs here rather than in
	// kube-scheduler's Run, which exits the process when it stops leading:
	// the scheduler runs while this process leads, and stops with an error
	// if it loses the lease.
	LeaderElect bool
}

// InProcess is a scheduler running inside the current process.
type InProcess struct {
	// Addr is the host:port of its secure endpoint (/healthz, /metrics, ...).
	Addr string

	cancel context.CancelFunc
	done   chan struct{}
	err    error
	once   sync.Once
}

// StartInProcess runs kube-scheduler with muster's plugins registered, built
// exactly as the muster-scheduler binary builds it (same options, same
// Setup and Run), until Stop. Leader election is off unless o.LeaderElect;
// kube-scheduler's own elector exits the process when it stops leading,
// which only a separate process can survive, so run the binary to test
// failover.
//
// Its secure endpoint listens on a free loopback port and serves /healthz,
// /readyz, /livez, /metrics and /configz without authentication.
func StartInProcess(ctx context.Context, o InProcessOptions) (_ *InProcess, err error) {
	if !inProcessRunning.CompareAndSwap(false, true) {
		return nil, errors.New("another in-process scheduler is running; stop it first")
	}
	defer func() {
		if err != nil {
			inProcessRunning.Store(false)
		}
	}()
	cfg, _, err := SetDefaultKubeconfig(o.Config, o.Kubeconfig)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(o.Dir, "scheduler-config-*.yaml")
	if err != nil {
		return nil, fmt.Errorf("writing scheduler config: %w", err)
	}
	if _, err := f.Write(cfg); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("writing scheduler config: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("writing scheduler config: %w", err)
	}

	opts := options.NewOptions()
	fs := pflag.NewFlagSet("muster-scheduler", pflag.ContinueOnError)
	for _, set := range opts.Flags.FlagSets {
		fs.AddFlagSet(set)
	}
	args := []string{
		"--config=" + filepath.Clean(f.Name()),
		"--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics,/configz",
	}
	if !o.LeaderElect {
		args = append(args, "--leader-elect=false")
	}
	args = append(args, o.Flags...)
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("scheduler flags: %w", err)
	}
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, fmt.Errorf("scheduler feature gates: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the scheduler endpoint: %w", err)
	}
	opts.SecureServing.Listener = ln
	opts.SecureServing.BindPort = ln.Addr().(*net.TCPAddr).Port
	opts.SecureServing.BindAddress = net.ParseIP("127.0.0.1")

	runCtx, cancel := context.WithCancel(klog.NewContext(context.Background(), klog.FromContext(ctx)))
	cc, sched, err := setup(runCtx, opts)
	if err != nil {
		cancel()
		_ = ln.Close()
		return nil, err
	}
	// With leader election on, the elector runs here (runElected); Run
	// then runs as without, while this process leads.
	le := cc.LeaderElection
	if le != nil {
		cc.LeaderElection = nil
		cc.ComponentConfig.LeaderElection.LeaderElect = false
	}
	s := &InProcess{Addr: ln.Addr().String(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		var err error
		if le == nil {
			err = app.Run(runCtx, cc, sched)
		} else {
			err = runElected(runCtx, *le, func(ctx context.Context) error { return app.Run(ctx, cc, sched) })
		}
		if runCtx.Err() == nil {
			s.err = err // stopped on its own: a real failure
		}
		configz.Delete("componentconfig")
		inProcessRunning.Store(false)
	}()
	return s, nil
}

// runElected runs a leader elector with le and, while it leads, run. It
// returns when ctx ends (having released the lease) or the lease is lost,
// once run has returned.
func runElected(ctx context.Context, le leaderelection.LeaderElectionConfig, run func(context.Context) error) error {
	var (
		mu      sync.Mutex
		stopped bool
		running sync.WaitGroup
		runErr  error
	)
	le.Callbacks = leaderelection.LeaderCallbacks{
		OnStartedLeading: func(ctx context.Context) {
			mu.Lock()
			if stopped {
				mu.Unlock()
				return
			}
			running.Add(1)
			mu.Unlock()
			defer running.Done()
			err := run(ctx)
			mu.Lock()
			runErr = err
			mu.Unlock()
		},
		OnStoppedLeading: func() {},
	}
	elector, err := leaderelection.NewLeaderElector(le)
	if err != nil {
		return fmt.Errorf("building the leader elector: %w", err)
	}
	elector.Run(ctx) // returns when ctx ends or the lease is lost; its context, run's, ends with it
	mu.Lock()
	stopped = true
	mu.Unlock()
	running.Wait()
	if ctx.Err() == nil {
		return fmt.Errorf("lost the lease %s", le.Lock.Describe())
	}
	mu.Lock()
	defer mu.Unlock()
	return runErr
}

// Stop stops the scheduler and waits until it has. It returns the error the
// scheduler failed with, if it stopped on its own before.
func (s *InProcess) Stop() error {
	s.once.Do(func() {
		s.cancel()
		<-s.done
	})
	return s.err
}

// Done is closed when the scheduler has stopped.
func (s *InProcess) Done() <-chan struct{} { return s.done }

// Err reports why the scheduler stopped on its own (nil while it runs).
func (s *InProcess) Err() error {
	select {
	case <-s.done:
		if s.err == nil {
			return errors.New("scheduler stopped")
		}
		return s.err
	default:
		return nil
	}
}
