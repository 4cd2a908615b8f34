package cluster

import (
	"context"
	"fmt"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DeviceClass is a DeviceClass of every device of one DRA driver.
func DeviceClass(name, driver string) *resourceapi.DeviceClass {
	return &resourceapi.DeviceClass{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: resourceapi.DeviceClassSpec{Selectors: []resourceapi.DeviceSelector{{
			CEL: &resourceapi.CELDeviceSelector{Expression: fmt.Sprintf("device.driver == %q", driver)}}}},
	}
}

// NodeDevices is the ResourceSlice a DRA driver publishes for one node:
// n devices named dev-0 ... in a pool named after the node, each with the
// given string attributes.
func NodeDevices(driver, node string, n int, attributes map[string]string) *resourceapi.ResourceSlice {
	devs := make([]resourceapi.Device, n)
	for i := range devs {
		attrs := map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{}
		for k, v := range attributes {
			attrs[resourceapi.QualifiedName(k)] = resourceapi.DeviceAttribute{StringValue: &v}
		}
		devs[i] = resourceapi.Device{Name: fmt.Sprintf("dev-%d", i), Attributes: attrs}
	}
	return &resourceapi.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{Name: node + "-" + driver},
		Spec: resourceapi.ResourceSliceSpec{
			Driver: driver, NodeName: &node, Devices: devs,
			Pool: resourceapi.ResourcePool{Name: node, Generation: 1, ResourceSliceCount: 1},
		},
	}
}

// ClaimTemplate is a ResourceClaimTemplate asking for n devices of a class.
func ClaimTemplate(namespace, name, class string, n int64) *resourceapi.ResourceClaimTemplate {
	return &resourceapi.ResourceClaimTemplate{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: resourceapi.ResourceClaimTemplateSpec{Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{
			Requests: []resourceapi.DeviceRequest{{Name: "devices", Exactly: &resourceapi.ExactDeviceRequest{
				DeviceClassName: class, AllocationMode: resourceapi.DeviceAllocationModeExactCount, Count: n}}}}}},
	}
}

// CreateNodeDevices publishes a ResourceSlice of n devices of driver for
// each node.
func CreateNodeDevices(ctx context.Context, client kubernetes.Interface, driver string, n int, attributes func(node string) map[string]string, nodes ...string) error {
	for _, node := range nodes {
		var attrs map[string]string
		if attributes != nil {
			attrs = attributes(node)
		}
		if _, err := client.ResourceV1().ResourceSlices().Create(ctx, NodeDevices(driver, node, n, attrs), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("publishing the devices of node %s: %w", node, err)
		}
	}
	return nil
}
