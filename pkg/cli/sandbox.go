package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

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
		noLive, withPrometheus    bool
		prometheusBin             string
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
			case !cmd.Flags().Changed("compare") && traceF == "" && !opts.Short && !opts.Keep:
				// The demo shows what muster changes: against the default
				// scheduler (--keep keeps muster's run alone).
				compare = sandbox.SchedulerDefault
			case compare == sandbox.SchedulerDefault && opts.Keep:
				return fmt.Errorf("--keep keeps one run going: leave out --compare %s", compare)
			case compare == "none":
				compare = ""
			case compare != "" && compare != sandbox.SchedulerDefault:
				return fmt.Errorf("--compare takes %q (kube-scheduler's default profile) or \"none\", got %q", sandbox.SchedulerDefault, compare)
			}
			if withPrometheus || prometheusBin != "" {
				if opts.Prometheus, err = sandbox.LookPrometheus(prometheusBin); err != nil {
					return err
				}
			}
			format, err := reportFormat(output)
			if err != nil {
				return err
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
				if err := writeReports(output, format, reports); err != nil {
					return err
				}
				fmt.Fprintf(out, "Report written to %s\n", output)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&traceF, "trace", "", "the workload to replay (YAML, docs/sandbox.md); default the built-in demo")
	fs.StringVar(&clusterF, "cluster", "", "the simulated nodes (YAML, docs/sandbox.md); default the built-in cluster")
	fs.StringVar(&queuesF, "queues", "", "the queue tree (queues.yaml, as in the muster-queues ConfigMap); default the built-in one")
	fs.StringVar(&compare, "compare", "", `also replay the trace with "default" (kube-scheduler's default profile) and print both; "none" for muster only (default: "default" for the built-in demo, else none)`)
	fs.StringVarP(&output, "output", "o", "", "write the report to this file: .json (a list of two with --compare), or .html (a page with charts of the replay, no network needed)")
	fs.BoolVar(&opts.Keep, "keep", false, "keep the cluster running after the report and print a kubeconfig for kubectl (and Prometheus' URL); Ctrl-C stops it")
	fs.BoolVar(&withPrometheus, "prometheus", false, "also run the installed Prometheus (apt-get install prometheus), scraping muster-scheduler every second with muster's alerts loaded")
	fs.StringVar(&prometheusBin, "prometheus-bin", "", "the prometheus binary for --prometheus (default: $MUSTER_PROMETHEUS_BIN, else prometheus on PATH); implies --prometheus")
	fs.BoolVar(&opts.Short, "short", false, "a small, quick trace instead of the demo")
	fs.Float64Var(&opts.TimeScale, "time-scale", 0, "speed-up of declared time (arrivals, run times, notices); default 40")
	fs.DurationVar(&opts.Timeout, "timeout", 0, "give up after this long in real time (default: the trace's length plus 5 minutes)")
	fs.Int64Var(&opts.Seed, "seed", 1, "seed of the run-time variation, to repeat a run exactly")
	fs.BoolVar(&noLive, "plain", false, "plain progress lines even on a terminal")
	fs.StringVar(&logFile, "log-file", "", "where the control plane and scheduler log (default: a file in the temp directory)")
	return cmd
}

// Report formats, by the output file's extension.
const (
	formatJSON = "json"
	formatHTML = "html"
)

func reportFormat(path string) (string, error) {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case "", ".json":
		return formatJSON, nil
	case ".html", ".htm":
		return formatHTML, nil
	default:
		return "", fmt.Errorf("-o %s: the report is written as .json or .html, not %s", path, ext)
	}
}

func writeReports(path, format string, rs []sandbox.Report) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("writing the report: %w", cerr)
		}
	}()
	switch {
	case format == formatHTML:
		err = sandbox.WriteHTML(f, rs)
	case len(rs) == 1:
		err = rs[0].WriteJSON(f)
	default:
		enc := json.NewEncoder(f)
		enc.SetIndent("", "  ")
		err = enc.Encode(rs)
	}
	if err != nil {
		return fmt.Errorf("writing the report to %s: %w", path, err)
	}
	return nil
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
