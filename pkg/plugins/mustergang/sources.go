package mustergang

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	schedv1beta1 "k8s.io/api/scheduling/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	schedv1beta1listers "k8s.io/client-go/listers/scheduling/v1beta1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	pgclientset "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	pginformers "sigs.k8s.io/scheduler-plugins/pkg/generated/informers/externalversions"
	pglisters "sigs.k8s.io/scheduler-plugins/pkg/generated/listers/scheduling/v1alpha1"

	"muster.dev/muster/pkg/apis/config"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// sources reads gangs from their sources: PodGroups (when the CRD is
// installed), pod annotations, and Spark's labels.
type sources struct {
	args     config.MusterGangArgs
	pods     corelisters.PodLister
	pgs      pglisters.PodGroupLister // nil without the PodGroup CRD
	pgClient pgclientset.Interface
	// pgInformer watches PodGroups (nil without the CRD).
	pgInformer cache.SharedIndexInformer
	// allMembers lists PodGroup members including finished ones (the
	// scheduler's own pod informer leaves those out), for PodGroup status.
	allMembers corelisters.PodLister
	// workloads lists the upstream Workload API's pod groups
	// (scheduling.k8s.io/v1beta1); nil where the cluster does not serve them.
	workloads schedv1beta1listers.PodGroupLister
}

// newSources reads gangs through the handle's informers and, for PodGroups,
// through client (nil: one built from the handle's kubeconfig).
func newSources(ctx context.Context, h fwk.Handle, args *config.MusterGangArgs, client pgclientset.Interface) (*sources, error) {
	s := &sources{args: *args, pods: h.SharedInformerFactory().Core().V1().Pods().Lister()}
	if served(h, schedv1beta1.SchemeGroupVersion.String(), "podgroups") {
		// The scheduler's own factory: it starts and syncs it with the rest.
		s.workloads = h.SharedInformerFactory().Scheduling().V1beta1().PodGroups().Lister()
	} else {
		klog.FromContext(ctx).V(2).Info("The Workload API's pod groups are not served; they are not a gang source here",
			"groupVersion", schedv1beta1.SchemeGroupVersion.String())
	}
	if client == nil {
		// kube-scheduler talks protobuf; CRDs only speak JSON.
		cfg := rest.CopyConfig(h.KubeConfig())
		cfg.ContentType, cfg.AcceptContentTypes = "application/json", "application/json"
		c, err := pgclientset.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("PodGroup client: %w", err)
		}
		client = c
	}
	// Without the CRD an informer would never sync: check first.
	if _, err := h.ClientSet().Discovery().ServerResourcesForGroupVersion(schedv1alpha1.SchemeGroupVersion.String()); err != nil {
		klog.FromContext(ctx).Info("PodGroup CRD not served; PodGroup gangs are not available (annotation and Spark gangs are)",
			"groupVersion", schedv1alpha1.SchemeGroupVersion.String(), "err", err)
		return s, nil
	}
	factory := pginformers.NewSharedInformerFactory(client, 0)
	informer := factory.Scheduling().V1alpha1().PodGroups()
	s.pgs, s.pgClient = informer.Lister(), client
	inf := informer.Informer()
	s.pgInformer = inf
	factory.Start(ctx.Done())

	members := informers.NewSharedInformerFactoryWithOptions(h.ClientSet(), 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = gang.LabelPodGroup // exists
	}))
	memberInf := members.Core().V1().Pods()
	s.allMembers = memberInf.Lister()
	minf := memberInf.Informer()
	members.Start(ctx.Done())

	syncCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), inf.HasSynced, minf.HasSynced) {
		return nil, fmt.Errorf("PodGroup caches did not sync within a minute")
	}
	return s, nil
}

// identify returns the gang a pod belongs to and its Spark role.
func (s *sources) identify(p *v1.Pod) (gang.Ref, gang.SparkRole, string, bool) {
	group := ""
	if p.Spec.SchedulingGroup != nil && p.Spec.SchedulingGroup.PodGroupName != nil {
		group = *p.Spec.SchedulingGroup.PodGroupName
	}
	ref, ok := gang.Identify(p.Namespace, p.Labels, group)
	if !ok {
		return gang.Ref{}, "", "", false
	}
	if ref.Kind == gang.KindPodGroup && s.pgs == nil || ref.Kind == gang.KindWorkload && s.workloads == nil {
		return gang.Ref{}, "", "", false // not served: the reference means nothing here
	}
	return ref, gang.SparkRoleOf(p.Labels), p.Labels[queue.LabelQueue], true
}

// gangSpec is what the plugin knows of a gang from its source.
type gangSpec struct {
	spec gang.Spec
	// queueLabel is the gang's muster.dev/queue label (its PodGroup's, else
	// the pod's).
	queueLabel string
	// podGroup is the PodGroup object, for status and Events.
	podGroup *schedv1alpha1.PodGroup
	// wait is set when the source is not ready (PodGroup not created yet).
	wait string
}

// specOf reads the gang's parameters for a member pod. A malformed
// annotation is an error that names it; a source that is not there yet is a
// reason to wait.
func (s *sources) specOf(p *v1.Pod, ref gang.Ref, role gang.SparkRole) (gangSpec, error) {
	def := time.Duration(s.args.DefaultTimeoutSeconds) * time.Second
	out := gangSpec{spec: gang.Spec{MinMember: 1, Timeout: def}, queueLabel: p.Labels[queue.LabelQueue]}
	switch ref.Kind {
	case gang.KindPodGroup:
		pg, err := s.pgs.PodGroups(ref.Namespace).Get(ref.Name)
		if apierrors.IsNotFound(err) {
			out.wait = fmt.Sprintf("PodGroup %s/%s (label %s) does not exist yet", ref.Namespace, ref.Name, gang.LabelPodGroup)
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("reading PodGroup %s/%s: %w", ref.Namespace, ref.Name, err)
		}
		out.podGroup = pg
		if pg.Spec.MinMember > 1 {
			out.spec.MinMember = pg.Spec.MinMember
		}
		if pg.Spec.ScheduleTimeoutSeconds != nil && *pg.Spec.ScheduleTimeoutSeconds > 0 {
			out.spec.Timeout = time.Duration(*pg.Spec.ScheduleTimeoutSeconds) * time.Second
		}
		if len(pg.Spec.MinResources) > 0 {
			out.spec.MinResources = resources.FromList(pg.Spec.MinResources)
		}
		if q := pg.Labels[queue.LabelQueue]; q != "" {
			out.queueLabel = q
		}
	case gang.KindAnnotation:
		n, timeout, err := gang.AnnotationGang(ref.Name, p.Annotations)
		if err != nil {
			return out, err
		}
		out.spec.MinMember = n
		if timeout > 0 {
			out.spec.Timeout = timeout
		}
	case gang.KindSpark:
		driver := p
		if role != gang.SparkDriver {
			d, err := s.sparkDriver(ref)
			if err != nil {
				return out, err
			}
			if d == nil {
				out.wait = fmt.Sprintf("the driver of Spark application %s is not running", ref.Name)
				return out, nil
			}
			driver = d
			if q := d.Labels[queue.LabelQueue]; q != "" && out.queueLabel == "" {
				out.queueLabel = q
			}
		}
		if err := sparkReservation(driver, &out.spec); err != nil {
			return out, err
		}
	case gang.KindWorkload:
		pg, err := s.workloads.PodGroups(ref.Namespace).Get(ref.Name)
		if apierrors.IsNotFound(err) {
			out.wait = fmt.Sprintf("PodGroup %s/%s (%s, spec.schedulingGroup) does not exist yet", ref.Namespace, ref.Name, schedv1beta1.SchemeGroupVersion)
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("reading PodGroup %s/%s: %w", ref.Namespace, ref.Name, err)
		}
		if g := pg.Spec.SchedulingPolicy.Gang; g != nil && g.MinCount > 1 {
			out.spec.MinMember = g.MinCount
		}
		if q := pg.Labels[queue.LabelQueue]; q != "" {
			out.queueLabel = q
		}
	default:
		return out, fmt.Errorf("gangs of kind %s are not supported", ref.Kind)
	}
	return out, nil
}

// served reports whether the apiserver serves the resource in the group version.
func served(h fwk.Handle, groupVersion, resource string) bool {
	list, err := h.ClientSet().Discovery().ServerResourcesForGroupVersion(groupVersion)
	if err != nil {
		return false
	}
	for _, r := range list.APIResources {
		if r.Name == resource {
			return true
		}
	}
	return false
}

// sparkReservation reads a Spark driver's reservation into spec.
func sparkReservation(driver *v1.Pod, spec *gang.Spec) error {
	n, req, err := gang.SparkReservation(driver.Annotations)
	if err != nil || n == 0 {
		return err
	}
	spec.Executors, spec.ExecutorRequest = n, req
	return nil
}

// sparkDriver returns the running (or pending) driver of a Spark app, or nil.
func (s *sources) sparkDriver(ref gang.Ref) (*v1.Pod, error) {
	sel := labels.SelectorFromSet(labels.Set{gang.LabelSparkApp: ref.Name, gang.LabelSparkRole: string(gang.SparkDriver)})
	pods, err := s.pods.Pods(ref.Namespace).List(sel)
	if err != nil {
		return nil, err
	}
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
			return p, nil
		}
	}
	return nil, nil
}

// members lists the pods of a gang, for activation and status.
func (s *sources) members(ref gang.Ref) []*v1.Pod {
	var set labels.Set
	switch ref.Kind {
	case gang.KindPodGroup:
		set = labels.Set{gang.LabelPodGroup: ref.Name}
	case gang.KindAnnotation:
		set = labels.Set{gang.LabelGang: ref.Name}
	case gang.KindSpark:
		set = labels.Set{gang.LabelSparkApp: ref.Name}
	case gang.KindWorkload:
		pods, err := s.pods.Pods(ref.Namespace).List(labels.Everything())
		if err != nil {
			return nil
		}
		var out []*v1.Pod
		for _, p := range pods {
			if g := p.Spec.SchedulingGroup; g != nil && g.PodGroupName != nil && *g.PodGroupName == ref.Name {
				out = append(out, p)
			}
		}
		return out
	default:
		return nil
	}
	pods, err := s.pods.Pods(ref.Namespace).List(labels.SelectorFromSet(set))
	if err != nil {
		return nil
	}
	return pods
}
