package scheduler

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	// client-go's metrics (rest_client_*: requests, client-side throttling)
	// and leader election's (leader_election_master_status), registered as
	// kube-scheduler's own main does. The dashboard and the alerts
	// (manifests/) use both.
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
)

// NewCommand returns the muster-scheduler command: kube-scheduler's own
// command with muster's plugins registered, taking every kube-scheduler flag.
//
// One addition: kube-scheduler ignores --kubeconfig when --config is given,
// which surprises everyone who runs it outside a cluster. muster-scheduler
// honours --kubeconfig when the config file leaves clientConnection.kubeconfig
// empty (a kubeconfig in the file still wins, as kube-scheduler documents).
func NewCommand() *cobra.Command {
	cmd := app.NewSchedulerCommand(RegistryOptions()...)
	cmd.Use = "muster-scheduler"
	cmd.Short = "muster: a gang-aware batch scheduler for Kubernetes (kube-scheduler with muster's plugins)"
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		cleanup, err := applyKubeconfigFlag(c)
		if err != nil {
			return err
		}
		defer cleanup()
		return run(c, args)
	}
	// An error at start-up names its cause; the usage text would only hide it.
	cmd.SilenceUsage = true
	return cmd
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
