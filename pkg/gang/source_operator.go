package gang

import (
	"context"
	"fmt"
	"math"
	"strconv"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"muster.dev/muster/pkg/queue"
)

// This file holds what the gang sources of operators' own kinds (KubeRay's
// RayCluster, JobSet) share: the object is read as unstructured (muster
// imports no operator's Go module), sized by the source from its spec,
// queued by its muster.dev/queue label and timed by its
// muster.dev/gang-timeout annotation.

// operatorKind is an operator's kind that defines gangs: a custom resource
// whose pods carry a label naming the object.
type operatorKind struct {
	kind     Kind
	gvk      schema.GroupVersionKind
	resource schema.GroupVersionResource
	// label names the object on its pods.
	label string
	// quorum reads the gang's quorum from the object's content.
	quorum func(obj map[string]any) (int64, error)
}

// definition reads the object that defines the gang ref for one of its
// member pods: missing, it is a reason to wait; malformed, an error naming
// the field (the caller prefixes the gang).
func (k operatorKind) definition(ctx context.Context, ref Ref, pod *v1.Pod, objs Objects) (Definition, error) {
	def := Definition{QueueLabel: pod.Labels[queue.LabelQueue]}
	name := fmt.Sprintf("%s %s/%s", k.kind, ref.Namespace, ref.Name)
	obj, err := objs.Object(ctx, k.resource, ref.Namespace, ref.Name)
	if apierrors.IsNotFound(err) {
		def.Wait = &Wait{
			Reason: fmt.Sprintf("%s (label %s) does not exist yet", name, k.label),
			Detail: fmt.Sprintf("the pod names %s (label %s), which does not exist; muster waits for it", name, k.label),
		}
		return def, nil
	}
	if err != nil {
		return def, &ReadError{Object: name, Err: err}
	}
	u, ok := obj.(runtime.Unstructured)
	if !ok {
		return def, &ReadError{Object: name, Err: fmt.Errorf("unexpected object %T", obj)}
	}
	content := u.UnstructuredContent()
	meta := &unstructured.Unstructured{Object: content}
	if q := meta.GetLabels()[queue.LabelQueue]; q != "" {
		def.QueueLabel = q
	}
	if v, ok := meta.GetAnnotations()[AnnotationTimeout]; ok {
		if def.Spec.Timeout, err = ParseTimeout(v); err != nil {
			return def, err
		}
	}
	n, err := k.quorum(content)
	if err != nil {
		return def, err
	}
	if n > MaxMembers {
		return def, fmt.Errorf("%s adds up to %d members, more than muster's limit of %d", k.kind, n, MaxMembers)
	}
	def.Spec.MinMember = int32(n)
	def.Object = k.eventObject(meta)
	return def, nil
}

// eventObject is what Events about the gang are regarding: the object's
// reference alone, not a copy of its spec.
func (k operatorKind) eventObject(obj *unstructured.Unstructured) *unstructured.Unstructured {
	ref := &unstructured.Unstructured{}
	ref.SetGroupVersionKind(k.gvk)
	ref.SetNamespace(obj.GetNamespace())
	ref.SetName(obj.GetName())
	ref.SetUID(obj.GetUID())
	ref.SetResourceVersion(obj.GetResourceVersion())
	return ref
}

// field is a value in an object's content, with its path for messages.
type field struct {
	path  string
	value any
	set   bool
}

// fieldOf returns obj's field key under path.
func fieldOf(obj map[string]any, path, key string) field {
	v, ok := obj[key]
	if path != "" {
		path += "."
	}
	return field{path: path + key, value: v, set: ok && v != nil}
}

// object returns the field as an object; nil when it is not set.
func (f field) object() (map[string]any, error) {
	if !f.set {
		return nil, nil
	}
	m, ok := f.value.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: must be an object, not %s", f.path, describeValue(f.value))
	}
	return m, nil
}

// list returns the field as a list of objects, each with its path.
func (f field) list() ([]field, error) {
	if !f.set {
		return nil, nil
	}
	items, ok := f.value.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: must be a list, not %s", f.path, describeValue(f.value))
	}
	out := make([]field, len(items))
	for i, it := range items {
		out[i] = field{path: f.path + "[" + strconv.Itoa(i) + "]", value: it, set: it != nil}
	}
	return out, nil
}

// count returns the field as a whole number of at least 0, or def when it
// is not set. A negative number counts as 0, as the operators create no
// pods for it.
func (f field) count(def int64) (int64, error) {
	if !f.set {
		return def, nil
	}
	var n int64
	switch v := f.value.(type) {
	case int64:
		n = v
	case int32:
		n = int64(v)
	case int:
		n = int64(v)
	case float64: // JSON numbers decoded without the int64 rule
		if v != math.Trunc(v) || math.Abs(v) > math.MaxInt32 {
			return 0, fmt.Errorf("%s: must be a whole number, not %s", f.path, describeValue(v))
		}
		n = int64(v)
	default:
		return 0, fmt.Errorf("%s: must be a whole number, not %s", f.path, describeValue(f.value))
	}
	return min(max(n, 0), math.MaxInt32), nil
}

// flag returns the field as a boolean, false when it is not set.
func (f field) flag() (bool, error) {
	if !f.set {
		return false, nil
	}
	b, ok := f.value.(bool)
	if !ok {
		return false, fmt.Errorf("%s: must be a boolean, not %s", f.path, describeValue(f.value))
	}
	return b, nil
}

// text returns the field as a string, "" when it is not set.
func (f field) text() (string, error) {
	if !f.set {
		return "", nil
	}
	s, ok := f.value.(string)
	if !ok {
		return "", fmt.Errorf("%s: must be a string, not %s", f.path, describeValue(f.value))
	}
	return s, nil
}

// describeValue names a value's JSON type in a message, with the value when
// it is short.
func describeValue(v any) string {
	switch v := v.(type) {
	case string:
		return "the string " + quote(v)
	case bool:
		return "the boolean " + strconv.FormatBool(v)
	case float64:
		return "the number " + strconv.FormatFloat(v, 'g', -1, 64)
	case int64:
		return "the number " + strconv.FormatInt(v, 10)
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}

// sumCapped adds counts without overflowing: the total stops just past
// MaxMembers, which definition refuses.
func sumCapped(a, b int64) int64 {
	return min(a+b, MaxMembers+1)
}

// productCapped multiplies counts (each at most MaxInt32) without
// overflowing, as sumCapped.
func productCapped(a, b int64) int64 {
	return min(a*b, MaxMembers+1)
}
