package musterqueue

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/plugins/profile/profiletest"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/waitreason"
)

const queues = `
queues:
  - name: a
    namespaces: [team]
    max: {cpu: "6"}
  - name: b
    namespaces: [team]
  - name: closed
    namespaces: [nobody]
namespaceQueues:
  team: a
`

func node(name, cpu string) *v1.Node {
	alloc := v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu), v1.ResourcePods: resource.MustParse("110")}
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: v1.NodeStatus{Allocatable: alloc, Capacity: alloc}}
}

func reasonPod(name, cpu, queueLabel, nodeName string) *v1.Pod {
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{},
			CreationTimestamp: metav1.NewTime(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))},
		Spec: v1.PodSpec{SchedulerName: profiletest.Profile, NodeName: nodeName, Containers: []v1.Container{{Name: "c",
			Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu)}}}}},
	}
	if queueLabel != "" {
		p.Labels[queue.LabelQueue] = queueLabel
	}
	return p
}

// TestQueueWaitReasons: every path on which MusterQueue holds a pod back
// gives it its code, with the message the scheduler shows.
func TestQueueWaitReasons(t *testing.T) {
	cluster := []runtime.Object{node("n1", "8"), reasonPod("running", "4", "", "n1"), reasonPod("waiting-in-b", "4", "b", "")}
	cases := map[string]struct {
		queues string
		pod    *v1.Pod
		want   waitreason.Code
	}{
		"no queue configuration": {queues: "queues: [", pod: reasonPod("p", "1", "", ""), want: waitreason.NoQueueConfig},
		"no such queue":          {queues: queues, pod: reasonPod("p", "1", "nope", ""), want: waitreason.NoQueue},
		"namespace not admitted": {queues: queues, pod: reasonPod("p", "1", "closed", ""), want: waitreason.NoQueue},
		"queue at max":           {queues: queues, pod: reasonPod("p", "3", "", ""), want: waitreason.QueueAtMax},
		"never fits the queue":   {queues: queues, pod: reasonPod("p", "7", "", ""), want: waitreason.NeverFitsQueue},
		"fair share":             {queues: queues, pod: reasonPod("p", "2", "", ""), want: waitreason.FairShare},
		"admitted":               {queues: queues, pod: reasonPod("p", "1", "b", ""), want: waitreason.Admitted},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := profiletest.New(t, tc.queues, nil, append(cluster, tc.pod)...)
			pl := &Plugin{args: configv1.DefaultQueueArgs(), rt: c.Runtime, waiting: map[types.UID]waitingPod{}, order: newOrder()}
			_, st := pl.PreFilter(c.Ctx, framework.NewCycleState(), tc.pod, nil)
			got := c.Reasons.Of(tc.pod)
			assert.Equal(t, tc.want, got.Code, "status: %v", st)
			if tc.want == waitreason.Admitted {
				require.True(t, st.IsSuccess(), st.Message())
				assert.Equal(t, "admitted to queue root.b", got.Message)
				return
			}
			assert.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code())
			assert.Equal(t, st.Message(), got.Message, "the condition says what the scheduler says")
		})
	}
}
