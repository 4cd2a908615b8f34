package ecosystem

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/informers"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/controller/job"

	"muster.dev/muster/test/framework"
)

// startJobController runs kube-controller-manager's Job controller in
// this process until the test ends: the control plane runs no
// controller-manager, and JobSet's pods are made by the Jobs it creates.
// It logs through the global klog (the control plane's log file).
func startJobController(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), klog.Background()))
	f := informers.NewSharedInformerFactory(framework.CP.Client, 0)
	jc, err := job.NewController(ctx, framework.CP.Client, f.Core().V1().Pods(), f.Batch().V1().Jobs(), nil, nil)
	require.NoError(t, err, "creating the Job controller")
	f.Start(ctx.Done())
	done := make(chan struct{})
	go func() {
		defer close(done)
		jc.Run(ctx, 2)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		f.Shutdown()
	})
}
