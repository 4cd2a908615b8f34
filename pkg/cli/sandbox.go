package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"muster.dev/muster/pkg/sandbox"
)

func newSandboxCommand() *cobra.Command {
	var (
		opts    sandbox.Options
		logFile string
	)
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Run muster on a simulated cluster on this machine, with nothing installed",
		Long: `Starts a real Kubernetes control plane in this process (etcd and kube-apiserver),
a dozen simulated spot and on-demand nodes, muster-scheduler with its shipped
configuration and a demo workload from several tenants; shows progress while pods
schedule and finish, and prints a summary. --keep leaves it running for kubectl.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The control plane logs a great deal; keep the terminal for progress.
			if logFile == "" {
				logFile = filepath.Join(os.TempDir(), fmt.Sprintf("muster-sandbox-%d.log", os.Getpid()))
			}
			f, err := os.Create(logFile)
			if err != nil {
				return fmt.Errorf("opening log file: %w", err)
			}
			defer f.Close()
			quietKlog(f)
			defer klog.Flush()
			fmt.Fprintf(cmd.OutOrStdout(), "Logs of the control plane and scheduler: %s\n", logFile)

			opts.Out = cmd.OutOrStdout()
			_, err = sandbox.Run(cmd.Context(), opts)
			return err
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&opts.Keep, "keep", false, "keep the cluster running after the workload finishes and print a kubeconfig for kubectl; Ctrl-C stops it")
	fs.BoolVar(&opts.Short, "short", false, "a smaller, faster workload")
	fs.Float64Var(&opts.TimeScale, "time-scale", 0, "speed-up of declared time (arrivals, pod run times); default 10, or 20 with --short")
	fs.DurationVar(&opts.Timeout, "timeout", 5*time.Minute, "give up if the workload has not finished after this long")
	fs.StringVar(&logFile, "log-file", "", "where the control plane and scheduler log (default: a file in the temp directory)")
	return cmd
}

// quietKlog sends every klog line, errors included, to w only.
func quietKlog(w io.Writer) {
	var fs flag.FlagSet
	klog.InitFlags(&fs)
	for name, value := range map[string]string{"logtostderr": "false", "alsologtostderr": "false", "stderrthreshold": "FATAL"} {
		_ = fs.Set(name, value)
	}
	klog.SetOutput(w)
}
