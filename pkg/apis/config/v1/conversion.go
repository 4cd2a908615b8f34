package v1

import (
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"muster.dev/muster/pkg/apis/config"
)

func addConversionFuncs(s *runtime.Scheme) error {
	for _, c := range []struct {
		a, b any
		fn   conversion.ConversionFunc
	}{
		{(*MusterQueueArgs)(nil), (*config.MusterQueueArgs)(nil), func(a, b any, _ conversion.Scope) error {
			ConvertQueueArgs(a.(*MusterQueueArgs), b.(*config.MusterQueueArgs))
			return nil
		}},
		{(*config.MusterQueueArgs)(nil), (*MusterQueueArgs)(nil), func(a, b any, _ conversion.Scope) error {
			in, out := a.(*config.MusterQueueArgs), b.(*MusterQueueArgs)
			out.Namespace = ptr.To(in.Namespace)
			out.QueuesConfigMap = ptr.To(in.QueuesConfigMap)
			out.StatusConfigMap = ptr.To(in.StatusConfigMap)
			out.StatusIntervalSeconds = ptr.To(in.StatusIntervalSeconds)
			return nil
		}},
		{(*MusterGangArgs)(nil), (*config.MusterGangArgs)(nil), func(a, b any, _ conversion.Scope) error {
			ConvertGangArgs(a.(*MusterGangArgs), b.(*config.MusterGangArgs))
			return nil
		}},
		{(*config.MusterGangArgs)(nil), (*MusterGangArgs)(nil), func(a, b any, _ conversion.Scope) error {
			in, out := a.(*config.MusterGangArgs), b.(*MusterGangArgs)
			out.DefaultTimeoutSeconds = ptr.To(in.DefaultTimeoutSeconds)
			out.BackoffSeconds = ptr.To(in.BackoffSeconds)
			out.ReadSparkConfigMaps = ptr.To(in.ReadSparkConfigMaps)
			return nil
		}},
		{(*MusterCapacityArgs)(nil), (*config.MusterCapacityArgs)(nil), func(a, b any, _ conversion.Scope) error {
			ConvertCapacityArgs(a.(*MusterCapacityArgs), b.(*config.MusterCapacityArgs))
			return nil
		}},
		{(*config.MusterCapacityArgs)(nil), (*MusterCapacityArgs)(nil), func(a, b any, _ conversion.Scope) error {
			in, out := a.(*config.MusterCapacityArgs), b.(*MusterCapacityArgs)
			out.PolicyWeight = ptr.To(in.PolicyWeight)
			out.SpreadWeight = ptr.To(in.SpreadWeight)
			out.DisruptionWeight = ptr.To(in.DisruptionWeight)
			return nil
		}},
	} {
		if err := s.AddConversionFunc(c.a, c.b, c.fn); err != nil {
			return err
		}
	}
	return nil
}

// ConvertQueueArgs converts defaulted v1 args to the internal type.
func ConvertQueueArgs(in *MusterQueueArgs, out *config.MusterQueueArgs) {
	out.Namespace = ptr.Deref(in.Namespace, "")
	out.QueuesConfigMap = ptr.Deref(in.QueuesConfigMap, "")
	out.StatusConfigMap = ptr.Deref(in.StatusConfigMap, "")
	out.StatusIntervalSeconds = ptr.Deref(in.StatusIntervalSeconds, 0)
}

// ConvertGangArgs converts defaulted v1 args to the internal type.
func ConvertGangArgs(in *MusterGangArgs, out *config.MusterGangArgs) {
	out.DefaultTimeoutSeconds = ptr.Deref(in.DefaultTimeoutSeconds, 0)
	out.BackoffSeconds = ptr.Deref(in.BackoffSeconds, 0)
	out.ReadSparkConfigMaps = ptr.Deref(in.ReadSparkConfigMaps, false)
}

// ConvertCapacityArgs converts defaulted v1 args to the internal type.
func ConvertCapacityArgs(in *MusterCapacityArgs, out *config.MusterCapacityArgs) {
	out.PolicyWeight = ptr.Deref(in.PolicyWeight, 0)
	out.SpreadWeight = ptr.Deref(in.SpreadWeight, 0)
	out.DisruptionWeight = ptr.Deref(in.DisruptionWeight, 0)
}

// DefaultQueueArgs returns the internal args a profile gets when it enables
// MusterQueue without a pluginConfig entry.
func DefaultQueueArgs() config.MusterQueueArgs {
	var v MusterQueueArgs
	SetDefaults_MusterQueueArgs(&v)
	var out config.MusterQueueArgs
	ConvertQueueArgs(&v, &out)
	return out
}

// DefaultGangArgs returns the internal defaults of MusterGang's args.
func DefaultGangArgs() config.MusterGangArgs {
	var v MusterGangArgs
	SetDefaults_MusterGangArgs(&v)
	var out config.MusterGangArgs
	ConvertGangArgs(&v, &out)
	return out
}

// DefaultCapacityArgs returns the internal defaults of MusterCapacity's args.
func DefaultCapacityArgs() config.MusterCapacityArgs {
	var v MusterCapacityArgs
	SetDefaults_MusterCapacityArgs(&v)
	var out config.MusterCapacityArgs
	ConvertCapacityArgs(&v, &out)
	return out
}
