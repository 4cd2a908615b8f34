package config

import (
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateMusterQueueArgs returns every problem with the args, each with its path.
func ValidateMusterQueueArgs(path *field.Path, args *MusterQueueArgs) error {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(args.Namespace) {
		errs = append(errs, field.Invalid(path.Child("namespace"), args.Namespace, msg))
	}
	for _, msg := range validation.IsDNS1123Subdomain(args.QueuesConfigMap) {
		errs = append(errs, field.Invalid(path.Child("queuesConfigMap"), args.QueuesConfigMap, msg))
	}
	for _, msg := range validation.IsDNS1123Subdomain(args.StatusConfigMap) {
		errs = append(errs, field.Invalid(path.Child("statusConfigMap"), args.StatusConfigMap, msg))
	}
	if args.QueuesConfigMap == args.StatusConfigMap {
		errs = append(errs, field.Invalid(path.Child("statusConfigMap"), args.StatusConfigMap, "must differ from queuesConfigMap"))
	}
	if args.StatusIntervalSeconds < 1 || args.StatusIntervalSeconds > 3600 {
		errs = append(errs, field.Invalid(path.Child("statusIntervalSeconds"), args.StatusIntervalSeconds, "must be between 1 and 3600"))
	}
	return errs.ToAggregate()
}

// ValidateMusterGangArgs returns every problem with the args, each with its path.
func ValidateMusterGangArgs(path *field.Path, args *MusterGangArgs) error {
	var errs field.ErrorList
	if args.DefaultTimeoutSeconds < 1 {
		errs = append(errs, field.Invalid(path.Child("defaultTimeoutSeconds"), args.DefaultTimeoutSeconds, "must be at least 1"))
	}
	if args.BackoffSeconds < 0 {
		errs = append(errs, field.Invalid(path.Child("backoffSeconds"), args.BackoffSeconds, "must not be negative"))
	}
	return errs.ToAggregate()
}

// ValidateMusterCapacityArgs returns every problem with the args, each with its path.
func ValidateMusterCapacityArgs(path *field.Path, args *MusterCapacityArgs) error {
	var errs field.ErrorList
	weights := []struct {
		name string
		v    int32
	}{{"policyWeight", args.PolicyWeight}, {"spreadWeight", args.SpreadWeight}, {"disruptionWeight", args.DisruptionWeight}}
	var sum int32
	for _, w := range weights {
		if w.v < 0 || w.v > 100 {
			errs = append(errs, field.Invalid(path.Child(w.name), w.v, "must be between 0 and 100"))
			continue
		}
		sum += w.v
	}
	if len(errs) == 0 && sum == 0 {
		errs = append(errs, field.Invalid(path, sum, "policyWeight, spreadWeight and disruptionWeight must not all be 0; disable the plugin's score instead"))
	}
	return errs.ToAggregate()
}
