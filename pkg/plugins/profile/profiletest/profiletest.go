// Package profiletest runs a profile's shared runtime (pkg/plugins/profile)
// alone, on plugintest's fake cluster, for unit tests that build a plugin
// by hand around it: it records the wait reasons the plugins give pods
// (instead of the condition writer) and lets the test set the runtime up
// before it starts.
package profiletest

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	fwk "k8s.io/kube-scheduler/framework"
	testingclock "k8s.io/utils/clock/testing"

	"muster.dev/muster/pkg/plugins/plugintest"
	"muster.dev/muster/pkg/plugins/profile"
	"muster.dev/muster/pkg/waitreason"
)

// Profile is the scheduler profile name the cluster's pods use.
const Profile = plugintest.SchedulerName

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
	env := plugintest.New(t, plugintest.Options{Objects: objs, Queues: queuesYAML, NotStarted: true})
	c := &Cluster{Ctx: env.Ctx, Client: env.Client, Clock: env.Clock.FakeClock, Handle: env.Framework, Runtime: env.Runtime,
		Factory: env.Informers, Reasons: &Reasons{last: map[string]Reason{}}}
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
