// Package profiletest runs a profile's shared runtime (pkg/plugins/profile)
// on a fake cluster for the plugins' unit tests: a fake clientset and its
// informers, kube-scheduler's framework as the handle over a snapshot of the
// nodes and bound pods, a fake clock, and a recorder of the wait reasons the
// plugins give pods (instead of the condition writer).
package profiletest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	schedcache "k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/queuesort"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"
	testingclock "k8s.io/utils/clock/testing"

	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/profile"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/waitreason"
)

// Profile is the scheduler profile name the cluster's pods use.
const Profile = "muster"

// Cluster is a started profile runtime over fake objects.
type Cluster struct {
	Ctx     context.Context
	Client  *fake.Clientset
	Clock   *testingclock.FakeClock
	Handle  fwk.Handle
	Runtime *profile.Runtime
	Factory informers.SharedInformerFactory
	// Reasons records what the plugins said about each pod.
	Reasons *Reasons
}

// New starts a runtime whose queue ConfigMap holds queuesYAML (none when
// empty), on a cluster of objs (nodes and pods; bound pods are in the
// scheduler's snapshot). before runs on the runtime before it starts: a
// plugin sets Runtime.GangOf there.
func New(t testing.TB, queuesYAML string, before func(*Cluster), objs ...runtime.Object) *Cluster {
	t.Helper()
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), klog.Background()))
	t.Cleanup(cancel)
	if queuesYAML != "" {
		objs = append(objs, &v1.ConfigMap{
			// A resourceVersion, as the apiserver gives every object: the
			// config source tells versions apart by it.
			ObjectMeta: metav1.ObjectMeta{Namespace: configv1.DefaultNamespace, Name: configv1.DefaultQueuesConfigMap, ResourceVersion: "1"},
			Data:       map[string]string{queue.ConfigKey: queuesYAML},
		})
	}
	c := &Cluster{Ctx: ctx, Client: fake.NewClientset(objs...), Clock: testingclock.NewFakeClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)),
		Reasons: &Reasons{last: map[string]Reason{}}}
	c.Factory = informers.NewSharedInformerFactory(c.Client, 0)
	pods, nodes := c.Factory.Core().V1().Pods(), c.Factory.Core().V1().Nodes()
	pods.Informer()
	nodes.Informer()
	c.Factory.Start(ctx.Done())
	c.Factory.WaitForCacheSync(ctx.Done())

	var bound []*v1.Pod
	var nodeObjs []*v1.Node
	for _, o := range objs {
		switch o := o.(type) {
		case *v1.Pod:
			if o.Spec.NodeName != "" {
				bound = append(bound, o)
			}
		case *v1.Node:
			nodeObjs = append(nodeObjs, o)
		}
	}
	h, err := tf.NewFramework(ctx, []tf.RegisterPluginFunc{
		tf.RegisterQueueSortPlugin(queuesort.Name, queuesort.New),
		tf.RegisterBindPlugin(defaultbinder.Name, defaultbinder.New),
	}, Profile,
		frameworkruntime.WithClientSet(c.Client),
		frameworkruntime.WithInformerFactory(c.Factory),
		frameworkruntime.WithSnapshotSharedLister(schedcache.NewSnapshot(bound, nodeObjs)),
		frameworkruntime.WithEventRecorder(&events.FakeRecorder{}),
		frameworkruntime.WithPodNominator(nominator{}),
		frameworkruntime.WithPodActivator(activator{}),
		frameworkruntime.WithWaitingPods(frameworkruntime.NewWaitingPodsMap()),
	)
	require.NoError(t, err)
	c.Handle = h
	c.Runtime = profile.Get(ctx, h)
	c.Runtime.Clock = c.Clock
	c.Runtime.Gangs = gang.NewRegistry(c.Clock)
	c.Runtime.Conditions = c.Reasons
	if before != nil {
		before(c)
	}
	require.NoError(t, c.Runtime.Ready())
	return c
}

// Reason is what a plugin said about a pod last.
type Reason struct {
	Code    waitreason.Code // waitreason.Admitted once admitted
	Message string
}

// Reasons records the plugins' Waiting and Admitted calls, by pod
// (namespace/name).
type Reasons struct {
	mu   sync.Mutex
	last map[string]Reason
}

// Waiting implements profile.Conditions.
func (r *Reasons) Waiting(pod *v1.Pod, code waitreason.Code, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last[pod.Namespace+"/"+pod.Name] = Reason{Code: code, Message: msg}
}

// Admitted implements profile.Conditions.
func (r *Reasons) Admitted(pod *v1.Pod, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last[pod.Namespace+"/"+pod.Name] = Reason{Code: waitreason.Admitted, Message: msg}
}

// Of returns what was said about the pod last.
func (r *Reasons) Of(pod *v1.Pod) Reason {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last[pod.Namespace+"/"+pod.Name]
}

// nominator is a PodNominator with no nominated pods.
type nominator struct{}

func (nominator) AddNominatedPod(klog.Logger, fwk.PodInfo, *fwk.NominatingInfo) {}
func (nominator) DeleteNominatedPodIfExists(*v1.Pod)                            {}
func (nominator) UpdateNominatedPod(klog.Logger, *v1.Pod, fwk.PodInfo)          {}
func (nominator) NominatedPodsForNode(string) []fwk.PodInfo                     { return nil }

// activator drops activations: the tests call PreFilter themselves.
type activator struct{}

func (activator) Activate(klog.Logger, map[string]*v1.Pod) {}
