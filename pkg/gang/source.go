package gang

import (
	"context"
	"errors"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Kind is where a gang is defined: the name of its Source.
type Kind string

// Ref names a gang. Gangs are namespaced: the same name in two namespaces,
// or from two kinds, is two gangs.
type Ref struct {
	Kind            Kind
	Namespace, Name string
}

// String renders r as "PodGroup default/train".
func (r Ref) String() string {
	return string(r.Kind) + " " + r.Namespace + "/" + r.Name
}

// Role is a pod's part in its gang, as its source names it (a Spark
// application's driver or executor); NoRole when the source gives none.
type Role string

// NoRole: the pod's source gives it no role, or one muster does not know.
const NoRole Role = ""

// Source is one way a pod names its gang: a scheduler-plugins PodGroup,
// muster's annotations, a Spark application, a Workload API pod group, a
// KubeRay RayCluster, a JobSet. It
// says which gang a pod belongs to, what the gang needs and who its members
// are, reading what it needs through Objects; the scheduler plugin and
// `muster explain` ask it alike, each with its own Objects.
//
// A new kind of gang is a Source in a file of its own plus one line in
// sources below.
type Source interface {
	// Kind names the source; it is the Kind of its gangs' Refs.
	Kind() Kind
	// Noun is how a sentence names what defines the source's gangs: the
	// gang's "PodGroup", "Spark driver", "pods".
	Noun() string
	// Resource is the API resource the source's gangs are defined by, if
	// any. A caller that cannot read it (the cluster does not serve it)
	// does not use the source: a pod that names such a gang is in no gang
	// there.
	Resource() (schema.GroupVersionResource, bool)
	// Identify returns the name of the pod's gang in this source and the
	// pod's role in it; name is empty when the pod names no such gang.
	Identify(pod *v1.Pod) (name string, role Role)
	// Spec reads the definition of the gang ref for one of its member
	// pods. A malformed definition is an error naming what is wrong (an
	// *AnnotationError for a bad annotation); an object that could not be
	// read is a *ReadError. On an error the definition holds what could be
	// read.
	Spec(ctx context.Context, ref Ref, pod *v1.Pod, objs Objects) (Definition, error)
	// Members lists the gang's pods, as objs has them.
	Members(ctx context.Context, ref Ref, objs Objects) ([]*v1.Pod, error)
}

// Objects reads the cluster for a Source: from the scheduler's informers
// in the plugin, from the apiserver in `muster explain`.
type Objects interface {
	// Pods lists the pods of a namespace whose labels match the selector.
	Pods(ctx context.Context, namespace string, selector labels.Selector) ([]*v1.Pod, error)
	// Object returns the named object of a resource, typed or as an
	// *unstructured.Unstructured; an error for which
	// apierrors.IsNotFound holds when it does not exist, one wrapping
	// ErrNotServed when the caller does not read the resource.
	Object(ctx context.Context, resource schema.GroupVersionResource, namespace, name string) (runtime.Object, error)
}

// Definition is what a gang's source says about it.
type Definition struct {
	// Spec is the gang's quorum, minimum resources and Spark reservation.
	// MinMember is 0 when the source cannot say (its object is missing);
	// Timeout is 0 when the source does not set one (the caller's default
	// applies).
	Spec Spec
	// QueueLabel is the gang's muster.dev/queue label: its PodGroup's, its
	// Spark driver's or the member pod's own, as the source decides.
	QueueLabel string
	// Object is the object the gang is defined by, with its kind set, for
	// Events about the gang; nil when they go to the member pods.
	Object runtime.Object
	// Wait is set when the gang waits for its source: the object that
	// defines it does not exist yet.
	Wait *Wait
}

// Wait says why a gang waits for its source.
type Wait struct {
	// Reason is the scheduler's word to the members ("PodGroup ns/x (label
	// scheduling.x-k8s.io/pod-group) does not exist yet").
	Reason string
	// Detail is the longer sentence `muster explain` gives, saying what
	// follows from it.
	Detail string
}

// ErrNotServed is what Objects.Object returns, wrapped, for a resource its
// caller does not read: the cluster does not serve it, or the admin did not
// allow muster to read it (a Spark driver's ConfigMap). A source treats
// such an object as absent, not as missing: nothing to wait for.
var ErrNotServed = errors.New("not served")

// ReadError is an object a source could not read (other than because it
// does not exist).
type ReadError struct {
	// Object names what was read, e.g. "PodGroup ns/x".
	Object string
	Err    error
}

func (e *ReadError) Error() string { return "reading " + e.Object + ": " + e.Err.Error() }

func (e *ReadError) Unwrap() error { return e.Err }

// sources are the gang sources in order of precedence: a pod that names
// gangs in two of them belongs to the first. So a training operator that
// also creates a PodGroup yields one gang, the PodGroup, whose minMember is
// explicit. One exception: a Spark application's driver or executor that
// names a PodGroup (the Spark operator's, minMember 1) is not a PodGroup
// member (podGroups.Identify): its gang is the application's, which reads
// that PodGroup (composePodGroup), since only the Spark source knows the
// executors to reserve.
//
// The sources that only read an operator's own labels (RayCluster, JobSet)
// come last: they infer a gang a user did not ask for by name. A pod that
// also names a PodGroup (KubeRay's scheduler-plugins integration creates
// one and labels the pods with it), carries muster's gang annotations or
// names a Workload API pod group says explicitly what its gang is, and
// that wins. RayCluster before JobSet only settles a pod that
// carries both, which neither operator makes.
var sources = []Source{
	podGroups{},
	annotationGangs{},
	sparkApps{},
	workloadGroups{},
	rayClusters{},
	jobSets{},
}

// Sources returns the gang sources in order of precedence.
func Sources() []Source {
	return append([]Source(nil), sources...)
}

// SourceOf returns the source of a kind of gang, or nil for a kind muster
// does not know.
func SourceOf(k Kind) Source {
	for _, s := range sources {
		if s.Kind() == k {
			return s
		}
	}
	return nil
}

// Identify returns the gang a pod belongs to and its role there: the first
// source, in order of precedence, in which the pod names a gang. An empty
// name counts as absent. ok is false for a pod in no gang.
func Identify(pod *v1.Pod) (ref Ref, role Role, ok bool) {
	for _, s := range sources {
		if name, role := s.Identify(pod); name != "" {
			return Ref{Kind: s.Kind(), Namespace: pod.Namespace, Name: name}, role, true
		}
	}
	return Ref{}, NoRole, false
}

// as returns obj as a *T: itself when it is one (from a typed informer),
// else converted from its unstructured form (from a dynamic client).
func as[T any](obj runtime.Object) (*T, error) {
	if t, ok := any(obj).(*T); ok {
		return t, nil
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("unexpected object %T", obj)
	}
	t := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, t); err != nil {
		return nil, err
	}
	return t, nil
}

// Live reports whether a gang's pod still counts as a member: not being
// deleted, not finished.
func Live(p *v1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed
}
