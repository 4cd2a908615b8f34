package scheduler

import (
	"fmt"

	"sigs.k8s.io/yaml"
)

// SetDefaultKubeconfig returns the KubeSchedulerConfiguration document with
// clientConnection.kubeconfig set to kubeconfig, unless it already names one
// (then changed is false and data is returned as it is).
func SetDefaultKubeconfig(data []byte, kubeconfig string) (out []byte, changed bool, err error) {
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, false, fmt.Errorf("parsing scheduler configuration: %w", err)
	}
	if doc == nil {
		return nil, false, fmt.Errorf("scheduler configuration is empty")
	}
	cc, _ := doc["clientConnection"].(map[string]any)
	if cc == nil {
		cc = map[string]any{}
	}
	if existing, _ := cc["kubeconfig"].(string); existing != "" {
		return data, false, nil
	}
	cc["kubeconfig"] = kubeconfig
	doc["clientConnection"] = cc
	out, err = yaml.Marshal(doc)
	if err != nil {
		return nil, false, fmt.Errorf("encoding scheduler configuration: %w", err)
	}
	return out, true, nil
}
