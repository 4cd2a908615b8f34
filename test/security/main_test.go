// Package security tests muster's security claims (docs/security.md) on a
// control plane of its own with RBAC authorization on: muster-scheduler runs
// as its ServiceAccount with exactly the RBAC of manifests/, and tenants
// cannot get pods bound in queues whose ACL does not admit them.
package security

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"muster.dev/muster/pkg/controlplane"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

const (
	musterNamespace = framework.MusterNamespace
	serviceAccount  = framework.ServiceAccount
	leaseName       = "muster-scheduler"
	queuesConfigMap = "muster-queues"
	statusConfigMap = "muster-queue-status"
)

// TestMain starts the package's control plane with the authorizers a real
// cluster runs (Node, RBAC), not AlwaysAllow.
func TestMain(m *testing.M) {
	os.Exit(framework.Main(m, controlplane.Options{APIServerFlags: []string{"--authorization-mode=Node,RBAC"}}))
}

// restricted is a muster-scheduler process running as its ServiceAccount.
type restricted struct {
	*framework.Process
	// Addr is its secure endpoint (delegated authentication and
	// authorization, as in a cluster).
	Addr string
}

// startRestricted runs the muster-scheduler binary on the shipped
// manifests/scheduler-config.yaml, as the ServiceAccount muster-scheduler
// with a token and no other credential, for its API calls and for checking
// the callers of its own endpoint. It is killed when the test ends.
func startRestricted(t *testing.T) *restricted {
	t.Helper()
	framework.ApplyManifests(t)
	dir := t.TempDir()
	kubeconfig := framework.WriteKubeconfig(t, dir, framework.TokenConfig(t, musterNamespace, serviceAccount))
	port := freePort(t)
	args := []string{
		"--config", filepath.Join(framework.RepoRoot(t), "manifests", "scheduler-config.yaml"),
		"--kubeconfig", kubeconfig,
		"--authentication-kubeconfig", kubeconfig,
		"--authorization-kubeconfig", kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port), "--cert-dir=" + dir,
		"-v=2",
		// Short lease times keep the test quick; the mechanism is the same.
		"--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s", "--leader-elect-retry-period=500ms",
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &restricted{
		Process: framework.StartProcess(t, exec.CommandContext(ctx, framework.SchedulerBinary(t), args...)),
		Addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
	}
	t.Cleanup(func() {
		cancel()
		<-p.Done()
		// The next scheduler of the package must not wait for this one's lease.
		_ = framework.CP.Client.CoordinationV1().Leases(musterNamespace).Delete(context.Background(), leaseName, metav1.DeleteOptions{})
		if t.Failed() {
			t.Logf("output of muster-scheduler:\n%s", p.Out.String())
		}
	})
	framework.WaitFor(t, 90*time.Second, "muster-scheduler to take its lease", func(ctx context.Context) (bool, error) {
		select {
		case <-p.Done():
			return false, fmt.Errorf("muster-scheduler exited:\n%s", p.Out.String())
		default:
		}
		l, err := framework.CP.Client.CoordinationV1().Leases(musterNamespace).Get(ctx, leaseName, metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "", nil
	})
	return p
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// get fetches path from the scheduler's secure endpoint with the bearer
// token (none when empty) and returns the HTTP status.
func (p *restricted) get(t testing.TB, path, token string) int {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		// The endpoint's certificate is self-signed, as kube-scheduler's is by default.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a loopback test endpoint
	}}
	req, err := http.NewRequest(http.MethodGet, "https://"+p.Addr+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// namespace creates a namespace with exactly this name (queue ACLs match
// names) and removes it, with its pods, when the test ends.
func namespace(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	_, err := framework.CP.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		zero := int64(0)
		_ = framework.CP.Client.CoreV1().Pods(name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		_ = framework.CP.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return name
}

// setQueues writes queues.yaml into muster-queues (as an admin would) and
// removes the queue and status ConfigMaps when the test ends.
func setQueues(t *testing.T, queuesYAML string) {
	t.Helper()
	framework.SetQueues(t, queuesYAML)
}

// waitStatus waits until the queue status that c reads satisfies cond.
func waitStatus(t *testing.T, c kubernetes.Interface, what string, cond func(status.Report) (bool, error)) {
	t.Helper()
	framework.WaitStatus(t, c, 30*time.Second, what, cond)
}

// clientFor is a clientset for cfg.
func clientFor(t testing.TB, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return c
}
