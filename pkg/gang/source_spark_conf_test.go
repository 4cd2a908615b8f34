package gang

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/queue"
)

// sparkApplication is a SparkApplication as the dynamic informer has it:
// the Spark operator's examples/spark-pi-kube-scheduler.yaml, whose spec
// mutate may change.
func sparkApplication(mutate func(spec map[string]any)) *unstructured.Unstructured {
	spec := map[string]any{
		"type": "Scala", "mode": "cluster", "sparkVersion": "4.0.0",
		"sparkConf": map[string]any{"spark.kubernetes.scheduler.name": "muster"},
		"driver":    map[string]any{"cores": int64(1), "memory": "512m"},
		"executor":  map[string]any{"instances": int64(2), "cores": int64(1), "memory": "512m"},
	}
	if mutate != nil {
		mutate(spec)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(ResourceSparkApplication.GroupVersion().WithKind("SparkApplication"))
	u.SetNamespace("ml")
	u.SetName("pi")
	return u
}

func sparkConfigMap(name string, props map[string]string) *v1.ConfigMap {
	text := "#Java properties built from Kubernetes config map with name: " + name + "\n"
	for _, k := range sortedKeys(props) {
		text += k + "=" + props[k] + "\n"
	}
	return &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: name}, Data: map[string]string{SparkConfKey: text}}
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// operatorPod is a Spark pod the Spark operator's submission labels.
func operatorPod(name string, role Role, extra map[string]string) testPod {
	p := sparkPod(name, role, "", nil)
	p.labels[LabelSparkOperatorApp] = "pi"
	p.labels[LabelPodGroup] = "pi-pg"
	maps.Copy(p.labels, extra)
	return p
}

func mergeObjects(sets ...map[schema.GroupVersionResource]map[string]runtime.Object) map[schema.GroupVersionResource]map[string]runtime.Object {
	out := map[schema.GroupVersionResource]map[string]runtime.Object{}
	for _, s := range sets {
		maps.Copy(out, s)
	}
	return out
}

func TestSparkSpecFromSparkConfiguration(t *testing.T) {
	small := executorOf(1000, 512+384)
	// The operator's PodGroup: minMember 1, its memory read as milli-bytes.
	operatorPG := podGroup("pi-pg", 1, func(pg *schedv1alpha1.PodGroup) {
		pg.Spec.MinResources = v1.ResourceList{v1.ResourceCPU: resource.MustParse("3"), v1.ResourceMemory: resource.MustParse("1536m")}
	})
	queuedPG := podGroup("pi-pg", 1, func(pg *schedv1alpha1.PodGroup) {
		pg.Labels = map[string]string{queue.LabelQueue: "research"}
		pg.Spec.ScheduleTimeoutSeconds = new(int32)
		*pg.Spec.ScheduleTimeoutSeconds = 120
	})
	app := objectsOf(ResourceSparkApplication, sparkApplication(nil))
	pgs := objectsOf(ResourcePodGroup, operatorPG)
	confMapDriver := sparkPod("driver", SparkDriver, "", nil)
	confMapDriver.confMap = "spark-drv-1-conf-map"
	annotated := operatorPod("driver", SparkDriver, nil)
	annotated.annotations = map[string]string{AnnotationMinExecutors: "5", AnnotationExecutorResources: "cpu=2,memory=1Gi"}
	cms := func(props map[string]string) map[schema.GroupVersionResource]map[string]runtime.Object {
		return objectsOf(ResourceConfigMap, sparkConfigMap("spark-drv-1-conf-map", props))
	}

	runSpecCases(t, KindSpark, map[string]specCase{
		"the operator's driver: the SparkApplication's executors, the PodGroup composed": {
			pods:    []testPod{operatorPod("driver", SparkDriver, nil)},
			objects: mergeObjects(app, pgs),
			want:    Definition{Spec: Spec{MinMember: 1, Executors: 2, ExecutorRequest: small}, Object: withKind(operatorPG)},
		},
		"an executor of it: the same reservation": {
			pods:    []testPod{operatorPod("exec-1", SparkExecutor, nil), operatorPod("driver", SparkDriver, nil)},
			objects: mergeObjects(app, pgs),
			want:    Definition{Spec: Spec{MinMember: 1, Executors: 2, ExecutorRequest: small}, Object: withKind(operatorPG)},
		},
		"the PodGroup's queue label and timeout": {
			pods:    []testPod{operatorPod("driver", SparkDriver, map[string]string{queue.LabelQueue: "mine"})},
			objects: mergeObjects(app, objectsOf(ResourcePodGroup, queuedPG)),
			want: Definition{Spec: Spec{MinMember: 1, Timeout: 2 * time.Minute, Executors: 2, ExecutorRequest: small},
				QueueLabel: "research", Object: withKind(queuedPG)},
		},
		"the PodGroup not created yet": {
			pods:    []testPod{operatorPod("driver", SparkDriver, nil)},
			objects: app,
			want: Definition{Spec: Spec{MinMember: 1}, Wait: &Wait{
				Reason: "PodGroup ml/pi-pg (label scheduling.x-k8s.io/pod-group) does not exist yet",
				Detail: "the pod names PodGroup ml/pi-pg (label scheduling.x-k8s.io/pod-group), which does not exist; muster waits for it",
			}},
		},
		"muster's annotations win over the SparkApplication": {
			pods:    []testPod{annotated},
			objects: mergeObjects(app, pgs),
			want:    Definition{Spec: Spec{MinMember: 1, Executors: 5, ExecutorRequest: executorOf(2000, 1024)}, Object: withKind(operatorPG)},
		},
		"spec fields win over sparkConf, dynamic allocation over both": {
			pods: []testPod{operatorPod("driver", SparkDriver, nil)},
			objects: mergeObjects(pgs, objectsOf(ResourceSparkApplication, sparkApplication(func(spec map[string]any) {
				spec["sparkConf"] = map[string]any{"spark.executor.memory": "8g", "spark.executor.memoryOverhead": "1g", "spark.executor.instances": "9"}
				spec["dynamicAllocation"] = map[string]any{"enabled": true, "minExecutors": int64(3)}
			}))),
			want: Definition{Spec: Spec{MinMember: 1, Executors: 3, ExecutorRequest: executorOf(1000, 512+1024)}, Object: withKind(operatorPG)},
		},
		"a Python SparkApplication: the non-JVM factor": {
			pods: []testPod{operatorPod("driver", SparkDriver, nil)},
			objects: mergeObjects(pgs, objectsOf(ResourceSparkApplication, sparkApplication(func(spec map[string]any) {
				spec["type"] = "Python"
				spec["executor"] = map[string]any{"instances": int64(1), "memory": "4g", "coreRequest": "1500m"}
			}))),
			want: Definition{Spec: Spec{MinMember: 1, Executors: 1, ExecutorRequest: executorOf(1500, 4096+1638)}, Object: withKind(operatorPG)},
		},
		"a bad SparkApplication is an error naming its field": {
			pods: []testPod{operatorPod("driver", SparkDriver, nil)},
			objects: mergeObjects(pgs, objectsOf(ResourceSparkApplication, sparkApplication(func(spec map[string]any) {
				spec["executor"] = map[string]any{"memory": "512Mi"}
			}))),
			want:    Definition{Spec: Spec{MinMember: 1}, Object: withKind(operatorPG)},
			wantErr: `SparkApplication ml/pi: spec.executor.memory="512Mi" is not a JVM memory size such as "512m" or "2g" (unknown unit "mi")`,
		},
		"a malformed SparkApplication": {
			pods: []testPod{operatorPod("driver", SparkDriver, nil)},
			objects: mergeObjects(pgs, objectsOf(ResourceSparkApplication, sparkApplication(func(spec map[string]any) {
				spec["executor"] = "big"
			}))),
			want:    Definition{Spec: Spec{MinMember: 1}, Object: withKind(operatorPG)},
			wantErr: `SparkApplication ml/pi: spec.executor: must be an object, not the string "big"`,
		},
		"the SparkApplication gone: the driver alone": {
			pods:    []testPod{operatorPod("driver", SparkDriver, nil)},
			objects: pgs,
			want:    Definition{Spec: Spec{MinMember: 1}, Object: withKind(operatorPG)},
		},
		"spark-submit's driver: its spark.properties": {
			pods:    []testPod{confMapDriver},
			objects: cms(map[string]string{"spark.executor.instances": "4", "spark.executor.memory": "2g", "spark.master": `k8s\://https\://h\:443`}),
			want:    Definition{Spec: Spec{MinMember: 1, Executors: 4, ExecutorRequest: executorOf(1000, 2048+384)}},
		},
		"its ConfigMap not created yet": {
			pods: []testPod{confMapDriver},
			want: Definition{Spec: Spec{MinMember: 1}, Wait: &Wait{
				Reason: "the Spark configuration of driver driver (ConfigMap ml/spark-drv-1-conf-map) does not exist yet",
				Detail: "the driver mounts ConfigMap ml/spark-drv-1-conf-map (its spark.properties), which does not exist yet; muster waits for it to size the executors",
			}},
		},
		"a bad spark.properties": {
			pods:    []testPod{confMapDriver},
			objects: cms(map[string]string{"spark.executor.instances": "two"}),
			want:    Definition{Spec: Spec{MinMember: 1}},
			wantErr: `ConfigMap ml/spark-drv-1-conf-map key spark.properties: spark.executor.instances="two" is not a whole number of at least 0`,
		},
	})
}

// notServing is Objects that does not read some resources, as the plugin
// does not read ConfigMaps unless the admin allows it.
type notServing struct {
	*fakeObjects
	not map[schema.GroupVersionResource]bool
}

func (n notServing) Object(ctx context.Context, r schema.GroupVersionResource, namespace, name string) (runtime.Object, error) {
	if n.not[r] {
		return nil, fmt.Errorf("%s: %w", r, ErrNotServed)
	}
	return n.fakeObjects.Object(ctx, r, namespace, name)
}

func TestSparkSpecNotServed(t *testing.T) {
	driver := operatorPod("driver", SparkDriver, nil)
	driver.confMap = "spark-drv-1-conf-map"
	objs := notServing{
		fakeObjects: &fakeObjects{pods: []*v1.Pod{driver.pod()}, objects: mergeObjects(
			objectsOf(ResourceConfigMap, sparkConfigMap("spark-drv-1-conf-map", map[string]string{"spark.executor.instances": "7"})),
			objectsOf(ResourceSparkApplication, sparkApplication(nil)),
			objectsOf(ResourcePodGroup, podGroup("pi-pg", 1)))},
		not: map[schema.GroupVersionResource]bool{ResourceConfigMap: true, ResourcePodGroup: true},
	}
	ref := Ref{Kind: KindSpark, Namespace: "ml", Name: "app-1"}
	def, err := SourceOf(KindSpark).Spec(context.Background(), ref, objs.pods[0], objs)
	require.NoError(t, err)
	assert.Equal(t, Definition{Spec: Spec{MinMember: 1, Executors: 2, ExecutorRequest: executorOf(1000, 896)}}, def, "no PodGroup, the SparkApplication")

	objs.not[ResourceSparkApplication] = true
	def, err = SourceOf(KindSpark).Spec(context.Background(), ref, objs.pods[0], objs)
	require.NoError(t, err)
	assert.Equal(t, Definition{Spec: Spec{MinMember: 1}}, def, "nothing read: the driver alone")

	objs.not = nil
	objs.err = errors.New("forbidden")
	_, err = SourceOf(KindSpark).Spec(context.Background(), ref, objs.pods[0], objs)
	var readErr *ReadError
	assert.ErrorAs(t, err, &readErr)
}
