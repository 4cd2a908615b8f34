// Package podgroup builds the client of scheduler-plugins PodGroups.
package podgroup

import (
	"fmt"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
)

// NewClient returns a client of scheduler-plugins PodGroups for cfg. A
// PodGroup is a custom resource, which the apiserver serves as JSON only,
// while kube-scheduler's configuration (and so cfg, often) asks for
// protobuf: the client asks for JSON whatever cfg says. cfg is not changed.
func NewClient(cfg *rest.Config) (versioned.Interface, error) {
	c := rest.CopyConfig(cfg)
	c.ContentType, c.AcceptContentTypes = "application/json", "application/json"
	client, err := versioned.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("PodGroup client: %w", err)
	}
	return client, nil
}
