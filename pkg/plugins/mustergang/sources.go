package mustergang

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	schedv1beta1 "k8s.io/api/scheduling/v1beta1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	pgclientset "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	pglisters "sigs.k8s.io/scheduler-plugins/pkg/generated/listers/scheduling/v1alpha1"

	"muster.dev/muster/pkg/apis/config"
	"muster.dev/muster/pkg/gang"
)

// sources reads gangs from their sources (pkg/gang) through the
// scheduler's informers and muster's own: it is the gang.Objects of the
// plugin.
type sources struct {
	args config.MusterGangArgs
	pods corelisters.PodLister
	// podIndex is the scheduler's pod informer's indexer, with memberIndex.
	podIndex cache.Indexer
	disco    discovery.DiscoveryInterface
	// dynamic reads the custom resources of operators' gang sources
	// (RayCluster, JobSet) as unstructured.
	dynamic dynamic.Interface

	mu sync.RWMutex
	// objects reads the API objects that define gangs, by resource: those
	// the cluster serves and whose informer has synced. A gang source whose
	// resource is not here is not used.
	objects map[schema.GroupVersionResource]getter

	// podGroups reads and writes scheduler-plugins PodGroups; nil until
	// their CRD is served and their informers synced.
	podGroups atomic.Pointer[podGroupAccess]
	// workloadInformer watches the Workload API's pod groups (nil where
	// the cluster does not serve them).
	workloadInformer cache.SharedIndexInformer
	// nudge asks the discovery loop to look at once for sources not served
	// yet: a pod names a gang of one (see runDiscovery).
	nudge chan struct{}
}

// getter reads one object of a resource.
type getter func(namespace, name string) (runtime.Object, error)

// podGroupAccess is what the plugin reads and writes of scheduler-plugins
// PodGroups.
type podGroupAccess struct {
	lister pglisters.PodGroupLister
	client pgclientset.Interface
	// allMembers lists PodGroup members including finished ones (the
	// scheduler's own pod informer leaves those out), for PodGroup status.
	allMembers corelisters.PodLister
	// memberIndex is allMembers' indexer, with memberIndex.
	memberIndex cache.Indexer
}

var _ gang.Objects = &sources{}

// newSources reads gangs through the handle's informers; the Workload API's
// pod groups are read through the scheduler's own informer factory, which
// must be asked before it starts. The sources read through informers of
// muster's own are started by the plugin (startSources).
func newSources(ctx context.Context, h fwk.Handle, args *config.MusterGangArgs, dyn dynamic.Interface) (*sources, error) {
	podInformer := h.SharedInformerFactory().Core().V1().Pods()
	if err := addMemberIndex(podInformer.Informer()); err != nil {
		return nil, err
	}
	s := &sources{args: *args, pods: podInformer.Lister(), podIndex: podInformer.Informer().GetIndexer(),
		disco: h.ClientSet().Discovery(), dynamic: dyn,
		objects: map[schema.GroupVersionResource]getter{}, nudge: make(chan struct{}, 1)}
	if s.dynamic == nil {
		c, err := dynamic.NewForConfig(h.KubeConfig())
		if err != nil {
			return nil, fmt.Errorf("dynamic client: %w", err)
		}
		s.dynamic = c
	}
	workloadsServed, err := served(ctx, s.disco, gang.ResourceWorkloadPodGroup)
	if err != nil {
		return nil, err
	}
	if !workloadsServed {
		klog.FromContext(ctx).V(2).Info("The Workload API's pod groups are not served; they are not a gang source here",
			"groupVersion", schedv1beta1.SchemeGroupVersion.String())
		return s, nil
	}
	// The scheduler's own factory: it starts and syncs it with the rest.
	workloadGroups := h.SharedInformerFactory().Scheduling().V1beta1().PodGroups()
	workloads := workloadGroups.Lister()
	s.workloadInformer = workloadGroups.Informer()
	s.serve(gang.ResourceWorkloadPodGroup, func(ns, name string) (runtime.Object, error) {
		return workloads.PodGroups(ns).Get(name)
	})
	return s, nil
}

// serve makes a resource's objects readable: its gang source is used from
// now on.
func (s *sources) serve(r schema.GroupVersionResource, get getter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[r] = get
}

// serves reports whether a resource's objects are readable.
func (s *sources) serves(r schema.GroupVersionResource) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.objects[r] != nil
}

// pgs returns the PodGroup access, nil while PodGroups are not served.
func (s *sources) pgs() *podGroupAccess { return s.podGroups.Load() }

// served asks discovery whether the cluster serves a resource, until it
// answers: an error that is not "not found" (the apiserver unreachable, as
// when muster starts during an outage) says nothing about the resource, and
// taking it for "not served" would schedule that source's gangs as plain
// pods, one by one, for the life of the process. Nothing can be scheduled
// before the apiserver answers anyway. It gives up only when ctx ends.
func served(ctx context.Context, disco discovery.DiscoveryInterface, r schema.GroupVersionResource) (bool, error) {
	var ok bool
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(context.Context) (bool, error) {
		var err error
		if ok, err = discovery.IsResourceEnabled(disco, r); err != nil {
			klog.FromContext(ctx).Info("Asking the apiserver which gang sources it serves; retrying", "resource", r.String(), "err", err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return false, fmt.Errorf("asking the apiserver whether it serves %s: %w", r, err)
	}
	return ok, nil
}

// Pods implements gang.Objects.
func (s *sources) Pods(_ context.Context, namespace string, selector labels.Selector) ([]*v1.Pod, error) {
	if pods, ok, err := listMembers(s.podIndex, namespace, selector); ok || err != nil {
		return pods, err
	}
	return s.pods.Pods(namespace).List(selector)
}

// Object implements gang.Objects.
func (s *sources) Object(_ context.Context, resource schema.GroupVersionResource, namespace, name string) (runtime.Object, error) {
	s.mu.RLock()
	get := s.objects[resource]
	s.mu.RUnlock()
	if get == nil {
		return nil, fmt.Errorf("%s: %w", resource, gang.ErrNotServed)
	}
	return get(namespace, name)
}

// identify returns the gang a pod belongs to and its role there; not a gang
// whose source the cluster does not serve (the reference means nothing
// here).
func (s *sources) identify(p *v1.Pod) (gang.Ref, gang.Role, bool) {
	ref, role, ok := gang.Identify(p)
	if !ok {
		return gang.Ref{}, gang.NoRole, false
	}
	if r, defined := gang.SourceOf(ref.Kind).Resource(); defined && !s.serves(r) {
		return gang.Ref{}, gang.NoRole, false
	}
	return ref, role, true
}

// askDiscovery nudges the discovery loop when the pod names a gang of a
// source the cluster did not serve when last asked: a pod of a RayCluster
// is a sign that KubeRay's CRD may have just been installed. The loop asks
// at most once a discoveryMinGap however many pods nudge it.
func (s *sources) askDiscovery(p *v1.Pod) {
	ref, _, ok := gang.Identify(p)
	if !ok {
		return
	}
	if r, defined := gang.SourceOf(ref.Kind).Resource(); !defined || s.serves(r) {
		return
	}
	select {
	case s.nudge <- struct{}{}:
	default: // one is pending already
	}
}

// gangSpec is what the plugin knows of a gang from its source.
type gangSpec struct {
	spec gang.Spec
	// queueLabel is the gang's muster.dev/queue label (its PodGroup's or
	// Spark driver's, or the pod's own, as its source decides).
	queueLabel string
	// object is the object that defines the gang (its PodGroup,
	// RayCluster or JobSet), for Events; nil: Events go to the pod.
	object runtime.Object
	// wait is set when the source is not ready (its PodGroup, RayCluster
	// or JobSet not created yet).
	wait string
}

// specOf reads the gang's parameters for a member pod, with the plugin's
// defaults where its source sets none. A malformed annotation is an error
// that names it; a source that is not there yet is a reason to wait.
func (s *sources) specOf(ctx context.Context, p *v1.Pod, ref gang.Ref) (gangSpec, error) {
	src := gang.SourceOf(ref.Kind)
	if src == nil {
		return gangSpec{}, fmt.Errorf("gangs of kind %s are not supported", ref.Kind)
	}
	def, err := src.Spec(ctx, ref, p, s)
	if err != nil {
		return gangSpec{}, err
	}
	out := gangSpec{spec: def.Spec, queueLabel: def.QueueLabel, object: def.Object}
	if def.Wait != nil {
		out.wait = def.Wait.Reason
	}
	out.spec.MinMember = max(out.spec.MinMember, 1)
	if out.spec.Timeout <= 0 {
		out.spec.Timeout = time.Duration(s.args.DefaultTimeoutSeconds) * time.Second
	}
	return out, nil
}

// sparkDriver returns the running (or pending) driver of a Spark app, or nil.
func (s *sources) sparkDriver(ctx context.Context, ref gang.Ref) (*v1.Pod, error) {
	return gang.SparkDriverOf(ctx, ref, s)
}

// members lists the pods of a gang, for activation and status.
func (s *sources) members(ctx context.Context, ref gang.Ref) []*v1.Pod {
	src := gang.SourceOf(ref.Kind)
	if src == nil {
		return nil
	}
	pods, err := src.Members(ctx, ref, s)
	if err != nil {
		return nil
	}
	return pods
}
