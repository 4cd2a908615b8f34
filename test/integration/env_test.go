package integration

import (
	"os"
	"testing"

	"muster.dev/muster/pkg/controlplane"
	"muster.dev/muster/test/framework"
)

// musterNamespace is where muster's lease and ConfigMaps live.
const musterNamespace = framework.MusterNamespace

// env is the control plane shared by every test in this package. Tests run
// one after another; each works in namespaces and on nodes of its own and
// removes them when it ends (see newNamespace, createNodes), and starts the
// schedulers it needs (see startMuster).
var env struct {
	cp *controlplane.ControlPlane
}

func TestMain(m *testing.M) {
	os.Exit(framework.Main(&wrapped{m}, controlplane.Options{}))
}

// wrapped points env at the framework's control plane once it is up.
type wrapped struct{ *testing.M }

func (w *wrapped) Run() int {
	env.cp = framework.CP
	return w.M.Run()
}
