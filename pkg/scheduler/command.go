package scheduler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/apiserver/pkg/server"
	"k8s.io/client-go/tools/cache"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/cli/globalflag"
	basecompatibility "k8s.io/component-base/compatibility"
	"k8s.io/component-base/featuregate"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
	// client-go's metrics (rest_client_*: requests, client-side throttling)
	// and leader election's (leader_election_master_status), registered as
	// kube-scheduler's own main does. The dashboard and the alerts
	// (manifests/) use both.
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	"k8s.io/component-base/term"
	"k8s.io/component-base/version/verflag"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedulerappconfig "k8s.io/kubernetes/cmd/kube-scheduler/app/config"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	kubescheduler "k8s.io/kubernetes/pkg/scheduler"
	"k8s.io/utils/clock"

	"muster.dev/muster/pkg/leadership"
)

// NewCommand returns the muster-scheduler command: kube-scheduler's own
// command with muster's plugins registered, taking every kube-scheduler flag.
//
// It is built here rather than by app.NewSchedulerCommand because muster
// needs what kube-scheduler's Setup creates before Run starts: the leader
// election lock, whose exact identity (host name and a random suffix)
// tells the plugins whether this process holds the lease (pkg/leadership).
//
// One addition: kube-scheduler ignores --kubeconfig when --config is given,
// which surprises everyone who runs it outside a cluster. muster-scheduler
// honours --kubeconfig when the config file leaves clientConnection.kubeconfig
// empty (a kubeconfig in the file still wins, as kube-scheduler documents).
func NewCommand() *cobra.Command {
	opts := options.NewOptions()
	cmd := &cobra.Command{
		Use:   "muster-scheduler",
		Short: "muster: a gang-aware batch scheduler for Kubernetes (kube-scheduler with muster's plugins)",
		Long: `muster-scheduler is kube-scheduler with muster's plugins (tenant queues, fair
share, gangs, spot / on-demand placement), run as a secondary scheduler: pods
opt in with spec.schedulerName: muster. It takes every kube-scheduler flag.`,
		// Feature gates are set before RunE, as kube-scheduler does.
		PersistentPreRunE: func(*cobra.Command, []string) error { return opts.ComponentGlobalsRegistry.Set() },
		RunE: func(c *cobra.Command, _ []string) error {
			cleanup, err := applyKubeconfigFlag(c)
			if err != nil {
				return err
			}
			defer cleanup()
			return run(c, opts)
		},
		Args: func(c *cobra.Command, args []string) error {
			for _, a := range args {
				if a != "" {
					return fmt.Errorf("%q takes no arguments, got %q", c.CommandPath(), args)
				}
			}
			return nil
		},
		// An error at start-up names its cause; the usage text would only hide it.
		SilenceUsage: true,
	}
	nfs := opts.Flags
	verflag.AddFlags(nfs.FlagSet("global"))
	globalflag.AddGlobalFlags(nfs.FlagSet("global"), cmd.Name(), logs.SkipLoggingConfigurationFlags())
	for _, set := range nfs.FlagSets {
		cmd.Flags().AddFlagSet(set)
	}
	cols, _, _ := term.TerminalSize(cmd.OutOrStdout())
	cliflag.SetUsageAndHelpFunc(cmd, *nfs, cols)
	_ = cmd.MarkFlagFilename("config", "yaml", "yml", "json")
	return cmd
}

// run is kube-scheduler's own start-up (logging, signals, Setup, Run) with
// this process's leadership followed between Setup and Run.
func run(c *cobra.Command, opts *options.Options) error {
	verflag.PrintAndExitIfRequested()
	fg := opts.ComponentGlobalsRegistry.FeatureGateFor(basecompatibility.DefaultKubeComponent)
	if err := logsapi.ValidateAndApply(opts.Logs, fg); err != nil {
		return fmt.Errorf("logging configuration: %w", err)
	}
	cliflag.PrintFlags(c.Flags())
	if opts.InformerName == nil {
		name, err := cache.NewInformerName("kube-scheduler")
		if err != nil {
			return err
		}
		opts.InformerName = name
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-server.SetupSignalHandler()
		cancel()
	}()
	cc, sched, err := setup(ctx, opts)
	if err != nil {
		return err
	}
	if mfg, ok := fg.(featuregate.MutableFeatureGate); ok {
		mfg.AddMetrics()
	}
	opts.ComponentGlobalsRegistry.AddMetrics()
	return app.Run(ctx, cc, sched)
}

// setup builds kube-scheduler with muster's plugins, each profile's runtime
// following this process's leadership: resolved here, after Setup created
// the leader election lock (or none) and before Run competes for the lease.
func setup(ctx context.Context, opts *options.Options) (*schedulerappconfig.CompletedConfig, *kubescheduler.Scheduler, error) {
	lead := leadership.New(clock.RealClock{})
	cc, sched, err := app.Setup(ctx, opts, RegistryOptions(lead)...)
	if err != nil {
		return nil, nil, err
	}
	lead.Follow(cc.LeaderElection)
	if id := lead.Identity(); id != "" {
		klog.FromContext(ctx).Info("Leader election on: this replica writes shared state only while it holds the lease", "identity", id)
	}
	return cc, sched, nil
}

// applyKubeconfigFlag rewrites --config to a copy of the file with
// clientConnection.kubeconfig set from --kubeconfig, when both flags are set
// and the file does not name a kubeconfig itself.
func applyKubeconfigFlag(c *cobra.Command) (func(), error) {
	noop := func() {}
	cfgFlag, kcFlag := c.Flags().Lookup("config"), c.Flags().Lookup("kubeconfig")
	if cfgFlag == nil || kcFlag == nil || !cfgFlag.Changed || !kcFlag.Changed {
		return noop, nil
	}
	data, err := os.ReadFile(cfgFlag.Value.String())
	if err != nil {
		return noop, fmt.Errorf("reading --config: %w", err)
	}
	kubeconfig, err := filepath.Abs(kcFlag.Value.String())
	if err != nil {
		return noop, fmt.Errorf("resolving --kubeconfig: %w", err)
	}
	out, changed, err := SetDefaultKubeconfig(data, kubeconfig)
	if err != nil {
		return noop, fmt.Errorf("--config %s: %w", cfgFlag.Value.String(), err)
	}
	if !changed {
		return noop, nil
	}
	f, err := os.CreateTemp("", "muster-scheduler-config-*.yaml")
	if err != nil {
		return noop, fmt.Errorf("writing effective config: %w", err)
	}
	cleanup := func() { _ = os.Remove(f.Name()) }
	if _, err := f.Write(out); err != nil {
		_ = f.Close()
		cleanup()
		return noop, fmt.Errorf("writing effective config: %w", err)
	}
	if err := f.Close(); err != nil {
		cleanup()
		return noop, fmt.Errorf("writing effective config: %w", err)
	}
	if err := c.Flags().Set("config", f.Name()); err != nil {
		cleanup()
		return noop, err
	}
	return cleanup, nil
}
