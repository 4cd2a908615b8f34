package gang

import (
	"context"
	"math"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
)

// The labels KubeRay puts on a RayCluster's pods (ray-operator v1.5
// controllers/ray/common/pod.go, labelPod; a pod template cannot override
// them).
const (
	LabelRayCluster  = "ray.io/cluster"
	LabelRayNodeType = "ray.io/node-type"
)

// KindRayCluster: the head and workers of a KubeRay RayCluster, by
// LabelRayCluster.
const KindRayCluster Kind = "RayCluster"

// A Ray pod's role in its cluster, from LabelRayNodeType.
const (
	RayHead   Role = "head"
	RayWorker Role = "worker"
)

// ResourceRayCluster is KubeRay's RayCluster (ray.io/v1).
var ResourceRayCluster = schema.GroupVersionResource{Group: "ray.io", Version: "v1", Resource: "rayclusters"}

var rayCluster = operatorKind{
	kind:     KindRayCluster,
	gvk:      ResourceRayCluster.GroupVersion().WithKind("RayCluster"),
	resource: ResourceRayCluster,
	label:    LabelRayCluster,
	quorum:   rayQuorum,
}

// rayClusters are the gangs of KubeRay's RayClusters: the head and the
// workers labelled with the cluster's name, of a quorum of the head plus
// each worker group's minimum; workers above it are elastic, admitted one
// by one.
//
// A RayJob needs nothing of its own: KubeRay creates a RayCluster for it
// (rayjob_controller.go, constructRayClusterForRayJob, copying the RayJob's
// labels and annotations, so its muster.dev/queue and
// muster.dev/gang-timeout too), whose pods the RayCluster controller labels
// as any other's. The RayJob's submitter Job is labelled with neither
// LabelRayCluster nor a node type: it is a plain pod.
type rayClusters struct{}

func (rayClusters) Kind() Kind   { return KindRayCluster }
func (rayClusters) Noun() string { return "RayCluster" }

func (rayClusters) Resource() (schema.GroupVersionResource, bool) { return ResourceRayCluster, true }

// Identify: only the head and the workers are members. KubeRay labels the
// pod of a RayCluster's Redis clean-up Job (node type "redis-cleanup",
// built from the head's template, so it may ask for muster) with the
// cluster's name too; it runs while the cluster is being deleted, when no
// gang could form around it, and must not wait for one.
func (rayClusters) Identify(pod *v1.Pod) (string, Role) {
	name := pod.Labels[LabelRayCluster]
	if name == "" {
		return "", NoRole
	}
	switch role := Role(pod.Labels[LabelRayNodeType]); role {
	case RayHead, RayWorker:
		return name, role
	}
	return "", NoRole
}

func (rayClusters) Spec(ctx context.Context, ref Ref, pod *v1.Pod, objs Objects) (Definition, error) {
	return rayCluster.definition(ctx, ref, pod, objs)
}

func (rayClusters) Members(ctx context.Context, ref Ref, objs Objects) ([]*v1.Pod, error) {
	cluster, err := labels.NewRequirement(LabelRayCluster, selection.Equals, []string{ref.Name})
	if err != nil {
		return nil, err
	}
	role, err := labels.NewRequirement(LabelRayNodeType, selection.In, []string{string(RayHead), string(RayWorker)})
	if err != nil {
		return nil, err
	}
	return objs.Pods(ctx, ref.Namespace, labels.NewSelector().Add(*cluster, *role))
}

// rayQuorum is a RayCluster's quorum: its head plus, for each worker group
// that is not suspended, minReplicas (default 0, at most maxReplicas, as
// KubeRay creates no more) times numOfHosts (default 1) workers. This is
// KubeRay's own minimum (utils.CalculateMinReplicas).
func rayQuorum(obj map[string]any) (int64, error) {
	spec, err := fieldOf(obj, "", "spec").object()
	if err != nil {
		return 0, err
	}
	groups, err := fieldOf(spec, "spec", "workerGroupSpecs").list()
	if err != nil {
		return 0, err
	}
	n := int64(1) // the head
	for _, g := range groups {
		workers, err := rayGroupMinimum(g)
		if err != nil {
			return 0, err
		}
		n = sumCapped(n, workers)
	}
	return n, nil
}

// rayGroupMinimum is the workers a worker group starts with at least.
func rayGroupMinimum(g field) (int64, error) {
	group, err := g.object()
	if err != nil || group == nil {
		return 0, err
	}
	if suspended, err := fieldOf(group, g.path, "suspend").flag(); err != nil || suspended {
		return 0, err
	}
	minReplicas, err := fieldOf(group, g.path, "minReplicas").count(0)
	if err != nil {
		return 0, err
	}
	maxReplicas, err := fieldOf(group, g.path, "maxReplicas").count(math.MaxInt32)
	if err != nil {
		return 0, err
	}
	hosts, err := fieldOf(group, g.path, "numOfHosts").count(1)
	if err != nil {
		return 0, err
	}
	return productCapped(min(minReplicas, maxReplicas), hosts), nil
}
