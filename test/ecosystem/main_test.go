// Package ecosystem runs muster beside the real operators it integrates
// with (SPEC section 8): KubeRay's ray-operator and JobSet's
// jobset-controller, each built from its pinned module (hack/ecosystem) and
// run as a process against the package's in-process control plane, with
// muster-scheduler in-process on the shipped configuration. The operators
// create the pods; nothing here writes a pod by hand.
//
// The operators' binaries come from MUSTER_ECOSYSTEM_BIN (a directory, as
// `make ecosystem` fills it), else they are built into bin/ecosystem with
// hack/ecosystem/build.sh (a relink when the build cache is warm, about
// half an hour for all of them when it is cold). `make test` leaves this
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
