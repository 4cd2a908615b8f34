// Package cli implements the muster command (cmd/muster).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Main runs the muster command with args and returns its exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := NewRootCommand(stdout, stderr)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			return 130 // interrupted, like a shell reports Ctrl-C
		}
		if errors.Is(err, errSilentFailure) {
			return 1
		}
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	return 0
}

// invokedAs is the command's name in help texts: "kubectl muster" when the
// binary runs as the kubectl plugin kubectl-muster (kubectl passes the
// arguments after the plugin's name unchanged, so the commands and flags are
// the same), else "muster".
func invokedAs(argv0 string) string {
	if strings.HasPrefix(filepath.Base(argv0), "kubectl-") {
		return "kubectl muster"
	}
	return "muster"
}

// NewRootCommand returns the muster command tree.
func NewRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:         "muster",
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: invokedAs(os.Args[0])},
		Short:       "muster: a gang-aware batch scheduler for Kubernetes",
		Long: `muster schedules Spark and ML workloads on shared Kubernetes clusters:
tenant queues with quotas, fair share, all-or-nothing gangs and spot-aware placement.
It runs as a secondary scheduler; pods opt in with spec.schedulerName: muster.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newSandboxCommand(), newValidateCommand(), newStatusCommand(), newExplainCommand())
	return root
}
