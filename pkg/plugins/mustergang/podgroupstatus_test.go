package mustergang

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/gang"
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
