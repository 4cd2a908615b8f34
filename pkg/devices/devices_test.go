package devices

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"muster.dev/muster/pkg/resources"
)

type fakeClaims struct {
	claims    map[string]*resourceapi.ResourceClaim
	templates map[string]*resourceapi.ResourceClaimTemplate
}

func (f fakeClaims) Claim(ns, name string) *resourceapi.ResourceClaim { return f.claims[ns+"/"+name] }
func (f fakeClaims) Template(ns, name string) *resourceapi.ResourceClaimTemplate {
	return f.templates[ns+"/"+name]
}

func exact(name, class string, n int64) resourceapi.DeviceRequest {
	return resourceapi.DeviceRequest{Name: name, Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: class, Count: n}}
}

func claim(name string, reqs ...resourceapi.DeviceRequest) *resourceapi.ResourceClaim {
	return &resourceapi.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: reqs}}}
}

func allocated(c *resourceapi.ResourceClaim, results ...resourceapi.DeviceRequestAllocationResult) *resourceapi.ResourceClaim {
	c = c.DeepCopy()
	c.Status.Allocation = &resourceapi.AllocationResult{Devices: resourceapi.DeviceAllocationResult{Results: results}}
	return c
}

func result(request, pool, dev string) resourceapi.DeviceRequestAllocationResult {
	return resourceapi.DeviceRequestAllocationResult{Request: request, Driver: "gpu.example.com", Pool: pool, Device: dev}
}

func TestPodDevices(t *testing.T) {
	tmpl := &resourceapi.ResourceClaimTemplate{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "two-gpus"},
		Spec: resourceapi.ResourceClaimTemplateSpec{Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{
			Requests: []resourceapi.DeviceRequest{exact("gpus", "gpu", 2)}}}}}
	fallback := resourceapi.DeviceRequest{Name: "any", FirstAvailable: []resourceapi.DeviceSubRequest{
		{Name: "big", DeviceClassName: "gpu-big", Count: 1}, {Name: "small", DeviceClassName: "gpu-small", Count: 2}}}
	claims := fakeClaims{
		claims: map[string]*resourceapi.ResourceClaim{
			"ns/one":       claim("one", exact("gpu", "gpu", 0)),
			"ns/mixed":     claim("mixed", exact("a", "gpu", 2), exact("b", "nic", 1)),
			"ns/all":       claim("all", resourceapi.DeviceRequest{Name: "all", Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: "gpu", AllocationMode: resourceapi.DeviceAllocationModeAll}}),
			"ns/all-given": allocated(claim("all-given", resourceapi.DeviceRequest{Name: "all", Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: "gpu", AllocationMode: resourceapi.DeviceAllocationModeAll}}), result("all", "n1", "g0"), result("all", "n1", "g1"), result("all", "n1", "g2")),
			"ns/admin":     claim("admin", resourceapi.DeviceRequest{Name: "x", Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: "gpu", AdminAccess: ptr.To(true)}}),
			"ns/fallback":  claim("fallback", fallback),
			"ns/fell-back": allocated(claim("fell-back", fallback), result("any/small", "n1", "g0"), result("any/small", "n1", "g1")),
			"ns/generated": claim("generated", exact("gpu", "gpu", 3)),
		},
		templates: map[string]*resourceapi.ResourceClaimTemplate{"ns/two-gpus": tmpl},
	}
	direct := func(names ...string) *v1.Pod {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}}
		for i, n := range names {
			p.Spec.ResourceClaims = append(p.Spec.ResourceClaims, v1.PodResourceClaim{Name: fmt.Sprintf("c%d", i), ResourceClaimName: ptr.To(n)})
		}
		return p
	}
	fromTemplate := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"},
		Spec: v1.PodSpec{ResourceClaims: []v1.PodResourceClaim{{Name: "gpus", ResourceClaimTemplateName: ptr.To("two-gpus")}}}}
	generated := fromTemplate.DeepCopy()
	generated.Status.ResourceClaimStatuses = []v1.PodResourceClaimStatus{{Name: "gpus", ResourceClaimName: ptr.To("generated")}}
	missingTemplate := fromTemplate.DeepCopy()
	missingTemplate.Spec.ResourceClaims[0].ResourceClaimTemplateName = ptr.To("nope")

	cases := map[string]struct {
		pod  *v1.Pod
		want resources.Vector
	}{
		"no claims":                   {&v1.Pod{}, nil},
		"one device, count defaulted": {direct("one"), resources.Vector{"deviceclass/gpu": 1}},
		"two classes":                 {direct("mixed"), resources.Vector{"deviceclass/gpu": 2, "deviceclass/nic": 1}},
		"claims add up":               {direct("one", "mixed"), resources.Vector{"deviceclass/gpu": 3, "deviceclass/nic": 1}},
		"mode All before allocation":  {direct("all"), resources.Vector{"deviceclass/gpu": 1}},
		"mode All once allocated":     {direct("all-given"), resources.Vector{"deviceclass/gpu": 3}},
		"admin access takes nothing":  {direct("admin"), nil},
		"first alternative before":    {direct("fallback"), resources.Vector{"deviceclass/gpu-big": 1}},
		"alternative given":           {direct("fell-back"), resources.Vector{"deviceclass/gpu-small": 2}},
		"missing claim":               {direct("gone"), nil},
		"template, claim not created": {fromTemplate, resources.Vector{"deviceclass/gpu": 2}},
		"template, claim created":     {generated, resources.Vector{"deviceclass/gpu": 3}},
		"template missing":            {missingTemplate, nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, PodDevices(tc.pod, claims))
		})
	}
}

func slice(node, pool string, gen int64, devs ...resourceapi.Device) *resourceapi.ResourceSlice {
	return &resourceapi.ResourceSlice{ObjectMeta: metav1.ObjectMeta{Name: pool + fmt.Sprint(gen)},
		Spec: resourceapi.ResourceSliceSpec{Driver: "gpu.example.com", NodeName: ptr.To(node),
			Pool: resourceapi.ResourcePool{Name: pool, Generation: gen, ResourceSliceCount: 1}, Devices: devs}}
}

func gpu(name, model string) resourceapi.Device {
	return resourceapi.Device{Name: name, Attributes: map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
		"model": {StringValue: ptr.To(model)}}}
}

func class(name, expr string) *resourceapi.DeviceClass {
	c := &resourceapi.DeviceClass{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if expr != "" {
		c.Spec.Selectors = []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{Expression: expr}}}
	}
	return c
}

func TestInventory(t *testing.T) {
	taintedGPU := gpu("g3", "a100")
	taintedGPU.Taints = []resourceapi.DeviceTaint{{Key: "broken", Effect: resourceapi.DeviceTaintEffectNoSchedule}}
	slices := []*resourceapi.ResourceSlice{
		slice("n1", "n1", 1, gpu("old", "a100")), // an older generation of the pool: ignored
		slice("n1", "n1", 2, gpu("g0", "a100"), gpu("g1", "a100"), gpu("g2", "h100"), taintedGPU),
		slice("n2", "n2", 1, gpu("g0", "h100")),
		{ObjectMeta: metav1.ObjectMeta{Name: "shared"}, Spec: resourceapi.ResourceSliceSpec{Driver: "gpu.example.com",
			AllNodes: ptr.To(true), Pool: resourceapi.ResourcePool{Name: "net", Generation: 1, ResourceSliceCount: 1},
			Devices: []resourceapi.Device{gpu("n0", "a100")}}}, // reachable from every node: no node's
	}
	classes := []*resourceapi.DeviceClass{
		class("gpu", `device.driver == "gpu.example.com"`),
		class("a100", `device.attributes["gpu.example.com"].model == "a100"`),
		class("broken", `device.attributes["gpu.example.com"].nope == "x"`), // fails on every device: matches none
		class("other-driver", `device.driver == "nic.example.com"`),
	}
	cat := NewCatalog(context.Background(), slices, classes, NewMatcher())
	assert.Equal(t, 4, cat.Devices())

	claims := []*resourceapi.ResourceClaim{
		allocated(claim("a"), result("gpu", "n1", "g0")),
		allocated(claim("b"), result("gpu", "n1", "g0")), // the same device again: counted once
		allocated(claim("c"), result("gpu", "n1", "g2"), result("gpu", "net", "n0")),
		claim("pending", exact("gpu", "gpu", 1)),
	}
	inv := NewInventory(cat, claims, nil)
	total, used := inv.Node("n1")
	assert.Equal(t, resources.Vector{"deviceclass/gpu": 3, "deviceclass/a100": 2}, total)
	assert.Equal(t, resources.Vector{"deviceclass/gpu": 2, "deviceclass/a100": 1}, used)
	total, used = inv.Node("n2")
	assert.Equal(t, resources.Vector{"deviceclass/gpu": 1}, total)
	assert.Nil(t, used)
	total, used = inv.Node("n3")
	assert.Nil(t, total)
	assert.Nil(t, used)
	var none *Inventory
	total, _ = none.Node("n1")
	assert.Nil(t, total)
}

func TestReleased(t *testing.T) {
	reserved := func(refs ...resourceapi.ResourceClaimConsumerReference) *resourceapi.ResourceClaim {
		c := allocated(claim("c"), result("gpu", "n1", "g0"))
		c.Status.ReservedFor = refs
		return c
	}
	pod := func(name string) resourceapi.ResourceClaimConsumerReference {
		return resourceapi.ResourceClaimConsumerReference{Resource: "pods", Name: name, UID: types.UID(name + "-uid")}
	}
	live := func(_, name string, uid types.UID) bool { return name == "running" && uid == "running-uid" }
	cases := map[string]struct {
		claim *resourceapi.ResourceClaim
		want  bool
	}{
		"reserved for nothing":     {reserved(), false},
		"its pod runs":             {reserved(pod("running")), false},
		"its pod is gone":          {reserved(pod("gone")), true},
		"one of its pods runs":     {reserved(pod("gone"), pod("running")), false},
		"another kind of consumer": {reserved(resourceapi.ResourceClaimConsumerReference{APIGroup: "scheduling.k8s.io", Resource: "podgroups", Name: "g"}), false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, Released(tc.claim, live))
		})
	}
	// Released claims' devices are used until deallocated, and releasing.
	cat := NewCatalog(context.Background(), []*resourceapi.ResourceSlice{slice("n1", "n1", 1, gpu("g0", "a100"))},
		[]*resourceapi.DeviceClass{class("gpu", "")}, NewMatcher())
	isReleased := func(c *resourceapi.ResourceClaim) bool { return Released(c, live) }
	inv := NewInventory(cat, []*resourceapi.ResourceClaim{reserved(pod("gone"))}, isReleased)
	_, used := inv.Node("n1")
	assert.Equal(t, resources.Vector{"deviceclass/gpu": 1}, used)
	assert.Equal(t, resources.Vector{"deviceclass/gpu": 1}, inv.Releasing("n1"))
	inv = NewInventory(cat, []*resourceapi.ResourceClaim{reserved(pod("running"))}, isReleased)
	_, used = inv.Node("n1")
	assert.Equal(t, resources.Vector{"deviceclass/gpu": 1}, used)
	assert.Nil(t, inv.Releasing("n1"))
}
