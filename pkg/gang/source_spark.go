package gang

import (
	"context"
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

// A Spark pod's role in its application: its capacity role (capacity.RoleOf,
// from spark-role), for a pod that is part of an application.
const (
	SparkDriver   = Role(capacity.RoleDriver)
	SparkExecutor = Role(capacity.RoleExecutor)
)

// sparkApps are the gangs of Spark applications: the pods labelled with the
// application's id. The quorum is the driver alone; the driver's
// annotations may ask for executors to be reserved with it, and its
// muster.dev/queue label queues executors that carry none. An executor
// waits for its driver.
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
	switch role := capacity.RoleOf(pod.Labels); role {
	case capacity.RoleDriver, capacity.RoleExecutor:
		return app, Role(role)
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
	n, executor, err := sparkReservation(driver.Annotations)
	if err != nil {
		return def, err
	}
	def.Spec.Executors, def.Spec.ExecutorRequest = n, executor
	return def, nil
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

// sparkReservation reads a Spark driver's muster.dev/min-executors and
// muster.dev/executor-resources: how many executors of which size (one
// "pods" included) to reserve with the driver. n is 0 when the driver asks
// for no reservation.
func sparkReservation(driverAnnotations map[string]string) (n int32, executor resources.Vector, err error) {
	v, ok := driverAnnotations[AnnotationMinExecutors]
	if !ok {
		return 0, nil, nil
	}
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
