package gang

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/resources"
)

// mpiJob is an MPIJob as the MPI operator's examples write it (pi.yaml:
// a launcher and workers with only limits set).
func mpiJob(policy string, workers int64, minAvailable *int64) *unstructured.Unstructured {
	container := func(cpu string) any {
		return map[string]any{"name": "c", "image": "mpi", "resources": map[string]any{"limits": map[string]any{"cpu": cpu, "memory": "1Gi"}}}
	}
	spec := map[string]any{
		"mpiReplicaSpecs": map[string]any{
			"Launcher": map[string]any{"replicas": int64(1), "template": map[string]any{"spec": map[string]any{"containers": []any{container("2")}}}},
			"Worker":   map[string]any{"replicas": workers, "template": map[string]any{"spec": map[string]any{"containers": []any{container("1")}}}},
		},
	}
	if policy != "" {
		spec["launcherCreationPolicy"] = policy
	}
	if minAvailable != nil {
		spec["runPolicy"] = map[string]any{"schedulingPolicy": map[string]any{"minAvailable": *minAvailable}}
	}
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob",
		"metadata": map[string]any{"namespace": "ml", "name": "pi"}, "spec": spec}}
	return u
}

// TestPodGroupOfMPIJobLaunchedLater: a PodGroup the MPI operator made for
// a job that creates its launcher only once its workers are Ready is a
// gang of the workers with the launcher's room reserved, planned as a
// driver; any other PodGroup is as it says.
func TestPodGroupOfMPIJobLaunchedLater(t *testing.T) {
	owned := func(minMember int32) *schedv1alpha1.PodGroup {
		return podGroup("pi", minMember, func(pg *schedv1alpha1.PodGroup) {
			pg.OwnerReferences = []metav1.OwnerReference{{APIVersion: "kubeflow.org/v2beta1", Kind: "MPIJob", Name: "pi", Controller: ptr.To(true)}}
		})
	}
	launcher := resources.Vector{v1.ResourceCPU: 2000, v1.ResourceMemory: 1 << 30, v1.ResourcePods: 1}
	cases := map[string]struct {
		pg           *schedv1alpha1.PodGroup
		job          *unstructured.Unstructured
		wantMin      int32
		wantReserved int32
		wantLauncher resources.Vector
		wantRole     capacity.Role
	}{
		"WaitForWorkersReady: the workers, and the launcher reserved": {
			pg: owned(3), job: mpiJob("WaitForWorkersReady", 2, nil),
			wantMin: 2, wantReserved: 1, wantLauncher: launcher, wantRole: capacity.RoleDriver,
		},
		"AtStartup: as the PodGroup says": {pg: owned(3), job: mpiJob("AtStartup", 2, nil), wantMin: 3},
		"the default policy (AtStartup)":  {pg: owned(3), job: mpiJob("", 2, nil), wantMin: 3},
		"the user's minAvailable wins":    {pg: owned(2), job: mpiJob("WaitForWorkersReady", 2, ptr.To[int64](2)), wantMin: 2},
		"a PodGroup of another size":      {pg: owned(5), job: mpiJob("WaitForWorkersReady", 2, nil), wantMin: 5},
		"no MPIJob (deleted)":             {pg: owned(3), wantMin: 3},
		"not the MPI operator's":          {pg: podGroup("pi", 3), job: mpiJob("WaitForWorkersReady", 2, nil), wantMin: 3},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			objs := objectsOf(ResourcePodGroup, tc.pg)
			if tc.job != nil {
				objs = mergeObjects(objs, objectsOf(ResourceMPIJob, tc.job))
			}
			pod := testPod{name: "pi-worker-0", labels: map[string]string{LabelPodGroup: "pi"}}.pod()
			def, err := podGroups{}.Spec(context.Background(), Ref{Kind: KindPodGroup, Namespace: "ml", Name: "pi"}, pod, &fakeObjects{objects: objs})
			require.NoError(t, err)
			assert.Equal(t, tc.wantMin, def.Spec.MinMember, "quorum")
			assert.Equal(t, tc.wantReserved, def.Spec.Executors, "reserved")
			assert.Equal(t, tc.wantLauncher, def.Spec.ExecutorRequest, "the launcher's request")
			assert.Equal(t, tc.wantRole, def.Spec.ExecutorRole)
		})
	}

	t.Run("the MPIJob CRD not served: as the PodGroup says", func(t *testing.T) {
		objs := notServing{fakeObjects: &fakeObjects{objects: objectsOf(ResourcePodGroup, owned(3))}, not: map[schema.GroupVersionResource]bool{ResourceMPIJob: true}}
		def, err := podGroups{}.Spec(context.Background(), Ref{Kind: KindPodGroup, Namespace: "ml", Name: "pi"},
			testPod{name: "w", labels: map[string]string{LabelPodGroup: "pi"}}.pod(), objs)
		require.NoError(t, err)
		assert.EqualValues(t, 3, def.Spec.MinMember)
	})
	t.Run("a malformed MPIJob is an error naming it", func(t *testing.T) {
		job := mpiJob("WaitForWorkersReady", 2, nil)
		require.NoError(t, unstructured.SetNestedField(job.Object, "two", "spec", "mpiReplicaSpecs", "Worker", "replicas"))
		_, err := podGroups{}.Spec(context.Background(), Ref{Kind: KindPodGroup, Namespace: "ml", Name: "pi"},
			testPod{name: "w", labels: map[string]string{LabelPodGroup: "pi"}}.pod(),
			&fakeObjects{objects: mergeObjects(objectsOf(ResourcePodGroup, owned(3)), objectsOf(ResourceMPIJob, job))})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "MPIJob ml/pi: spec.mpiReplicaSpecs.Worker.replicas")
	})
}
