package status

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"muster.dev/muster/pkg/waitreason"
)

// ConditionWriter keeps muster's own pod condition (waitreason.ConditionType)
// on the pods it holds back at admission: status False, the code as its
// reason and the sentence as its message while a pod waits, and status
// True (reason Admitted) once a pod that waited is admitted. A pod muster
// never held back gets no condition.
//
// The writes are bounded. A scheduling cycle only records what it wants
// (Waiting, Admitted: a map write, never an API call); one worker writes
// in the background, the latest wish per pod (a pod refused ten times
// before the worker gets to it costs one write), and only when the code
// or the status differs from what the pod carries: a reworded message or
// changed counts alone write nothing. Only the replica that leads writes;
// the others drop their wishes (they schedule nothing anyway).
type ConditionWriter struct {
	client  kubernetes.Interface
	pods    corelisters.PodLister
	clock   clock.PassiveClock
	leading func(context.Context) bool
	queue   workqueue.TypedRateLimitingInterface[types.NamespacedName]

	mu sync.Mutex
	// want is the latest wish per pod not written yet.
	want map[types.NamespacedName]wish
	// written is what this process wrote and the pod informer has not
	// shown yet, so that a wish made in between is not written twice.
	written map[types.UID]v1.PodCondition
}

// wish is a condition a scheduling cycle wants on a pod.
type wish struct {
	uid  types.UID
	cond v1.PodCondition
	// onlyIfWaiting: written only over a False condition (Admitted: a pod
	// that never waited gets none).
	onlyIfWaiting bool
}

// NewConditionWriter returns a writer that reads pods from informer (the
// scheduler's pod informer) and writes through client while leading
// says so (nil: always).
func NewConditionWriter(client kubernetes.Interface, informer cache.SharedIndexInformer, clk clock.WithTicker,
	leading func(context.Context) bool) (*ConditionWriter, error) {
	w := &ConditionWriter{
		client: client, pods: corelisters.NewPodLister(informer.GetIndexer()), clock: clk, leading: leading,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[types.NamespacedName](),
			workqueue.TypedRateLimitingQueueConfig[types.NamespacedName]{Clock: clk}),
		want: map[types.NamespacedName]wish{}, written: map[types.UID]v1.PodCondition{},
	}
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) { w.seen(obj) },
		DeleteFunc: w.gone,
	})
	if err != nil {
		return nil, fmt.Errorf("watching pods for their %s condition: %w", waitreason.ConditionType, err)
	}
	return w, nil
}

// Waiting records that muster holds the pod back, and why.
func (w *ConditionWriter) Waiting(pod *v1.Pod, code waitreason.Code, msg string) {
	w.wish(pod, wish{uid: pod.UID, cond: v1.PodCondition{
		Type: waitreason.ConditionType, Status: v1.ConditionFalse, Reason: string(code), Message: msg}})
}

// Admitted records that the pod passed admission; it is written only if
// the pod carries a False condition (it waited).
func (w *ConditionWriter) Admitted(pod *v1.Pod, msg string) {
	w.wish(pod, wish{uid: pod.UID, onlyIfWaiting: true, cond: v1.PodCondition{
		Type: waitreason.ConditionType, Status: v1.ConditionTrue, Reason: string(waitreason.Admitted), Message: msg}})
}

func (w *ConditionWriter) wish(pod *v1.Pod, d wish) {
	key := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
	w.mu.Lock()
	_, pending := w.want[key]
	// Nothing to do unless it changes the pod, or overrides a wish that would.
	if !pending && w.holds(pod, d) {
		w.mu.Unlock()
		return
	}
	w.want[key] = d
	w.mu.Unlock()
	w.queue.Add(key)
}

// holds reports whether the pod already carries what d asks (or, for
// Admitted, has nothing to close). w.mu must be held.
func (w *ConditionWriter) holds(pod *v1.Pod, d wish) bool {
	cur := w.current(pod)
	if d.onlyIfWaiting {
		return cur == nil || cur.Status != v1.ConditionFalse
	}
	return cur != nil && cur.Status == d.cond.Status && cur.Reason == d.cond.Reason
}

// current is the pod's condition as last written by this process, else as
// the pod object says. w.mu must be held.
func (w *ConditionWriter) current(pod *v1.Pod) *v1.PodCondition {
	if c, ok := w.written[pod.UID]; ok {
		return &c
	}
	return Condition(pod)
}

// Condition returns the pod's waitreason.ConditionType condition, or nil.
func Condition(pod *v1.Pod) *v1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == waitreason.ConditionType {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// seen forgets a write once the informer shows it.
func (w *ConditionWriter) seen(obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.written[pod.UID]
	if !ok {
		return
	}
	if cur := Condition(pod); cur != nil && cur.Status == c.Status && cur.Reason == c.Reason {
		delete(w.written, pod.UID)
	}
}

func (w *ConditionWriter) gone(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.written, pod.UID)
	if d, ok := w.want[types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}]; ok && d.uid == pod.UID {
		delete(w.want, types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name})
	}
}

// Run writes until ctx ends.
func (w *ConditionWriter) Run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		w.queue.ShutDown()
	}()
	for w.processNext(ctx) {
	}
}

// processNext writes the wish of one pod; false once the queue is shut down.
func (w *ConditionWriter) processNext(ctx context.Context) bool {
	key, quit := w.queue.Get()
	if quit {
		return false
	}
	defer w.queue.Done(key)
	if err := w.write(ctx, key); err != nil && ctx.Err() == nil {
		klog.FromContext(ctx).V(2).Info("Writing a pod's condition; retrying", "pod", key, "condition", waitreason.ConditionType, "err", err)
		w.queue.AddRateLimited(key)
		return true
	}
	w.queue.Forget(key)
	return true
}

// write writes the pod's latest wish if it changes the pod. On an error
// the wish is kept (unless a newer one replaced it) for the retry.
func (w *ConditionWriter) write(ctx context.Context, key types.NamespacedName) error {
	w.mu.Lock()
	d, ok := w.want[key]
	delete(w.want, key)
	w.mu.Unlock()
	if !ok || w.leading != nil && !w.leading(ctx) {
		return nil
	}
	pod, err := w.pods.Pods(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return w.keep(key, d, err)
	}
	if pod.UID != d.uid || pod.Spec.NodeName != "" && d.cond.Status == v1.ConditionFalse {
		return nil // another pod of that name, or bound since: it waits no more
	}
	w.mu.Lock()
	cur, holds := w.current(pod), w.holds(pod, d)
	w.mu.Unlock()
	if holds {
		return nil
	}
	cond := d.cond
	if cur == nil || cur.Status != cond.Status {
		cond.LastTransitionTime = metav1.NewTime(w.clock.Now())
	}
	patch, err := conditionPatch(pod.UID, cond)
	if err != nil {
		return err
	}
	// Noted before the write: the informer may show it before Patch returns.
	w.mu.Lock()
	before, had := w.written[pod.UID]
	w.written[pod.UID] = cond
	w.mu.Unlock()
	if _, err := w.client.CoreV1().Pods(key.Namespace).Patch(ctx, key.Name, types.StrategicMergePatchType, patch,
		metav1.PatchOptions{}, "status"); err != nil {
		w.mu.Lock()
		if had {
			w.written[pod.UID] = before
		} else {
			delete(w.written, pod.UID)
		}
		w.mu.Unlock()
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil // gone, or another pod of that name (UID precondition)
		}
		return w.keep(key, d, err)
	}
	klog.FromContext(ctx).V(4).Info("Wrote the pod's admission condition", "pod", klog.KObj(pod),
		"condition", waitreason.ConditionType, "status", cond.Status, "reason", cond.Reason)
	return nil
}

// keep puts a wish that could not be written back, unless a newer one
// replaced it meanwhile, and returns err.
func (w *ConditionWriter) keep(key types.NamespacedName, d wish, err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, newer := w.want[key]; !newer {
		w.want[key] = d
	}
	return err
}

// conditionPatch is a strategic merge patch of the pod's status that sets
// the one condition (merged by type, the others untouched) under a UID
// precondition. A lastTransitionTime left out keeps the pod's.
func conditionPatch(uid types.UID, c v1.PodCondition) ([]byte, error) {
	cond := map[string]any{"type": c.Type, "status": c.Status, "reason": c.Reason, "message": c.Message}
	if !c.LastTransitionTime.IsZero() {
		cond["lastTransitionTime"] = c.LastTransitionTime.UTC().Format(time.RFC3339)
	}
	return json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": uid},
		"status":   map[string]any{"conditions": []any{cond}},
	})
}
