// Package ecosystem runs muster beside the real operators it integrates
// with (SPEC section 8): KubeRay's ray-operator, JobSet's jobset-controller
// and Kubeflow's training-operator, each built from its pinned module
// (hack/ecosystem) and run as a process against the package's in-process
// control plane, with muster-scheduler in-process on the shipped
// configuration (and kube-controller-manager's Job controller in-process
// for JobSet). The operators create the pods; nothing here writes a pod by
// hand. docs/integrations shows the YAML in testdata/.
//
// The operators' binaries come from MUSTER_ECOSYSTEM_BIN (a directory, as
// `make ecosystem` fills it), else they are built into bin/ecosystem with
// hack/ecosystem/build.sh (seconds when the Go build cache is warm, about
// fifteen minutes for the three when it is cold). `make test` leaves this
// package out; `make ecosystem` runs it.
package ecosystem

import (
	"os"
	"testing"

	"muster.dev/muster/pkg/controlplane"
	"muster.dev/muster/test/framework"
)

func TestMain(m *testing.M) {
	os.Exit(framework.Main(m, controlplane.Options{}))
}
