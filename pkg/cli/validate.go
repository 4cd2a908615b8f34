package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

func newValidateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a queue configuration offline: queues.yaml, or the muster-queues ConfigMap manifest",
		Long: `Checks a queue configuration the way muster-scheduler does before applying it.
FILE is queues.yaml itself or a ConfigMap manifest with a queues.yaml key ("-" reads stdin).
Exit status 0 with a summary of the tree when it is valid; 1 with every error and its path.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var data []byte
			var err error
			if args[0] == "-" {
				data, err = io.ReadAll(cmd.InOrStdin())
			} else {
				data, err = os.ReadFile(args[0])
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", args[0], err)
			}
			data, err = queuesYAML(data)
			if err != nil {
				return err
			}
			t, err := queue.Parse(data)
			if err != nil {
				var ce queue.ConfigError
				if errors.As(err, &ce) {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: invalid queue configuration, %d error(s):\n", args[0], len(ce))
					for _, fe := range ce {
						fmt.Fprintf(cmd.ErrOrStderr(), "  %s\n", fe.Error())
					}
					return errSilentFailure
				}
				return err
			}
			printTree(cmd.OutOrStdout(), t)
			return nil
		},
	}
}

// queuesYAML returns queues.yaml from data, which is either that file or a
// ConfigMap manifest holding it.
func queuesYAML(data []byte) ([]byte, error) {
	var head struct {
		Kind string            `json:"kind"`
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(data, &head); err != nil || head.Kind != "ConfigMap" {
		return data, nil // not a ConfigMap: the parser reports what is wrong
	}
	s, ok := head.Data[queue.ConfigKey]
	if !ok {
		return nil, fmt.Errorf("the ConfigMap has no %s key", queue.ConfigKey)
	}
	return []byte(s), nil
}

// printTree writes a short summary of a valid tree.
func printTree(w io.Writer, t *queue.Tree) {
	fmt.Fprintf(w, "valid: %d queues, %d leaves\n", len(t.Queues)-1, len(t.Leaves()))
	var walk func(q *queue.Queue, prefix string, last bool)
	walk = func(q *queue.Queue, prefix string, last bool) {
		line, childPrefix := q.Name, ""
		if q.Parent != nil {
			branch := "├─ "
			childPrefix = prefix + "│  "
			if last {
				branch, childPrefix = "└─ ", prefix+"   "
			}
			line = prefix + branch + q.Name
		}
		var attrs []string
		if q.Parent != nil && q.Weight != 1 {
			attrs = append(attrs, fmt.Sprintf("weight %g", q.Weight))
		}
		if len(q.Guaranteed) > 0 {
			attrs = append(attrs, "guaranteed "+compact(q.Guaranteed))
		}
		if len(q.Max) > 0 {
			attrs = append(attrs, "max "+compact(q.Max))
		}
		if q.Namespaces != nil {
			attrs = append(attrs, "namespaces "+strings.Join(q.Namespaces, ","))
		}
		if q.CapacityPolicy != "" && (q.Parent == nil || q.Parent.CapacityPolicy != q.CapacityPolicy) {
			attrs = append(attrs, "capacityPolicy "+string(q.CapacityPolicy))
		}
		if q.Parent != nil && q.Ordering != q.Parent.Ordering {
			attrs = append(attrs, "ordering "+string(q.Ordering))
		}
		if q.MinRuntime > 0 && (q.Parent == nil || q.Parent.MinRuntime != q.MinRuntime) {
			attrs = append(attrs, fmt.Sprintf("minRuntimeSeconds %d", int64(q.MinRuntime/time.Second)))
		}
		if len(attrs) > 0 {
			line += "  (" + strings.Join(attrs, "; ") + ")"
		}
		fmt.Fprintln(w, line)
		for i, c := range q.Children {
			walk(c, childPrefix, i == len(q.Children)-1)
		}
	}
	walk(t.Root, "", true)
	nsq := t.NamespaceQueues()
	if len(nsq) == 0 {
		fmt.Fprintln(w, "namespaceQueues: none (pods without a muster.dev/queue label are refused)")
		return
	}
	keys := make([]string, 0, len(nsq))
	for k := range nsq {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(w, "namespaceQueues:")
	for _, k := range keys {
		fmt.Fprintf(w, "  %s -> %s\n", k, nsq[k])
	}
	if _, ok := nsq["*"]; !ok {
		fmt.Fprintln(w, `  (no "*" fallback: pods of other namespaces need a muster.dev/queue label)`)
	}
}

func compact(v resources.Vector) string {
	return strings.ReplaceAll(v.String(), ", ", ",")
}
