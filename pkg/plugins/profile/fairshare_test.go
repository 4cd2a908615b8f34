package profile_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/plugins/plugintest"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// TestFairShareAdmit: a queue at its fair share may not take free capacity
// that a queue below its share waits for; without contention, anyone may.
func TestFairShareAdmit(t *testing.T) {
	running := func(name, q, cores string) *v1.Pod {
		return plugintest.MakePod(name).Label(queue.LabelQueue, q).Node("n0").Phase(v1.PodRunning).Req(cpu(cores)).Obj()
	}
	pending := func(name, q, cores string) *v1.Pod {
		return plugintest.MakePod(name).Label(queue.LabelQueue, q).Req(cpu(cores)).Obj()
	}
	tests := map[string]struct {
		pods        []*v1.Pod
		queue       string
		cores       string
		wantRefusal bool
	}{
		"uncontended":             {pods: []*v1.Pod{running("a0", "a", "6")}, queue: "a", cores: "1"},
		"at its share, contended": {pods: []*v1.Pod{running("a0", "a", "6"), pending("b0", "b", "4")}, queue: "a", cores: "1", wantRefusal: true},
		"below its share":         {pods: []*v1.Pod{running("a0", "a", "6"), pending("b0", "b", "4")}, queue: "b", cores: "1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newRuntime(t, twoQueues, plugintest.Pods(tc.pods...)...)
			req := resources.PodRequest(plugintest.MakePod("p").Req(cpu(tc.cores)).Obj())
			refusal := e.Runtime.FairShareAdmit(e.Runtime.Tree().Get("root."+tc.queue), req)
			if !tc.wantRefusal {
				assert.Nil(t, refusal)
				return
			}
			require.NotNil(t, refusal)
			assert.Equal(t, []string{"root.b"}, refusal.Waiting)
		})
	}
}

// TestCapacity: what the queues share is the nodes' allocatable minus what
// other schedulers' pods use, kept current as they change.
func TestCapacity(t *testing.T) {
	e := newRuntime(t, twoQueues, plugintest.MakePod("foreign").SchedulerName("default-scheduler").Node("n0").
		Phase(v1.PodRunning).Req(cpu("2")).Obj())
	capacity := func() int64 {
		_, in := e.Runtime.Shares()
		return cores(in.Capacity)
	}
	require.Equal(t, int64(6), capacity())

	_, err := e.Client.CoreV1().Nodes().Create(e.Ctx, plugintest.MakeNode("n1", "4", "16Gi").Obj(), metav1.CreateOptions{})
	require.NoError(t, err)
	e.WaitFor(t, "the new node counted", func() bool { return capacity() == 10 })

	e.DeletePod(t, plugintest.MakePod("foreign").Obj())
	e.WaitFor(t, "the foreign pod's room counted", func() bool { return capacity() == 12 })
	shares, in := e.Runtime.Shares()
	assert.Same(t, in.Tree, e.Runtime.Tree())
	assert.NotNil(t, shares.Fair)
}

// TestQueueArgs: the runtime reads the queue ConfigMap MusterQueue's args
// name.
func TestQueueArgs(t *testing.T) {
	cm := plugintest.QueueConfigMap("queues: [{name: elsewhere}]\n")
	cm.Namespace, cm.Name = "other", "queues"
	e := plugintest.New(t, plugintest.Options{NotStarted: true})
	_, err := e.Client.CoreV1().ConfigMaps(cm.Namespace).Create(e.Ctx, cm, metav1.CreateOptions{})
	require.NoError(t, err)
	args := configv1.DefaultQueueArgs()
	args.Namespace, args.QueuesConfigMap = "other", "queues"
	e.Runtime.SetQueueArgs(args)
	require.NoError(t, e.Runtime.Ready())
	assert.NotNil(t, e.Runtime.Tree().Get("root.elsewhere"))
}
