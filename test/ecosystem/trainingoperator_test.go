package ecosystem

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/test/framework"
)

// TestEcosystemTrainingOperator runs Kubeflow's training-operator v1.8.1
// as a process with --gang-scheduler-name=muster (its PyTorchJob controller
// only), muster in-process, and the operator's simple PyTorchJob with 3
// workers and CPU requests (testdata/pytorchjob.yaml). The operator makes
// a scheduler-plugins PodGroup and labelled pods; muster must bind them
// all together or not at all, and keep the PodGroup's status.
func TestEcosystemTrainingOperator(t *testing.T) {
	b := operatorBuild(t, "training-operator")
	var crds []string
	for _, f := range b.crds {
		// The PyTorchJob controller alone: the operator's MPIJob CRD (v1)
		// would share its name with the MPI operator's (v2beta1).
		if strings.HasSuffix(f, "kubeflow.org_pytorchjobs.yaml") {
			crds = append(crds, f)
		}
	}
	require.Len(t, crds, 1, "the PyTorchJob CRD among %v", b.crds)
	installCRDs(t, crds)
	startMuster(t)
	op := startTrainingOperator(t, b)

	t.Run("PyTorchJob", func(t *testing.T) { testPyTorchJobAllOrNothing(t, op, newDyn(t)) })
}

// The training-operator's webhook certificate: a Secret it fills itself
// (in MY_POD_NAMESPACE), mounted into fixedCertDir (pkg/cert/cert.go).
const trainingOperatorSecret = "training-operator-webhook-cert"

// startTrainingOperator runs the training-operator with its PyTorchJob
// controller and --gang-scheduler-name=muster, plays the kubelet for its
// certificate (the operator starts its controllers only once tls.crt is in
// its fixed directory), and waits until it is ready.
func startTrainingOperator(t *testing.T, b *build) *operator {
	t.Helper()
	ns := framework.NewNamespace(t) // the operator's own namespace (its Secret)
	_, err := framework.CP.Client.CoreV1().Secrets(ns).Create(context.Background(),
		&v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: trainingOperatorSecret}}, metav1.CreateOptions{})
	require.NoError(t, err)
	holdFixedCertDir(t)
	health, webhook := freeAddr(t), freeAddr(t)
	_, port, _ := strings.Cut(webhook, ":")
	op := startOperator(t, "training-operator", b.bin, []string{"MY_POD_NAMESPACE=" + ns},
		"--kubeconfig="+framework.CP.Kubeconfig,
		"--metrics-bind-address=127.0.0.1:0",
		"--health-probe-bind-address="+health,
		"--webhook-server-port="+port,
		"--gang-scheduler-name="+scheduler.SchedulerName,
		"--enable-scheme=pytorchjob")
	mountSecret(t, op, ns, trainingOperatorSecret, fixedCertDir)
	t.Logf("training-operator ready (/readyz: certificates in place, webhook server up) %s after start",
		op.waitReady(t, health, 3*time.Minute).Round(time.Millisecond))
	return op
}

// testPyTorchJobAllOrNothing: the PyTorchJob's master and 3 workers (2 CPU
// each) on three nodes of 3 CPU (9 CPU free in total, more than the
// PodGroup's minResources, but room for 3 pods): none is bound, and muster
// says the PodGroup does not fit; one more node and all 4 are bound, each
// once, in the namespace's queue, and the PodGroup's status says so.
func testPyTorchJobAllOrNothing(t *testing.T, op *operator, d *dyn) {
	ns := framework.NewNamespace(t)
	mapQueue(t, ns, "root.ml")
	pods := watchPods(t, ns)
	nodes := []cluster.Node{onDemandNode("to-1", "3", "zone-a"), spotNode("to-2", "3", "zone-a"), spotNode("to-3", "3", "zone-b")}
	framework.CreateNodes(t, nodes...)

	job := testdata(t, "pytorchjob.yaml")[0]
	created := time.Now()
	d.create(t, ns, job)
	d.deleteAtEnd(t, ns, job)
	members := pods.waitPods(t, 4, time.Minute)
	t.Logf("the training-operator created %d pods %s after the PyTorchJob: %s", len(members), time.Since(created).Round(time.Millisecond), names(members))

	pgs := framework.PodGroupClient(t).SchedulingV1alpha1().PodGroups(ns)
	pg, err := pgs.Get(context.Background(), "pytorch-simple", metav1.GetOptions{})
	require.NoError(t, err, "the operator's PodGroup")
	assert.EqualValues(t, 4, pg.Spec.MinMember)
	t.Logf("PodGroup: minMember %d, minResources cpu=%s", pg.Spec.MinMember, pg.Spec.MinResources.Cpu())
	for _, p := range members {
		assert.Equal(t, "pytorch-simple", p.Labels[gang.LabelPodGroup], "pod %s", p.Name)
	}

	ref := "PodGroup " + ns + "/pytorch-simple"
	t.Logf("held back: %s", unschedulable(t, ns, members, time.Minute, ref))
	assert.Equal(t, 0, framework.CountBound(t, ns), "no member bound while the gang does not fit")
	waitPendingGang(t, ref, "root.ml", 30*time.Second)

	added := time.Now()
	extra := spotNode("to-4", "3", "zone-c")
	framework.CreateNodes(t, extra)
	bound := pods.waitBound(t, 4, time.Minute)
	t.Logf("all %d bound %s after the node was added (first bind after %s)", len(bound),
		bound[len(bound)-1].Bound.Sub(added).Round(time.Millisecond), bound[0].Bound.Sub(added).Round(time.Millisecond))
	types := capacityTypes(t, append(nodes, extra)...)
	for _, p := range bound {
		assert.Contains(t, admittedTo(t, ns, p.Name, 30*time.Second), "root.ml", "pod %s admitted to its namespace's queue", p.Name)
		// The roles' defaults, from the operator's replica-type label: the
		// master prefers on-demand, the workers spot.
		want := capacity.Spot
		if p.Labels["training.kubeflow.org/replica-type"] == "master" {
			want = capacity.OnDemand
		}
		assert.Equal(t, want, types[p.Node], "pod %s on %s", p.Name, p.Node)
	}
	framework.WaitFor(t, 30*time.Second, "the PodGroup's status to say Running with 4 running", func(ctx context.Context) (bool, error) {
		pg, err = pgs.Get(ctx, "pytorch-simple", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return pg.Status.Phase == schedv1alpha1.PodGroupRunning && pg.Status.Running == 4, nil
	})
	t.Logf("PodGroup status: phase %s, running %d, scheduleStartTime %s", pg.Status.Phase, pg.Status.Running, pg.Status.ScheduleStartTime)
	waitAllocated(t, "root.ml", "8", 30*time.Second)
	pods.checkBoundOnce(t, 4)
	op.requireRunning(t)
}
