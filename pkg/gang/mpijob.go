package gang

import (
	"context"
	"errors"
	"fmt"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/resources"
)

// ResourceMPIJob is the MPI operator's MPIJob (kubeflow.org/v2beta1).
var ResourceMPIJob = schema.GroupVersionResource{Group: "kubeflow.org", Version: "v2beta1", Resource: "mpijobs"}

// mpiWaitForWorkersReady is the MPIJob's launcherCreationPolicy under
// which the operator creates the launcher only once every worker is Ready
// (mpi-operator v0.6 pkg/controller/mpi_job_controller.go).
const mpiWaitForWorkersReady = "WaitForWorkersReady"

// mpiLaunchLater composes a PodGroup the MPI operator made with its
// MPIJob. The operator sizes the PodGroup at workers + 1 (podgroup.go,
// calculateMinAvailable) whatever its launcherCreationPolicy; under
// WaitForWorkersReady the launcher is created only once the workers run,
// so a scheduler that waits for minMember pods before binding any never
// sees them (kubeflow/mpi-operator#608). muster makes the workers the
// quorum and reserves the launcher's room with them, planned as a driver
// (on-demand first): the launcher claims it when it arrives.
//
// def is the PodGroup's definition; owner its controller reference. It is
// left as it is unless all of that holds; an MPIJob muster may not read
// (its CRD is not served) leaves it too.
func mpiLaunchLater(ctx context.Context, def *Definition, ns string, owner *metav1.OwnerReference, objs Objects) error {
	if owner == nil || owner.Kind != "MPIJob" || owner.APIVersion != ResourceMPIJob.GroupVersion().String() {
		return nil
	}
	obj, err := objs.Object(ctx, ResourceMPIJob, ns, owner.Name)
	switch {
	case apierrors.IsNotFound(err), errors.Is(err, ErrNotServed):
		return nil
	case err != nil:
		return &ReadError{Object: fmt.Sprintf("MPIJob %s/%s", ns, owner.Name), Err: err}
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return &ReadError{Object: fmt.Sprintf("MPIJob %s/%s", ns, owner.Name), Err: fmt.Errorf("unexpected object %T", obj)}
	}
	workers, launcher, later, err := mpiShape(u)
	if err != nil {
		return fmt.Errorf("MPIJob %s/%s: %w", ns, owner.Name, err)
	}
	if !later || def.Spec.MinMember != workers+1 {
		return nil // minAvailable set by the user, or AtStartup: the PodGroup says it right
	}
	def.Spec.MinMember = max(workers, 1)
	def.Spec.Executors, def.Spec.ExecutorRequest, def.Spec.ExecutorRole = 1, launcher, capacity.RoleDriver
	return nil
}

// mpiShape reads an MPIJob: its workers, its launcher's request (one pod),
// and whether the launcher is created only once the workers are Ready with
// no minAvailable of the user's.
func mpiShape(u *unstructured.Unstructured) (workers int32, launcher resources.Vector, later bool, err error) {
	policy, _, _ := unstructured.NestedString(u.Object, "spec", "launcherCreationPolicy")
	_, userMin, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "runPolicy", "schedulingPolicy", "minAvailable") // found
	later = policy == mpiWaitForWorkersReady && !userMin
	if n, found, err := unstructured.NestedInt64(u.Object, "spec", "mpiReplicaSpecs", "Worker", "replicas"); err != nil {
		return 0, nil, false, fmt.Errorf("spec.mpiReplicaSpecs.Worker.replicas: %w", err)
	} else if found {
		workers = int32(n)
	}
	tmpl, found, err := unstructured.NestedMap(u.Object, "spec", "mpiReplicaSpecs", "Launcher", "template")
	if err != nil || !found {
		return workers, nil, false, nil // no launcher to reserve
	}
	var t v1.PodTemplateSpec
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(tmpl, &t); err != nil {
		return 0, nil, false, fmt.Errorf("spec.mpiReplicaSpecs.Launcher.template: %w", err)
	}
	return workers, TemplateRequest(t.Spec), later, nil
}

// TemplateRequest is what a pod made from a template requests, "pods: 1"
// included: as the apiserver defaults it, a container's limit stands for
// a request it does not set.
func TemplateRequest(spec v1.PodSpec) resources.Vector {
	spec = *spec.DeepCopy()
	for _, cs := range [][]v1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			r := &cs[i].Resources
			for name, q := range r.Limits {
				if _, ok := r.Requests[name]; !ok {
					if r.Requests == nil {
						r.Requests = v1.ResourceList{}
					}
					r.Requests[name] = q
				}
			}
		}
	}
	return resources.PodRequest(&v1.Pod{Spec: spec})
}
