package integration

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

// TestGangPodGroupStatusTerminal: muster writes a PodGroup's terminal phase
// too. Its pods run 2 s and succeed: the PodGroup ends Finished with every
// member counted as succeeded, not left Running (muster forgets a gang once
// its members have finished; its PodGroup must still get its last status).
func TestGangPodGroupStatusTerminal(t *testing.T) {
	ns := newNamespace(t)
	createNodes(t, node("pgstatus-0", "8", "32Gi", nil))
	startMuster(t)
	createPodGroup(t, ns, "short", 3, 3, "1", 2*time.Second, 0)
	waitFor(t, 60*time.Second, "every member succeeded", func(ctx context.Context) (bool, error) {
		pods, err := env.cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		n := 0
		for _, p := range pods.Items {
			if p.Status.Phase == v1.PodSucceeded {
				n++
			}
		}
		return n == 3, nil
	})
	waitFor(t, 30*time.Second, "PodGroup status Finished with 3 succeeded", func(ctx context.Context) (bool, error) {
		pg, err := podGroups(t).SchedulingV1alpha1().PodGroups(ns).Get(ctx, "short", metav1.GetOptions{})
		return err == nil && pg.Status.Phase == schedv1alpha1.PodGroupFinished && pg.Status.Succeeded == 3 && pg.Status.Running == 0, nil
	})
}
