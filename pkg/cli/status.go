package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"

	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/status"
)

// kubeFlags are the usual kubectl connection flags.
type kubeFlags struct {
	kubeconfig, context, namespace string
}

func (f *kubeFlags) add(cmd *cobra.Command, defaultNamespace string) {
	cmd.Flags().StringVar(&f.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	cmd.Flags().StringVar(&f.context, "context", "", "the kubeconfig context to use")
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", defaultNamespace, "muster's namespace")
}

func (f *kubeFlags) client() (kubernetes.Interface, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: f.context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	return kubernetes.NewForConfig(cfg)
}

func newStatusCommand() *cobra.Command {
	var (
		kf     kubeFlags
		output string
		name   string
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print the queues of a live cluster: limits, usage and waiting work",
		Long: `Reads the queue status muster-scheduler publishes (ConfigMap muster-queue-status,
key status.yaml, in muster's namespace) and prints it as a table, or as YAML or JSON.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := kf.client()
			if err != nil {
				return err
			}
			cm, err := client.CoreV1().ConfigMaps(kf.namespace).Get(cmd.Context(), name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("reading the queue status (is muster-scheduler running?): %w", err)
			}
			r, err := status.Decode([]byte(cm.Data[status.Key]))
			if err != nil {
				return err
			}
			switch output {
			case "", "table":
				printStatus(cmd.OutOrStdout(), r, clock.RealClock{})
				return nil
			case "yaml":
				b, err := status.Encode(r)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			default:
				return fmt.Errorf("unknown output format %q: use table, yaml or json", output)
			}
		},
	}
	kf.add(cmd, configv1.DefaultNamespace)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, yaml or json")
	cmd.Flags().StringVar(&name, "configmap", configv1.DefaultStatusConfigMap, "the status ConfigMap")
	return cmd
}

// printStatus renders the report as a table, the tree shown by indentation.
func printStatus(w io.Writer, r status.Report, clk clock.PassiveClock) {
	fmt.Fprintf(w, "Config: %s", r.Config.Source)
	if r.Config.ResourceVersion != "" {
		fmt.Fprintf(w, " (resourceVersion %s, applied %s)", r.Config.ResourceVersion, r.Config.AppliedAt)
	}
	fmt.Fprintln(w)
	if !r.Config.Valid {
		fmt.Fprintln(w, "WARNING: no valid queue configuration is in force; muster admits no pods until the ConfigMap is fixed.")
	}
	if r.Config.LastError != "" {
		fmt.Fprintf(w, "Last edit refused at %s (the configuration above stays in force):\n", r.Config.LastErrorAt)
		for _, line := range strings.Split(r.Config.LastError, "\n") {
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
	if t, err := time.Parse(time.RFC3339, r.UpdatedAt); err == nil {
		if age := clk.Since(t); age > time.Minute {
			fmt.Fprintf(w, "WARNING: this status is %s old; is muster-scheduler running?\n", age.Round(time.Second))
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tWEIGHT\tGUARANTEED\tMAX\tALLOCATED\tRESERVED\tPENDING\tFAIR SHARE\tDOMINANT\tPODS (RUN/WAIT)")
	for _, q := range r.Queues {
		depth := strings.Count(q.Queue, ".")
		name := strings.Repeat("  ", depth) + q.Queue[strings.LastIndex(q.Queue, ".")+1:]
		fmt.Fprintf(tw, "%s\t%g\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f%%\t%d/%d\n", name, q.Weight,
			list(q.Guaranteed), list(q.Max), list(q.Allocated), list(q.Reserved), list(q.Pending), list(q.FairShare),
			100*q.DominantShare, q.RunningPods, q.PendingPods)
	}
	_ = tw.Flush()
	if len(r.PendingGangs) > 0 {
		fmt.Fprintln(w, "\nPENDING GANGS")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "GANG\tQUEUE\tPHASE\tMEMBERS\tSINCE\tREASON")
		for _, g := range r.PendingGangs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", g.Gang, g.Queue, g.Phase, g.Members, g.MinMember, g.Since, g.Reason)
		}
		_ = tw.Flush()
		if r.PendingGangsOmitted > 0 {
			fmt.Fprintf(w, "... and %d more pending gangs (newest; left out to keep the status within a ConfigMap)\n", r.PendingGangsOmitted)
		}
	}
	if len(r.Holds) > 0 {
		fmt.Fprintln(w, "\nHELD ROOM (the head of a queue waits for it; pods behind it may not take it)")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "QUEUE\tHOLDER\tHOLDING\tNODES\tSINCE")
		for _, h := range r.Holds {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", h.Queue, h.Holder, list(h.Holding), h.Nodes, h.Since)
		}
		_ = tw.Flush()
	}
}

func list(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}
