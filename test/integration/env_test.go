package integration

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"muster.dev/muster/pkg/controlplane"
	"muster.dev/muster/pkg/simkubelet"
)

// musterNamespace is where muster's lease and ConfigMaps live.
const musterNamespace = "muster-system"

// env is the control plane shared by every test in this package. Tests run
// one after another; each works in namespaces and on nodes of its own and
// removes them when it ends (see newNamespace, createNodes), and starts the
// schedulers it needs (see startMuster).
var env struct {
	cp *controlplane.ControlPlane
}

func TestMain(m *testing.M) {
	klog.InitFlags(nil)
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// The apiserver and etcd log through the global klog; keep that out of
	// the test output (schedulers started by tests log through the test's
	// own logger instead) unless -v asks for it.
	if !testing.Verbose() {
		logFile := filepath.Join(os.TempDir(), fmt.Sprintf("muster-integration-%d.log", os.Getpid()))
		if f, err := os.Create(logFile); err == nil {
			klog.LogToStderr(false)
			klog.SetOutput(f)
			defer func() {
				klog.Flush()
				_ = f.Close()
			}()
			fmt.Fprintf(os.Stderr, "control plane log: %s\n", logFile)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cp, err := controlplane.Start(ctx, controlplane.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting control plane: %v\n", err)
		return 1
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping control plane: %v\n", err)
		}
	}()
	env.cp = cp
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: musterNamespace}}, metav1.CreateOptions{}); err != nil {
		fmt.Fprintf(os.Stderr, "creating %s: %v\n", musterNamespace, err)
		return 1
	}

	kubelet := simkubelet.New(cp.Client, simkubelet.Options{})
	kubeletDone := make(chan error, 1)
	go func() { kubeletDone <- kubelet.Run(ctx) }()
	defer func() {
		cancel()
		<-kubeletDone
	}()
	return m.Run()
}
