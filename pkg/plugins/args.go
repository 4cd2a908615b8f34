// Package plugins wires muster's scheduling plugins into kube-scheduler.
//
// Each plugin lives in a package of its own (queue, gang, capacity) and only
// translates between the framework and muster's pure core; this package holds
// what they share and the registry that cmd/muster-scheduler, the tests and
// the sandbox all use.
package plugins

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
)

// DecodeArgs returns the plugin's args as the framework passed them, or the
// defaults when the profile carried none (obj == nil). Anything else is a
// wiring bug and is reported, never ignored.
func DecodeArgs[T any](plugin string, obj runtime.Object, defaults func() T) (*T, error) {
	if obj == nil {
		d := defaults()
		return &d, nil
	}
	args, ok := any(obj).(*T)
	if !ok {
		return nil, fmt.Errorf("%s: want args of type %T, got %T", plugin, new(T), obj)
	}
	return args, nil
}
