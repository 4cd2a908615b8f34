package v1

import "k8s.io/utils/ptr"

// Defaults of the plugin args; the README's configuration section lists them.
const (
	DefaultNamespace             = "muster-system"
	DefaultQueuesConfigMap       = "muster-queues"
	DefaultStatusConfigMap       = "muster-queue-status"
	DefaultStatusIntervalSeconds = 5
	DefaultGangTimeoutSeconds    = 300
	DefaultGangBackoffSeconds    = 10
	DefaultPolicyWeight          = 60
	DefaultSpreadWeight          = 30
	DefaultDisruptionWeight      = 10
)

// SetDefaults_MusterQueueArgs fills unset fields.
func SetDefaults_MusterQueueArgs(obj *MusterQueueArgs) {
	if obj.Namespace == nil {
		obj.Namespace = ptr.To(DefaultNamespace)
	}
	if obj.QueuesConfigMap == nil {
		obj.QueuesConfigMap = ptr.To(DefaultQueuesConfigMap)
	}
	if obj.StatusConfigMap == nil {
		obj.StatusConfigMap = ptr.To(DefaultStatusConfigMap)
	}
	if obj.StatusIntervalSeconds == nil {
		obj.StatusIntervalSeconds = ptr.To[int32](DefaultStatusIntervalSeconds)
	}
}

// SetDefaults_MusterGangArgs fills unset fields.
func SetDefaults_MusterGangArgs(obj *MusterGangArgs) {
	if obj.DefaultTimeoutSeconds == nil {
		obj.DefaultTimeoutSeconds = ptr.To[int32](DefaultGangTimeoutSeconds)
	}
	if obj.BackoffSeconds == nil {
		obj.BackoffSeconds = ptr.To[int32](DefaultGangBackoffSeconds)
	}
	if obj.ReadSparkConfigMaps == nil {
		obj.ReadSparkConfigMaps = ptr.To(false)
	}
}

// SetDefaults_MusterCapacityArgs fills unset fields. The weights are
// defaulted together: setting any of them means the others default to 0, so
// that "policyWeight: 100" alone means policy only.
func SetDefaults_MusterCapacityArgs(obj *MusterCapacityArgs) {
	if obj.PolicyWeight == nil && obj.SpreadWeight == nil && obj.DisruptionWeight == nil {
		obj.PolicyWeight = ptr.To[int32](DefaultPolicyWeight)
		obj.SpreadWeight = ptr.To[int32](DefaultSpreadWeight)
		obj.DisruptionWeight = ptr.To[int32](DefaultDisruptionWeight)
		return
	}
	for _, w := range []**int32{&obj.PolicyWeight, &obj.SpreadWeight, &obj.DisruptionWeight} {
		if *w == nil {
			*w = ptr.To[int32](0)
		}
	}
}
