// Package plugins holds what muster's scheduling plugins share to read
// their arguments.
//
// Each plugin lives in a package of its own (musterqueue, mustergang,
// mustercapacity) and only translates between the framework and muster's
// pure core; the state one profile's plugins share is pkg/plugins/profile,
// and pkg/scheduler registers the plugins for cmd/muster-scheduler, the
// tests and the sandbox.
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
