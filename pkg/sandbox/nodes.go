package sandbox

import (
	"fmt"

	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/cluster"
)

// pool is a group of identical nodes: one instance type, zone and capacity type.
type pool struct {
	instanceType string
	zone         string
	spot         bool
	count        int
	cpu, memory  string
}

// defaultPools is the built-in cluster: a dozen nodes over two zones, a third
// on-demand and the rest spot over two instance types, labelled the way
// Karpenter labels them on AWS.
var defaultPools = []pool{
	{"m5.4xlarge", "zone-a", false, 2, "16", "64Gi"},
	{"m5.4xlarge", "zone-b", false, 2, "16", "64Gi"},
	{"m5.4xlarge", "zone-a", true, 2, "16", "64Gi"},
	{"m5.4xlarge", "zone-b", true, 2, "16", "64Gi"},
	{"c5.4xlarge", "zone-a", true, 2, "16", "32Gi"},
	{"c5.4xlarge", "zone-b", true, 2, "16", "32Gi"},
}

// defaultNodes expands the pools into nodes.
func defaultNodes() []cluster.Node {
	var nodes []cluster.Node
	for _, p := range defaultPools {
		ct := "on-demand"
		if p.spot {
			ct = "spot"
		}
		for i := 0; i < p.count; i++ {
			nodes = append(nodes, cluster.Node{
				Name: fmt.Sprintf("%s-%s-%s-%d", ct, p.instanceType, p.zone, i),
				Capacity: map[v1.ResourceName]string{
					v1.ResourceCPU: p.cpu, v1.ResourceMemory: p.memory,
				},
				Labels: map[string]string{
					capacity.LabelKarpenter:   ct,
					cluster.LabelInstanceType: p.instanceType,
					cluster.LabelZone:         p.zone,
				},
			})
		}
	}
	return nodes
}
