package sandbox

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	pgclientset "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
)

// Labels the sandbox puts on what it creates.
const (
	labelApp  = "sandbox.muster.dev/app"
	labelKind = "sandbox.muster.dev/kind"
	labelPool = "sandbox.muster.dev/pool"
)

// App kinds.
const (
	kindSpark    = "spark"
	kindTraining = "training"
	kindBatch    = "batch"
)

// world plays a trace against a cluster: it submits the apps, plays the
// part of Spark drivers (starting, growing and replacing executors) and of
// training operators, and takes spot capacity away.
type world struct {
	client        kubernetes.Interface
	pg            pgclientset.Interface
	clock         clock.WithTickerAndDelayedExecution
	scale         float64
	schedulerName string
	cluster       *ClusterSpec
	obs           *observer
	logger        klog.Logger

	mu    sync.Mutex
	apps  map[string]*app // by namespace/name
	rngMu sync.Mutex
	rng   *rand.Rand // run-time variation; under rngMu
}

// app is the world's record of one submitted application.
type app struct {
	kind, ns, name, queue string
	spark                 *SparkApp
	training              *Training
	started               bool // executors were started
	done, lost            bool
	seq                   int // executor names
}

func (a *app) key() string { return a.ns + "/" + a.name }

// scaled converts trace time to real time.
func (w *world) scaled(d time.Duration) time.Duration { return time.Duration(float64(d) / w.scale) }

// nodes creates the cluster's nodes.
func (w *world) nodes(ctx context.Context) error {
	var nodes []cluster.Node
	var names []string
	for _, p := range w.cluster.Pools {
		for _, n := range poolNodes(p) {
			nodes = append(nodes, n)
			names = append(names, n.Name)
		}
	}
	if err := cluster.CreateNodes(ctx, w.client, nodes); err != nil {
		return err
	}
	return w.publishDevices(ctx, names)
}

func poolNodes(p PoolSpec) []cluster.Node {
	var out []cluster.Node
	for i := 0; i < p.Count; i++ {
		capacityMap := map[v1.ResourceName]string{v1.ResourceCPU: p.CPU, v1.ResourceMemory: p.Memory}
		if p.GPU != "" {
			capacityMap["nvidia.com/gpu"] = p.GPU
		}
		labels := map[string]string{
			capacity.LabelKarpenter: p.CapacityType, cluster.LabelInstanceType: p.InstanceType,
			cluster.LabelZone: p.Zone, labelPool: p.poolName(),
		}
		if p.Block != "" {
			labels[LabelBlock] = p.Block
		}
		if p.RackSize > 0 {
			labels[LabelRack] = fmt.Sprintf("%s-rack-%d", p.poolName(), i/p.RackSize)
		}
		out = append(out, cluster.Node{Name: fmt.Sprintf("%s-%d", p.poolName(), i), Capacity: capacityMap, Labels: labels})
	}
	return out
}

// watch keeps the apps going as their pods change.
func (w *world) watch(ctx context.Context, informer cache.SharedIndexInformer) error {
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, o any) { w.onPod(ctx, o, false) },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			w.onPod(ctx, o, true)
		},
	})
	return err
}

// play submits the events at their (scaled) times until the trace ends or
// ctx does; it returns when every event has been played.
func (w *world) play(ctx context.Context, t *Trace, start time.Time) error {
	for _, e := range t.Events {
		at := w.scaled(e.At.Duration)
		if wait := at - w.clock.Since(start); wait > 0 {
			select {
			case <-w.clock.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		var err error
		switch {
		case e.Spark != nil:
			err = w.submitSpark(ctx, e.Spark)
		case e.Training != nil:
			err = w.submitTraining(ctx, e.Training)
		case e.Batch != nil:
			err = w.submitBatch(ctx, e.Batch)
		case e.Interrupt != nil:
			err = w.interrupt(ctx, e.Interrupt)
		}
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	return nil
}

func (w *world) ensureNamespace(ctx context.Context, ns string) error {
	_, err := w.client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	return nil
}

func (w *world) register(a *app) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.apps[a.key()] = a
}

func (w *world) pod(a *app, name string, r Resources, d time.Duration, extraLabels, ann map[string]string) cluster.Pod {
	l := map[string]string{labelApp: a.name, labelKind: a.kind}
	if a.queue != "" {
		l[queue.LabelQueue] = a.queue
	}
	for k, v := range extraLabels {
		l[k] = v
	}
	if d > 0 {
		// Within 10% of the declared run time: real pods never all end at once.
		w.rngMu.Lock()
		d = time.Duration(float64(d) * (0.9 + 0.2*w.rng.Float64()))
		w.rngMu.Unlock()
	}
	return cluster.Pod{Namespace: a.ns, Name: name, SchedulerName: w.schedulerName, Requests: r.requests(),
		Labels: l, Annotations: ann, Duration: d}
}

func (w *world) create(ctx context.Context, a *app, pods []cluster.Pod) error {
	w.obs.submitted(a, pods)
	return cluster.CreatePods(ctx, w.client, pods)
}

func sparkID(a *app) string { return a.ns + "-" + a.name }

func (w *world) submitSpark(ctx context.Context, s *SparkApp) error {
	if err := w.ensureNamespace(ctx, s.Namespace); err != nil {
		return err
	}
	a := &app{kind: kindSpark, ns: s.Namespace, name: s.Name, queue: s.Queue, spark: s}
	w.register(a)
	ann := map[string]string{}
	if s.MinExecutors > 0 {
		ann[gang.AnnotationMinExecutors] = strconv.Itoa(s.MinExecutors)
		ann[gang.AnnotationExecutorResources] = executorResources(s.Executor)
	}
	driver := w.pod(a, s.Name+"-driver", s.Driver, s.Duration.Duration,
		map[string]string{gang.LabelSparkApp: sparkID(a), gang.LabelSparkRole: string(gang.SparkDriver)}, ann)
	return w.create(ctx, a, []cluster.Pod{driver})
}

// executorResources renders a pod size as muster.dev/executor-resources.
func executorResources(r Resources) string {
	out := ""
	for _, name := range sortedKeys(r) {
		if out != "" {
			out += ","
		}
		out += name + "=" + r[name]
	}
	return out
}

func (w *world) startExecutors(ctx context.Context, a *app, n int) {
	w.mu.Lock()
	if a.done || a.lost {
		w.mu.Unlock()
		return
	}
	pods := make([]cluster.Pod, 0, n)
	for i := 0; i < n; i++ {
		a.seq++
		pods = append(pods, w.pod(a, fmt.Sprintf("%s-exec-%d", a.name, a.seq), a.spark.Executor, 0,
			map[string]string{gang.LabelSparkApp: sparkID(a), gang.LabelSparkRole: string(gang.SparkExecutor)}, nil))
	}
	w.mu.Unlock()
	if err := w.create(ctx, a, pods); err != nil && ctx.Err() == nil {
		w.logger.Error(err, "Starting Spark executors", "app", a.key())
	}
}

func (w *world) submitTraining(ctx context.Context, t *Training) error {
	if err := w.ensureNamespace(ctx, t.Namespace); err != nil {
		return err
	}
	a := &app{kind: kindTraining, ns: t.Namespace, name: t.Name, queue: t.Queue, training: t}
	w.register(a)
	pg := &schedv1alpha1.PodGroup{ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: t.Name},
		Spec: schedv1alpha1.PodGroupSpec{MinMember: int32(t.Workers)}}
	if a.queue != "" {
		pg.Labels = map[string]string{queue.LabelQueue: a.queue}
	}
	if t.Timeout.Duration > 0 {
		secs := int32(t.Timeout.Duration.Seconds() / w.scale)
		pg.Spec.ScheduleTimeoutSeconds = &secs
	}
	if ann := t.topologyAnnotations(); len(ann) > 0 {
		pg.Annotations = ann
	}
	var claims []string
	if t.Devices > 0 {
		name, err := w.claimTemplate(ctx, t)
		if err != nil {
			return err
		}
		claims = []string{name}
	}
	if _, err := w.pg.SchedulingV1alpha1().PodGroups(t.Namespace).Create(ctx, pg, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating PodGroup %s/%s: %w", t.Namespace, t.Name, err)
	}
	pods := make([]cluster.Pod, t.Workers)
	for i := range pods {
		pods[i] = w.pod(a, fmt.Sprintf("%s-worker-%d", t.Name, i), t.Worker, t.Duration.Duration,
			map[string]string{gang.LabelPodGroup: t.Name}, nil)
		pods[i].ClaimTemplates = claims
	}
	return w.create(ctx, a, pods)
}

func (w *world) submitBatch(ctx context.Context, b *Batch) error {
	if err := w.ensureNamespace(ctx, b.Namespace); err != nil {
		return err
	}
	a := &app{kind: kindBatch, ns: b.Namespace, name: b.Name, queue: b.Queue}
	w.register(a)
	pods := make([]cluster.Pod, b.Count)
	for i := range pods {
		pods[i] = w.pod(a, fmt.Sprintf("%s-%d", b.Name, i), b.Pod, b.Duration.Duration, nil, nil)
	}
	return w.create(ctx, a, pods)
}

// onPod plays the app's part when one of its pods changes: a running driver
// starts its executors (and later grows them), an executor lost while the
// driver runs is replaced, a finished driver ends its app, a lost driver or
// training worker loses its app.
func (w *world) onPod(ctx context.Context, o any, deleted bool) {
	p, ok := o.(*v1.Pod)
	if !ok {
		return
	}
	w.mu.Lock()
	a := w.apps[p.Namespace+"/"+p.Labels[labelApp]]
	w.mu.Unlock()
	if a == nil {
		return
	}
	role := capacity.RoleOf(p.Labels)
	switch {
	case a.kind == kindSpark && role == capacity.RoleDriver && !deleted && p.Status.Phase == v1.PodRunning:
		w.mu.Lock()
		start := !a.started
		a.started = true
		w.mu.Unlock()
		if start {
			go w.startExecutors(ctx, a, a.spark.Executors)
			if extra := a.spark.MaxExecutors - a.spark.Executors; extra > 0 {
				w.clock.AfterFunc(w.scaled(a.spark.Duration.Duration/4), func() { w.startExecutors(ctx, a, extra) })
			}
		}
	case a.kind == kindSpark && role == capacity.RoleDriver && !deleted && p.Status.Phase == v1.PodSucceeded:
		w.finish(ctx, a, false, false)
	case a.kind == kindSpark && role == capacity.RoleDriver && deleted && p.Status.Phase != v1.PodSucceeded:
		w.finish(ctx, a, true, w.obs.wasLost(p))
	case a.kind == kindSpark && role == capacity.RoleExecutor && deleted:
		w.mu.Lock()
		replace := a.started && !a.done && !a.lost
		w.mu.Unlock()
		if replace {
			go w.startExecutors(ctx, a, 1)
		}
	case a.kind == kindTraining && deleted && p.Status.Phase != v1.PodSucceeded:
		w.finish(ctx, a, true, w.obs.wasLost(p))
	}
}

// finish ends an app, as done or lost (to a spot interruption, or else
// preempted), and removes the pods left behind.
func (w *world) finish(ctx context.Context, a *app, lost, interrupted bool) {
	w.mu.Lock()
	if a.done || a.lost {
		w.mu.Unlock()
		return
	}
	a.done, a.lost = !lost, lost
	w.mu.Unlock()
	if lost {
		w.obs.appLost(a, interrupted)
	}
	go func() {
		zero := int64(0)
		sel := labels.SelectorFromSet(labels.Set{labelApp: a.name}).String()
		if err := w.client.CoreV1().Pods(a.ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero},
			metav1.ListOptions{LabelSelector: sel, FieldSelector: "status.phase!=Succeeded"}); err != nil && ctx.Err() == nil {
			w.logger.Error(err, "Removing the pods of an ended app", "app", a.key())
		}
	}()
}

// interrupt takes spot nodes away: the termination handler's taint now, and
// after the notice the nodes and their pods are gone.
func (w *world) interrupt(ctx context.Context, in *Interrupt) error {
	var names []string
	var specs []cluster.Node
	for _, p := range w.cluster.Pools {
		for _, n := range poolNodes(p) {
			if n.Name == in.Node || p.poolName() == in.Pool {
				names = append(names, n.Name)
				specs = append(specs, n)
			}
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("interrupt: no node matches pool %q / node %q", in.Pool, in.Node)
	}
	w.obs.mark(fmt.Sprintf("spot interruption notice: %d node(s) of %s%s", len(names), in.Pool, in.Node), "interruption notice")
	for _, name := range names {
		n, err := w.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			continue // already gone
		}
		n.Spec.Taints = append(n.Spec.Taints, v1.Taint{Key: capacity.TaintNTHSpotITN, Value: "true", Effect: v1.TaintEffectNoSchedule})
		if _, err := w.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
			return fmt.Errorf("tainting node %s: %w", name, err)
		}
	}
	notice := in.Notice.Duration
	if notice == 0 {
		notice = 2 * time.Minute
	}
	w.clock.AfterFunc(w.scaled(notice), func() {
		for _, name := range names {
			w.reclaimNode(ctx, name)
		}
		w.obs.mark(fmt.Sprintf("spot capacity gone: %d node(s)", len(names)), "spot capacity gone")
		if in.ReplaceAfter.Duration > 0 {
			w.clock.AfterFunc(w.scaled(in.ReplaceAfter.Duration), func() {
				if err := cluster.CreateNodes(ctx, w.client, specs); err != nil && ctx.Err() == nil {
					w.logger.Error(err, "Replacing interrupted nodes")
				}
				if err := w.publishDevices(ctx, names); err != nil && ctx.Err() == nil {
					w.logger.Error(err, "Publishing the devices of replaced nodes")
				}
				w.obs.mark(fmt.Sprintf("spot capacity replaced: %d node(s)", len(specs)), "spot capacity replaced")
			})
		}
	})
	return nil
}

// reclaimNode removes a node and fails its pods, as a spot interruption does.
func (w *world) reclaimNode(ctx context.Context, name string) {
	pods, err := w.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", name).String()})
	if err == nil {
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
				continue
			}
			w.obs.podLost(p)
			zero := int64(0)
			_ = w.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		}
	}
	if err := w.client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		w.logger.Error(err, "Removing an interrupted node", "node", name)
	}
	w.withdrawDevices(ctx, name)
}

// cpuMillis is a pod size's CPU in millicores.
func cpuMillis(r Resources) int64 {
	q, err := resource.ParseQuantity(r["cpu"])
	if err != nil {
		return 0
	}
	return q.MilliValue()
}
