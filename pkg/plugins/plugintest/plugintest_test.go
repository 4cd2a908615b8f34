package plugintest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/utils/ptr"

	"muster.dev/muster/pkg/plugins/profile"
)

// TestClientsetBehavesAsTheAPIServer: the fakes the plugin tests rely on
// behave as the apiserver does.
func TestClientsetBehavesAsTheAPIServer(t *testing.T) {
	e := New(t, Options{Objects: Pods(MakePod("bound").Node("n0").Obj()), Queues: "queues: [{name: a}]\n"})

	p := e.CreatePod(t, MakePod("p").CreationTimestamp(metav1.Time{}).Obj())
	assert.NotEmpty(t, p.ResourceVersion, "a resourceVersion")
	assert.Equal(t, Start, p.CreationTimestamp.Time.UTC(), "a creation time")
	updated := e.UpdatePod(t, p)
	assert.NotEqual(t, p.ResourceVersion, updated.ResourceVersion, "a new resourceVersion on update")

	other := QueueConfigMap("x")
	other.Name = "other"
	_, err := e.Client.CoreV1().ConfigMaps(other.Namespace).Create(e.Ctx, other, metav1.CreateOptions{})
	require.NoError(t, err)
	list, err := e.Client.CoreV1().ConfigMaps(other.Namespace).List(e.Ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", "other").String()})
	require.NoError(t, err)
	require.Len(t, list.Items, 1, "field selectors select")
	assert.Equal(t, "other", list.Items[0].Name)

	wrong := types.UID("someone-else")
	err = e.Client.CoreV1().Pods(Namespace).Delete(e.Ctx, "bound", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &wrong}})
	assert.True(t, apierrors.IsConflict(err), "the UID precondition is checked: %v", err)
	require.NoError(t, e.Client.CoreV1().Pods(Namespace).Delete(e.Ctx, "bound", metav1.DeleteOptions{}))
	assert.NotNil(t, e.Pod(t, "bound").DeletionTimestamp, "a bound pod is deleted gracefully")
	e.Finalize(t, "bound")
	assert.False(t, e.PodExists("bound"))
	require.NoError(t, e.Client.CoreV1().Pods(Namespace).Delete(e.Ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](30)}))
	assert.False(t, e.PodExists("p"), "an unbound pod goes at once")
}

// TestFakes: what plugins ask of the scheduler is recorded.
func TestFakes(t *testing.T) {
	e := New(t, Options{NotStarted: true})
	e.Activator.Activate(klog.Background(), map[string]*v1.Pod{"ns/a": MakePod("a").Obj()})
	e.Activator.Activate(klog.Background(), map[string]*v1.Pod{"ns/a": MakePod("a").Obj(), "ns/b": MakePod("b").Obj()})
	assert.Equal(t, []string{"ns/a", "ns/b"}, e.Activator.Take())
	assert.Empty(t, e.Activator.Take())

	p := MakePod("nominated").Obj()
	e.Nominator.Nominate(p, "n0")
	require.Len(t, e.Nominator.NominatedPodsForNode("n0"), 1)
	e.Nominator.DeleteNominatedPodIfExists(p)
	assert.Empty(t, e.Nominator.NominatedPodsForNode("n0"))

	e.Framework.EventRecorder().Eventf(p, nil, v1.EventTypeNormal, "Reason", "Act", "note %d", 1)
	assert.Equal(t, []Event{{Regarding: "ns/nominated", Type: v1.EventTypeNormal, Reason: "Reason", Note: "note 1"}}, e.Events.WithReason("Reason"))
}

// waiter holds the pod named first at Permit until another pod comes.
type waiter struct{ h fwk.Handle }

func (*waiter) Name() string { return "Waiter" }

func (w *waiter) Permit(_ context.Context, _ fwk.CycleState, pod *v1.Pod, _ string) (*fwk.Status, time.Duration) {
	if pod.Name == "first" {
		return fwk.NewStatus(fwk.Wait), time.Minute
	}
	w.h.IterateOverWaitingPods(func(wp fwk.WaitingPod) { wp.Allow(w.Name()) })
	return nil, 0
}

// TestFramework: plugins are built into the framework with the profile's
// runtime, see the snapshot the test takes, and wait at Permit as in
// kube-scheduler.
func TestFramework(t *testing.T) {
	var got *profile.Runtime
	e := New(t, Options{
		Plugins: []Plugin{{Name: "Waiter", Factory: func(_ context.Context, _ runtime.Object, h fwk.Handle, rt *profile.Runtime) (fwk.Plugin, error) {
			got = rt
			return &waiter{h: h}, nil
		}}},
		Objects: []runtime.Object{MakeNode("n0", "4", "8Gi").Obj(), MakePod("p").Obj()},
	})
	assert.Same(t, e.Runtime, got, "the plugin gets the profile's runtime")
	assert.IsType(t, &waiter{}, e.Plugin(t, "Waiter"))

	e.Bind(t, e.Pod(t, "p"), "n0")
	assert.Len(t, e.Snapshot()[0].GetPods(), 1, "the snapshot holds bound pods")
	assert.Len(t, e.Snapshot(Assumed(MakePod("q").Obj(), "n0"))[0].GetPods(), 2, "and assumed ones")
	assert.Len(t, e.NodeInfo(t, "n0").GetPods(), 2)

	first, second := MakePod("first").Obj(), MakePod("second").Obj()
	state := framework.NewCycleState()
	s := e.Permit(state, first, "n0")
	assert.Equal(t, fwk.Wait, s.Code(), String(s))
	assert.Nil(t, e.Permit(state, second, "n0"))
	assert.Nil(t, e.PermitVerdict(t, first), "allowed")
	assert.Equal(t, "Success", String(nil))

	n := MakeNode("n0", "8", "8Gi").Obj()
	e.UpdateNode(t, n)
	e.WaitFor(t, "the node updated", func() bool {
		ni, err := e.Informers.Core().V1().Nodes().Lister().Get("n0")
		return err == nil && ni.Status.Allocatable.Cpu().Value() == 8
	})
	e.DeleteNode(t, "n0")
	e.DeletePod(t, e.Pod(t, "p"))
	assert.False(t, e.PodExists("p"), "deleted at once, even bound")
	assert.Empty(t, e.Snapshot())
}
