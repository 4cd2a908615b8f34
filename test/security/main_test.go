// Package security tests muster's security claims (docs/security.md) on a
// control plane of its own with RBAC authorization on: muster-scheduler runs
// as its ServiceAccount with exactly the RBAC of manifests/, and tenants
// cannot get pods bound in queues whose ACL does not admit them.
package security

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"muster.dev/muster/pkg/controlplane"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

const (
	musterNamespace = framework.MusterNamespace
	serviceAccount  = "muster-scheduler"
	leaseName       = "muster-scheduler"
	queuesConfigMap = "muster-queues"
	statusConfigMap = "muster-queue-status"
)

// TestMain starts the package's control plane with the authorizers a real
// cluster runs (Node, RBAC), not AlwaysAllow.
func TestMain(m *testing.M) {
	os.Exit(framework.Main(m, controlplane.Options{APIServerFlags: []string{"--authorization-mode=Node,RBAC"}}))
}

var (
	applyOnce sync.Once
	applyErr  error
)

// applyManifests creates, once per package, exactly the objects of
// manifests/namespace.yaml and manifests/rbac.yaml, decoded from the files.
// A kind this function does not know fails the test, so that a new object
// in those files cannot be left out silently.
func applyManifests(t testing.TB) {
	t.Helper()
	applyOnce.Do(func() {
		ctx := context.Background()
		for _, name := range []string{"namespace.yaml", "rbac.yaml"} {
			if applyErr = applyFile(ctx, filepath.Join(framework.RepoRoot(t), "manifests", name)); applyErr != nil {
				return
			}
		}
	})
	require.NoError(t, applyErr, "applying manifests/")
}

func applyFile(ctx context.Context, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	c := framework.CP.Client
	for i := 0; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		switch o := obj.(type) {
		case *v1.Namespace:
			// framework.Main created it bare; take the manifest's labels.
			_, err = c.CoreV1().Namespaces().Update(ctx, o, metav1.UpdateOptions{})
		case *v1.ResourceQuota:
			_, err = c.CoreV1().ResourceQuotas(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *v1.ServiceAccount:
			_, err = c.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = c.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = c.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = c.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			return fmt.Errorf("%s: document %d: %T is not handled here; add it", path, i, obj)
		}
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", path, i, err)
		}
	}
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' && !bytes.Equal(t, []byte("---")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// tokenConfig returns a client configuration that authenticates with a
// fresh token of the ServiceAccount (TokenRequest API) and nothing else: no
// client certificate, no admin token.
func tokenConfig(t testing.TB, namespace, name string) *rest.Config {
	t.Helper()
	expiry := int64(2 * 3600)
	tr, err := framework.CP.Client.CoreV1().ServiceAccounts(namespace).CreateToken(context.Background(), name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	require.NoError(t, err, "requesting a token for %s/%s", namespace, name)
	admin := framework.CP.Config
	return &rest.Config{
		Host:        admin.Host,
		BearerToken: tr.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:     admin.TLSClientConfig.CAData,
			ServerName: admin.TLSClientConfig.ServerName,
		},
	}
}

// writeKubeconfig writes cfg as a kubeconfig file under dir.
func writeKubeconfig(t testing.TB, dir string, cfg *rest.Config) string {
	t.Helper()
	require.Empty(t, cfg.TLSClientConfig.CertData, "a token identity has no client certificate")
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.TLSClientConfig.CAData, TLSServerName: cfg.TLSClientConfig.ServerName}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "c"
	path := filepath.Join(dir, "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*kc, path))
	return path
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
	applyManifests(t)
	dir := t.TempDir()
	kubeconfig := writeKubeconfig(t, dir, tokenConfig(t, musterNamespace, serviceAccount))
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
