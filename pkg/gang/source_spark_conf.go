package gang

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Where a Spark driver without muster's annotations has its configuration:
// the Spark operator's SparkApplication, and the spark.properties
// ConfigMap Spark mounts into the driver.
const (
	// LabelSparkOperatorApp names the SparkApplication on the pods the
	// Spark operator's submission creates (spark-operator v2
	// internal/controller/sparkapplication/submission.go, driverConfOption:
	// spark.kubernetes.driver.label.sparkoperator.k8s.io/app-name).
	LabelSparkOperatorApp = "sparkoperator.k8s.io/app-name"
	// SparkConfVolume is the driver's volume of its ConfigMap
	// (Constants.SPARK_CONF_VOLUME_DRIVER; KubernetesClientApplication
	// mounts it at /opt/spark/conf).
	SparkConfVolume = "spark-conf-volume-driver"
	// SparkConfKey is the ConfigMap's key holding the application's
	// resolved configuration (Constants.SPARK_CONF_FILE_NAME, written by
	// KubernetesClientUtils.buildSparkConfDirFilesMap as
	// java.util.Properties.store does).
	SparkConfKey = "spark.properties"
)

// ResourceSparkApplication is the Spark operator's SparkApplication.
var ResourceSparkApplication = schema.GroupVersionResource{Group: "sparkoperator.k8s.io", Version: "v1beta2", Resource: "sparkapplications"}

// ResourceConfigMap is core ConfigMaps, read for a Spark driver's
// spark.properties only where the caller allows it.
var ResourceConfigMap = v1.SchemeGroupVersion.WithResource("configmaps")

// sparkConfOf reads a Spark driver's configuration: from its
// SparkApplication when the Spark operator created it, else from its
// spark.properties ConfigMap where the caller reads ConfigMaps. nil when
// neither says anything: the driver is a gang of itself, as before.
// A ConfigMap the driver mounts but that does not exist yet is a reason to
// wait (Spark creates it just after the driver, which cannot start
// without it).
func sparkConfOf(ctx context.Context, driver *v1.Pod, objs Objects) (*sparkConf, *Wait, error) {
	if name := driver.Labels[LabelSparkOperatorApp]; name != "" {
		obj, err := objs.Object(ctx, ResourceSparkApplication, driver.Namespace, name)
		switch {
		case err == nil:
			c, err := sparkApplicationConf(obj, fmt.Sprintf("SparkApplication %s/%s", driver.Namespace, name))
			return c, nil, err
		case apierrors.IsNotFound(err) || errors.Is(err, ErrNotServed):
			// Deleted (the driver goes with it) or not read here: on to the ConfigMap.
		default:
			return nil, nil, &ReadError{Object: fmt.Sprintf("SparkApplication %s/%s", driver.Namespace, name), Err: err}
		}
	}
	name := SparkConfigMapOf(driver)
	if name == "" {
		return nil, nil, nil
	}
	from := fmt.Sprintf("ConfigMap %s/%s key %s", driver.Namespace, name, SparkConfKey)
	obj, err := objs.Object(ctx, ResourceConfigMap, driver.Namespace, name)
	switch {
	case errors.Is(err, ErrNotServed):
		return nil, nil, nil
	case apierrors.IsNotFound(err):
		return nil, &Wait{
			Reason: fmt.Sprintf("the Spark configuration of driver %s (ConfigMap %s/%s) does not exist yet", driver.Name, driver.Namespace, name),
			Detail: fmt.Sprintf("the driver mounts ConfigMap %s/%s (its %s), which does not exist yet; muster waits for it to size the executors", driver.Namespace, name, SparkConfKey),
		}, nil
	case err != nil:
		return nil, nil, &ReadError{Object: "ConfigMap " + driver.Namespace + "/" + name, Err: err}
	}
	cm, err := as[v1.ConfigMap](obj)
	if err != nil {
		return nil, nil, &ReadError{Object: "ConfigMap " + driver.Namespace + "/" + name, Err: err}
	}
	text, ok := cm.Data[SparkConfKey]
	if !ok {
		return nil, nil, nil // not Spark's: nothing to read
	}
	return &sparkConf{from: from, values: parseProperties(text)}, nil, nil
}

// SparkConfigMapOf is the ConfigMap of the driver's SparkConfVolume, ""
// when it has none.
func SparkConfigMapOf(driver *v1.Pod) string {
	for _, vol := range driver.Spec.Volumes {
		if vol.Name == SparkConfVolume && vol.ConfigMap != nil {
			return vol.ConfigMap.Name
		}
	}
	return ""
}

// sparkApplicationConf is the Spark configuration a SparkApplication
// (sparkoperator.k8s.io/v1beta2) makes the operator pass to spark-submit,
// as far as executors are concerned: spec.memoryOverheadFactor, then
// spec.sparkConf, then spec.executor's fields, then spec.dynamicAllocation,
// each overriding the one before as spark-submit's later --conf does
// (submission.go, buildSparkSubmitArgs). spec.type Python or R makes a
// non-JVM application, as its main resource does for spark-submit.
func sparkApplicationConf(obj runtime.Object, from string) (*sparkConf, error) {
	u, ok := obj.(runtime.Unstructured)
	if !ok {
		return nil, &ReadError{Object: from, Err: fmt.Errorf("unexpected object %T", obj)}
	}
	c := &sparkConf{from: from, values: map[string]string{}, field: map[string]string{}}
	if err := readSparkApplication(c, u.UnstructuredContent()); err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return c, nil
}

func readSparkApplication(c *sparkConf, obj map[string]any) error {
	spec, err := fieldOf(obj, "", "spec").object()
	if err != nil {
		return err
	}
	set := func(key string, f field) error {
		if !f.set {
			return nil
		}
		var v string
		switch x := f.value.(type) {
		case string:
			v = x
		case bool:
			v = strconv.FormatBool(x)
		default:
			n, err := f.count(0)
			if err != nil {
				return err
			}
			v = strconv.FormatInt(n, 10)
		}
		c.values[key], c.field[key] = v, f.path
		return nil
	}
	kind, err := fieldOf(spec, "spec", "type").text()
	if err != nil {
		return err
	}
	switch kind {
	case "Python":
		c.values[sparkResourceType] = "python"
	case "R":
		c.values[sparkResourceType] = "r"
	}
	if err := set(sparkK8sFactor, fieldOf(spec, "spec", "memoryOverheadFactor")); err != nil {
		return err
	}
	if err := sparkApplicationSparkConf(c, spec); err != nil {
		return err
	}
	executor, err := fieldOf(spec, "spec", "executor").object()
	if err != nil {
		return err
	}
	for key, name := range map[string]string{sparkExecutorInstances: "instances", sparkExecutorCores: "cores",
		sparkExecutorRequestCores: "coreRequest", sparkExecutorMemory: "memory", sparkExecutorOverhead: "memoryOverhead"} {
		if err := set(key, fieldOf(executor, "spec.executor", name)); err != nil {
			return err
		}
	}
	dynamic, err := fieldOf(spec, "spec", "dynamicAllocation").object()
	if err != nil {
		return err
	}
	if on, err := fieldOf(dynamic, "spec.dynamicAllocation", "enabled").flag(); err != nil || !on {
		return err // off: the operator passes none of it
	}
	for key, name := range map[string]string{sparkDynamicEnabled: "enabled", sparkDynamicInitial: "initialExecutors",
		sparkDynamicMin: "minExecutors", sparkDynamicMax: "maxExecutors"} {
		if err := set(key, fieldOf(dynamic, "spec.dynamicAllocation", name)); err != nil {
			return err
		}
	}
	return nil
}

// sparkApplicationSparkConf copies spec.sparkConf, a map of strings.
func sparkApplicationSparkConf(c *sparkConf, spec map[string]any) error {
	conf, err := fieldOf(spec, "spec", "sparkConf").object()
	if err != nil {
		return err
	}
	for k, v := range conf {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("spec.sparkConf[%s]: must be a string, not %s", k, describeValue(v))
		}
		c.values[k], c.field[k] = s, "spec.sparkConf["+k+"]"
	}
	return nil
}
