// Package ecosystem runs muster beside the real operators it integrates
// with (SPEC section 8): KubeRay's ray-operator, JobSet's jobset-controller,
// Kubeflow's training-operator, Trainer's trainer-controller-manager, the
// MPI operator and the Spark operator, each built from its pinned module
// (hack/ecosystem) and run as a process against the package's in-process
// control plane, with muster-scheduler in-process on the shipped
// configuration (and kube-controller-manager's Job controller in-process
// for JobSet, Trainer and the MPI launcher). The operators create the pods;
// nothing here writes a pod by hand, except Spark's: Spark cannot run here,
// so the test plays spark-submit and the driver, writing their pods as
// Spark 4.0 does (sparksubmit_test.go). docs/integrations shows the YAML in
// testdata/.
//
// The operators' binaries come from MUSTER_ECOSYSTEM_BIN (a directory, as
// `make ecosystem` fills it), else they are built into bin/ecosystem with
// hack/ecosystem/build.sh (seconds when the Go build cache is warm, about
// twenty-five minutes for the five when it is cold). `make test` leaves this
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
