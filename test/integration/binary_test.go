package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// schedulerBinary returns the muster-scheduler binary under test: the one
// `make test` built (MUSTER_SCHEDULER_BIN), or one built now from this tree.
func schedulerBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("MUSTER_SCHEDULER_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "muster-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "muster-scheduler")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/muster-scheduler")
		cmd.Dir = repoRoot(t)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = err
			t.Logf("go build: %s", out.String())
		}
	})
	require.NoError(t, buildErr, "building muster-scheduler")
	return binPath
}

// repoRoot is the repository's top directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// process is a muster-scheduler binary running in the background.
type process struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// startBinary runs the muster-scheduler binary with args; it is killed when
// the test ends if it is still running.
func startBinary(t *testing.T, ctx context.Context, args ...string) *process {
	t.Helper()
	p := &process{out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, schedulerBinary(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(p.cmd.Path), p.out.String())
		}
	})
	return p
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
