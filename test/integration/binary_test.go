package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"muster.dev/muster/test/framework"
)

// process is a muster-scheduler binary running in the background.
type process = framework.Process

// startBinary runs the muster-scheduler binary with args; it is killed when
// the test ends if it is still running.
func startBinary(t *testing.T, ctx context.Context, args ...string) *process {
	t.Helper()
	p := framework.StartProcess(t, exec.CommandContext(ctx, framework.SchedulerBinary(t), args...))
	t.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.Done()
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(p.Cmd.Path), p.Out.String())
		}
	})
	return p
}
