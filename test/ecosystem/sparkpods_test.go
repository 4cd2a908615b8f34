package ecosystem

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/test/framework"
)

// The Spark 4.0 driver and executor pods, as the feature steps build them.

func fieldEnv(name, path string) v1.EnvVar {
	return v1.EnvVar{Name: name, ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
}

// confVolume is a ConfigMap volume projecting each key as a file of mode
// 0644 (KubernetesClientUtils.buildKeyToPathObjects).
func confVolume(volume, configMap string, keys ...string) v1.Volume {
	items := make([]v1.KeyToPath, len(keys))
	for i, k := range keys {
		items[i] = v1.KeyToPath{Key: k, Path: k, Mode: new(int32(420))}
	}
	return v1.Volume{Name: volume, VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
		LocalObjectReference: v1.LocalObjectReference{Name: configMap}, Items: items}}}
}

// localDir is LocalDirsFeatureStep's emptyDir for spark.local.dir.
func localDir(t *testing.T) (v1.Volume, v1.VolumeMount, v1.EnvVar) {
	path := "/var/data/spark-" + uniqueID(t)
	return v1.Volume{Name: "spark-local-dir-1", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		v1.VolumeMount{Name: "spark-local-dir-1", MountPath: path}, v1.EnvVar{Name: "SPARK_LOCAL_DIRS", Value: path}
}

func (a *sparkApp) driverPod(t *testing.T) *v1.Pod {
	t.Helper()
	c := a.sub.conf
	memory := memoryRequest(t, c["spark.driver.memory"])
	cores := c["spark.driver.cores"]
	if r := c["spark.kubernetes.driver.request.cores"]; r != "" {
		cores = r
	}
	vol, mount, localEnv := localDir(t)
	container := v1.Container{
		// BasicDriverFeatureStep: Constants.DEFAULT_DRIVER_CONTAINER_NAME,
		// the image, the ports, SPARK_APPLICATION_ID and the bind address,
		// requests of cores and memory + overhead, a memory limit.
		Name:            "spark-kubernetes-driver",
		Image:           c["spark.kubernetes.driver.container.image"],
		ImagePullPolicy: v1.PullPolicy(c["spark.kubernetes.container.image.pullPolicy"]),
		Ports: []v1.ContainerPort{{Name: "driver-rpc-port", ContainerPort: 7078, Protocol: v1.ProtocolTCP},
			{Name: "blockmanager", ContainerPort: 7079, Protocol: v1.ProtocolTCP}, {Name: "spark-ui", ContainerPort: 4040, Protocol: v1.ProtocolTCP}},
		Env: []v1.EnvVar{{Name: "SPARK_USER", Value: "spark"}, {Name: "SPARK_APPLICATION_ID", Value: a.appID},
			fieldEnv("SPARK_DRIVER_BIND_ADDRESS", "status.podIP"), localEnv,
			// KubernetesClientApplication.run: SPARK_CONF_DIR.
			{Name: "SPARK_CONF_DIR", Value: "/opt/spark/conf"}},
		Resources: v1.ResourceRequirements{
			Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse(cores), v1.ResourceMemory: memory},
			Limits:   v1.ResourceList{v1.ResourceMemory: memory}},
		// DriverCommandFeatureStep: the entrypoint's driver command.
		Args: append([]string{"driver", "--properties-file", "/opt/spark/conf/spark.properties", "--class", a.sub.mainClass, a.sub.primary}, a.sub.appArgs...),
		// LocalDirsFeatureStep, then run's conf volume at SPARK_CONF_DIR.
		VolumeMounts: []v1.VolumeMount{mount, {Name: "spark-conf-volume-driver", MountPath: "/opt/spark/conf"}},
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: a.namespace, Name: a.driverName,
			Labels:      a.podLabels("driver"),
			Annotations: a.prefixed("spark.kubernetes.driver.annotation."),
		},
		Spec: v1.PodSpec{
			RestartPolicy: v1.RestartPolicyNever,
			// DriverKubernetesCredentialsFeatureStep.
			ServiceAccountName: c["spark.kubernetes.authenticate.driver.serviceAccountName"],
			// BasicDriverFeatureStep: KubernetesConf.schedulerName.
			SchedulerName: c["spark.kubernetes.scheduler.name"],
			Containers:    []v1.Container{container},
			Volumes: []v1.Volume{vol,
				// KubernetesClientApplication.run: Constants.SPARK_CONF_VOLUME_DRIVER.
				confVolume("spark-conf-volume-driver", a.driverConfig, "spark.properties")},
		},
	}
}

// executorConfig is KubernetesClusterSchedulerBackend.setUpExecutorConfigMap's
// ConfigMap: KubernetesClientUtils.configMapNameExecutor, labelled with the
// app and the executor role, owned by the driver.
func (a *sparkApp) createExecutorConfig(t *testing.T) string {
	t.Helper()
	name := "spark-exec-" + uniqueID(t) + "-conf-map"
	_, err := framework.CP.Client.CoreV1().ConfigMaps(a.namespace).Create(context.Background(), &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.namespace, Name: name, OwnerReferences: ownedByDriver(a.driver),
			Labels: map[string]string{"spark-app-selector": a.appID, "spark-role": "executor"}},
		Immutable: new(true),
		Data:      map[string]string{"spark.kubernetes.namespace": a.namespace},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return name
}

// createExecutor creates executor id as ExecutorPodsAllocator does, with
// BasicExecutorFeatureStep's pod: named prefix-exec-ID, Spark's labels
// with spark-exec-id and the default resource profile's id, owned by the
// driver, one container of spark.executor.cores and memory + overhead.
func (a *sparkApp) createExecutor(t *testing.T, id int, configMap string) *v1.Pod {
	t.Helper()
	c := a.sub.conf
	cores := c["spark.executor.cores"]
	if r := c["spark.kubernetes.executor.request.cores"]; r != "" {
		cores = r
	}
	memory := memoryRequest(t, c["spark.executor.memory"])
	name := fmt.Sprintf("%s-exec-%d", a.prefix, id)
	labels := a.podLabels("executor")
	labels["spark-exec-id"] = fmt.Sprint(id)
	labels["spark-exec-resourceprofile-id"] = "0"
	vol, mount, localEnv := localDir(t)
	hostname := name
	if len(hostname) > 63 {
		hostname = strings.TrimLeft(hostname[len(hostname)-63:], "-")
	}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.namespace, Name: name, Labels: labels,
			Annotations: a.prefixed("spark.kubernetes.executor.annotation."), OwnerReferences: ownedByDriver(a.driver)},
		Spec: v1.PodSpec{
			Hostname: hostname, RestartPolicy: v1.RestartPolicyNever,
			ServiceAccountName: c["spark.kubernetes.authenticate.executor.serviceAccountName"],
			SchedulerName:      c["spark.kubernetes.scheduler.name"],
			Containers: []v1.Container{{
				Name: "spark-kubernetes-executor", Image: c["spark.kubernetes.executor.container.image"],
				ImagePullPolicy: v1.PullPolicy(c["spark.kubernetes.container.image.pullPolicy"]),
				Args:            []string{"executor"},
				Ports:           []v1.ContainerPort{{Name: "blockmanager", ContainerPort: 7079, Protocol: v1.ProtocolTCP}},
				Env: []v1.EnvVar{{Name: "SPARK_USER", Value: "spark"},
					{Name: "SPARK_DRIVER_URL", Value: fmt.Sprintf("spark://CoarseGrainedScheduler@%s-driver-svc.%s.svc:7078", a.prefix, a.namespace)},
					{Name: "SPARK_EXECUTOR_CORES", Value: c["spark.executor.cores"]}, {Name: "SPARK_EXECUTOR_MEMORY", Value: c["spark.executor.memory"]},
					{Name: "SPARK_APPLICATION_ID", Value: a.appID}, {Name: "SPARK_CONF_DIR", Value: "/opt/spark/conf"},
					{Name: "SPARK_EXECUTOR_ID", Value: fmt.Sprint(id)}, {Name: "SPARK_RESOURCE_PROFILE_ID", Value: "0"}, localEnv,
					fieldEnv("SPARK_EXECUTOR_POD_IP", "status.podIP"), fieldEnv("SPARK_EXECUTOR_POD_NAME", "metadata.name")},
				Resources: v1.ResourceRequirements{
					Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse(cores), v1.ResourceMemory: memory},
					Limits:   v1.ResourceList{v1.ResourceMemory: memory}},
				// Constants.SPARK_CONF_VOLUME_EXEC at SPARK_CONF_DIR_INTERNAL.
				VolumeMounts: []v1.VolumeMount{mount, {Name: "spark-conf-volume-exec", MountPath: "/opt/spark/conf"}},
			}},
			Volumes: []v1.Volume{vol, confVolume("spark-conf-volume-exec", configMap, "spark.kubernetes.namespace")},
		},
	}
	created, err := framework.CP.Client.CoreV1().Pods(a.namespace).Create(context.Background(), pod, metav1.CreateOptions{})
	require.NoError(t, err, "creating executor %d", id)
	return created
}
