// Package gang holds the gang benchmark (W3): muster against upstream
// kube-scheduler's GangScheduling plugin, on gangs of the upstream Workload
// API (scheduling.k8s.io/v1beta1 PodGroups). It has a control plane of its
// own: the API is beta and off by default in 1.37, and its feature gate
// (GenericWorkload) is process-wide, so turning it on here leaves the
// default profile of the other benchmarks untouched.
package gang

import (
	"os"
	"testing"

	"muster.dev/muster/pkg/controlplane"
	"muster.dev/muster/test/framework"
)

func TestMain(m *testing.M) {
	// No simulated kubelet: gang members stay Pending after binding, so
	// that the only load on the apiserver is the scheduler's.
	os.Exit(framework.MainWith(m, controlplane.Options{APIServerFlags: []string{
		"--feature-gates=GenericWorkload=true",
		"--runtime-config=scheduling.k8s.io/v1beta1=true",
	}}, nil))
}
