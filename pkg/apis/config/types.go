package config

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// MusterQueueArgs configures the MusterQueue plugin: where the tenant queue
// tree is read from and where its status is written.
type MusterQueueArgs struct {
	metav1.TypeMeta

	// Namespace holds the queue and the status ConfigMaps.
	Namespace string
	// QueuesConfigMap is the ConfigMap (key queues.yaml) with the queue tree.
	QueuesConfigMap string
	// StatusConfigMap is the ConfigMap (key status.yaml) muster writes the queue status to.
	StatusConfigMap string
	// StatusIntervalSeconds is how often the status ConfigMap is refreshed.
	StatusIntervalSeconds int32
}

// MusterGangArgs configures the MusterGang plugin.
type MusterGangArgs struct {
	metav1.TypeMeta

	// DefaultTimeoutSeconds is how long a gang may wait for its quorum when
	// its source does not say (PodGroup scheduleTimeoutSeconds, muster.dev/gang-timeout).
	DefaultTimeoutSeconds int32
	// BackoffSeconds is how long a gang that timed out waits before it is
	// tried again.
	BackoffSeconds int32
	// ReadSparkConfigMaps lets a Spark driver without muster's annotations
	// have its executors reserved from its spark.properties ConfigMap (the
	// configuration spark-submit mounts into it): muster then reads
	// ConfigMaps in every namespace. Off by default (docs/security.md).
	ReadSparkConfigMaps bool
}

// MusterCapacityArgs configures the MusterCapacity plugin's scoring. The
// weights split the plugin's own 0-100 score between its three concerns; the
// plugin's weight in the profile sets how much that score counts against
// kube-scheduler's other scores.
type MusterCapacityArgs struct {
	metav1.TypeMeta

	// PolicyWeight weighs how well a node's capacity type (spot, on-demand)
	// matches the pod's prefer-* policy.
	PolicyWeight int32
	// SpreadWeight weighs spreading a gang's spot members over spot pools.
	SpreadWeight int32
	// DisruptionWeight weighs keeping pods away from nodes being reclaimed.
	DisruptionWeight int32
}

// DeepCopyObject implements runtime.Object.
func (in *MusterQueueArgs) DeepCopyObject() runtime.Object {
	out := *in
	return &out
}

// DeepCopyObject implements runtime.Object.
func (in *MusterGangArgs) DeepCopyObject() runtime.Object {
	out := *in
	return &out
}

// DeepCopyObject implements runtime.Object.
func (in *MusterCapacityArgs) DeepCopyObject() runtime.Object {
	out := *in
	return &out
}
