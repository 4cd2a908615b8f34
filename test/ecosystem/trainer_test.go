package ecosystem

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
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

// TestEcosystemTrainer runs Kubeflow Trainer's trainer-controller-manager
// v2.0.0 as a process, JobSet's jobset-controller v0.11.0 with its
// defaulting webhook (a TrainJob becomes a JobSet), the Job controller and
// muster in-process, the admin's ClusterTrainingRuntime
// (testdata/trainer-runtime.yaml: torch_distributed plus schedulerName:
// muster and a coscheduling podGroupPolicy) and a TrainJob as Trainer's docs
// write it (testdata/trainjob.yaml); docs/integrations/trainer.md shows
// both. Trainer makes a scheduler-plugins PodGroup and a JobSet whose pods
// carry both; muster must bind them as one gang, all or nothing.
func TestEcosystemTrainer(t *testing.T) {
	b := operatorBuild(t, "trainer")
	js := operatorBuild(t, "jobset")
	installCRDs(t, append(append([]string(nil), js.crds...), b.crds...)) // Trainer watches JobSets
	startMuster(t)
	startJobController(t)
	jsOp := startJobSetController(t, js)
	op := startTrainer(t, b)
	d := newDyn(t)
	runtime := testdata(t, "trainer-runtime.yaml")[0]
	d.create(t, "", runtime)
	d.deleteAtEnd(t, "", runtime)

	t.Run("TrainJob", func(t *testing.T) { testTrainJobAllOrNothing(t, d, op, jsOp) })
}

// Trainer's webhook certificate: a Secret it fills itself in its fixed
// namespace (kubeflow-system unless it runs in a pod; pkg/util/cert/cert.go),
// mounted into fixedCertDir.
const (
	trainerNamespace = "kubeflow-system"
	trainerSecret    = "kubeflow-trainer-webhook-cert"
)

// startTrainer runs trainer-controller-manager, plays the kubelet for its
// certificate (it starts its controllers only once tls.crt is in
// fixedCertDir), and waits until it is ready.
func startTrainer(t *testing.T, b *build) *operator {
	t.Helper()
	ctx := context.Background()
	_, err := framework.CP.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: trainerNamespace}}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) { // kept for the package's control plane: a deleted namespace never goes (no namespace controller)
		require.NoError(t, err)
	}
	secrets := framework.CP.Client.CoreV1().Secrets(trainerNamespace)
	_, err = secrets.Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: trainerSecret}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = secrets.Delete(context.Background(), trainerSecret, metav1.DeleteOptions{}) })

	holdFixedCertDir(t)
	health, webhook := freeAddr(t), freeAddr(t)
	_, port, _ := strings.Cut(webhook, ":")
	op := startOperator(t, "trainer-controller-manager", b.bin, nil,
		"--kubeconfig="+framework.CP.Kubeconfig,
		"--metrics-bind-address=0",
		"--health-probe-bind-address="+health,
		"--webhook-server-port="+port)
	mountSecret(t, op, trainerNamespace, trainerSecret, fixedCertDir)
	t.Logf("trainer-controller-manager ready (/readyz: certificates in place, webhook server up) %s after start",
		op.waitReady(t, health, 3*time.Minute).Round(time.Millisecond))
	return op
}

// testTrainJobAllOrNothing: the TrainJob's 2 nodes (1 CPU, 1Gi each) on
// one node of 1 CPU: neither is bound, and muster says the PodGroup does
// not fit; a second node and both are bound, each once, in the namespace's
// queue. The pods name a PodGroup and a JobSet; the PodGroup is the gang.
// Its minResources is empty (Trainer sums the runtime's requests, not the
// TrainJob's resourcesPerNode): muster takes the pods' own requests, as the
// queue's pending and allocated show.
func testTrainJobAllOrNothing(t *testing.T, d *dyn, ops ...*operator) {
	ns, pods := jobNamespace(t, "root.ml")
	framework.CreateNodes(t, framework.Node("tr-1", "1", "16Gi", nil))

	job := testdata(t, "trainjob.yaml")[0]
	created := time.Now()
	d.create(t, ns, job)
	d.deleteAtEnd(t, ns, job)
	members := pods.waitPods(t, 2, 2*time.Minute)
	t.Logf("Trainer, JobSet and the Job controller created %d pods %s after the TrainJob: %s", len(members), time.Since(created).Round(time.Millisecond), names(members))
	checkTrainJobPods(t, ns, members)

	pg, err := framework.PodGroupClient(t).SchedulingV1alpha1().PodGroups(ns).Get(context.Background(), "pytorch-simple", metav1.GetOptions{})
	require.NoError(t, err, "Trainer's PodGroup")
	assert.EqualValues(t, 2, pg.Spec.MinMember, "numNodes")
	assert.Empty(t, pg.Spec.MinResources, "Trainer v2.0.0 leaves minResources empty when the TrainJob sets the resources")
	t.Logf("PodGroup: minMember %d, minResources %v, scheduleTimeoutSeconds %s", pg.Spec.MinMember, pg.Spec.MinResources, ptrString(pg.Spec.ScheduleTimeoutSeconds))

	ref := "PodGroup " + ns + "/pytorch-simple"
	t.Logf("held back: %s", unschedulable(t, ns, members, time.Minute, ref, "does not fit on this cluster"))
	assert.Equal(t, 0, framework.CountBound(t, ns), "no member bound while the gang does not fit")
	g := waitPendingGang(t, ref, "root.ml", 30*time.Second)
	assert.EqualValues(t, 2, g.MinMember)
	want := map[string]string{"cpu": "2", "memory": "2Gi"} // 2 × resourcesPerNode
	waitQueue(t, "root.ml", "pending", want, func(q status.Queue) map[string]string { return q.Pending })

	added := time.Now()
	framework.CreateNodes(t, framework.Node("tr-2", "1", "16Gi", nil))
	bound := pods.waitBound(t, 2, time.Minute)
	t.Logf("both bound %s after the node was added (first bind after %s): %v",
		bound[len(bound)-1].Bound.Sub(added).Round(time.Millisecond), bound[0].Bound.Sub(added).Round(time.Millisecond), nodeOf(t, bound))
	for _, p := range bound {
		assert.Contains(t, admittedTo(t, ns, p.Name, 30*time.Second), "root.ml", "pod %s admitted to its namespace's queue", p.Name)
	}
	waitQueue(t, "root.ml", "allocated", want, func(q status.Queue) map[string]string { return q.Allocated })
	var admitted []string
	framework.WaitFor(t, 15*time.Second, "the GangAdmitted Event on the PodGroup", func(context.Context) (bool, error) {
		admitted = eventsOn(t, ns, "PodGroup", "pytorch-simple", "GangAdmitted")
		return len(admitted) > 0, nil
	})
	t.Logf("Event on PodGroup %s/pytorch-simple: %s", ns, admitted[0])
	assert.Empty(t, eventsOn(t, ns, "JobSet", "pytorch-simple", "GangAdmitted"), "no second gang of the JobSet")
	waitPodGroupRunning(t, ns, "pytorch-simple", 2)
	pods.checkBoundOnce(t, 2)
	for _, op := range ops {
		op.requireRunning(t)
	}
}

// checkTrainJobPods: each pod names the PodGroup and the JobSet, and muster
// takes the PodGroup (gang.Identify: PodGroups come first).
func checkTrainJobPods(t *testing.T, ns string, members []podRecord) {
	t.Helper()
	for _, p := range members {
		assert.Equal(t, "pytorch-simple", p.Labels[gang.LabelPodGroup], "pod %s", p.Name)
		assert.Equal(t, "pytorch-simple", p.Labels[gang.LabelJobSet], "pod %s", p.Name)
		pod, err := framework.CP.Client.CoreV1().Pods(ns).Get(context.Background(), p.Name, metav1.GetOptions{})
		require.NoError(t, err)
		ref, _, ok := gang.Identify(pod)
		require.True(t, ok, "pod %s is in a gang", p.Name)
		assert.Equal(t, gang.KindPodGroup, ref.Kind, "pod %s: the PodGroup, not the JobSet, is its gang", p.Name)
		requests := v1.ResourceList{}
		for _, c := range pod.Spec.Containers {
			for r, q := range c.Resources.Requests {
				sum := requests[r]
				sum.Add(q)
				requests[r] = sum
			}
		}
		assert.Equal(t, "1", requests.Cpu().String(), "pod %s requests resourcesPerNode", p.Name)
	}
}

// waitQueue waits until the status ConfigMap shows queue's figure (what)
// equal to want in each resource named.
func waitQueue(t *testing.T, queue, what string, want map[string]string, figure func(status.Queue) map[string]string) {
	t.Helper()
	framework.WaitStatus(t, framework.CP.Client, 30*time.Second, fmt.Sprintf("%s %s %v in the status ConfigMap", queue, what, want), func(r status.Report) (bool, error) {
		for _, q := range r.Queues {
			if q.Queue != queue {
				continue
			}
			got := figure(q)
			for name, w := range want {
				g, err := resource.ParseQuantity(got[name])
				if err != nil || g.Cmp(resource.MustParse(w)) != 0 {
					return false, nil
				}
			}
			return true, nil
		}
		return false, nil
	})
}

// eventsOn lists the Events with reason about the object of kind and name
// in ns, each as "type: message" (a TrainJob's PodGroup and JobSet share
// its name).
func eventsOn(t *testing.T, ns, kind, name, reason string) []string {
	t.Helper()
	list, err := framework.CP.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.AndSelectors(
			fields.OneTermEqualSelector("involvedObject.kind", kind),
			fields.OneTermEqualSelector("involvedObject.name", name),
			fields.OneTermEqualSelector("reason", reason),
		).String(),
	})
	require.NoError(t, err)
	var notes []string
	for _, e := range list.Items {
		notes = append(notes, e.Type+": "+e.Message)
	}
	return notes
}

// waitPodGroupRunning waits until muster has written the PodGroup's status
// phase Running with running members.
func waitPodGroupRunning(t *testing.T, ns, name string, running int32) {
	t.Helper()
	var pg *schedv1alpha1.PodGroup
	framework.WaitFor(t, 30*time.Second, fmt.Sprintf("PodGroup %s's status to say Running with %d running", name, running), func(ctx context.Context) (bool, error) {
		var err error
		pg, err = framework.PodGroupClient(t).SchedulingV1alpha1().PodGroups(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return pg.Status.Phase == schedv1alpha1.PodGroupRunning && pg.Status.Running == running, nil
	})
	t.Logf("PodGroup status: phase %s, running %d, scheduleStartTime %s", pg.Status.Phase, pg.Status.Running, pg.Status.ScheduleStartTime)
}
