package plugintest

import (
	"fmt"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/utils/clock"
)

// Event is an Event a plugin recorded.
type Event struct {
	// Regarding is "Kind namespace/name" of the object the Event is about
	// (Kind as the object carries it: informer objects carry none).
	Regarding string
	// Related is the related object's "namespace/name", if any.
	Related string
	Type    string
	Reason  string
	Note    string
}

// Recorder records Events (events.EventRecorderLogger).
type Recorder struct {
	mu     sync.Mutex
	events []Event
}

var _ events.EventRecorderLogger = &Recorder{}

// Eventf implements events.EventRecorder.
func (r *Recorder) Eventf(regarding, related runtime.Object, eventtype, reason, _, note string, args ...interface{}) {
	e := Event{Regarding: describe(regarding, true), Related: describe(related, false), Type: eventtype, Reason: reason, Note: fmt.Sprintf(note, args...)}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// WithLogger implements events.EventRecorderLogger.
func (r *Recorder) WithLogger(klog.Logger) events.EventRecorderLogger { return r }

// List returns the Events recorded so far.
func (r *Recorder) List() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// WithReason returns the Events recorded so far with that reason.
func (r *Recorder) WithReason(reason string) []Event {
	var out []Event
	for _, e := range r.List() {
		if e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

func describe(obj runtime.Object, withKind bool) string {
	if obj == nil {
		return ""
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return fmt.Sprintf("%T", obj)
	}
	name := m.GetNamespace() + "/" + m.GetName()
	if kind := obj.GetObjectKind().GroupVersionKind().Kind; withKind && kind != "" {
		return kind + " " + name
	}
	return name
}

// Activator records the pods plugins move to the active queue, and when
// by the test's clock (fwk.PodActivator).
type Activator struct {
	clock     clock.PassiveClock
	mu        sync.Mutex
	activated []activation
}

type activation struct {
	pod string
	at  time.Time
}

var _ fwk.PodActivator = &Activator{}

// Activate implements fwk.PodActivator.
func (a *Activator) Activate(_ klog.Logger, pods map[string]*v1.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range pods {
		a.activated = append(a.activated, activation{pod: podKey(p), at: a.clock.Now()})
	}
}

// Take returns the pods activated since the last call ("namespace/name",
// sorted, each once) and forgets them.
func (a *Activator) Take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.pods(time.Time{})
	a.activated = nil
	return out
}

// Since returns the pods activated at or after t, sorted, each once.
func (a *Activator) Since(t time.Time) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pods(t)
}

func (a *Activator) pods(since time.Time) []string {
	var out []string
	for _, act := range a.activated {
		if !act.at.Before(since) {
			out = append(out, act.pod)
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(out)))
}

// Nominator holds nominated pods per node (fwk.PodNominator).
type Nominator struct {
	mu    sync.Mutex
	nodes map[string][]fwk.PodInfo
}

var _ fwk.PodNominator = &Nominator{}

// Nominate nominates pod to node, as kube-scheduler does for a preemptor.
func (n *Nominator) Nominate(pod *v1.Pod, node string) {
	pi, err := framework.NewPodInfo(pod)
	if err != nil {
		panic(err)
	}
	n.AddNominatedPod(klog.Background(), pi, &fwk.NominatingInfo{NominatedNodeName: node, NominatingMode: fwk.ModeOverride})
}

// AddNominatedPod implements fwk.PodNominator.
func (n *Nominator) AddNominatedPod(_ klog.Logger, pi fwk.PodInfo, ni *fwk.NominatingInfo) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nodes == nil {
		n.nodes = map[string][]fwk.PodInfo{}
	}
	n.nodes[ni.NominatedNodeName] = append(n.nodes[ni.NominatedNodeName], pi)
}

// DeleteNominatedPodIfExists implements fwk.PodNominator.
func (n *Nominator) DeleteNominatedPodIfExists(pod *v1.Pod) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for node, pods := range n.nodes {
		n.nodes[node] = slices.DeleteFunc(pods, func(pi fwk.PodInfo) bool { return pi.GetPod().UID == pod.UID })
	}
}

// UpdateNominatedPod implements fwk.PodNominator.
func (n *Nominator) UpdateNominatedPod(klog.Logger, *v1.Pod, fwk.PodInfo) {}

// NominatedPodsForNode implements fwk.PodNominator.
func (n *Nominator) NominatedPodsForNode(node string) []fwk.PodInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.nodes[node])
}
