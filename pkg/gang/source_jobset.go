package gang

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// LabelJobSet names a pod's JobSet. The JobSet controller (v0.11,
// pkg/controllers/jobset_controller.go, labelAndAnnotateObject) puts it on
// every Job's pod template.
const LabelJobSet = "jobset.sigs.k8s.io/jobset-name"

// KindJobSet: the pods of a JobSet, by LabelJobSet.
const KindJobSet Kind = "JobSet"

// ResourceJobSet is the JobSet CRD (jobset.x-k8s.io/v1alpha2).
var ResourceJobSet = schema.GroupVersionResource{Group: "jobset.x-k8s.io", Version: "v1alpha2", Resource: "jobsets"}

var jobSet = operatorKind{
	kind:     KindJobSet,
	gvk:      ResourceJobSet.GroupVersion().WithKind("JobSet"),
	resource: ResourceJobSet,
	label:    LabelJobSet,
	quorum:   jobSetQuorum,
}

// jobSets are the gangs of JobSets: the pods labelled with the JobSet's
// name, of a quorum of the pods its replicated jobs start together.
type jobSets struct{}

func (jobSets) Kind() Kind   { return KindJobSet }
func (jobSets) Noun() string { return "JobSet" }

func (jobSets) Resource() (schema.GroupVersionResource, bool) { return ResourceJobSet, true }

func (jobSets) Identify(pod *v1.Pod) (string, Role) { return pod.Labels[LabelJobSet], NoRole }

func (jobSets) Spec(ctx context.Context, ref Ref, pod *v1.Pod, objs Objects) (Definition, error) {
	return jobSet.definition(ctx, ref, pod, objs)
}

func (jobSets) Members(ctx context.Context, ref Ref, objs Objects) ([]*v1.Pod, error) {
	return objs.Pods(ctx, ref.Namespace, labels.SelectorFromSet(labels.Set{LabelJobSet: ref.Name}))
}

// jobSetQuorum is a JobSet's quorum: over its replicated jobs, replicas
// (default 1) times the pods one Job runs at once, parallelism (default 1)
// but no more than completions when that is set (a Job never runs more
// pods than it has completions left).
//
// Only the replicated jobs the JobSet controller creates at once count: a
// replicated job with dependsOn is created when the one it depends on is
// ready or complete, and under startupPolicyOrder InOrder each replicated
// job waits for the one before it to be ready. Counting those would make
// the first jobs wait for pods that are created only once they run: a
// deadlock. Their pods come later and are admitted one by one.
func jobSetQuorum(obj map[string]any) (int64, error) {
	spec, err := fieldOf(obj, "", "spec").object()
	if err != nil {
		return 0, err
	}
	inOrder, err := startsInOrder(spec)
	if err != nil {
		return 0, err
	}
	jobs, err := fieldOf(spec, "spec", "replicatedJobs").list()
	if err != nil {
		return 0, err
	}
	var n int64
	for i, j := range jobs {
		job, err := j.object()
		if err != nil {
			return 0, err
		}
		if job == nil || inOrder && i > 0 || fieldOf(job, j.path, "dependsOn").set {
			continue
		}
		pods, err := replicatedJobPods(job, j.path)
		if err != nil {
			return 0, err
		}
		n = sumCapped(n, pods)
	}
	return n, nil
}

// startsInOrder: spec.startupPolicy.startupPolicyOrder is InOrder.
func startsInOrder(spec map[string]any) (bool, error) {
	policy, err := fieldOf(spec, "spec", "startupPolicy").object()
	if err != nil || policy == nil {
		return false, err
	}
	order, err := fieldOf(policy, "spec.startupPolicy", "startupPolicyOrder").text()
	return order == "InOrder", err
}

// replicatedJobPods is the pods a replicated job runs at once.
func replicatedJobPods(job map[string]any, path string) (int64, error) {
	replicas, err := fieldOf(job, path, "replicas").count(1)
	if err != nil {
		return 0, err
	}
	template, err := fieldOf(job, path, "template").object()
	if err != nil {
		return 0, err
	}
	jobSpec, err := fieldOf(template, path+".template", "spec").object()
	if err != nil {
		return 0, err
	}
	specPath := path + ".template.spec"
	parallelism, err := fieldOf(jobSpec, specPath, "parallelism").count(1)
	if err != nil {
		return 0, err
	}
	completions := fieldOf(jobSpec, specPath, "completions")
	if completions.set {
		c, err := completions.count(0)
		if err != nil {
			return 0, err
		}
		parallelism = min(parallelism, c)
	}
	return productCapped(replicas, parallelism), nil
}
