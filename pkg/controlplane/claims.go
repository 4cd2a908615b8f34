package controlplane

import (
	"context"
	"fmt"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/controller/resourceclaim"
)

// RunResourceClaimController runs kube-controller-manager's resource claim
// controller against client until ctx ends: the part of Dynamic Resource
// Allocation a cluster runs besides the scheduler. It creates the claims of
// pods' ResourceClaimTemplates, and removes pods that are done or gone from
// their claims' reservations, deallocating a claim no pod uses any more
// (and deleting it when its pod made it). Without it DRA devices are never
// given back.
func RunResourceClaimController(ctx context.Context, client kubernetes.Interface) error {
	logger := klog.FromContext(ctx).WithName("resourceclaim-controller")
	f := informers.NewSharedInformerFactory(client, 0)
	c, err := resourceclaim.NewController(logger, client, f.Core().V1().Pods(), f.Scheduling().V1beta1().PodGroups(),
		f.Resource().V1().ResourceClaims(), f.Resource().V1().ResourceClaimTemplates())
	if err != nil {
		return fmt.Errorf("building the resource claim controller: %w", err)
	}
	f.Start(ctx.Done())
	go func() {
		c.Run(klog.NewContext(ctx, logger), 4)
		f.Shutdown()
	}()
	return nil
}
