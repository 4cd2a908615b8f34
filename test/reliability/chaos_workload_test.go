package reliability

import (
	"context"
	"fmt"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/resources"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

// sparkDriver is a Spark driver asking muster to reserve room for
// executors of 500m with it.
func sparkDriver(app string, executors int) podSpec {
	return podSpec{name: app + "-driver", cpu: "500m",
		labels: map[string]string{gang.LabelSparkApp: app, gang.LabelSparkRole: string(gang.SparkDriver)},
		annotations: map[string]string{gang.AnnotationMinExecutors: strconv.Itoa(executors),
			gang.AnnotationExecutorResources: "cpu=500m"}}
}

// sparkExecutor is executor i of a Spark app, running for d (0: until
// deleted).
func sparkExecutor(app string, i int, d time.Duration) podSpec {
	return podSpec{name: fmt.Sprintf("%s-exec-%d", app, i), cpu: "500m", duration: d,
		labels: map[string]string{gang.LabelSparkApp: app, gang.LabelSparkRole: string(gang.SparkExecutor)}}
}

// sparkApp runs one Spark application as Spark on Kubernetes does: the
// driver (with muster.dev/min-executors), then, once it is bound, its
// executors (min-executors of them, and every third app one more, as
// dynamic allocation adds), which run 3 s; then the driver ends and is
// deleted. Every sixth app is deleted right after its driver is created
// (while it is being admitted or bound). An app once started runs to its
// end even if the churn stops meanwhile.
func (c *churn) sparkApp(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	n, rnd := c.next()
	c.mu.Lock()
	executors := 1 + rnd.Intn(3)
	extra := n%3 == 0
	doomed := n%6 == 0
	c.sparkApps++
	if doomed {
		c.sparkDoomed++
	}
	c.mu.Unlock()
	app := fmt.Sprintf("spark%d", n)
	driver := sparkDriver(app, executors)
	if err := c.createPod(ctx, driver); err != nil {
		c.fail(ctx, err)
		return
	}
	if doomed {
		c.fail(ctx, c.deletePod(ctx, driver.name))
		return
	}
	d, err := c.waitPod(ctx, driver.name, 5*time.Minute, "bound", func(p *v1.Pod) bool { return p.Spec.NodeName != "" })
	if err != nil {
		c.fail(ctx, err)
		return
	}
	if extra {
		executors++
	}
	var names []string
	for i := 0; i < executors; i++ {
		e := sparkExecutor(app, i, 3*time.Second)
		names = append(names, e.name)
		if err := c.createPod(ctx, e); err != nil {
			c.fail(ctx, err)
			return
		}
	}
	for _, name := range names {
		if err := c.waitFinished(ctx, name); err != nil {
			c.fail(ctx, err)
			return
		}
	}
	// The app ends: its driver goes, once the test's watch has seen it
	// bound (it may be reconnecting after an apiserver outage).
	if err := pollUntil(2*time.Minute, func(context.Context) bool { return c.w.seen(d.UID) }); err != nil {
		c.fail(ctx, fmt.Errorf("the watch never saw driver %s/%s bound: %w", c.ns, driver.name, err))
	}
	c.fail(ctx, c.deletePod(ctx, driver.name))
}

// waitFinished waits until a pod of the churn's namespace has finished. A
// pod that is gone has: the churn's clean-up deletes only finished pods, and
// may do so while the apiserver is away from this poll (an outage).
func (c *churn) waitFinished(ctx context.Context, name string) error {
	var last *v1.Pod
	err := pollUntil(5*time.Minute, func(pctx context.Context) bool {
		p, err := framework.CP.Client.CoreV1().Pods(c.ns).Get(pctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true
		}
		if err != nil {
			return false
		}
		last = p
		return p.Status.Phase == v1.PodSucceeded
	})
	if err != nil {
		msg := "never seen"
		if last != nil {
			msg = fmt.Sprintf("node %q, phase %s, %s", last.Spec.NodeName, last.Status.Phase, scheduledMessage(last))
		}
		return fmt.Errorf("pod %s/%s not finished within 5m (%s)", c.ns, name, msg)
	}
	return nil
}

// waitPod polls a pod of the churn's namespace until cond holds, through
// apiserver outages, for at most timeout, and returns it.
func (c *churn) waitPod(ctx context.Context, name string, timeout time.Duration, what string, cond func(*v1.Pod) bool) (*v1.Pod, error) {
	var last *v1.Pod
	err := pollUntil(timeout, func(pctx context.Context) bool {
		p, err := framework.CP.Client.CoreV1().Pods(c.ns).Get(pctx, name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		last = p
		return cond(p)
	})
	if err != nil {
		msg := "never seen"
		if last != nil {
			msg = fmt.Sprintf("node %q, phase %s, %s", last.Spec.NodeName, last.Status.Phase, scheduledMessage(last))
		}
		return nil, fmt.Errorf("pod %s/%s not %s within %s (%s)", c.ns, name, what, timeout, msg)
	}
	return last, nil
}

// scheduledMessage is a pod's PodScheduled condition, for diagnosis.
func scheduledMessage(p *v1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodScheduled {
			return fmt.Sprintf("PodScheduled=%s %s: %s", c.Status, c.Reason, c.Message)
		}
	}
	return "no PodScheduled condition"
}

// leafUsage is what a leaf queue holds: its bound, unfinished pods'
// requests and their number.
type leafUsage struct {
	Allocated map[string]string
	Pods      int
}

// clusterUsage sums, per leaf queue, the requests of the bound, unfinished
// muster pods of the namespaces mapped to it.
func clusterUsage(ctx context.Context, leafOf map[string]string) (map[string]leafUsage, error) {
	sums := map[string]resources.Vector{}
	pods := map[string]int{}
	for ns, leaf := range leafOf {
		list, err := framework.CP.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for i := range list.Items {
			p := &list.Items[i]
			if p.Spec.SchedulerName != scheduler.SchedulerName || p.Spec.NodeName == "" ||
				p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
				continue
			}
			if sums[leaf] == nil {
				sums[leaf] = resources.Vector{}
			}
			sums[leaf].Add(resources.PodRequest(p))
			pods[leaf]++
		}
	}
	out := map[string]leafUsage{}
	for leaf, v := range sums {
		out[leaf] = leafUsage{Allocated: v.Quantities(), Pods: pods[leaf]}
	}
	return out, nil
}

// usageMatches: every leaf queue of the report holds exactly what the
// cluster says (nothing, for a leaf the cluster has no pods in).
func usageMatches(r status.Report, want map[string]leafUsage) bool {
	seen := 0
	for _, q := range r.Queues {
		if !q.Leaf {
			continue
		}
		u := want[q.Queue]
		if _, ok := want[q.Queue]; ok {
			seen++
		}
		if q.RunningPods != u.Pods || !sameQuantities(q.Allocated, u.Allocated) {
			return false
		}
	}
	return seen == len(want)
}

func sameQuantities(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
