package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/yaml"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/explain"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/pkg/waitreason"
)

// conditionWatcher follows muster's condition on the pods of a namespace
// by watch, and counts its changes: each one is an API write by muster.
type conditionWatcher struct {
	mu      sync.Mutex
	last    map[string]string // pod -> "status reason" of its condition
	changes int
}

func watchConditions(t *testing.T, ns string) *conditionWatcher {
	t.Helper()
	ctx := testContext(t)
	w := &conditionWatcher{last: map[string]string{}}
	wi, err := env.cp.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	t.Cleanup(wi.Stop)
	go func() {
		for ev := range wi.ResultChan() {
			p, ok := ev.Object.(*v1.Pod)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			now := ""
			if c := status.Condition(p); c != nil {
				now = string(c.Status) + " " + c.Reason
			}
			w.mu.Lock()
			if now != w.last[p.Name] {
				w.changes++
				w.last[p.Name] = now
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *conditionWatcher) of(pod string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[pod]
}

func (w *conditionWatcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changes
}

// waitCondition waits until the pod carries muster's condition with the
// status and reason, and returns the pod.
func waitCondition(t *testing.T, ns, name string, st v1.ConditionStatus, reason waitreason.Code) *v1.Pod {
	t.Helper()
	var pod *v1.Pod
	waitFor(t, time.Minute, fmt.Sprintf("pod %s to carry %s=%s %s", name, waitreason.ConditionType, st, reason), func(ctx context.Context) (bool, error) {
		p, err := env.cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pod = p
		c := status.Condition(p)
		return c != nil && c.Status == st && c.Reason == string(reason), nil
	})
	return pod
}

// TestGangAdmissionCondition: a gang of 8 waits for its members, then for
// room, and is admitted; each member's muster.dev/Admitted condition says
// why at each stage, with its code, and the whole costs one write per
// member and code however often the members are retried.
func TestGangAdmissionCondition(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	createNodes(t, node("cond-0", "4", "16Gi", nil), node("cond-1", "4", "16Gi", nil))
	startMuster(t)
	w := watchConditions(t, ns)

	// A plain pod holds 3 of the 8 CPUs: the gang of 8 x 1 CPU cannot fit.
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "blocker", 1, "3", 0, nil)))
	waitBound(t, ns, "blocker-0", time.Minute)

	members := gangPods(ns, "train", 8, "1", 0, map[string]string{gang.LabelGang: "train"}, map[string]string{gang.AnnotationMinMember: "8"})
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, members[:7]))
	for _, m := range members[:7] {
		waitCondition(t, ns, m.Name, v1.ConditionFalse, waitreason.MembersMissing)
	}
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, members[7:]))
	var waiting *v1.Pod
	for _, m := range members {
		waiting = waitCondition(t, ns, m.Name, v1.ConditionFalse, waitreason.NotEnoughRoom)
	}
	excerpt, err := yaml.Marshal(map[string]any{"status": map[string]any{"conditions": waiting.Status.Conditions}})
	require.NoError(t, err)
	t.Logf("a waiting member, kubectl get pod %s -o yaml (excerpt):\n%s", waiting.Name, excerpt)
	sched := podCondition(waiting, v1.PodScheduled)
	require.NotNil(t, sched)
	assert.Equal(t, v1.PodReasonUnschedulable, sched.Reason, "kube-scheduler's condition is left alone")
	assert.Contains(t, status.Condition(waiting).Message, "Annotation "+ns+"/train: not enough room yet")

	waitStatus(t, time.Minute, "the gang's code in the status", func(r status.Report) bool {
		for _, g := range r.PendingGangs {
			if g.Gang == "Annotation "+ns+"/train" {
				return g.ReasonCode == waitreason.NotEnoughRoom
			}
		}
		return false
	})
	e := runExplain(t, "--gang", "train", "-n", ns)
	assert.Equal(t, explain.GangWaiting, e.Verdict)
	assert.Equal(t, waitreason.NotEnoughRoom, e.ReasonCode)

	require.NoError(t, env.cp.Client.CoreV1().Pods(ns).Delete(ctx, "blocker-0", metav1.DeleteOptions{}))
	for _, m := range members {
		waitBound(t, ns, m.Name, time.Minute)
		admitted := waitCondition(t, ns, m.Name, v1.ConditionTrue, waitreason.Admitted)
		assert.Equal(t, "admitted to queue root.default", status.Condition(admitted).Message)
	}
	excerpt, err = yaml.Marshal(map[string]any{"status": map[string]any{"conditions": []v1.PodCondition{*status.Condition(waitBound(t, ns, waiting.Name, time.Minute))}}})
	require.NoError(t, err)
	t.Logf("the same member once admitted (excerpt):\n%s", excerpt)
	waitFor(t, 10*time.Second, "the watch to see every write", func(context.Context) (bool, error) { return w.count() >= 23, nil })
	t.Logf("condition writes for the gang of 8: %d (7 MembersMissing, 8 NotEnoughRoom, 8 Admitted)", w.count())
	assert.Equal(t, 7+8+8, w.count(), "one write per member and code")
	assert.Empty(t, w.of("blocker-0"), "a pod never held back gets no condition")
}

func podCondition(p *v1.Pod, t v1.PodConditionType) *v1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}
