package framework

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// RepoRoot is the repository's top directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// SchedulerBinary returns the muster-scheduler binary under test: the one
// `make test` built (MUSTER_SCHEDULER_BIN), or one built now, once per test
// binary, from this tree.
func SchedulerBinary(t testing.TB) string {
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
		cmd.Dir = RepoRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w: %s", err, out)
		}
	})
	require.NoError(t, buildErr, "building muster-scheduler")
	return binPath
}

// Process is a program running in the background, its standard output and
// error captured in Out. Stopping it when the test ends is the caller's
// job (tests stop it in different ways: a kill, a cancelled context).
type Process struct {
	Cmd *exec.Cmd
	Out *SyncBuffer
	// Started is when the process was started.
	Started time.Time
	done    chan struct{}
	err     error
}

// StartProcess starts cmd with its output captured and waits for it in the
// background.
func StartProcess(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, Out: &SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Out, p.Out
	require.NoError(t, cmd.Start())
	p.Started = time.Now()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p
}

// Done is closed when the process has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the process ended (what exec.Cmd.Wait returned); call it only
// once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// SyncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
