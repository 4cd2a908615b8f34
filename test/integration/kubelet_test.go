package integration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/cluster"
)

// TestFoundationSimulatedKubelet: pods on simulated nodes run, finish after
// their declared duration, and are finalised when deleted.
func TestFoundationSimulatedKubelet(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	createNodes(t, node("kubelet-1", "8", "16Gi", nil))
	pods := env.cp.Client.CoreV1().Pods(ns)

	// Bound directly (spec.nodeName), no scheduler involved.
	mk := func(name string, d time.Duration) {
		obj, err := cluster.Pod{Namespace: ns, Name: name, Requests: cpu("1"), Duration: d}.Object()
		require.NoError(t, err)
		obj.Spec.NodeName = "kubelet-1"
		obj.Spec.TerminationGracePeriodSeconds = ptrInt64(30)
		_, err = pods.Create(ctx, obj, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	mk("short", time.Second)
	mk("forever", 0)

	phase := func(name string) v1.PodPhase {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		return p.Status.Phase
	}
	waitFor(t, 30*time.Second, "short to run", func(context.Context) (bool, error) {
		return phase("short") == v1.PodRunning || phase("short") == v1.PodSucceeded, nil
	})
	waitFor(t, 30*time.Second, "short to succeed", func(context.Context) (bool, error) {
		return phase("short") == v1.PodSucceeded, nil
	})
	p, err := pods.Get(ctx, "short", metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, p.Status.StartTime)
	require.Len(t, p.Status.ContainerStatuses, 1)
	term := p.Status.ContainerStatuses[0].State.Terminated
	require.NotNil(t, term)
	assert.Equal(t, int32(0), term.ExitCode)
	assert.GreaterOrEqual(t, term.FinishedAt.Sub(term.StartedAt.Time), time.Duration(0))

	waitFor(t, 30*time.Second, "forever to run", func(context.Context) (bool, error) {
		return phase("forever") == v1.PodRunning, nil
	})
	// Still running well after short's duration (short already finished).
	assert.Equal(t, v1.PodRunning, phase("forever"))

	// A graceful delete completes because the kubelet confirms it.
	require.NoError(t, pods.Delete(ctx, "forever", metav1.DeleteOptions{}))
	waitFor(t, 30*time.Second, "forever to be gone", func(ctx context.Context) (bool, error) {
		_, err := pods.Get(ctx, "forever", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

func ptrInt64(v int64) *int64 { return &v }
