package integration

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"

	"muster.dev/muster/manifests"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/scheduler"
)

var nsCounter atomic.Int64

// testContext returns a context with a test logger, cancelled when the test ends.
func testContext(t *testing.T) context.Context {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	return ctx
}

// newNamespace creates a namespace for the test and, when the test ends,
// deletes its pods (there is no namespace controller to do it) and itself.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())), nsCounter.Add(1))
	if len(name) > 63 {
		name = name[len(name)-63:]
		name = strings.TrimLeft(name, "-")
	}
	ctx := context.Background()
	_, err := env.cp.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		zero := int64(0)
		_ = env.cp.Client.CoreV1().Pods(name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		_ = env.cp.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return name
}

// createNodes creates nodes for the test and deletes them when it ends.
func createNodes(t *testing.T, nodes ...cluster.Node) {
	t.Helper()
	require.NoError(t, cluster.CreateNodes(context.Background(), env.cp.Client, nodes))
	t.Cleanup(func() {
		for _, n := range nodes {
			_ = env.cp.Client.CoreV1().Nodes().Delete(context.Background(), n.Name, metav1.DeleteOptions{})
		}
	})
}

// startMuster runs muster-scheduler in-process with the shipped
// configuration (manifests/scheduler-config.yaml) until the test ends.
func startMuster(t *testing.T, flags ...string) *scheduler.InProcess {
	t.Helper()
	return startScheduler(t, manifests.SchedulerConfig, flags...)
}

func startScheduler(t *testing.T, config []byte, flags ...string) *scheduler.InProcess {
	t.Helper()
	s, err := scheduler.StartInProcess(testContext(t), scheduler.InProcessOptions{
		Config: config, Kubeconfig: env.cp.Kubeconfig, Dir: t.TempDir(), Flags: flags,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Stop()) })
	return s
}

// waitFor polls cond every 50ms until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, cond)
	require.NoError(t, err, "waiting for %s", what)
}

// waitBound waits until the pod is bound and returns it.
func waitBound(t *testing.T, ns, name string, timeout time.Duration) *v1.Pod {
	t.Helper()
	var pod *v1.Pod
	waitFor(t, timeout, fmt.Sprintf("pod %s/%s to be bound", ns, name), func(ctx context.Context) (bool, error) {
		p, err := env.cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		pod = p
		return p.Spec.NodeName != "", nil
	})
	return pod
}

// node is a plain simulated node with the given CPU and memory.
func node(name, cpu, memory string, labels map[string]string) cluster.Node {
	return cluster.Node{Name: name, Capacity: map[v1.ResourceName]string{v1.ResourceCPU: cpu, v1.ResourceMemory: memory}, Labels: labels}
}
