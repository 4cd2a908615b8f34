// Package v1 holds the versioned (kubescheduler.config.k8s.io/v1) types of
// muster's plugin arguments, as users write them in a KubeSchedulerConfiguration.
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// MusterQueueArgs configures the MusterQueue plugin.
type MusterQueueArgs struct {
	metav1.TypeMeta `json:",inline"`

	// Namespace holds the queue and status ConfigMaps. Default muster-system.
	Namespace *string `json:"namespace,omitempty"`
	// QueuesConfigMap is the ConfigMap with key queues.yaml. Default muster-queues.
	QueuesConfigMap *string `json:"queuesConfigMap,omitempty"`
	// StatusConfigMap is the ConfigMap muster writes status.yaml to. Default muster-queue-status.
	StatusConfigMap *string `json:"statusConfigMap,omitempty"`
	// StatusIntervalSeconds is how often the status is refreshed. Default 5.
	StatusIntervalSeconds *int32 `json:"statusIntervalSeconds,omitempty"`
}

// MusterGangArgs configures the MusterGang plugin.
type MusterGangArgs struct {
	metav1.TypeMeta `json:",inline"`

	// DefaultTimeoutSeconds applies to gangs whose source sets no timeout. Default 300.
	DefaultTimeoutSeconds *int32 `json:"defaultTimeoutSeconds,omitempty"`
	// BackoffSeconds is how long a timed-out gang waits before it is retried. Default 10.
	BackoffSeconds *int32 `json:"backoffSeconds,omitempty"`
	// ReadSparkConfigMaps sizes a Spark driver's executor reservation, when
	// the driver carries no muster annotation and no SparkApplication
	// names it, from its spark.properties ConfigMap; muster then reads
	// ConfigMaps in every namespace. Default false.
	ReadSparkConfigMaps *bool `json:"readSparkConfigMaps,omitempty"`
}

// MusterCapacityArgs configures the MusterCapacity plugin's scoring weights (0-100 each).
type MusterCapacityArgs struct {
	metav1.TypeMeta `json:",inline"`

	// PolicyWeight weighs the match of a node's capacity type with the pod's policy. Default 60.
	PolicyWeight *int32 `json:"policyWeight,omitempty"`
	// SpreadWeight weighs spreading a gang's spot members over spot pools. Default 30.
	SpreadWeight *int32 `json:"spreadWeight,omitempty"`
	// DisruptionWeight weighs avoiding nodes that are being reclaimed. Default 10.
	DisruptionWeight *int32 `json:"disruptionWeight,omitempty"`
}

// DeepCopyObject implements runtime.Object.
func (in *MusterQueueArgs) DeepCopyObject() runtime.Object {
	out := &MusterQueueArgs{TypeMeta: in.TypeMeta}
	out.Namespace = copyPtr(in.Namespace)
	out.QueuesConfigMap = copyPtr(in.QueuesConfigMap)
	out.StatusConfigMap = copyPtr(in.StatusConfigMap)
	out.StatusIntervalSeconds = copyPtr(in.StatusIntervalSeconds)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *MusterGangArgs) DeepCopyObject() runtime.Object {
	return &MusterGangArgs{
		TypeMeta:              in.TypeMeta,
		DefaultTimeoutSeconds: copyPtr(in.DefaultTimeoutSeconds),
		BackoffSeconds:        copyPtr(in.BackoffSeconds),
		ReadSparkConfigMaps:   copyPtr(in.ReadSparkConfigMaps),
	}
}

// DeepCopyObject implements runtime.Object.
func (in *MusterCapacityArgs) DeepCopyObject() runtime.Object {
	return &MusterCapacityArgs{
		TypeMeta:         in.TypeMeta,
		PolicyWeight:     copyPtr(in.PolicyWeight),
		SpreadWeight:     copyPtr(in.SpreadWeight),
		DisruptionWeight: copyPtr(in.DisruptionWeight),
	}
}

func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
