package sandbox

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/cluster"
)

// The sandbox's simulated DRA driver, its DeviceClass (of the same name)
// and the node labels of its racks and blocks.
const (
	gpuDriver  = "gpu.sandbox.muster.dev"
	LabelBlock = "sandbox.muster.dev/block"
	LabelRack  = "sandbox.muster.dev/rack"
)

// devicesOf is the number of DRA GPUs the pools give the node.
func (w *world) devicesOf(node string) int {
	for _, p := range w.cluster.Pools {
		if p.Devices > 0 && strings.HasPrefix(node, p.poolName()+"-") {
			for _, n := range poolNodes(p) {
				if n.Name == node {
					return p.Devices
				}
			}
		}
	}
	return 0
}

// publishDevices plays the simulated DRA driver on the nodes: the
// DeviceClass once, and a ResourceSlice of each node's GPUs.
func (w *world) publishDevices(ctx context.Context, nodes []string) error {
	published := false
	for _, n := range nodes {
		k := w.devicesOf(n)
		if k == 0 {
			continue
		}
		if !published {
			published = true
			if _, err := w.client.ResourceV1().DeviceClasses().Create(ctx, cluster.DeviceClass(gpuDriver, gpuDriver), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("creating DeviceClass %s: %w", gpuDriver, err)
			}
		}
		err := cluster.CreateNodeDevices(ctx, w.client, gpuDriver, k, func(string) map[string]string {
			return map[string]string{"model": "sandbox-gpu"}
		}, n)
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}

// withdrawDevices removes a node's ResourceSlice, as its driver going away
// with the node does.
func (w *world) withdrawDevices(ctx context.Context, node string) {
	if w.devicesOf(node) == 0 {
		return
	}
	err := w.client.ResourceV1().ResourceSlices().Delete(ctx, cluster.NodeDevices(gpuDriver, node, 0, nil).Name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		w.logger.Error(err, "Removing the devices of an interrupted node", "node", node)
	}
}

// claimTemplate makes, in the training's namespace, the
// ResourceClaimTemplate its workers' claims come from; its name.
func (w *world) claimTemplate(ctx context.Context, t *Training) (string, error) {
	name := t.Name + "-gpus"
	tmpl := cluster.ClaimTemplate(t.Namespace, name, gpuDriver, int64(t.Devices))
	if _, err := w.client.ResourceV1().ResourceClaimTemplates(t.Namespace).Create(ctx, tmpl, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating ResourceClaimTemplate %s/%s: %w", t.Namespace, name, err)
	}
	return name, nil
}
