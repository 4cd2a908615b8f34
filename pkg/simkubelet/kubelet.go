// Package simkubelet is a small simulated kubelet for in-process clusters:
// pods bound to a node become Running, and pods that declare a duration
// (annotation sandbox.muster.dev/duration) Succeed after it. Pods being
// deleted are finalised, as a kubelet confirms a graceful deletion.
//
// It is deliberately small rather than KWOK: KWOK's controller pulls in its
// own Kubernetes client versions and a stage engine, where muster needs only
// three transitions with an injectable clock and a time scale for the sandbox.
package simkubelet

import (
	"context"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"muster.dev/muster/pkg/cluster"
)

// Options configures the simulated kubelet.
type Options struct {
	// Clock drives pod durations; default the real clock.
	Clock clock.WithTicker
	// TimeScale divides every declared duration (10 = ten times faster).
	// Default 1.
	TimeScale float64
	// Workers is the number of pods updated concurrently; default 8.
	Workers int
	// Filter, when set, limits the kubelet to the pods it accepts.
	Filter func(*v1.Pod) bool
}

// Kubelet runs the pods of every node in the cluster.
type Kubelet struct {
	client  kubernetes.Interface
	clock   clock.WithTicker
	scale   float64
	workers int
	filter  func(*v1.Pod) bool

	factory informers.SharedInformerFactory
	lister  corelisters.PodLister
	queue   workqueue.TypedRateLimitingInterface[types.NamespacedName]

	mu      sync.Mutex
	started map[types.UID]time.Time // when each pod started running, by our clock
}

// New returns a simulated kubelet; Run starts it.
func New(client kubernetes.Interface, opts Options) *Kubelet {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.TimeScale <= 0 {
		opts.TimeScale = 1
	}
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermNotEqualSelector("spec.nodeName", "").String()
		}))
	k := &Kubelet{
		client:  client,
		clock:   opts.Clock,
		scale:   opts.TimeScale,
		workers: opts.Workers,
		filter:  opts.Filter,
		factory: factory,
		lister:  factory.Core().V1().Pods().Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[types.NamespacedName](),
			workqueue.TypedRateLimitingQueueConfig[types.NamespacedName]{Name: "simkubelet", Clock: opts.Clock}),
		started: map[types.UID]time.Time{},
	}
	return k
}

// Run processes pods until ctx ends, then waits for its workers to stop.
func (k *Kubelet) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithName("simkubelet")
	ctx = klog.NewContext(ctx, logger)
	enqueue := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if pod, ok := obj.(*v1.Pod); ok && (k.filter == nil || k.filter(pod)) {
			k.queue.Add(types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name})
		}
	}
	if _, err := k.factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		return fmt.Errorf("simkubelet: pod informer: %w", err)
	}
	k.factory.Start(ctx.Done())
	for typ, ok := range k.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("simkubelet: %v cache did not sync", typ)
		}
	}
	logger.V(2).Info("Simulated kubelet started", "timeScale", k.scale)

	var wg sync.WaitGroup
	for i := 0; i < k.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k.processNext(ctx) {
			}
		}()
	}
	<-ctx.Done()
	k.queue.ShutDown()
	wg.Wait()
	k.factory.Shutdown()
	return nil
}

func (k *Kubelet) processNext(ctx context.Context) bool {
	key, quit := k.queue.Get()
	if quit {
		return false
	}
	defer k.queue.Done(key)
	requeue, err := k.sync(ctx, key)
	switch {
	case err != nil && ctx.Err() == nil:
		klog.FromContext(ctx).V(2).Info("Retrying pod", "pod", key, "err", err)
		k.queue.AddRateLimited(key)
	case requeue > 0:
		k.queue.Forget(key)
		k.queue.AddAfter(key, requeue)
	default:
		k.queue.Forget(key)
	}
	return true
}

// sync moves one pod along Pending -> Running -> Succeeded and finalises its
// deletion. It returns how long to wait before looking at the pod again.
func (k *Kubelet) sync(ctx context.Context, key types.NamespacedName) (time.Duration, error) {
	pod, err := k.lister.Pods(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	switch {
	case pod.DeletionTimestamp != nil:
		k.forget(pod.UID)
		return 0, k.finaliseDeletion(ctx, pod)
	case pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed:
		k.forget(pod.UID)
		return 0, nil
	case pod.Status.Phase != v1.PodRunning:
		return k.start(ctx, pod)
	default:
		return k.maybeFinish(ctx, pod)
	}
}

func (k *Kubelet) start(ctx context.Context, pod *v1.Pod) (time.Duration, error) {
	now := k.clock.Now()
	k.mu.Lock()
	k.started[pod.UID] = now
	k.mu.Unlock()

	ts := metav1.NewTime(now)
	p := pod.DeepCopy()
	p.Status.Phase = v1.PodRunning
	p.Status.StartTime = &ts
	p.Status.HostIP = "10.0.0.1"
	p.Status.PodIP = "10.244.0.1"
	setCondition(p, v1.PodInitialized, v1.ConditionTrue, ts)
	setCondition(p, v1.ContainersReady, v1.ConditionTrue, ts)
	setCondition(p, v1.PodReady, v1.ConditionTrue, ts)
	p.Status.ContainerStatuses = containerStatuses(pod, v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: ts}}, true)
	if _, err := k.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		return 0, fmt.Errorf("starting pod: %w", err)
	}
	klog.FromContext(ctx).V(4).Info("Pod running", "pod", klog.KObj(pod), "node", pod.Spec.NodeName)
	d, ok := k.duration(pod)
	if !ok {
		return 0, nil
	}
	return d, nil
}

func (k *Kubelet) maybeFinish(ctx context.Context, pod *v1.Pod) (time.Duration, error) {
	d, ok := k.duration(pod)
	if !ok {
		return 0, nil
	}
	k.mu.Lock()
	start, known := k.started[pod.UID]
	if !known {
		// Started before this kubelet did (or by another one): trust the pod.
		start = k.clock.Now()
		if pod.Status.StartTime != nil {
			start = pod.Status.StartTime.Time
		}
		k.started[pod.UID] = start
	}
	k.mu.Unlock()
	if left := start.Add(d).Sub(k.clock.Now()); left > 0 {
		return left, nil
	}

	ts := metav1.NewTime(k.clock.Now())
	p := pod.DeepCopy()
	p.Status.Phase = v1.PodSucceeded
	setCondition(p, v1.ContainersReady, v1.ConditionFalse, ts)
	setCondition(p, v1.PodReady, v1.ConditionFalse, ts)
	p.Status.ContainerStatuses = containerStatuses(pod, v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
		ExitCode: 0, Reason: "Completed", StartedAt: metav1.NewTime(start), FinishedAt: ts,
	}}, false)
	if _, err := k.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		return 0, fmt.Errorf("finishing pod: %w", err)
	}
	k.forget(pod.UID)
	klog.FromContext(ctx).V(4).Info("Pod succeeded", "pod", klog.KObj(pod), "node", pod.Spec.NodeName)
	return 0, nil
}

// finaliseDeletion does what a kubelet does once a pod's containers are gone:
// delete it with grace period 0, for this exact pod (UID precondition).
func (k *Kubelet) finaliseDeletion(ctx context.Context, pod *v1.Pod) error {
	err := k.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("finalising deletion: %w", err)
	}
	return nil
}

// duration is how long the pod runs, by our clock, if it declares it.
func (k *Kubelet) duration(pod *v1.Pod) (time.Duration, bool) {
	v, ok := pod.Annotations[cluster.AnnotationDuration]
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		// A malformed duration means "runs until deleted", like no duration.
		return 0, false
	}
	return time.Duration(float64(d) / k.scale), true
}

func (k *Kubelet) forget(uid types.UID) {
	k.mu.Lock()
	delete(k.started, uid)
	k.mu.Unlock()
}

func setCondition(p *v1.Pod, t v1.PodConditionType, s v1.ConditionStatus, ts metav1.Time) {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			if p.Status.Conditions[i].Status != s {
				p.Status.Conditions[i].Status = s
				p.Status.Conditions[i].LastTransitionTime = ts
			}
			return
		}
	}
	p.Status.Conditions = append(p.Status.Conditions, v1.PodCondition{Type: t, Status: s, LastTransitionTime: ts})
}

func containerStatuses(pod *v1.Pod, state v1.ContainerState, ready bool) []v1.ContainerStatus {
	out := make([]v1.ContainerStatus, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		started := state.Running != nil
		out = append(out, v1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, ContainerID: "sim://" + string(pod.UID) + "/" + c.Name,
			State: state, Ready: ready, Started: &started,
		})
	}
	return out
}
