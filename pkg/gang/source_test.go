package gang

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestIdentify(t *testing.T) {
	cases := map[string]struct {
		labels   map[string]string
		workload string
		want     Ref
		ok       bool
	}{
		"PodGroup": {
			labels: map[string]string{LabelPodGroup: "train"},
			want:   Ref{KindPodGroup, "ml", "train"}, ok: true,
		},
		"PodGroup wins over every other source": {
			labels:   map[string]string{LabelPodGroup: "train", LabelGang: "g", LabelSparkApp: "spark-1"},
			workload: "wl",
			want:     Ref{KindPodGroup, "ml", "train"}, ok: true,
		},
		"annotation gang": {
			labels: map[string]string{LabelGang: "g"},
			want:   Ref{KindAnnotation, "ml", "g"}, ok: true,
		},
		"annotation gang wins over Spark and Workload": {
			labels:   map[string]string{LabelGang: "g", LabelSparkApp: "spark-1"},
			workload: "wl",
			want:     Ref{KindAnnotation, "ml", "g"}, ok: true,
		},
		"Spark application": {
			labels: map[string]string{LabelSparkApp: "spark-1", LabelSparkRole: "executor"},
			want:   Ref{KindSpark, "ml", "spark-1"}, ok: true,
		},
		"Spark wins over Workload": {
			labels:   map[string]string{LabelSparkApp: "spark-1"},
			workload: "wl",
			want:     Ref{KindSpark, "ml", "spark-1"}, ok: true,
		},
		"Workload": {
			labels:   map[string]string{"app": "x"},
			workload: "wl",
			want:     Ref{KindWorkload, "ml", "wl"}, ok: true,
		},
		"empty values are absent": {
			labels:   map[string]string{LabelPodGroup: "", LabelGang: "", LabelSparkApp: ""},
			workload: "wl",
			want:     Ref{KindWorkload, "ml", "wl"}, ok: true,
		},
		"RayCluster": {
			labels: map[string]string{LabelRayCluster: "ray", LabelRayNodeType: "worker"},
			want:   Ref{KindRayCluster, "ml", "ray"}, ok: true,
		},
		"a PodGroup (KubeRay's scheduler-plugins integration) wins over RayCluster": {
			labels: map[string]string{LabelPodGroup: "ray", LabelRayCluster: "ray", LabelRayNodeType: "head"},
			want:   Ref{KindPodGroup, "ml", "ray"}, ok: true,
		},
		"an annotation gang wins over RayCluster and JobSet": {
			labels: map[string]string{LabelGang: "g", LabelRayCluster: "ray", LabelRayNodeType: "head", LabelJobSet: "js"},
			want:   Ref{KindAnnotation, "ml", "g"}, ok: true,
		},
		"Workload wins over RayCluster and JobSet": {
			labels:   map[string]string{LabelRayCluster: "ray", LabelRayNodeType: "head", LabelJobSet: "js"},
			workload: "wl",
			want:     Ref{KindWorkload, "ml", "wl"}, ok: true,
		},
		"RayCluster wins over JobSet": {
			labels: map[string]string{LabelRayCluster: "ray", LabelRayNodeType: "head", LabelJobSet: "js"},
			want:   Ref{KindRayCluster, "ml", "ray"}, ok: true,
		},
		"a Ray pod that is neither head nor worker falls through": {
			labels: map[string]string{LabelRayCluster: "ray", LabelRayNodeType: "redis-cleanup", LabelJobSet: "js"},
			want:   Ref{KindJobSet, "ml", "js"}, ok: true,
		},
		"JobSet": {
			labels: map[string]string{LabelJobSet: "js"},
			want:   Ref{KindJobSet, "ml", "js"}, ok: true,
		},
		"the Redis clean-up pod of a RayCluster is in no gang": {
			labels: map[string]string{LabelRayCluster: "ray", LabelRayNodeType: "redis-cleanup"},
		},
		"spark-role alone is no gang": {
			labels: map[string]string{LabelSparkRole: "driver"},
		},
		"no labels": {},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, _, ok := Identify(podOf("ml", tc.labels, tc.workload))
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestRefString(t *testing.T) {
	assert.Equal(t, "PodGroup default/train", Ref{KindPodGroup, "default", "train"}.String())
	assert.Equal(t, "Spark etl/spark-42", Ref{KindSpark, "etl", "spark-42"}.String())
}

// TestSparkRole: a Spark pod's role in its gang needs both of Spark's labels.
func TestSparkRole(t *testing.T) {
	cases := map[string]struct {
		labels map[string]string
		want   Role
	}{
		"driver":               {map[string]string{LabelSparkApp: "a", LabelSparkRole: "driver"}, SparkDriver},
		"executor":             {map[string]string{LabelSparkApp: "a", LabelSparkRole: "executor"}, SparkExecutor},
		"unknown role":         {map[string]string{LabelSparkApp: "a", LabelSparkRole: "shuffle"}, NoRole},
		"roles are exact":      {map[string]string{LabelSparkApp: "a", LabelSparkRole: "Driver"}, NoRole},
		"no role":              {map[string]string{LabelSparkApp: "a"}, NoRole},
		"role without the app": {map[string]string{LabelSparkRole: "driver"}, NoRole},
		"nil labels":           {nil, NoRole},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, role, _ := Identify(podOf("ml", tc.labels, ""))
			assert.Equal(t, tc.want, role)
		})
	}
}

func TestSourcesTable(t *testing.T) {
	var kinds []Kind
	for _, s := range Sources() {
		kinds = append(kinds, s.Kind())
		assert.Equal(t, s, SourceOf(s.Kind()), "SourceOf(%s)", s.Kind())
	}
	assert.Equal(t, []Kind{KindPodGroup, KindAnnotation, KindSpark, KindWorkload, KindRayCluster, KindJobSet}, kinds, "the order of precedence")
	assert.Nil(t, SourceOf("PyTorchJob"))

	nouns := map[Kind]string{KindPodGroup: "PodGroup", KindAnnotation: "pods", KindSpark: "Spark driver", KindWorkload: "PodGroup",
		KindRayCluster: "RayCluster", KindJobSet: "JobSet"}
	for kind, noun := range nouns {
		assert.Equal(t, noun, SourceOf(kind).Noun(), "%s", kind)
	}
	resources := map[Kind]string{KindPodGroup: "scheduling.x-k8s.io/v1alpha1, Resource=podgroups", KindWorkload: "scheduling.k8s.io/v1beta1, Resource=podgroups",
		KindRayCluster: "ray.io/v1, Resource=rayclusters", KindJobSet: "jobset.x-k8s.io/v1alpha2, Resource=jobsets"}
	for kind := range nouns {
		r, ok := SourceOf(kind).Resource()
		assert.Equal(t, resources[kind] != "", ok, "%s", kind)
		if ok {
			assert.Equal(t, resources[kind], r.String(), "%s", kind)
		}
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("boom")
	err := error(&ReadError{Object: "PodGroup ml/train", Err: boom})
	assert.Equal(t, "reading PodGroup ml/train: boom", err.Error())
	assert.ErrorIs(t, err, boom)
}

// podOf is a pod with the given labels and spec.schedulingGroup (none when
// workload is empty).
func podOf(namespace string, labels map[string]string, workload string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "p", Labels: labels}}
	if workload != "" {
		p.Spec.SchedulingGroup = &v1.PodSchedulingGroup{PodGroupName: &workload}
	}
	return p
}

// testPod is a pod of namespace ml for the sources' tests.
type testPod struct {
	name        string
	labels      map[string]string
	annotations map[string]string
	workload    string
	phase       v1.PodPhase
	deleting    bool
	// confMap names the ConfigMap of a Spark driver's SparkConfVolume.
	confMap string
}

func (m testPod) pod() *v1.Pod {
	p := podOf("ml", m.labels, m.workload)
	p.Name, p.Annotations, p.Status.Phase = m.name, m.annotations, m.phase
	if p.Status.Phase == "" {
		p.Status.Phase = v1.PodPending
	}
	if m.deleting {
		p.DeletionTimestamp = &metav1.Time{}
	}
	if m.confMap != "" {
		p.Spec.Volumes = []v1.Volume{{Name: SparkConfVolume, VolumeSource: v1.VolumeSource{
			ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: m.confMap}}}}}
	}
	return p
}

// fakeObjects is Objects over fixed pods and objects (keyed by resource,
// then "namespace/name"); err fails every read.
type fakeObjects struct {
	pods    []*v1.Pod
	objects map[schema.GroupVersionResource]map[string]runtime.Object
	err     error
}

func (f *fakeObjects) Pods(_ context.Context, namespace string, sel labels.Selector) ([]*v1.Pod, error) {
	if f.err != nil {
		return nil, f.err
	}
	var out []*v1.Pod
	for _, p := range f.pods {
		if p.Namespace == namespace && sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out, nil
}

func (f *fakeObjects) Object(_ context.Context, r schema.GroupVersionResource, namespace, name string) (runtime.Object, error) {
	if f.err != nil {
		return nil, f.err
	}
	if obj, ok := f.objects[r][namespace+"/"+name]; ok {
		return obj, nil
	}
	return nil, apierrors.NewNotFound(r.GroupResource(), name)
}

func objectsOf(r schema.GroupVersionResource, objs ...runtime.Object) map[schema.GroupVersionResource]map[string]runtime.Object {
	m := map[string]runtime.Object{}
	for _, o := range objs {
		acc, err := meta.Accessor(o)
		if err != nil {
			panic(err)
		}
		m[acc.GetNamespace()+"/"+acc.GetName()] = o
	}
	return map[schema.GroupVersionResource]map[string]runtime.Object{r: m}
}

// unstructuredOf is obj as a dynamic client returns it.
func unstructuredOf(t *testing.T, obj runtime.Object, gvk schema.GroupVersionKind) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	require.NoError(t, err)
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvk)
	return u
}

// specCase is one Spec call of a source: the pod (the first of pods, which
// objs also lists) and what the source must say.
type specCase struct {
	pods    []testPod
	objects map[schema.GroupVersionResource]map[string]runtime.Object
	readErr error
	want    Definition
	wantErr string
}

// runSpecCases runs Spec of the source's gang named by the first pod.
func runSpecCases(t *testing.T, kind Kind, cases map[string]specCase) {
	t.Helper()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			objs := &fakeObjects{objects: tc.objects, err: tc.readErr}
			for _, m := range tc.pods {
				objs.pods = append(objs.pods, m.pod())
			}
			pod := objs.pods[0]
			ref, _, ok := Identify(pod)
			require.True(t, ok)
			require.Equal(t, kind, ref.Kind)
			got, err := SourceOf(kind).Spec(context.Background(), ref, pod, objs)
			if tc.wantErr != "" {
				assert.EqualError(t, err, tc.wantErr)
			} else {
				assert.NoError(t, err)
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

// gangPods lists the names of ref's members among pods.
func gangPods(t *testing.T, ref Ref, pods []testPod) []string {
	t.Helper()
	objs := &fakeObjects{}
	for _, m := range pods {
		objs.pods = append(objs.pods, m.pod())
	}
	got, err := SourceOf(ref.Kind).Members(context.Background(), ref, objs)
	require.NoError(t, err)
	var names []string
	for _, p := range got {
		names = append(names, p.Name)
	}
	return names
}
