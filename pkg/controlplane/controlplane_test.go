package controlplane

import (
	"context"
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2/ktesting"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	pgclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
)

func TestControlPlaneLifecycle(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	goroutinesBefore := runtime.NumGoroutine()

	cp, err := Start(ctx, Options{})
	require.NoError(t, err)
	stopped := false
	defer func() {
		if !stopped {
			_ = cp.Stop()
		}
	}()

	// The kubeconfig works on its own, as kubectl would use it.
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.Kubeconfig)
	require.NoError(t, err)
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	_, err = client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
	require.NoError(t, err)
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", cp.Kubeconfig, "get", "namespace", "default", "-o", "name").CombinedOutput()
		require.NoError(t, err, string(out))
		assert.Equal(t, "namespace/default\n", string(out))
	}

	// The PodGroup CRD is installed and served.
	pgs, err := pgclient.NewForConfig(cfg)
	require.NoError(t, err)
	pg := &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pg"},
		Spec:       schedv1alpha1.PodGroupSpec{MinMember: 3},
	}
	_, err = pgs.SchedulingV1alpha1().PodGroups("default").Create(ctx, pg, metav1.CreateOptions{})
	require.NoError(t, err)

	dir, host := cp.Dir, cp.Config.Host
	require.NoError(t, cp.Stop())
	stopped = true
	require.NoError(t, cp.Stop(), "Stop is idempotent")

	_, err = os.Stat(dir)
	assert.True(t, os.IsNotExist(err), "the control plane directory is removed")
	_, err = net.DialTimeout("tcp", host[len("https://"):], time.Second)
	assert.Error(t, err, "the apiserver no longer listens")

	// Goroutines wind down. A few process-wide ones (klog's flush daemon,
	// client-go's global caches) stay for the process's lifetime; a
	// running control plane has thousands.
	var now int
	err = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		now = runtime.NumGoroutine()
		return now <= goroutinesBefore+50, nil
	})
	assert.NoError(t, err, "goroutines: %d before start, %d after stop", goroutinesBefore, now)
}

func TestControlPlaneAPIServerFlags(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, err := Start(ctx, Options{APIServerFlags: []string{"--no-such-flag"}})
	require.ErrorContains(t, err, "no-such-flag")
}
