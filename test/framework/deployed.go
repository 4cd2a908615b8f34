package framework

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// LeaseName is the lease the shipped configuration elects its leader on.
const LeaseName = "muster-scheduler"

// DeployedArgs returns the arguments manifests/deployment.yaml gives
// muster-scheduler, with the configuration file the Deployment mounts
// (the ConfigMap kustomize generates from manifests/scheduler-config.yaml)
// read from manifests/ instead. Any other argument is returned as it is,
// so that a flag added to the Deployment is what the tests run.
func DeployedArgs(t testing.TB) []string {
	t.Helper()
	root := RepoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "manifests", "deployment.yaml"))
	require.NoError(t, err)
	var d appsv1.Deployment
	require.NoError(t, yaml.UnmarshalStrict(data, &d), "manifests/deployment.yaml")
	require.Len(t, d.Spec.Template.Spec.Containers, 1, "manifests/deployment.yaml: one container")
	c := d.Spec.Template.Spec.Containers[0]
	require.NotEmpty(t, c.Command, "manifests/deployment.yaml: the container's command")
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	var args []string
	for _, a := range append(c.Command[1:], c.Args...) {
		if file, ok := strings.CutPrefix(a, "--config="); ok {
			require.Equal(t, mounts["config"], path.Dir(file), "the --config file is in the mounted ConfigMap")
			a = "--config=" + filepath.Join(root, "manifests", path.Base(file))
		}
		args = append(args, a)
	}
	return args
}

// Deployed is a muster-scheduler binary run as manifests/ ship it.
type Deployed struct {
	*Process
	// Addr is its secure endpoint.
	Addr string
}

// StartDeployed runs the muster-scheduler binary with the arguments of
// manifests/deployment.yaml (DeployedArgs), as its ServiceAccount with
// exactly the RBAC of manifests/ (ApplyManifests; the package's control
// plane must authorize with RBAC for that to mean anything). What stands in
// for the pod: a kubeconfig with the ServiceAccount's token instead of the
// in-cluster one, the secure port on a free loopback port instead of 10259
// in the pod's network, and -v=2 (log verbosity only). It waits until the
// process leads, and stops it when the test ends.
func StartDeployed(t *testing.T) *Deployed {
	t.Helper()
	ApplyManifests(t)
	dir := t.TempDir()
	kubeconfig := WriteKubeconfig(t, dir, TokenConfig(t, MusterNamespace, ServiceAccount))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	args := append(DeployedArgs(t),
		"--kubeconfig="+kubeconfig, "--authentication-kubeconfig="+kubeconfig, "--authorization-kubeconfig="+kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(port), "-v=2")
	ctx, cancel := context.WithCancel(context.Background())
	p := &Deployed{
		Process: StartProcess(t, exec.CommandContext(ctx, SchedulerBinary(t), args...)),
		Addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
	}
	t.Cleanup(func() {
		cancel()
		<-p.Done()
		// The next scheduler of the package must not wait for this one's lease.
		_ = CP.Client.CoordinationV1().Leases(MusterNamespace).Delete(context.Background(), LeaseName, metav1.DeleteOptions{})
		if t.Failed() {
			t.Logf("output of muster-scheduler %v:\n%s", args, p.Out.String())
		}
	})
	WaitFor(t, 90*time.Second, "muster-scheduler to take its lease", func(ctx context.Context) (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("muster-scheduler exited:\n%s", p.Out.String())
		}
		l, err := CP.Client.CoordinationV1().Leases(MusterNamespace).Get(ctx, LeaseName, metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "", nil
	})
	t.Logf("muster-scheduler leads %s after its start", time.Since(p.Started).Round(time.Millisecond))
	return p
}
