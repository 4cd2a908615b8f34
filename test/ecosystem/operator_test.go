package ecosystem

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"muster.dev/muster/pkg/controlplane"
	"muster.dev/muster/test/framework"
)

// binEnv names a directory holding the operators' binaries, built before
// the tests run (`make ecosystem` sets it).
const binEnv = "MUSTER_ECOSYSTEM_BIN"

// build is what hack/ecosystem/build.sh says about one operator.
type build struct {
	bin    string   // the binary
	module string   // module@version
	dir    string   // the module's source (read-only, in the module cache)
	crds   []string // the CRD files the operator needs
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*build{}
)

// operatorBuild returns the operator's binary and CRDs: from
// MUSTER_ECOSYSTEM_BIN if set, else built into bin/ecosystem now (once per
// test binary). A binary that is missing or does not build fails the test,
// with what to do about it.
func operatorBuild(t *testing.T, name string) *build {
	t.Helper()
	buildsMu.Lock()
	defer buildsMu.Unlock()
	if b, ok := builds[name]; ok {
		return b
	}
	root := framework.RepoRoot(t)
	args := []string{name, filepath.Join(root, "bin", "ecosystem")}
	if dir := os.Getenv(binEnv); dir != "" {
		args = []string{"-n", name, dir}
	}
	cmd := exec.Command(filepath.Join(root, "hack", "ecosystem", "build.sh"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		hint := "fix the build, or set " + binEnv + " to a directory `make ecosystem` filled"
		if args[0] == "-n" {
			hint = "run `make ecosystem` (or hack/ecosystem/build.sh " + name + " " + args[2] + "), or unset " + binEnv + " to build it on demand"
		}
		require.NoError(t, err, "the %s operator is not available: hack/ecosystem/build.sh %s failed after %s; %s:\n%s",
			name, strings.Join(args, " "), took.Round(time.Millisecond), hint, stderr.String())
	}
	b := &build{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "bin":
			b.bin = v
		case "module":
			b.module = v
		case "dir":
			b.dir = v
		case "crd":
			b.crds = append(b.crds, v)
		}
	}
	require.NotEmpty(t, b.bin, "build.sh printed no bin= line: %s", stdout.String())
	if args[0] == "-n" {
		t.Logf("%s: %s from %s", name, b.module, b.bin)
	} else {
		t.Logf("%s: %s built (or found up to date) in %s: %s", name, b.module, took.Round(time.Millisecond), b.bin)
	}
	builds[name] = b
	return b
}

var (
	crdsMu    sync.Mutex
	installed = map[string]bool{}
)

// installCRDs installs the operator's own CRD files, each once per test
// binary, and waits until they are established and served. They stay for
// the package's control plane: an operator's objects may carry its
// finalizers, which nobody would remove once it has stopped.
func installCRDs(t *testing.T, files []string) {
	t.Helper()
	crdsMu.Lock()
	defer crdsMu.Unlock()
	for _, f := range files {
		if installed[f] {
			continue
		}
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		crd := &apiextensionsv1.CustomResourceDefinition{}
		require.NoError(t, yaml.Unmarshal(data, crd), "decoding CRD %s", f)
		start := time.Now()
		require.NoError(t, controlplane.InstallCRD(context.Background(), framework.CP.Config, crd), "installing CRD %s", f)
		t.Logf("CRD %s established in %s", crd.Name, time.Since(start).Round(time.Millisecond))
		installed[f] = true
	}
}

// operator is an operator running as a process for the test.
type operator struct {
	name string
	proc *framework.Process
	log  string // where its output goes
}

// startOperator runs the binary with args (and env added to the test's
// environment) until the test ends, its output in a file that survives the
// test (printed on failure). The operator gets SIGTERM at the end, SIGKILL
// if it has not exited 10 s later.
func startOperator(t *testing.T, name, bin string, env []string, args ...string) *operator {
	t.Helper()
	logFile := filepath.Join(os.TempDir(), fmt.Sprintf("muster-ecosystem-%d-%s.log", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-")))
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	op := &operator{name: name, proc: framework.StartProcess(t, cmd), log: logFile}
	t.Logf("%s started: %s %s (log: %s)", name, filepath.Base(bin), strings.Join(args, " "), logFile)
	t.Cleanup(func() {
		op.stop(t)
		if err := os.WriteFile(logFile, []byte(op.proc.Out.String()), 0o644); err != nil {
			t.Logf("writing %s's log: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s's last lines (all in %s):\n%s", name, logFile, lastLines(op.proc.Out.String(), 40))
		}
	})
	return op
}

// stop ends the operator; an operator that exited by itself before fails the test.
func (op *operator) stop(t *testing.T) {
	t.Helper()
	if op.proc.Exited() {
		t.Errorf("%s exited before the test ended: %v", op.name, op.proc.Err())
		return
	}
	_ = op.proc.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-op.proc.Done():
	case <-time.After(10 * time.Second):
		t.Logf("%s did not exit 10 s after SIGTERM; killing it", op.name)
		_ = op.proc.Cmd.Process.Kill()
		<-op.proc.Done()
	}
}

// requireRunning fails the test at once if the operator has exited.
func (op *operator) requireRunning(t *testing.T) {
	t.Helper()
	if op.proc.Exited() {
		require.Fail(t, op.name+" exited", "%v; last lines:\n%s", op.proc.Err(), lastLines(op.proc.Out.String(), 40))
	}
}

// waitReady polls the operator's health endpoint (controller-runtime's
// /readyz) until it answers 200, and returns how long the operator took
// since it was started.
func (op *operator) waitReady(t *testing.T, addr string, timeout time.Duration) time.Duration {
	t.Helper()
	url := "http://" + addr + "/readyz"
	framework.WaitFor(t, timeout, op.name+" ready at "+url, func(ctx context.Context) (bool, error) {
		op.requireRunning(t)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	return time.Since(op.started())
}

func (op *operator) started() time.Time { return op.proc.Started }

// waitLog waits until the operator's output contains s.
func (op *operator) waitLog(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	framework.WaitFor(t, timeout, fmt.Sprintf("%s to log %q", op.name, s), func(context.Context) (bool, error) {
		op.requireRunning(t)
		return strings.Contains(op.proc.Out.String(), s), nil
	})
}

// freeAddr returns a loopback address with a port free right now, for an
// operator's health or webhook server (they take no port 0 that they
// report back).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
