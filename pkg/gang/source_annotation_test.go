package gang

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/queue"
)

func TestAnnotationGangSpec(t *testing.T) {
	labels := map[string]string{LabelGang: "g", queue.LabelQueue: "q"}
	runSpecCases(t, KindAnnotation, map[string]specCase{
		"quorum and timeout": {
			pods: []testPod{{name: "a", labels: labels, annotations: map[string]string{AnnotationMinMember: "3", AnnotationTimeout: "90s"}}},
			want: Definition{Spec: Spec{MinMember: 3, Timeout: 90 * time.Second}, QueueLabel: "q"},
		},
		"no timeout: the caller's default": {
			pods: []testPod{{name: "a", labels: labels, annotations: map[string]string{AnnotationMinMember: "3"}}},
			want: Definition{Spec: Spec{MinMember: 3}, QueueLabel: "q"},
		},
		"each member's own annotations count": {
			pods: []testPod{{name: "a", labels: labels, annotations: map[string]string{AnnotationMinMember: "2"}},
				{name: "b", labels: labels, annotations: map[string]string{AnnotationMinMember: "5"}}},
			want: Definition{Spec: Spec{MinMember: 2}, QueueLabel: "q"},
		},
		"no quorum": {
			pods:    []testPod{{name: "a", labels: labels}},
			want:    Definition{QueueLabel: "q"},
			wantErr: "label muster.dev/gang=g needs the annotation muster.dev/gang-min-member (how many members must run together)",
		},
		"a bad quorum": {
			pods:    []testPod{{name: "a", labels: labels, annotations: map[string]string{AnnotationMinMember: "eight"}}},
			want:    Definition{QueueLabel: "q"},
			wantErr: `muster.dev/gang-min-member: "eight" is not a whole number`,
		},
		"a bad timeout": {
			pods:    []testPod{{name: "a", labels: labels, annotations: map[string]string{AnnotationMinMember: "3", AnnotationTimeout: "soon"}}},
			want:    Definition{QueueLabel: "q"},
			wantErr: `muster.dev/gang-timeout: "soon" is not a duration such as "10m", "90s" or "600" (seconds)`,
		},
	})
}

func TestAnnotationGangMembers(t *testing.T) {
	pods := []testPod{
		{name: "a", labels: map[string]string{LabelGang: "g"}},
		{name: "b", labels: map[string]string{LabelGang: "g"}, phase: v1.PodFailed},
		{name: "c", labels: map[string]string{LabelGang: "h"}},
		{name: "d", labels: map[string]string{LabelPodGroup: "g"}},
	}
	assert.Equal(t, []string{"a", "b"}, gangPods(t, Ref{KindAnnotation, "ml", "g"}, pods))
}
