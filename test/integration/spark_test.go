package integration

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/manifests"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/test/framework"
)

// sparkPod is a Spark pod of app with role, the Spark operator's labels
// when pg is set, requesting cpu and Spark's 512m + 384m of memory.
func sparkPod(ns, name, app, role, pg, cpu string) cluster.Pod {
	labels := map[string]string{gang.LabelSparkApp: app, gang.LabelSparkRole: role}
	if pg != "" {
		labels[gang.LabelSparkOperatorApp] = "pi"
		labels[gang.LabelPodGroup] = pg
	}
	return cluster.Pod{Namespace: ns, Name: name, SchedulerName: scheduler.SchedulerName, Labels: labels,
		Requests: map[v1.ResourceName]string{v1.ResourceCPU: cpu, v1.ResourceMemory: "896Mi"}}
}

// createDriverWithConf creates a Spark driver that mounts its
// spark.properties ConfigMap as spark-submit makes it.
func createDriverWithConf(t *testing.T, p cluster.Pod, configMap string) {
	t.Helper()
	pod, err := p.Object()
	require.NoError(t, err)
	pod.Spec.Volumes = append(pod.Spec.Volumes, v1.Volume{Name: gang.SparkConfVolume, VolumeSource: v1.VolumeSource{
		ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: configMap}}}})
	_, err = env.cp.Client.CoreV1().Pods(p.Namespace).Create(context.Background(), pod, metav1.CreateOptions{})
	require.NoError(t, err)
}

func createSparkConfigMap(t *testing.T, ns, name, properties string) {
	t.Helper()
	_, err := env.cp.Client.CoreV1().ConfigMaps(ns).Create(context.Background(), &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data:       map[string]string{gang.SparkConfKey: properties}}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// TestSparkOperatorPodGroupComposes: the Spark operator's PodGroup
// (minMember 1, its memory read as milli-bytes) and its SparkApplication,
// with pods labelled as its submission labels them and no muster
// annotation: the driver is one gang with the executors the
// SparkApplication asks for, bound only when all fit; the executors bind
// to the room held for them, one beyond it in the queue; the PodGroup gets
// the Events and its status.
func TestSparkOperatorPodGroupComposes(t *testing.T) {
	crd := operatorCRD(gang.ResourceSparkApplication, "SparkApplication")
	// A *.k8s.io group: the apiserver wants the approval annotation, which
	// the operator's own CRD carries.
	crd.Annotations = map[string]string{"api-approved.kubernetes.io": "https://github.com/kubeflow/spark-operator/pull/1298"}
	installCRD(t, crd)
	ctx := testContext(t)
	ns := newNamespace(t)
	nodes4(t, "sparkpg", 0, 1) // 4 CPU: the driver (1) and 2 executors of 2 need 5
	startMuster(t)
	createObject(t, gang.ResourceSparkApplication, ns, `
apiVersion: sparkoperator.k8s.io/v1beta2
kind: SparkApplication
metadata: {name: pi}
spec:
  type: Scala
  sparkConf: {spark.kubernetes.scheduler.name: muster}
  driver: {cores: 1, memory: 512m}
  executor: {instances: 2, cores: 2, memory: 512m}
  batchScheduler: muster
`)
	_, err := podGroups(t).SchedulingV1alpha1().PodGroups(ns).Create(ctx, &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pi-pg"},
		Spec: schedv1alpha1.PodGroupSpec{MinMember: 1, MinResources: v1.ResourceList{
			v1.ResourceCPU: resource.MustParse("5"), v1.ResourceMemory: resource.MustParse("1536m")}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	app := "spark-0123"
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{sparkPod(ns, "pi-driver", app, "driver", "pi-pg", "1")}))
	waitUnschedulable(t, ns, "pi-driver", 30*time.Second, "Spark "+ns+"/"+app)
	assert.Equal(t, 0, countBound(t, ns), "the driver waits for room for its executors too")

	nodes4(t, "sparkpg", 1, 1)
	waitBound(t, ns, "pi-driver", 30*time.Second)
	waitFor(t, 15*time.Second, "the admission Event on the PodGroup", func(context.Context) (bool, error) {
		return len(eventsFor(t, ns, "pi-pg", "GangAdmitted")) > 0, nil
	})
	var phase schedv1alpha1.PodGroupPhase
	waitFor(t, 15*time.Second, "the PodGroup's status past Pending", func(ctx context.Context) (bool, error) {
		pg, err := podGroups(t).SchedulingV1alpha1().PodGroups(ns).Get(ctx, "pi-pg", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		phase = pg.Status.Phase
		return phase == schedv1alpha1.PodGroupScheduling || phase == schedv1alpha1.PodGroupRunning, nil
	})
	t.Logf("PodGroup pi-pg: phase %s", phase)

	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{
		sparkPod(ns, "pi-exec-1", app, "executor", "pi-pg", "2"), sparkPod(ns, "pi-exec-2", app, "executor", "pi-pg", "2")}))
	waitBound(t, ns, "pi-exec-1", 30*time.Second)
	waitBound(t, ns, "pi-exec-2", 30*time.Second)
	// Dynamic allocation's next executor: in the queue, beyond the reservation.
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, []cluster.Pod{sparkPod(ns, "pi-exec-3", app, "executor", "pi-pg", "1")}))
	waitBound(t, ns, "pi-exec-3", 30*time.Second)
}

// sparkConfigMapsConfig is the shipped scheduler configuration with
// MusterGang's readSparkConfigMaps turned on.
func sparkConfigMapsConfig(t *testing.T) []byte {
	t.Helper()
	off := []byte("readSparkConfigMaps: false")
	require.Equal(t, 1, bytes.Count(manifests.SchedulerConfig, off))
	return bytes.Replace(manifests.SchedulerConfig, off, []byte("readSparkConfigMaps: true"), 1)
}

// TestSparkReservationFromConfigMap: with readSparkConfigMaps, a driver
// spark-submit created without muster annotations waits for its
// spark.properties ConfigMap, then is one gang with the executors it
// names (4 of 2 CPU with the driver's 1: 9 CPU), bound when they fit.
func TestSparkReservationFromConfigMap(t *testing.T) {
	ns := newNamespace(t)
	nodes4(t, "sparkcm", 0, 2) // 8 CPU
	framework.StartScheduler(t, sparkConfigMapsConfig(t))
	app := "spark-4567"
	createDriverWithConf(t, sparkPod(ns, "driver", app, "driver", "", "1"), "spark-drv-4567-conf-map")
	waitUnschedulable(t, ns, "driver", 30*time.Second, "ConfigMap "+ns+"/spark-drv-4567-conf-map", "does not exist yet")

	createSparkConfigMap(t, ns, "spark-drv-4567-conf-map", fmt.Sprintf("#Java properties built from Kubernetes config map with name: spark-drv-4567-conf-map\n"+
		"spark.app.id=%s\nspark.executor.instances=4\nspark.executor.cores=2\nspark.executor.memory=512m\n"+
		"spark.master=k8s\\://https\\://127.0.0.1\\:6443\n", app))
	waitUnschedulable(t, ns, "driver", 30*time.Second, "Spark "+ns+"/"+app, "does not fit")
	nodes4(t, "sparkcm", 2, 1)
	waitBound(t, ns, "driver", 30*time.Second)
}

// TestSparkConfigMapNotReadByDefault: with the shipped configuration a
// driver's ConfigMap is not read: the driver is a gang of itself, bound at
// once, whatever its spark.properties says.
func TestSparkConfigMapNotReadByDefault(t *testing.T) {
	ns := newNamespace(t)
	nodes4(t, "sparkoff", 0, 1)
	startMuster(t)
	createSparkConfigMap(t, ns, "spark-drv-89-conf-map", "spark.executor.instances=100\n")
	createDriverWithConf(t, sparkPod(ns, "driver", "spark-89", "driver", "", "1"), "spark-drv-89-conf-map")
	waitBound(t, ns, "driver", 30*time.Second)
}

// TestSparkBadSparkApplication: a SparkApplication whose executor memory is
// a Kubernetes quantity, not a JVM size, refuses its driver with a message
// naming the field, in its condition and a Warning Event; nothing is bound.
func TestSparkBadSparkApplication(t *testing.T) {
	crd := operatorCRD(gang.ResourceSparkApplication, "SparkApplication")
	crd.Annotations = map[string]string{"api-approved.kubernetes.io": "https://github.com/kubeflow/spark-operator/pull/1298"}
	installCRD(t, crd)
	ns := newNamespace(t)
	nodes4(t, "sparkbad", 0, 2)
	startMuster(t)
	createObject(t, gang.ResourceSparkApplication, ns, `
apiVersion: sparkoperator.k8s.io/v1beta2
kind: SparkApplication
metadata: {name: pi}
spec:
  executor: {instances: 2, cores: 1, memory: 512Mi}
`)
	driver := sparkPod(ns, "pi-driver", "spark-bad", "driver", "", "1")
	driver.Labels[gang.LabelSparkOperatorApp] = "pi"
	require.NoError(t, cluster.CreatePods(testContext(t), env.cp.Client, []cluster.Pod{driver}))
	want := `SparkApplication ` + ns + `/pi: spec.executor.memory="512Mi" is not a JVM memory size such as "512m" or "2g"`
	waitUnschedulable(t, ns, "pi-driver", 30*time.Second, want)
	waitFor(t, 15*time.Second, "the Warning Event", func(context.Context) (bool, error) {
		for _, e := range eventsFor(t, ns, "pi-driver", "FailedScheduling") {
			if strings.HasPrefix(e, "Warning: ") && strings.Contains(e, want) {
				return true, nil
			}
		}
		return false, nil
	})
	assert.Equal(t, 0, countBound(t, ns))
}
