// Package cluster builds and creates the API objects of a simulated cluster:
// nodes with capacity, labels and taints, and pods that ask muster to
// schedule them. Tests, benchmarks and the sandbox share these builders.
package cluster

import (
	"context"
	"fmt"
	"sync"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Labels and annotations of the simulated cluster.
const (
	// LabelSimulated marks nodes that the simulated kubelet runs pods on.
	LabelSimulated = "sandbox.muster.dev/simulated"
	// LabelInstanceType and LabelZone are the well-known labels that, with
	// the capacity type, define a node pool.
	LabelInstanceType = v1.LabelInstanceTypeStable
	LabelZone         = v1.LabelTopologyZone
	// LabelCapacityType is muster's explicit capacity-type label.
	LabelCapacityType = "muster.dev/capacity-type"
)

// Node describes a node to create.
type Node struct {
	Name string
	// Capacity is the node's allocatable resources, e.g. {"cpu": "16", "memory": "64Gi"}.
	// "pods" defaults to 110.
	Capacity map[v1.ResourceName]string
	Labels   map[string]string
	Taints   []v1.Taint
	// Unschedulable cordons the node.
	Unschedulable bool
}

// Object returns the Node API object: Ready, with capacity and allocatable
// set and the simulated-node label.
func (n Node) Object() (*v1.Node, error) {
	rl := v1.ResourceList{v1.ResourcePods: resource.MustParse("110")}
	for name, q := range n.Capacity {
		qty, err := resource.ParseQuantity(q)
		if err != nil {
			return nil, fmt.Errorf("node %s: %s=%q: %w", n.Name, name, q, err)
		}
		rl[name] = qty
	}
	labels := map[string]string{v1.LabelHostname: n.Name, LabelSimulated: "true"}
	for k, v := range n.Labels {
		labels[k] = v
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: labels},
		Spec:       v1.NodeSpec{Taints: n.Taints, Unschedulable: n.Unschedulable},
		Status: v1.NodeStatus{
			Capacity:    rl,
			Allocatable: rl.DeepCopy(),
			Phase:       v1.NodeRunning,
			Conditions: []v1.NodeCondition{{
				Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "SimulatedKubeletReady",
				Message: "simulated by muster", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
			}},
		},
	}, nil
}

// CreateNodes creates the nodes (status included) with up to 16 requests in
// flight. Nodes that exist already are left as they are.
func CreateNodes(ctx context.Context, client kubernetes.Interface, nodes []Node) error {
	objs := make([]*v1.Node, 0, len(nodes))
	for _, n := range nodes {
		obj, err := n.Object()
		if err != nil {
			return err
		}
		objs = append(objs, obj)
	}
	return parallel(ctx, len(objs), 16, func(ctx context.Context, i int) error {
		return createNode(ctx, client, objs[i])
	})
}

func createNode(ctx context.Context, client kubernetes.Interface, node *v1.Node) error {
	status := node.Status
	created, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating node %s: %w", node.Name, err)
	}
	// The status subresource is ignored on create; write it separately.
	created.Status = status
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("setting status of node %s: %w", node.Name, err)
	}
	return nil
}

// parallel runs fn(0..n-1) with at most width calls at a time and returns
// the first error.
func parallel(ctx context.Context, n, width int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		once    sync.Once
		firstEr error
	)
	sem := make(chan struct{}, width)
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { firstEr = err; cancel() })
			}
		}(i)
	}
	wg.Wait()
	if firstEr != nil {
		return firstEr
	}
	return ctx.Err()
}
