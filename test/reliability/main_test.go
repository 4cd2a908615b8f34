// Package reliability puts muster through the faults a production cluster
// sees: the scheduler killed mid-gang, the leader killed during a burst, an
// apiserver outage, objects deleted under gangs in flight, and hours of
// churn. Every test runs against the package's real control plane (etcd +
// kube-apiserver in this process, restartable) with the simulated kubelet,
// and watches every pod change from the start, so that a partial gang, a
// double bind or a leaked reservation is seen when it happens, not sampled.
package reliability

import (
	"os"
	"testing"

	"muster.dev/muster/pkg/controlplane"
	"muster.dev/muster/test/framework"
)

func TestMain(m *testing.M) {
	// Restartable: the apiserver outage test stops and starts the apiserver
	// under the clients of every other component. A shorter request
	// timeout bounds how long the apiserver's graceful shutdown waits for
	// requests in flight (60 s by default), so that the outage is what the
	// test asks for.
	os.Exit(framework.Main(m, controlplane.Options{Restartable: true, APIServerFlags: []string{"--request-timeout=10s"}}))
}
