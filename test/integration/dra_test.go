package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/status"
)

// gpuCluster creates nodes of 32 CPUs whose DRA driver publishes perNode
// devices each, a DeviceClass of that driver (named after the test) and,
// in ns, a ResourceClaimTemplate "one-gpu" asking for one device of it. It
// returns the class.
func gpuCluster(t *testing.T, ns, prefix string, nodes, perNode int) string {
	t.Helper()
	ctx := testContext(t)
	class := prefix + ".example.com"
	var names []string
	var ns32 []cluster.Node
	for i := range nodes {
		name := fmt.Sprintf("%s-%d", prefix, i)
		names = append(names, name)
		ns32 = append(ns32, node(name, "32", "128Gi", nil))
	}
	createNodes(t, ns32...)
	c := env.cp.Client
	_, err := c.ResourceV1().DeviceClasses().Create(ctx, cluster.DeviceClass(class, class), metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, cluster.CreateNodeDevices(ctx, c, class, perNode, nil, names...))
	t.Cleanup(func() {
		ctx := context.Background()
		for _, n := range names {
			_ = c.ResourceV1().ResourceSlices().Delete(ctx, n+"-"+class, metav1.DeleteOptions{})
		}
		_ = c.ResourceV1().DeviceClasses().Delete(ctx, class, metav1.DeleteOptions{})
	})
	_, err = c.ResourceV1().ResourceClaimTemplates(ns).Create(ctx, cluster.ClaimTemplate(ns, "one-gpu", class, 1), metav1.CreateOptions{})
	require.NoError(t, err)
	return class
}

// gpuPods returns n muster pods of 1 CPU with one device each.
func gpuPods(ns, prefix string, n int, labels, annotations map[string]string) []cluster.Pod {
	pods := gangPods(ns, prefix, n, "1", 0, labels, annotations)
	for i := range pods {
		pods[i].ClaimTemplates = []string{"one-gpu"}
	}
	return pods
}

// noDeviceTwice fails the test if two claims were given one device, and
// returns how many devices are allocated.
func noDeviceTwice(t *testing.T, ns string) int {
	t.Helper()
	claims, err := env.cp.Client.ResourceV1().ResourceClaims(ns).List(testContext(t), metav1.ListOptions{})
	require.NoError(t, err)
	owner := map[string]string{}
	for _, c := range claims.Items {
		if c.Status.Allocation == nil {
			continue
		}
		for _, r := range c.Status.Allocation.Devices.Results {
			id := r.Driver + "/" + r.Pool + "/" + r.Device
			if prev, ok := owner[id]; ok {
				t.Errorf("device %s allocated to claims %s and %s", id, prev, c.Name)
			}
			owner[id] = c.Name
		}
	}
	return len(owner)
}

// boundCount counts the pods of the list that are bound.
func boundCount(t *testing.T, ns string, pods []cluster.Pod) int {
	t.Helper()
	n := 0
	for _, p := range pods {
		got, err := env.cp.Client.CoreV1().Pods(ns).Get(testContext(t), p.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue // preempted, or deleted by the test
		}
		require.NoError(t, err)
		if got.Spec.NodeName != "" {
			n++
		}
	}
	return n
}

// TestDRAQuota: a queue's max on a device class holds pods that take DRA
// devices through ResourceClaims to that many devices, says so, counts them
// in its status, and admits the next pod when one gives its device back.
func TestDRAQuota(t *testing.T) {
	ns := newNamespace(t)
	class := gpuCluster(t, ns, "dra-quota", 2, 4)
	res := "deviceclass/" + class
	setQueues(t, fmt.Sprintf("queues:\n  - name: ml\n    max: {%s: \"3\"}\n", res))
	startMuster(t)

	pods := gpuPods(ns, "w", 5, map[string]string{queue.LabelQueue: "ml"}, nil)
	require.NoError(t, cluster.CreatePods(testContext(t), env.cp.Client, pods))
	waitFor(t, time.Minute, "3 pods bound", func(context.Context) (bool, error) { return countBound(t, ns) == 3, nil })
	var waiting string
	for _, p := range pods {
		got, err := env.cp.Client.CoreV1().Pods(ns).Get(testContext(t), p.Name, metav1.GetOptions{})
		require.NoError(t, err)
		if got.Spec.NodeName == "" {
			waiting = p.Name
		}
	}
	msg := waitUnschedulable(t, ns, waiting, 30*time.Second, res)
	assert.Contains(t, msg, "max", "the pod is told it waits for the queue's max: %s", msg)
	waitStatus(t, 30*time.Second, "ml using 3 devices", func(r status.Report) bool {
		q, ok := queueStatus(r, "root.ml")
		return ok && q.Allocated[res] == "3"
	})
	assert.Equal(t, 3, noDeviceTwice(t, ns))

	var bound *v1.Pod
	for _, p := range pods {
		if got, err := env.cp.Client.CoreV1().Pods(ns).Get(testContext(t), p.Name, metav1.GetOptions{}); err == nil && got.Spec.NodeName != "" {
			bound = got
			break
		}
	}
	require.NotNil(t, bound)
	require.NoError(t, env.cp.Client.CoreV1().Pods(ns).Delete(testContext(t), bound.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
	waitFor(t, time.Minute, "a fourth pod bound in the freed place", func(context.Context) (bool, error) {
		return boundCount(t, ns, pods) == 3 && countBound(t, ns) == 3, nil
	})
	assert.Equal(t, 3, noDeviceTwice(t, ns))
}

// TestDRAGangFit: a gang of 8 GPU workers, with CPU to spare everywhere but
// only 6 devices free, is not admitted (no member bound, told why); once 8
// are free it is bound whole, and no device is given twice.
func TestDRAGangFit(t *testing.T) {
	ns := newNamespace(t)
	class := gpuCluster(t, ns, "dra-gang", 4, 4)
	setQueues(t, "queues:\n  - name: ml\n  - name: serving\n")
	startMuster(t)

	serving := gpuPods(ns, "serve", 10, map[string]string{queue.LabelQueue: "serving"}, nil)
	require.NoError(t, cluster.CreatePods(testContext(t), env.cp.Client, serving))
	waitFor(t, time.Minute, "10 serving pods bound", func(context.Context) (bool, error) { return countBound(t, ns) == 10, nil })

	workers := gpuPods(ns, "train", 8, map[string]string{queue.LabelQueue: "ml", gang.LabelGang: "train"},
		map[string]string{gang.AnnotationMinMember: "8"})
	require.NoError(t, cluster.CreatePods(testContext(t), env.cp.Client, workers))
	msg := waitUnschedulable(t, ns, "train-0", 30*time.Second, "deviceclass/"+class)
	t.Logf("the gang waits: %s", msg)
	assert.Zero(t, boundCount(t, ns, workers), "no worker bound while only 6 devices are free")

	for _, p := range serving[:2] {
		require.NoError(t, env.cp.Client.CoreV1().Pods(ns).Delete(testContext(t), p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
	}
	for _, w := range workers {
		waitBound(t, ns, w.Name, time.Minute)
	}
	assert.Equal(t, 16, noDeviceTwice(t, ns))
}

// TestDRAReclaim: a queue below its guarantee of devices reclaims them from
// a queue that borrowed them all, for a gang of 4 GPU workers.
func TestDRAReclaim(t *testing.T) {
	ns := newNamespace(t)
	class := gpuCluster(t, ns, "dra-reclaim", 2, 4)
	res := "deviceclass/" + class
	setQueues(t, fmt.Sprintf("queues:\n  - name: ml\n    guaranteed: {%s: \"4\"}\n  - name: batch\n", res))
	s := startMuster(t)

	batch := gpuPods(ns, "batch", 8, map[string]string{queue.LabelQueue: "batch"}, nil)
	require.NoError(t, cluster.CreatePods(testContext(t), env.cp.Client, batch))
	waitFor(t, time.Minute, "every device taken by batch", func(context.Context) (bool, error) { return countBound(t, ns) == 8, nil })

	workers := gpuPods(ns, "train", 4, map[string]string{queue.LabelQueue: "ml", gang.LabelGang: "train"},
		map[string]string{gang.AnnotationMinMember: "4"})
	require.NoError(t, cluster.CreatePods(testContext(t), env.cp.Client, workers))
	for _, w := range workers {
		waitBound(t, ns, w.Name, time.Minute)
	}
	assert.Equal(t, 4, boundCount(t, ns, batch), "exactly the four devices owed were taken back")
	assert.LessOrEqual(t, noDeviceTwice(t, ns), 8)
	waitStatus(t, 30*time.Second, "ml using its 4 guaranteed devices", func(r status.Report) bool {
		q, ok := queueStatus(r, "root.ml")
		return ok && q.Allocated[res] == "4"
	})
	mf := scrape(t, s.Addr)
	gauge := func(q, typ string) float64 {
		return sumMetric(mf, "muster_queue_resource", map[string]string{"queue": q, "resource": res, "type": typ})
	}
	assert.Equal(t, 4.0, gauge("root.ml", "guaranteed"))
	assert.Equal(t, 4.0, gauge("root.ml", "allocated"))
	assert.Equal(t, 4.0, gauge("root.batch", "allocated"), "eight less the four taken back")
	evicted := 0
	for _, p := range batch {
		if evs := eventsFor(t, ns, p.Name, "Preempted"); len(evs) > 0 {
			evicted++
			assert.True(t, strings.Contains(evs[0], "train") || strings.Contains(evs[0], "ml"), "the victim is told what it made room for: %s", evs[0])
		}
	}
	assert.Equal(t, 4, evicted)
}
