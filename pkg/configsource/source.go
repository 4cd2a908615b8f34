// Package configsource keeps muster's queue tree in step with the ConfigMap
// muster-queues (key queues.yaml): a valid edit is applied atomically, an
// invalid one is refused as a whole with the last good tree kept, and every
// refusal is visible (Warning Event on the ConfigMap, an error log line with
// every problem, muster_config_reloads_total{result="invalid"}).
package configsource

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"muster.dev/muster/pkg/metrics"
	"muster.dev/muster/pkg/queue"
)

// Event reasons on the ConfigMap.
const (
	ReasonApplied = "QueueConfigApplied"
	ReasonRefused = "QueueConfigRefused"
)

// maxEventNote is the events.k8s.io limit on an Event's note.
const maxEventNote = 1024

// Options configures a Source.
type Options struct {
	Client          kubernetes.Interface
	Namespace, Name string
	// OnApply is called with every tree that becomes current, including the
	// first one; it must not block.
	OnApply func(*queue.Tree)
	// LastApplied, when set, returns the queues.yaml that was in force
	// when muster last published its status (see Source.Applied); "" when
	// there is none. Start falls back to it when the ConfigMap holds an
	// invalid edit, so a restart or a new leader does not run with no
	// configuration at all because of a typo nobody has fixed yet.
	LastApplied func(context.Context) (string, error)
	Clock       clock.Clock
}

// Status says where the current tree came from.
type Status struct {
	// Source names the ConfigMap, or says that the built-in default is in force.
	Source string
	// ResourceVersion of the ConfigMap applied last.
	ResourceVersion string
	AppliedAt       time.Time
	// LastError is why the latest edit was refused, if it was; cleared by
	// the next valid edit.
	LastError   string
	LastErrorAt time.Time
	// Valid is false when no valid configuration has been seen since start:
	// the ConfigMap exists but is invalid, and nothing is admitted.
	Valid bool
}

// Source watches the queue ConfigMap.
type Source struct {
	opts     Options
	recorder events.EventRecorder

	// applyMu serialises making a tree current with telling OnApply, so
	// listeners see trees in the order they came into force.
	applyMu sync.Mutex

	mu      sync.Mutex
	current *queue.Tree
	raw     string // the queues.yaml of current; "" for the default
	status  Status
	applied string // resourceVersion last processed
}

// Start watches the ConfigMap until ctx ends. It returns once the first
// configuration is in force (the ConfigMap's, or the default when there is
// none), so nothing is admitted against a tree that is about to change.
func Start(ctx context.Context, opts Options) (*Source, error) {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	logger := klog.FromContext(ctx).WithName("configsource")
	ctx = klog.NewContext(ctx, logger)
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: opts.Client.EventsV1()})
	broadcaster.StartRecordingToSink(ctx.Done())
	s := &Source{opts: opts, recorder: broadcaster.NewRecorder(scheme.Scheme, "muster-scheduler")}
	go func() {
		<-ctx.Done()
		broadcaster.Shutdown()
	}()

	factory := informers.NewSharedInformerFactoryWithOptions(opts.Client, 0,
		informers.WithNamespace(opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", opts.Name).String()
		}))
	informer := factory.Core().V1().ConfigMaps().Informer()
	reg, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.onChange(ctx, obj) },
		UpdateFunc: func(_, obj any) { s.onChange(ctx, obj) },
		DeleteFunc: func(obj any) { s.onDelete(ctx, obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("watching ConfigMap %s/%s: %w", opts.Namespace, opts.Name, err)
	}
	factory.Start(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// The handler's HasSynced, not the informer's: the ConfigMap must have
	// been handed to onChange, not only be in the cache, before "seen" is
	// read; else the default tree would be applied first, and an invalid
	// ConfigMap refused as an edit of it.
	if !cache.WaitForCacheSync(syncCtx.Done(), reg.HasSynced) {
		return nil, fmt.Errorf("ConfigMap %s/%s: cache did not sync within a minute (RBAC? apiserver?)", opts.Namespace, opts.Name)
	}
	s.mu.Lock()
	seen := s.current != nil || s.status.LastError != ""
	s.mu.Unlock()
	if !seen {
		s.use(ctx, queue.Default(), "", Status{
			Source: fmt.Sprintf("built-in default: one queue root.default without limits (no ConfigMap %s/%s)", opts.Namespace, opts.Name),
			Valid:  true, AppliedAt: opts.Clock.Now(),
		})
		logger.Info("No queue ConfigMap; using the default queue tree", "configMap", klog.KRef(opts.Namespace, opts.Name))
		return s, nil
	}
	if s.Tree() == nil && opts.LastApplied != nil {
		s.fallBack(ctx)
	}
	return s, nil
}

// fallBack puts the last applied configuration in force when the ConfigMap
// was invalid from the start. A valid edit that arrived meanwhile wins.
func (s *Source) fallBack(ctx context.Context) {
	logger := klog.FromContext(ctx)
	var raw string
	var err error
	// A few tries: the apiserver just answered the ConfigMap's list.
	backoff := wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Steps: 6}
	_ = wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		raw, err = s.opts.LastApplied(ctx)
		return err == nil, nil
	})
	if err != nil {
		logger.Error(err, "Reading the last applied queue configuration; nothing is admitted until the ConfigMap is valid",
			"configMap", klog.KRef(s.opts.Namespace, s.opts.Name))
		return
	}
	if raw == "" {
		logger.Info("No last applied queue configuration to fall back on; nothing is admitted until the ConfigMap is valid",
			"configMap", klog.KRef(s.opts.Namespace, s.opts.Name))
		return
	}
	tree, err := queue.Parse([]byte(raw))
	if err != nil {
		logger.Error(err, "The last applied queue configuration no longer parses; nothing is admitted until the ConfigMap is valid")
		return
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	if s.current != nil {
		s.mu.Unlock()
		return
	}
	st := s.status
	st.Source = fmt.Sprintf("the last valid configuration muster applied (ConfigMap %s/%s holds an invalid edit)", s.opts.Namespace, s.opts.Name)
	st.Valid, st.AppliedAt = true, s.opts.Clock.Now()
	s.set(tree, raw, st)
	s.mu.Unlock()
	if s.opts.OnApply != nil {
		s.opts.OnApply(tree)
	}
	logger.Info("Queue ConfigMap is invalid; the last valid configuration muster applied is in force",
		"configMap", klog.KRef(s.opts.Namespace, s.opts.Name), "queues", len(tree.Queues))
}

// Tree returns the tree in force, or nil if no valid configuration exists.
func (s *Source) Tree() *queue.Tree {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// Applied returns the queues.yaml of the tree in force, for the status
// writer to keep (Options.LastApplied reads it back); "" when the built-in
// default is in force or nothing is.
func (s *Source) Applied() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw
}

// Status returns where the tree in force came from.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

func (s *Source) onChange(ctx context.Context, obj any) {
	cm, ok := obj.(*v1.ConfigMap)
	if !ok {
		return
	}
	logger := klog.FromContext(ctx)
	s.mu.Lock()
	if cm.ResourceVersion == s.applied {
		s.mu.Unlock()
		return
	}
	s.applied = cm.ResourceVersion
	s.mu.Unlock()

	data, ok := cm.Data[queue.ConfigKey]
	var tree *queue.Tree
	var err error
	if !ok {
		keys := make([]string, 0, len(cm.Data))
		for k := range cm.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		err = fmt.Errorf("the ConfigMap has no key %s (keys: %s)", queue.ConfigKey, strings.Join(keys, ", "))
	} else {
		tree, err = queue.Parse([]byte(data))
	}
	if err != nil {
		s.refuse(ctx, cm, err)
		return
	}
	s.use(ctx, tree, data, Status{
		Source:          fmt.Sprintf("ConfigMap %s/%s", cm.Namespace, cm.Name),
		ResourceVersion: cm.ResourceVersion, AppliedAt: s.opts.Clock.Now(), Valid: true,
	})
	metrics.ConfigReloads.WithLabelValues(metrics.ReloadSuccess).Inc()
	s.recorder.Eventf(cm, nil, v1.EventTypeNormal, ReasonApplied, "Apply", "Applied queue configuration: %d queues, %d leaves", len(tree.Queues), len(tree.Leaves()))
	logger.Info("Applied queue configuration", "configMap", klog.KObj(cm), "resourceVersion", cm.ResourceVersion, "queues", len(tree.Queues))
}

func (s *Source) refuse(ctx context.Context, cm *v1.ConfigMap, err error) {
	problems := strings.Split(err.Error(), "\n")
	klog.FromContext(ctx).Error(nil, "Refused queue configuration; the last valid one stays in force",
		"configMap", klog.KObj(cm), "resourceVersion", cm.ResourceVersion, "errors", problems)
	metrics.ConfigReloads.WithLabelValues(metrics.ReloadInvalid).Inc()
	note := fmt.Sprintf("Refused queues.yaml (the last valid configuration stays in force), %d error(s): %s", len(problems), strings.Join(problems, "; "))
	if len(note) > maxEventNote {
		note = note[:maxEventNote-40] + " ... (see muster validate)"
	}
	s.recorder.Eventf(cm, nil, v1.EventTypeWarning, ReasonRefused, "Refuse", "%s", note)

	s.mu.Lock()
	s.status.LastError = err.Error()
	s.status.LastErrorAt = s.opts.Clock.Now()
	if s.current == nil {
		s.status.Source = fmt.Sprintf("ConfigMap %s/%s is invalid and no valid configuration has been applied since start", cm.Namespace, cm.Name)
		s.status.Valid = false
	}
	s.mu.Unlock()
}

func (s *Source) onDelete(ctx context.Context, obj any) {
	s.mu.Lock()
	s.applied = ""
	s.status.Source += " (ConfigMap deleted; this configuration stays in force until a new one is created)"
	s.mu.Unlock()
	klog.FromContext(ctx).Info("Queue ConfigMap deleted; keeping the configuration in force",
		"configMap", klog.KRef(s.opts.Namespace, s.opts.Name))
}

func (s *Source) use(_ context.Context, t *queue.Tree, raw string, st Status) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	s.set(t, raw, st)
	s.mu.Unlock()
	if s.opts.OnApply != nil {
		s.opts.OnApply(t)
	}
}

// set makes t current; s.mu is held. Its leaves' counters are exported
// from now on, at 0 until something happens (metrics.InitQueues).
func (s *Source) set(t *queue.Tree, raw string, st Status) {
	s.current, s.raw, s.status = t, raw, st
	leaves := make([]string, 0, len(t.Leaves()))
	for _, q := range t.Leaves() {
		leaves = append(leaves, q.Path)
	}
	metrics.InitQueues(leaves)
}
