package gang

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"muster.dev/muster/pkg/queue"
)

// The label and annotations of muster's own gangs.
const (
	LabelGang           = "muster.dev/gang"
	AnnotationMinMember = "muster.dev/gang-min-member"
	AnnotationTimeout   = "muster.dev/gang-timeout"
)

// KindAnnotation: muster's own gangs, LabelGang plus AnnotationMinMember.
const KindAnnotation Kind = "Annotation"

// annotationGangs are muster's own gangs: the pods labelled with the gang's
// name, each carrying its quorum and timeout as annotations. No object
// defines them.
type annotationGangs struct{}

func (annotationGangs) Kind() Kind   { return KindAnnotation }
func (annotationGangs) Noun() string { return "pods" }

func (annotationGangs) Resource() (schema.GroupVersionResource, bool) {
	return schema.GroupVersionResource{}, false
}

func (annotationGangs) Identify(pod *v1.Pod) (string, Role) { return pod.Labels[LabelGang], NoRole }

func (annotationGangs) Spec(_ context.Context, ref Ref, pod *v1.Pod, _ Objects) (Definition, error) {
	def := Definition{QueueLabel: pod.Labels[queue.LabelQueue]}
	n, timeout, err := annotationGang(ref.Name, pod.Annotations)
	if err != nil {
		return def, err
	}
	def.Spec.MinMember, def.Spec.Timeout = n, timeout
	def.Spec.Topology, err = ParseTopology(pod.Annotations)
	return def, err
}

func (annotationGangs) Members(ctx context.Context, ref Ref, objs Objects) ([]*v1.Pod, error) {
	return objs.Pods(ctx, ref.Namespace, labels.SelectorFromSet(labels.Set{LabelGang: ref.Name}))
}

// annotationGang reads an annotation gang's member pod: its quorum
// (muster.dev/gang-min-member, required) and its timeout
// (muster.dev/gang-timeout; 0 when the pod does not set one).
func annotationGang(name string, annotations map[string]string) (minMember int32, timeout time.Duration, err error) {
	v, ok := annotations[AnnotationMinMember]
	if !ok {
		return 0, 0, fmt.Errorf("label %s=%s needs the annotation %s (how many members must run together)",
			LabelGang, name, AnnotationMinMember)
	}
	if minMember, err = ParseMinMember(v); err != nil {
		return 0, 0, err
	}
	if v, ok := annotations[AnnotationTimeout]; ok {
		if timeout, err = ParseTimeout(v); err != nil {
			return 0, 0, err
		}
	}
	return minMember, timeout, nil
}
