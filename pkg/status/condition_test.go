package status

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	testingclock "k8s.io/utils/clock/testing"

	"muster.dev/muster/pkg/waitreason"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).Local()

// conditionFixture is a ConditionWriter on a fake clientset whose pod
// informer runs, with a fake clock and a leadership switch.
type conditionFixture struct {
	t       *testing.T
	ctx     context.Context
	client  *fake.Clientset
	clock   *testingclock.FakeClock
	w       *ConditionWriter
	lead    bool
	patches int
}

func newConditionFixture(t *testing.T, pods ...*v1.Pod) *conditionFixture {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := &conditionFixture{t: t, ctx: ctx, clock: testingclock.NewFakeClock(t0), lead: true}
	objs := make([]runtime.Object, 0, len(pods))
	for _, p := range pods {
		objs = append(objs, p)
	}
	f.client = fake.NewClientset(objs...)
	f.client.PrependReactor("patch", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "status" {
			f.patches++
		}
		return false, nil, nil
	})
	factory := informers.NewSharedInformerFactory(f.client, 0)
	informer := factory.Core().V1().Pods().Informer()
	w, err := NewConditionWriter(f.client, informer, f.clock, func(context.Context) bool { return f.lead })
	require.NoError(t, err)
	f.w = w
	factory.Start(ctx.Done())
	require.True(t, cache.WaitForCacheSync(ctx.Done(), informer.HasSynced))
	return f
}

// drain writes every wish queued so far, as the worker would.
func (f *conditionFixture) drain() {
	for f.w.queue.Len() > 0 {
		require.True(f.t, f.w.processNext(f.ctx))
	}
}

// settle waits until the informer shows what was written (it forgets its
// own writes then), as it does in a scheduler between two cycles.
func (f *conditionFixture) settle() {
	require.NoError(f.t, wait.PollUntilContextTimeout(f.ctx, time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		f.w.mu.Lock()
		defer f.w.mu.Unlock()
		return len(f.w.written) == 0, nil
	}), "not seen: %v", f.w.written)
}

// live returns the pod as the apiserver has it.
func (f *conditionFixture) live(name string) *v1.Pod {
	p, err := f.client.CoreV1().Pods("ns").Get(f.ctx, name, metav1.GetOptions{})
	require.NoError(f.t, err)
	return p
}

func waitingPod(name string) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)},
		Status: v1.PodStatus{Phase: v1.PodPending, Conditions: []v1.PodCondition{
			{Type: v1.PodScheduled, Status: v1.ConditionFalse, Reason: v1.PodReasonUnschedulable, Message: "kube-scheduler's"}}}}
}

func TestConditionWriterWritesTheLatestCodeOnce(t *testing.T) {
	pod := waitingPod("p")
	f := newConditionFixture(t, pod)

	// Three cycles before the worker runs: one write, of the last.
	f.w.Waiting(pod, waitreason.MembersMissing, "g: 1 of 2 members exist")
	f.w.Waiting(pod, waitreason.QueueAtMax, "g: waiting for quota")
	f.w.Waiting(pod, waitreason.NotEnoughRoom, "g: not enough room yet")
	f.drain()
	assert.Equal(t, 1, f.patches, "coalesced")
	got := Condition(f.live("p"))
	require.NotNil(t, got)
	assert.Equal(t, v1.PodCondition{Type: waitreason.ConditionType, Status: v1.ConditionFalse, Reason: string(waitreason.NotEnoughRoom),
		Message: "g: not enough room yet", LastTransitionTime: metav1.NewTime(t0)}, *got)
	assert.Len(t, f.live("p").Status.Conditions, 2, "kube-scheduler's PodScheduled is left alone")

	// The same code again, with new words or counts: nothing, before and
	// after the informer has seen the write.
	f.w.Waiting(pod, waitreason.NotEnoughRoom, "g: not enough room yet, 3 nodes")
	f.drain()
	f.settle()
	f.w.Waiting(f.live("p"), waitreason.NotEnoughRoom, "g: not enough room yet, 4 nodes")
	f.drain()
	assert.Equal(t, 1, f.patches, "same code: no write")

	// Another code: one write; still False, so the transition time stays.
	f.clock.Step(time.Minute)
	f.w.Waiting(f.live("p"), waitreason.FairShare, "g: waiting for its fair share")
	f.drain()
	assert.Equal(t, 2, f.patches)
	got = Condition(f.live("p"))
	assert.Equal(t, string(waitreason.FairShare), got.Reason)
	assert.Equal(t, metav1.NewTime(t0), got.LastTransitionTime, "status unchanged: no transition")

	// Admitted: True, a transition.
	f.clock.Step(time.Minute)
	f.w.Admitted(f.live("p"), "admitted to queue root.a")
	f.drain()
	assert.Equal(t, 3, f.patches)
	got = Condition(f.live("p"))
	assert.Equal(t, v1.PodCondition{Type: waitreason.ConditionType, Status: v1.ConditionTrue, Reason: string(waitreason.Admitted),
		Message: "admitted to queue root.a", LastTransitionTime: metav1.NewTime(t0.Add(2 * time.Minute))}, *got)
	f.w.Admitted(f.live("p"), "admitted to queue root.a")
	f.drain()
	assert.Equal(t, 3, f.patches, "admitted again: nothing")
}

func TestConditionWriterAdmittedOnlyAfterWaiting(t *testing.T) {
	pod := waitingPod("p")
	f := newConditionFixture(t, pod)
	f.w.Admitted(pod, "admitted to queue root.a")
	f.drain()
	assert.Zero(t, f.patches, "a pod that never waited gets no condition")
	assert.Nil(t, Condition(f.live("p")))

	// Refused, then admitted before the worker ran: the pod never shows
	// the wait, and nothing is written.
	f.w.Waiting(pod, waitreason.QueueAtMax, "queue root.a is at its max")
	f.w.Admitted(pod, "admitted to queue root.a")
	f.drain()
	assert.Zero(t, f.patches)
}

func TestConditionWriterOnlyWhenLeading(t *testing.T) {
	pod := waitingPod("p")
	f := newConditionFixture(t, pod)
	f.lead = false
	f.w.Waiting(pod, waitreason.QueueAtMax, "queue root.a is at its max")
	f.drain()
	assert.Zero(t, f.patches, "a replica that does not lead writes nothing")
	assert.Empty(t, f.w.want, "and keeps nothing")

	f.lead = true
	f.w.Waiting(pod, waitreason.QueueAtMax, "queue root.a is at its max")
	f.drain()
	assert.Equal(t, 1, f.patches, "the next refusal once leading is written")
}

func TestConditionWriterSkipsGoneAndBoundPods(t *testing.T) {
	pod, bound := waitingPod("p"), waitingPod("b")
	bound.Spec.NodeName = "n1"
	f := newConditionFixture(t, pod, bound)
	f.w.Waiting(bound, waitreason.QueueAtMax, "stale")
	other := pod.DeepCopy()
	other.UID = "another-pod-of-that-name"
	f.w.Waiting(other, waitreason.QueueAtMax, "stale")
	f.drain()
	assert.Zero(t, f.patches)

	require.NoError(t, f.client.CoreV1().Pods("ns").Delete(f.ctx, "p", metav1.DeleteOptions{}))
	require.NoError(t, wait.PollUntilContextTimeout(f.ctx, time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		_, err := f.w.pods.Pods("ns").Get("p")
		return err != nil, nil
	}))
	f.w.Waiting(pod, waitreason.QueueAtMax, "gone")
	f.drain()
	assert.Zero(t, f.patches)
}

// TestConditionWriterGangOfEight counts the API writes of a gang of 8 that
// waits for its members, then for room, and is admitted, with each member
// retried several times at each stage (as kube-scheduler retries them): a
// write per member and code, and one to close the wait.
func TestConditionWriterGangOfEight(t *testing.T) {
	pods := make([]*v1.Pod, 8)
	for i := range pods {
		pods[i] = waitingPod(fmt.Sprintf("w-%d", i))
	}
	f := newConditionFixture(t, pods...)
	cycle := func(p *v1.Pod, code waitreason.Code, msg string) {
		for range 3 {
			f.w.Waiting(f.live(p.Name), code, msg)
			f.drain()
		}
	}
	for i, p := range pods[:7] {
		cycle(p, waitreason.MembersMissing, fmt.Sprintf("Annotation ns/w: %d of 8 members exist; waiting for the rest before any is bound", i+1))
	}
	for _, p := range pods {
		cycle(p, waitreason.NotEnoughRoom, "Annotation ns/w: not enough room yet: ...")
	}
	f.settle()
	for _, p := range pods {
		f.w.Admitted(f.live(p.Name), "admitted to queue root.a")
		f.drain()
	}
	t.Logf("gang of 8: %d condition writes (7 MembersMissing + 8 NotEnoughRoom + 8 Admitted), for %d refusals and 8 admissions", f.patches, 3*7+3*8)
	assert.Equal(t, 7+8+8, f.patches)
}
