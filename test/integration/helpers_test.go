package integration

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/test/framework"
)

// Short names for the framework's helpers, used throughout this package.

func testContext(t *testing.T) context.Context { return framework.TestContext(t) }

func newNamespace(t *testing.T) string { return framework.NewNamespace(t) }

func createNodes(t *testing.T, nodes ...cluster.Node) { t.Helper(); framework.CreateNodes(t, nodes...) }

func startMuster(t *testing.T, flags ...string) *scheduler.InProcess {
	t.Helper()
	return framework.StartMuster(t, flags...)
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	framework.WaitFor(t, timeout, what, cond)
}

func waitBound(t *testing.T, ns, name string, timeout time.Duration) *v1.Pod {
	t.Helper()
	return framework.WaitBound(t, ns, name, timeout)
}

func waitUnschedulable(t *testing.T, ns, name string, timeout time.Duration, want ...string) string {
	t.Helper()
	return framework.WaitUnschedulable(t, ns, name, timeout, want...)
}

func countBound(t *testing.T, ns string) int { t.Helper(); return framework.CountBound(t, ns) }

func node(name, cpu, memory string, labels map[string]string) cluster.Node {
	return framework.Node(name, cpu, memory, labels)
}
