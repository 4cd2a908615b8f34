package mustergang

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/plugintest"
)

func TestPodGroupStatus(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	pod := func(phase v1.PodPhase, node string) *v1.Pod {
		return &v1.Pod{Spec: v1.PodSpec{NodeName: node}, Status: v1.PodStatus{Phase: phase}}
	}
	tests := map[string]struct {
		before    schedv1alpha1.PodGroupPhase
		pods      []*v1.Pod
		want      schedv1alpha1.PodGroupPhase
		running   int32
		succeeded int32
		failed    int32
	}{
		"nothing bound":          {pods: []*v1.Pod{pod(v1.PodPending, ""), pod(v1.PodPending, "")}, want: schedv1alpha1.PodGroupPending},
		"quorum bound":           {pods: []*v1.Pod{pod(v1.PodPending, "n"), pod(v1.PodPending, "n")}, want: schedv1alpha1.PodGroupScheduling},
		"running":                {pods: []*v1.Pod{pod(v1.PodRunning, "n"), pod(v1.PodRunning, "n")}, want: schedv1alpha1.PodGroupRunning, running: 2},
		"one done, one running":  {pods: []*v1.Pod{pod(v1.PodSucceeded, "n"), pod(v1.PodRunning, "n")}, want: schedv1alpha1.PodGroupRunning, running: 1, succeeded: 1},
		"finished":               {pods: []*v1.Pod{pod(v1.PodSucceeded, "n"), pod(v1.PodSucceeded, "n")}, want: schedv1alpha1.PodGroupFinished, succeeded: 2},
		"failed":                 {pods: []*v1.Pod{pod(v1.PodFailed, "n"), pod(v1.PodSucceeded, "n")}, want: schedv1alpha1.PodGroupFailed, succeeded: 1, failed: 1},
		"finished, pods cleaned": {before: schedv1alpha1.PodGroupFinished, want: schedv1alpha1.PodGroupFinished},
		"failed, pods cleaned":   {before: schedv1alpha1.PodGroupFailed, want: schedv1alpha1.PodGroupFailed},
		"finished, reused":       {before: schedv1alpha1.PodGroupFinished, pods: []*v1.Pod{pod(v1.PodPending, ""), pod(v1.PodPending, "")}, want: schedv1alpha1.PodGroupPending},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			pg := &schedv1alpha1.PodGroup{Spec: schedv1alpha1.PodGroupSpec{MinMember: 2}, Status: schedv1alpha1.PodGroupStatus{Phase: tc.before}}
			got := podGroupStatus(pg, tc.pods, gang.Info{FirstSeen: start})
			assert.Equal(t, tc.want, got.Phase)
			if tc.before == "" {
				assert.Equal(t, tc.running, got.Running, "running")
				assert.Equal(t, tc.succeeded, got.Succeeded, "succeeded")
				assert.Equal(t, tc.failed, got.Failed, "failed")
				assert.Equal(t, metav1.NewTime(start), got.ScheduleStartTime)
			}
		})
	}
}

// leader is a leadership that changes when the test says.
type leader struct{ leading atomic.Bool }

func (l *leader) Leading() bool { return l.leading.Load() }

// TestPodGroupStatusWritten: the leader keeps a PodGroup's status in step
// with its pods; a standby keeps what is to write for when it leads.
func TestPodGroupStatusWritten(t *testing.T) {
	running := func(name string) *v1.Pod {
		return plugintest.MakePod(name).Label(gang.LabelPodGroup, "pg").Node("n0").Phase(v1.PodRunning).Obj()
	}
	lead := &leader{}
	e := newGangEnv(t, setup{objects: objects(nodes(1, "4"), running("p0"), running("p1")),
		podGroups: []*schedv1alpha1.PodGroup{podGroup("pg", 2)}, leader: lead})
	e.waitMembers(t, gang.Ref{Kind: gang.KindPodGroup, Namespace: plugintest.Namespace, Name: "pg"}, 2)
	e.waitTickers(t)
	e.Clock.Step(statusInterval) // a standby's tick

	lead.leading.Store(true)
	e.Clock.Step(statusInterval)
	read := func() schedv1alpha1.PodGroupStatus {
		pg, err := e.pgs.SchedulingV1alpha1().PodGroups(plugintest.Namespace).Get(e.Ctx, "pg", metav1.GetOptions{})
		require.NoError(t, err)
		return pg.Status
	}
	e.WaitFor(t, "the status written", func() bool {
		if read().Phase == schedv1alpha1.PodGroupRunning {
			return true
		}
		e.Clock.Step(statusInterval) // the leader's tick may have come before the standby's was handled
		return false
	})
	assert.Equal(t, int32(2), read().Running)
	assert.Equal(t, metav1.NewTime(plugintest.Start), read().ScheduleStartTime)
}
