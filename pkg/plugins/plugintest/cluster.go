package plugintest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	"k8s.io/utils/ptr"
)

// Namespace is where MakePod puts pods.
const Namespace = "ns"

// MakePod starts a pod of the profile in Namespace, its UID its name,
// created at Start.
func MakePod(name string) *st.PodWrapper {
	return st.MakePod().Namespace(Namespace).Name(name).UID(name).SchedulerName(SchedulerName).
		CreationTimestamp(metav1.NewTime(Start))
}

// MakeNode starts a node with cpu cores and memory (e.g. "8", "32Gi").
func MakeNode(name, cpu, memory string) *st.NodeWrapper {
	return st.MakeNode().Name(name).Capacity(map[v1.ResourceName]string{v1.ResourceCPU: cpu, v1.ResourceMemory: memory})
}

// Pods is objects for Options.Objects.
func Pods(pods ...*v1.Pod) []runtime.Object {
	out := make([]runtime.Object, len(pods))
	for i, p := range pods {
		out[i] = p
	}
	return out
}

// snapshot is the scheduler's snapshot of nodes and pods, as the framework
// handle serves it; Env.Snapshot replaces it, as kube-scheduler does at the
// start of every cycle.
type snapshot struct {
	mu      sync.Mutex
	current *cache.Snapshot
}

var _ fwk.SharedLister = &snapshot{}

func (s *snapshot) get() *cache.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

func (s *snapshot) NodeInfos() fwk.NodeInfoLister       { return s.get().NodeInfos() }
func (s *snapshot) StorageInfos() fwk.StorageInfoLister { return s.get().StorageInfos() }
func (s *snapshot) PodGroupStates() fwk.PodGroupStateLister {
	return s.get().PodGroupStates()
}
func (s *snapshot) PodGroups() fwk.PodGroupLister { return s.get().PodGroups() }
func (s *snapshot) CompositePodGroupStates() fwk.CompositePodGroupStateLister {
	return s.get().CompositePodGroupStates()
}
func (s *snapshot) CompositePodGroups() fwk.CompositePodGroupLister {
	return s.get().CompositePodGroups()
}

// Snapshot takes a fresh snapshot of the cluster's nodes and bound pods,
// plus the given pods assumed on their spec.nodeName (as the scheduler's
// cache holds pods between Reserve and binding). It returns the snapshot's
// node infos.
func (e *Env) Snapshot(assumed ...*v1.Pod) []fwk.NodeInfo {
	nodes, err := e.Client.CoreV1().Nodes().List(e.Ctx, metav1.ListOptions{})
	if err != nil {
		panic(err)
	}
	pods, err := e.Client.CoreV1().Pods(metav1.NamespaceAll).List(e.Ctx, metav1.ListOptions{})
	if err != nil {
		panic(err)
	}
	var ns []*v1.Node
	for i := range nodes.Items {
		ns = append(ns, &nodes.Items[i])
	}
	var ps []*v1.Pod
	for i := range pods.Items {
		if p := &pods.Items[i]; p.Spec.NodeName != "" && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
			ps = append(ps, p)
		}
	}
	ps = append(ps, assumed...)
	s := cache.NewSnapshot(ps, ns)
	e.snapshot.mu.Lock()
	e.snapshot.current = s
	e.snapshot.mu.Unlock()
	infos, err := s.NodeInfos().List()
	if err != nil {
		panic(err)
	}
	return infos
}

// NodeInfo returns the named node's info in the current snapshot.
func (e *Env) NodeInfo(t testing.TB, name string) fwk.NodeInfo {
	t.Helper()
	ni, err := e.snapshot.get().NodeInfos().Get(name)
	require.NoError(t, err)
	return ni
}

// CreatePod creates a pod in the cluster.
func (e *Env) CreatePod(t testing.TB, p *v1.Pod) *v1.Pod {
	t.Helper()
	out, err := e.Client.CoreV1().Pods(p.Namespace).Create(e.Ctx, p, metav1.CreateOptions{})
	require.NoError(t, err)
	return out
}

// UpdatePod writes a pod's new state.
func (e *Env) UpdatePod(t testing.TB, p *v1.Pod) *v1.Pod {
	t.Helper()
	out, err := e.Client.CoreV1().Pods(p.Namespace).Update(e.Ctx, p, metav1.UpdateOptions{})
	require.NoError(t, err)
	return out
}

// DeletePod deletes a pod at once (grace period 0).
func (e *Env) DeletePod(t testing.TB, p *v1.Pod) {
	t.Helper()
	require.NoError(t, e.Client.CoreV1().Pods(p.Namespace).Delete(e.Ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}))
}

// Finalize removes a pod marked for deletion, as its kubelet would once
// its containers are gone.
func (e *Env) Finalize(t testing.TB, name string) {
	t.Helper()
	require.NoError(t, e.Client.Tracker().Delete(v1.SchemeGroupVersion.WithResource("pods"), Namespace, name))
}

// Bind binds a pod to a node and starts it, as the binder and the kubelet
// would.
func (e *Env) Bind(t testing.TB, p *v1.Pod, node string) *v1.Pod {
	t.Helper()
	p = p.DeepCopy()
	p.Spec.NodeName = node
	p.Status.Phase = v1.PodRunning
	start := metav1.NewTime(e.Clock.Now())
	p.Status.StartTime = &start
	return e.UpdatePod(t, p)
}

// Pod reads a pod from the cluster.
func (e *Env) Pod(t testing.TB, name string) *v1.Pod {
	t.Helper()
	p, err := e.Client.CoreV1().Pods(Namespace).Get(e.Ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	return p
}

// PodExists reports whether the pod is still in the cluster.
func (e *Env) PodExists(name string) bool {
	_, err := e.Client.CoreV1().Pods(Namespace).Get(e.Ctx, name, metav1.GetOptions{})
	return err == nil
}

// UpdateNode writes a node's new state.
func (e *Env) UpdateNode(t testing.TB, n *v1.Node) {
	t.Helper()
	_, err := e.Client.CoreV1().Nodes().Update(e.Ctx, n, metav1.UpdateOptions{})
	require.NoError(t, err)
}

// DeleteNode deletes a node.
func (e *Env) DeleteNode(t testing.TB, name string) {
	t.Helper()
	require.NoError(t, e.Client.CoreV1().Nodes().Delete(e.Ctx, name, metav1.DeleteOptions{}))
}

// Assumed is pod as the scheduler's cache holds it once reserved on node.
func Assumed(p *v1.Pod, node string) *v1.Pod {
	p = p.DeepCopy()
	p.Spec.NodeName = node
	return p
}

// String describes a status for test messages.
func String(s *fwk.Status) string {
	if s == nil {
		return "Success"
	}
	return fmt.Sprintf("%s: %s", s.Code(), s.Message())
}

// Permit runs the Permit plugins for pod reserved on node; a pod asked to
// wait is added to the framework's waiting pods, as kube-scheduler does.
func (e *Env) Permit(state fwk.CycleState, pod *v1.Pod, node string) *fwk.Status {
	assumed := Assumed(pod, node)
	waits, s := e.Framework.RunPermitPlugins(e.Ctx, state, assumed, node)
	if s.IsWait() {
		e.Framework.AddWaitingPod(assumed, waits)
	}
	return s
}

// PermitVerdict is what became of a pod that waited at Permit: nil when it
// was allowed, the rejection otherwise. The verdict must be in already
// (plugins allow and reject waiting pods in the calls that decide it).
func (e *Env) PermitVerdict(t testing.TB, pod *v1.Pod) *fwk.Status {
	t.Helper()
	verdict := make(chan *fwk.Status, 1)
	go func() { verdict <- e.Framework.WaitOnPermit(e.Ctx, pod) }()
	select {
	case s := <-verdict:
		return s
	case <-time.After(10 * time.Second):
		require.FailNow(t, "no verdict", "pod %s still waits at Permit", pod.Name)
		return nil
	}
}
