package gang

import (
	"context"
	"errors"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// The labels Spark on Kubernetes puts on an application's pods, and the
// annotations on its driver that ask muster to reserve executors.
const (
	LabelSparkApp               = "spark-app-selector"
	LabelSparkRole              = capacity.LabelSparkRole
	AnnotationMinExecutors      = "muster.dev/min-executors"
	AnnotationExecutorResources = "muster.dev/executor-resources"
)

// KindSpark: the pods of one Spark application, by LabelSparkApp.
const KindSpark Kind = "Spark"

// A Spark pod's role in its application, from its spark-role label (the
// values of capacity's driver and executor roles).
const (
	SparkDriver   = Role(capacity.RoleDriver)
	SparkExecutor = Role(capacity.RoleExecutor)
)

// sparkApps are the gangs of Spark applications: the pods labelled with the
// application's id. The quorum is the driver alone; executors are reserved
// with it as the driver's annotations ask, or else as Spark's own
// configuration says (its SparkApplication, its spark.properties
// ConfigMap: sparkConfOf), and its muster.dev/queue label queues executors
// that carry none. An executor waits for its driver. A PodGroup the pods
// also name (the Spark operator's) composes with the gang: see
// composePodGroup.
type sparkApps struct{}

func (sparkApps) Kind() Kind   { return KindSpark }
func (sparkApps) Noun() string { return "Spark driver" }

func (sparkApps) Resource() (schema.GroupVersionResource, bool) {
	return schema.GroupVersionResource{}, false
}

// Identify: a pod is part of a Spark application by its spark-app-selector
// label; its role needs that label too (spark-role alone makes no gang).
func (sparkApps) Identify(pod *v1.Pod) (string, Role) {
	app := pod.Labels[LabelSparkApp]
	if app == "" {
		return "", NoRole
	}
	switch role := Role(pod.Labels[LabelSparkRole]); role {
	case SparkDriver, SparkExecutor:
		return app, role
	}
	return app, NoRole
}

func (s sparkApps) Spec(ctx context.Context, ref Ref, pod *v1.Pod, objs Objects) (Definition, error) {
	def := Definition{QueueLabel: pod.Labels[queue.LabelQueue]}
	def.Spec.MinMember = 1 // the driver; executors come after it runs
	driver := pod
	if _, role := s.Identify(pod); role != SparkDriver {
		d, err := SparkDriverOf(ctx, ref, objs)
		if err != nil {
			return def, err
		}
		if d == nil {
			def.Wait = &Wait{
				Reason: fmt.Sprintf("the driver of Spark application %s is not running", ref.Name),
				Detail: fmt.Sprintf("the driver of Spark application %s is not running, so its executors are not scheduled", ref.Name),
			}
			return def, nil
		}
		driver = d
		if q := d.Labels[queue.LabelQueue]; q != "" && def.QueueLabel == "" {
			def.QueueLabel = q
		}
	}
	if err := composePodGroup(ctx, pod, driver, objs, &def); err != nil || def.Wait != nil {
		return def, err
	}
	n, executor, wait, err := sparkReservation(ctx, driver, objs)
	if err != nil || wait != nil {
		def.Wait = wait
		return def, err
	}
	def.Spec.Executors, def.Spec.ExecutorRequest = n, executor
	if def.Spec.Topology, err = ParseTopology(driver.Annotations); err != nil {
		return def, fmt.Errorf("Spark driver %s/%s: %w", driver.Namespace, driver.Name, err)
	}
	return def, nil
}

// composePodGroup reads the scheduler-plugins PodGroup a Spark pod names
// (label scheduling.x-k8s.io/pod-group, its own or its driver's), as the
// Spark operator's batch scheduler integration makes one per application:
// the gang stays the application's, with its quorum and reservation, while
// the PodGroup gives its queue label (over the pods'), its
// scheduleTimeoutSeconds and the object Events go to; muster writes its
// status from the pods labelled with it. Its minMember and minResources are
// not used: the operator writes minMember 1 and a minResources computed
// from the same spec, with Spark's "512m" read as 0.512 bytes and no memory
// overhead; the driver's request and the reservation are the exact
// figures. A PodGroup named but missing is waited for, as for any pod that
// names one; PodGroups not served are no part of the gang.
func composePodGroup(ctx context.Context, pod, driver *v1.Pod, objs Objects, def *Definition) error {
	name := pod.Labels[LabelPodGroup]
	if name == "" {
		name = driver.Labels[LabelPodGroup]
	}
	if name == "" {
		return nil
	}
	pg, wait, err := readPodGroup(ctx, pod.Namespace, name, objs)
	var read *ReadError
	if errors.As(err, &read) && errors.Is(read.Err, ErrNotServed) {
		return nil
	}
	if err != nil || wait != nil {
		def.Wait = wait
		return err
	}
	if q := pg.Labels[queue.LabelQueue]; q != "" {
		def.QueueLabel = q
	}
	def.Spec.Timeout = podGroupTimeout(pg)
	def.Object = podGroupEventObject(pg)
	return nil
}
func (sparkApps) Members(ctx context.Context, ref Ref, objs Objects) ([]*v1.Pod, error) {
	return objs.Pods(ctx, ref.Namespace, labels.SelectorFromSet(labels.Set{LabelSparkApp: ref.Name}))
}

// SparkDriverOf returns the live (running or pending) driver of the Spark
// application ref, or nil if it has none.
func SparkDriverOf(ctx context.Context, ref Ref, objs Objects) (*v1.Pod, error) {
	sel := labels.SelectorFromSet(labels.Set{LabelSparkApp: ref.Name, LabelSparkRole: string(SparkDriver)})
	pods, err := objs.Pods(ctx, ref.Namespace, sel)
	if err != nil {
		return nil, &ReadError{Object: "the driver of Spark application " + ref.Name, Err: err}
	}
	for _, p := range pods {
		if Live(p) {
			return p, nil
		}
	}
	return nil, nil
}

// sparkReservation is the executor reservation of a Spark driver: what its
// muster.dev/min-executors and muster.dev/executor-resources ask for, and
// without them what Spark's own configuration says it starts with
// (sparkConfOf, sparkExecutors). n is 0 when there is none.
func sparkReservation(ctx context.Context, driver *v1.Pod, objs Objects) (n int32, executor resources.Vector, wait *Wait, err error) {
	if _, ok := driver.Annotations[AnnotationMinExecutors]; ok {
		n, executor, err = annotatedReservation(driver.Annotations)
		return n, executor, nil, err
	}
	conf, wait, err := sparkConfOf(ctx, driver, objs)
	if err != nil || wait != nil || conf == nil {
		return 0, nil, wait, err
	}
	n, executor, err = sparkExecutors(*conf)
	return n, executor, nil, err
}

// annotatedReservation reads a Spark driver's muster.dev/min-executors and
// muster.dev/executor-resources: how many executors of which size (one
// "pods" included) to reserve with the driver.
func annotatedReservation(driverAnnotations map[string]string) (n int32, executor resources.Vector, err error) {
	v := driverAnnotations[AnnotationMinExecutors]
	if n, err = ParseMinExecutors(v); err != nil || n == 0 {
		return 0, nil, err
	}
	r, ok := driverAnnotations[AnnotationExecutorResources]
	if !ok {
		return 0, nil, fmt.Errorf("annotation %s=%d needs %s (the size of one executor, e.g. \"cpu=4,memory=18Gi\")",
			AnnotationMinExecutors, n, AnnotationExecutorResources)
	}
	if executor, err = ParseExecutorResources(r); err != nil {
		return 0, nil, err
	}
	executor[v1.ResourcePods] = 1
	return n, executor, nil
}
