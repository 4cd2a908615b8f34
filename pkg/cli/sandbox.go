package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/klog/v2"

	"muster.dev/muster/pkg/sandbox"
)

func newSandboxCommand() *cobra.Command {
	var (
		opts                      sandbox.Options
		logFile, output, compare  string
		traceF, clusterF, queuesF string
		noLive                    bool
	)
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Run muster on a simulated cluster on this machine: a demo, or a what-if replay of your own trace",
		Long: `Starts a real Kubernetes control plane in this process (etcd and kube-apiserver),
simulated spot and on-demand nodes, muster-scheduler with its shipped configuration and a
queue tree, and replays a trace: Spark applications, ML training gangs, batch pods and spot
interruptions, faster than real time. Shows live progress and ends with a report per queue
(waits, share received against fair share), on gangs (admitted, timed out, partially bound),
on spot vs on-demand placement and on apps lost to interruptions.

With no files it runs the built-in demo twice, with muster and with kube-scheduler's default
profile, and prints both side by side (--compare none: muster only). --trace, --cluster and
--queues replay your own (see docs/sandbox.md); --compare default adds the default profile's
run to yours.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			for _, f := range []struct {
				path string
				dst  *[]byte
			}{{traceF, &opts.Trace}, {clusterF, &opts.Cluster}, {queuesF, &opts.Queues}} {
				if f.path == "" {
					continue
				}
				if *f.dst, err = os.ReadFile(f.path); err != nil {
					return fmt.Errorf("reading %s: %w", f.path, err)
				}
			}
			switch {
			case !cmd.Flags().Changed("compare") && traceF == "" && !opts.Short:
				// The demo shows what muster changes: against the default scheduler.
				compare = sandbox.SchedulerDefault
			case compare == "none":
				compare = ""
			case compare != "" && compare != sandbox.SchedulerDefault:
				return fmt.Errorf("--compare takes %q (kube-scheduler's default profile) or \"none\", got %q", sandbox.SchedulerDefault, compare)
			}
			// Bad files fail here, before anything starts.
			if err := sandbox.Validate(opts); err != nil {
				return err
			}

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
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Logs of the control plane and scheduler: %s\n", logFile)
			opts.Out = out
			opts.Live = !noLive && isTerminal(out)

			var reports []sandbox.Report
			if compare != "" {
				reports, err = sandbox.Compare(cmd.Context(), opts)
			} else {
				var r *sandbox.Report
				if r, err = sandbox.Run(cmd.Context(), opts); r != nil {
					reports = append(reports, *r)
				}
			}
			if err != nil {
				return err
			}
			if output != "" {
				return writeReports(output, reports)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&traceF, "trace", "", "the workload to replay (YAML, docs/sandbox.md); default the built-in demo")
	fs.StringVar(&clusterF, "cluster", "", "the simulated nodes (YAML, docs/sandbox.md); default the built-in cluster")
	fs.StringVar(&queuesF, "queues", "", "the queue tree (queues.yaml, as in the muster-queues ConfigMap); default the built-in one")
	fs.StringVar(&compare, "compare", "", `also replay the trace with "default" (kube-scheduler's default profile) and print both; "none" for muster only (default: "default" for the built-in demo, else none)`)
	fs.StringVarP(&output, "output", "o", "", "write the report as JSON to this file (a list of two with --compare)")
	fs.BoolVar(&opts.Keep, "keep", false, "keep the cluster running after the report and print a kubeconfig for kubectl; Ctrl-C stops it")
	fs.BoolVar(&opts.Short, "short", false, "a small, quick trace instead of the demo")
	fs.Float64Var(&opts.TimeScale, "time-scale", 0, "speed-up of declared time (arrivals, run times, notices); default 40")
	fs.DurationVar(&opts.Timeout, "timeout", 0, "give up after this long in real time (default: the trace's length plus 5 minutes)")
	fs.Int64Var(&opts.Seed, "seed", 1, "seed of the run-time variation, to repeat a run exactly")
	fs.BoolVar(&noLive, "plain", false, "plain progress lines even on a terminal")
	fs.StringVar(&logFile, "log-file", "", "where the control plane and scheduler log (default: a file in the temp directory)")
	return cmd
}

func writeReports(path string, rs []sandbox.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	defer f.Close()
	if len(rs) == 1 {
		return rs[0].WriteJSON(f)
	}
	enc := json.NewEncoder(f)
	enc.SetIndent("", "  ")
	return enc.Encode(rs)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
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
