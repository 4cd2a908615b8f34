package mustergang

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	pginformers "sigs.k8s.io/scheduler-plugins/pkg/generated/informers/externalversions"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/podgroup"
)

// The gang sources defined by custom resources (PodGroup, RayCluster,
// JobSet) are read through informers of muster's own, each started when
// the cluster serves its resource: at start-up, or later, when its CRD is
// installed after muster started. Until then the source is not used: a pod
// that names such a gang is scheduled as a plain pod, as the reference
// says, since muster cannot tell what its gang needs. Once the informer has
// synced, the source is used, the gangs whose objects exist observe their
// members, and the pods still waiting that name such gangs are tried again
// at once, now as members.
const (
	// discoveryInterval is how often muster asks the apiserver again about
	// the resources it did not serve.
	discoveryInterval = 10 * time.Second
	// discoveryMinGap spaces the checks that pods naming such gangs ask for.
	discoveryMinGap = time.Second
	// syncTimeout bounds the wait for a source's informers at start-up.
	syncTimeout = time.Minute
)

// sourceWatch is a gang source read through informers of muster's own.
type sourceWatch struct {
	kind     gang.Kind
	resource schema.GroupVersionResource
	// start starts the source's informers and returns what tells that they
	// have synced and what makes the source usable then.
	start func(ctx context.Context, w sourceWatch) (synced []cache.InformerSynced, ready func() error, err error)
	// onAdd, if set, is told of each object added (startUnstructured);
	// by default the members of the gang of the object's name are observed.
	// A watch with onAdd reads a resource that a source's gangs read (a
	// SparkApplication, an MPIJob), not a gang source of its own.
	onAdd func(obj any)
}

// watches are the gang sources muster reads through informers of its own;
// a new operator's kind read as unstructured is one more line. Spark's
// gangs read the Spark operator's SparkApplications (a driver it created
// has its executors sized by one) and, where the admin allows it, the
// drivers' spark.properties ConfigMaps; neither defines a gang of its own
// (kind Spark: a late CRD retries the Spark pods waiting). PodGroups the
// MPI operator made read their MPIJob (when it creates its launcher only
// once the workers run).
func (pl *Plugin) watches() []sourceWatch {
	w := []sourceWatch{
		{kind: gang.KindPodGroup, resource: gang.ResourcePodGroup, start: pl.startPodGroups},
		{kind: gang.KindRayCluster, resource: gang.ResourceRayCluster, start: pl.startUnstructured},
		{kind: gang.KindJobSet, resource: gang.ResourceJobSet, start: pl.startUnstructured},
		{kind: gang.KindSpark, resource: gang.ResourceSparkApplication, start: pl.startUnstructured, onAdd: func(any) {}},
		{kind: gang.KindPodGroup, resource: gang.ResourceMPIJob, start: pl.startUnstructured, onAdd: func(any) {}},
	}
	if pl.sources.args.ReadSparkConfigMaps {
		w = append(w, sourceWatch{kind: gang.KindSpark, resource: gang.ResourceConfigMap, start: pl.startSparkConfigMaps})
	}
	return w
}

// startSources starts the watches of the sources the cluster serves and
// waits for them: the first scheduling cycles see their objects. It
// returns the watches of the sources not served, for runDiscovery.
func (pl *Plugin) startSources(ctx context.Context) ([]sourceWatch, error) {
	var pending []sourceWatch
	for _, w := range pl.watches() {
		ok, err := served(ctx, pl.sources.disco, w.resource)
		if err != nil {
			return nil, err
		}
		if !ok {
			if w.onAdd != nil { // read by a source's gangs, not a source of its own
				klog.FromContext(ctx).Info("Resource not served; the gangs that read it do without it until it is",
					"kind", w.kind, "resource", w.resource.String(), "checkEvery", discoveryInterval)
			} else {
				klog.FromContext(ctx).Info("Gang source not served; its pods are scheduled one by one until it is",
					"kind", w.kind, "resource", w.resource.String(), "checkEvery", discoveryInterval)
			}
			pending = append(pending, w)
			continue
		}
		if err := pl.startNow(ctx, w); err != nil {
			return nil, err
		}
	}
	return pending, nil
}

// startNow starts a watch and waits up to syncTimeout for it.
func (pl *Plugin) startNow(ctx context.Context, w sourceWatch) error {
	synced, ready, err := w.start(ctx, w)
	if err != nil {
		return err
	}
	syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), synced...) {
		return fmt.Errorf("%s caches did not sync within %s", w.kind, syncTimeout)
	}
	return ready()
}

// startLate starts a watch whose resource has just become served. It does
// not wait: informers that cannot list (muster's RBAC lacks the resource)
// log why and retry, and the source stays unused meanwhile, while the other
// sources are looked after.
func (pl *Plugin) startLate(ctx context.Context, w sourceWatch) error {
	synced, ready, err := w.start(ctx, w)
	if err != nil {
		return err
	}
	logger := klog.FromContext(ctx)
	go func() {
		if !cache.WaitForCacheSync(ctx.Done(), synced...) {
			return
		}
		if err := ready(); err != nil {
			logger.Error(err, "Starting a gang source", "kind", w.kind)
			return
		}
		if w.onAdd != nil {
			logger.Info("Resource served now; the gangs that read it use it from now on", "kind", w.kind, "resource", w.resource.String())
		} else {
			logger.Info("Gang source served now; its gangs are scheduled all or nothing from now on", "kind", w.kind, "resource", w.resource.String())
		}
		pl.retryWaiting(ctx, w.kind)
	}()
	return nil
}

// runDiscovery asks the apiserver, every discoveryInterval and when a pod
// nudges it, whether it serves the resources of the pending watches now,
// and starts those it does. It ends when none is pending.
func (pl *Plugin) runDiscovery(ctx context.Context, pending []sourceWatch) {
	ticker := pl.clock.NewTicker(discoveryInterval)
	defer ticker.Stop()
	var last time.Time
	for len(pending) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		case <-pl.sources.nudge:
			if wait := last.Add(discoveryMinGap).Sub(pl.clock.Now()); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-pl.clock.After(wait):
				}
			}
		}
		last = pl.clock.Now()
		pending = pl.startServed(ctx, pending)
	}
}

// startServed starts the watches whose resources are served now and
// returns the others.
func (pl *Plugin) startServed(ctx context.Context, pending []sourceWatch) []sourceWatch {
	var still []sourceWatch
	for _, w := range pending {
		ok, err := discovery.IsResourceEnabled(pl.sources.disco, w.resource)
		if err != nil {
			klog.FromContext(ctx).V(2).Info("Asking the apiserver whether it serves a gang source", "resource", w.resource.String(), "err", err)
		}
		if err == nil && ok {
			err = pl.startLate(ctx, w)
			if err != nil {
				klog.FromContext(ctx).Error(err, "Starting a gang source", "kind", w.kind)
			}
		}
		if err != nil || !ok {
			still = append(still, w)
		}
	}
	return still
}

// retryWaiting activates the pods waiting to be scheduled that name a gang
// of a source just served. Refused as plain pods (or not tried yet), they
// may wait for a cluster event for minutes; as members they say now what
// their gang waits for.
func (pl *Plugin) retryWaiting(ctx context.Context, kind gang.Kind) {
	pods, err := pl.sources.pods.List(labels.Everything())
	if err != nil {
		return
	}
	waiting := map[string]*v1.Pod{}
	for _, p := range pods {
		if p.Spec.SchedulerName != pl.rt.Profile || p.Spec.NodeName != "" {
			continue
		}
		if ref, _, ok := pl.sources.identify(p); ok && ref.Kind == kind {
			waiting[p.Namespace+"/"+p.Name] = p
		}
	}
	if len(waiting) > 0 {
		pl.handle.Activate(klog.FromContext(ctx), waiting)
	}
}

// startPodGroups reads scheduler-plugins PodGroups through their generated
// informer, and their members, finished ones included, for the PodGroup
// status muster writes.
func (pl *Plugin) startPodGroups(ctx context.Context, _ sourceWatch) ([]cache.InformerSynced, func() error, error) {
	client := pl.podGroupClient
	if client == nil {
		c, err := podgroup.NewClient(pl.handle.KubeConfig())
		if err != nil {
			return nil, nil, err
		}
		client = c
	}
	factory := pginformers.NewSharedInformerFactory(client, 0)
	groups := factory.Scheduling().V1alpha1().PodGroups()
	groupInf := groups.Informer()
	factory.Start(ctx.Done())
	members := informers.NewSharedInformerFactoryWithOptions(pl.handle.ClientSet(), 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = gang.LabelPodGroup // exists
	}))
	memberPods := members.Core().V1().Pods()
	memberInf := memberPods.Informer()
	if err := addMemberIndex(memberInf); err != nil {
		return nil, nil, err
	}
	members.Start(ctx.Done())

	ready := func() error {
		access := &podGroupAccess{lister: groups.Lister(), client: client, allMembers: memberPods.Lister(), memberIndex: memberInf.GetIndexer()}
		pl.sources.podGroups.Store(access)
		pl.sources.serve(gang.ResourcePodGroup, func(ns, name string) (runtime.Object, error) {
			return access.lister.PodGroups(ns).Get(name)
		})
		// Added once the source is used: the PodGroups that exist already
		// come as additions, and observe their members.
		if _, err := groupInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: pl.onPodGroupAdd, UpdateFunc: pl.onPodGroupUpdate, DeleteFunc: pl.onPodGroupDelete,
		}); err != nil {
			return fmt.Errorf("watching PodGroups: %w", err)
		}
		go pl.runStatus(ctx)
		return nil
	}
	return []cache.InformerSynced{groupInf.HasSynced, memberInf.HasSynced}, ready, nil
}

// startUnstructured reads an operator's custom resource through a dynamic
// informer, without the objects' status and managedFields: the sources
// read their spec and metadata only, and a RayCluster's or JobSet's status
// changes far more often than its spec.
func (pl *Plugin) startUnstructured(ctx context.Context, w sourceWatch) ([]cache.InformerSynced, func() error, error) {
	gi := dynamicinformer.NewFilteredDynamicInformer(pl.sources.dynamic, w.resource, metav1.NamespaceAll, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, nil)
	inf := gi.Informer()
	if err := inf.SetTransform(specAndMetadata); err != nil {
		return nil, nil, fmt.Errorf("%s informer: %w", w.kind, err)
	}
	go inf.RunWithContext(ctx)
	ready := func() error {
		lister := gi.Lister()
		pl.sources.serve(w.resource, func(ns, name string) (runtime.Object, error) {
			return lister.ByNamespace(ns).Get(name)
		})
		onAdd := w.onAdd
		if onAdd == nil {
			onAdd = func(obj any) { pl.onSourceObjectAdd(w.kind, obj) }
		}
		_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onAdd})
		if err != nil {
			return fmt.Errorf("watching %s: %w", w.resource, err)
		}
		return nil
	}
	return []cache.InformerSynced{inf.HasSynced}, ready, nil
}

// specAndMetadata drops what no gang source reads from an object before an
// informer stores it.
func specAndMetadata(obj any) (any, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		u.SetManagedFields(nil)
		delete(u.Object, "status")
	}
	return obj, nil
}

// onSourceObjectAdd observes the members of a gang whose defining object
// (a RayCluster, a JobSet, a Workload API pod group) arrives after them.
func (pl *Plugin) onSourceObjectAdd(kind gang.Kind, obj any) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	pl.observeMembers(gang.Ref{Kind: kind, Namespace: m.GetNamespace(), Name: m.GetName()})
}
