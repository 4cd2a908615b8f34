package ecosystem

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/test/framework"
)

// TestEcosystemMPIOperator runs Kubeflow's MPI operator v0.6.0 as a process
// with --gang-scheduling=muster, the Job controller in-process (the
// launcher is a batch Job's pod), muster in-process, and the operator's pi
// example unchanged (testdata/mpijob.yaml; docs/integrations/mpi-operator.md
// shows it). The operator makes a scheduler-plugins PodGroup of the workers
// and the launcher; muster must bind its pods all together or not at all,
// and keep the PodGroup's status.
func TestEcosystemMPIOperator(t *testing.T) {
	b := operatorBuild(t, "mpi-operator")
	installCRDs(t, b.crds)
	startMuster(t)
	startJobController(t)
	op := startMPIOperator(t, b)
	d := newDyn(t)

	t.Run("AllOrNothing", func(t *testing.T) { testMPIJobAllOrNothing(t, op, d) })
	t.Run("WaitForWorkersReady", func(t *testing.T) { testMPIJobWaitForWorkersReady(t, op, d) })
	t.Run("WaitForWorkersReadyMinAvailable", func(t *testing.T) { testMPIJobWaitForWorkersReadyMinAvailable(t, op, d) })
}

// mpiOperatorHealthPort is the MPI operator's health server's port, fixed
// in its code (cmd/mpi-operator/app/server.go, healthCheckPort).
const mpiOperatorHealthPort = 8080

// Labels the MPI operator puts on its pods (pkg/controller/mpi_job_controller.go).
const (
	labelMPIJobRole = "training.kubeflow.org/job-role"
	mpiRoleLauncher = "launcher"
	mpiRoleWorker   = "worker"
)

// startMPIOperator runs mpi-operator with --gang-scheduling=muster and
// waits until it leads and its controller's workers run.
//
// Its leader election cannot be turned off; the test gives it a namespace
// of its own for the Lease (--lock-namespace; a cluster uses the default,
// mpi-operator, where it is installed). Its health server listens on :8080,
// fixed in its code (cmd/mpi-operator/app/server.go, healthCheckPort), and
// it exits if the port is taken: nothing else in this package binds 8080
// (the other operators and muster get loopback ports from freeAddr or port
// 0), and no two MPI operators run at once. KUBECONFIG in the environment
// would override --kubeConfig, so the test sets it to the same file.
func startMPIOperator(t *testing.T, b *build) *operator {
	t.Helper()
	l, err := net.Listen("tcp", fmt.Sprintf(":%d", mpiOperatorHealthPort))
	require.NoError(t, err, "port %d must be free for the MPI operator's health server (fixed in its code); another process on this machine holds it", mpiOperatorHealthPort)
	require.NoError(t, l.Close())
	lockNS := framework.NewNamespace(t)
	op := startOperator(t, "mpi-operator", b.bin, []string{"KUBECONFIG=" + framework.CP.Kubeconfig},
		"--kubeConfig="+framework.CP.Kubeconfig,
		"--gang-scheduling="+scheduler.SchedulerName,
		"--lock-namespace="+lockNS,
		"--monitoring-port=0")
	op.waitLog(t, "Started workers", 2*time.Minute)
	t.Logf("mpi-operator leading with its controller's workers started %s after start",
		time.Since(op.started()).Round(time.Millisecond))
	return op
}

// mpiJob is testdata/mpijob.yaml, with spec.launcherCreationPolicy set when
// policy is not empty and runPolicy.schedulingPolicy.minAvailable when
// minAvailable > 0.
func mpiJob(t *testing.T, policy string, minAvailable int64) *unstructured.Unstructured {
	t.Helper()
	objs := testdata(t, "mpijob.yaml")
	require.Len(t, objs, 1)
	if policy != "" {
		require.NoError(t, unstructured.SetNestedField(objs[0].Object, policy, "spec", "launcherCreationPolicy"))
	}
	if minAvailable > 0 {
		require.NoError(t, unstructured.SetNestedField(objs[0].Object, minAvailable, "spec", "runPolicy", "schedulingPolicy", "minAvailable"))
	}
	return objs[0]
}

// testMPIJobAllOrNothing: pi's launcher and 2 workers (1 CPU each) on an
// on-demand node and a spot node of 1 CPU (room for 2 pods): none is bound,
// and muster says the PodGroup does not fit; one more spot node and all 3
// are bound, each once, in the namespace's queue, and the PodGroup's status
// says so. The launcher is created at once (launcherCreationPolicy
// AtStartup, the default), so the quorum of 3 exists from the start.
func testMPIJobAllOrNothing(t *testing.T, op *operator, d *dyn) {
	ns, pods := jobNamespace(t, "root.ml")
	nodes := []cluster.Node{onDemandNode("mpi-od-1", "1", "zone-a"), spotNode("mpi-spot-1", "1", "zone-a")}
	framework.CreateNodes(t, nodes...)

	job := mpiJob(t, "", 0)
	created := time.Now()
	d.create(t, ns, job)
	d.deleteAtEnd(t, ns, job)
	members := pods.waitPods(t, 3, time.Minute)
	t.Logf("the MPI operator and the Job controller created %d pods %s after the MPIJob: %s", len(members), time.Since(created).Round(time.Millisecond), names(members))
	checkMPIPods(t, ns, members)

	pgs := framework.PodGroupClient(t).SchedulingV1alpha1().PodGroups(ns)
	pg, err := pgs.Get(context.Background(), "pi", metav1.GetOptions{})
	require.NoError(t, err, "the operator's PodGroup")
	assert.EqualValues(t, 3, pg.Spec.MinMember, "workers 2 + launcher 1")
	assert.Equal(t, "3", pg.Spec.MinResources.Cpu().String())
	t.Logf("PodGroup: minMember %d, minResources cpu=%s memory=%s, scheduleTimeoutSeconds %v",
		pg.Spec.MinMember, pg.Spec.MinResources.Cpu(), pg.Spec.MinResources.Memory(), ptrString(pg.Spec.ScheduleTimeoutSeconds))

	ref := "PodGroup " + ns + "/pi"
	t.Logf("held back: %s", unschedulable(t, ns, members, time.Minute, ref, "does not fit on this cluster"))
	assert.Equal(t, 0, framework.CountBound(t, ns), "no member bound while the gang does not fit")
	g := waitPendingGang(t, ref, "root.ml", 30*time.Second)
	assert.EqualValues(t, 3, g.MinMember)

	extra := spotNode("mpi-spot-2", "1", "zone-b")
	added := time.Now()
	framework.CreateNodes(t, extra)
	bound := pods.waitBound(t, 3, time.Minute)
	t.Logf("all %d bound %s after the node was added (first bind after %s): %v", len(bound),
		bound[len(bound)-1].Bound.Sub(added).Round(time.Millisecond), bound[0].Bound.Sub(added).Round(time.Millisecond), nodeOf(t, bound))
	for _, p := range bound {
		assert.Contains(t, admittedTo(t, ns, p.Name, 30*time.Second), "root.ml", "pod %s admitted to its namespace's queue", p.Name)
	}
	types := capacityTypes(t, append(nodes, extra)...)
	t.Run("LauncherOnOnDemand", func(t *testing.T) { testMPILauncherOnOnDemand(t, bound, types) })

	framework.WaitFor(t, 30*time.Second, "the PodGroup's status to say Running with 3 running", func(ctx context.Context) (bool, error) {
		pg, err = pgs.Get(ctx, "pi", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return pg.Status.Phase == schedv1alpha1.PodGroupRunning && pg.Status.Running == 3, nil
	})
	t.Logf("PodGroup status: phase %s, running %d, scheduleStartTime %s", pg.Status.Phase, pg.Status.Running, pg.Status.ScheduleStartTime)
	waitAllocated(t, "root.ml", "3", 30*time.Second)
	pods.checkBoundOnce(t, 3)
	op.requireRunning(t)
}

// checkMPIPods: the operator made a launcher and 2 workers, all with
// schedulerName muster (its flag overwrites the templates' scheduler) and
// the PodGroup's label.
func checkMPIPods(t *testing.T, ns string, members []podRecord) {
	t.Helper()
	roles := map[string]int{}
	for _, p := range members {
		roles[p.Labels[labelMPIJobRole]]++
		assert.Equal(t, "pi", p.Labels[gang.LabelPodGroup], "pod %s", p.Name)
		pod, err := framework.CP.Client.CoreV1().Pods(ns).Get(context.Background(), p.Name, metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, scheduler.SchedulerName, pod.Spec.SchedulerName, "pod %s", p.Name)
	}
	assert.Equal(t, map[string]int{mpiRoleLauncher: 1, mpiRoleWorker: 2}, roles, "pods by %s", labelMPIJobRole)
}

// testMPILauncherOnOnDemand: the nodes leave room for exactly one pod on
// on-demand; the launcher (which coordinates the run and should survive
// spot interruptions) is the one that belongs there, the workers on spot.
func testMPILauncherOnOnDemand(t *testing.T, bound []podRecord, types map[string]capacity.Type) {
	var placed []string
	for _, p := range bound {
		want := capacity.Spot
		if p.Labels[labelMPIJobRole] == mpiRoleLauncher {
			want = capacity.OnDemand // the role's default, from the operator's job-role label
		}
		placed = append(placed, p.Labels[labelMPIJobRole]+" "+p.Name+" on "+string(types[p.Node])+" "+p.Node)
		assert.Equal(t, want, types[p.Node], "%s %s on %s", p.Labels[labelMPIJobRole], p.Name, p.Node)
	}
	t.Logf("placed: %s", strings.Join(placed, "; "))
}

// testMPIJobWaitForWorkersReady: with launcherCreationPolicy
// WaitForWorkersReady the operator creates the launcher only once every
// worker is Ready, but its PodGroup still asks for workers + 1 members
// (pkg/controller/podgroup.go, calculateMinAvailable): a scheduler that
// waits for minMember pods before binding any never sees them
// (kubeflow/mpi-operator#608). muster reads the MPIJob: the gang is the
// workers, with the launcher's room reserved beside them. Room for 2 of the
// 3: nothing is bound; one more spot node: the workers are bound on spot
// with the launcher's room held on on-demand, they run and become Ready (the
// package's simulated kubelet), the operator creates the launcher, and it
// takes the room held for it.
func testMPIJobWaitForWorkersReady(t *testing.T, op *operator, d *dyn) {
	ns, pods := jobNamespace(t, "root.ml")
	nodes := []cluster.Node{onDemandNode("mpi-wr-od", "1", "zone-a"), spotNode("mpi-wr-spot-1", "1", "zone-a")}
	framework.CreateNodes(t, nodes...)

	job := mpiJob(t, "WaitForWorkersReady", 0)
	created := time.Now()
	d.create(t, ns, job)
	d.deleteAtEnd(t, ns, job)
	workers := pods.waitPods(t, 2, time.Minute)
	ref := "PodGroup " + ns + "/pi"
	t.Logf("held back: %s", unschedulable(t, ns, workers, time.Minute, ref, "does not fit"))
	g := waitPendingGang(t, ref, "root.ml", 30*time.Second)
	assert.EqualValues(t, 2, g.MinMember, "the workers are the quorum")
	assert.Equal(t, 0, framework.CountBound(t, ns), "no worker bound while the workers and the launcher's room do not fit")

	extra := spotNode("mpi-wr-spot-2", "1", "zone-b")
	framework.CreateNodes(t, extra)
	all := pods.waitBound(t, 3, 2*time.Minute)
	types := capacityTypes(t, append(nodes, extra)...)
	launcher := all[2]
	assert.Equal(t, mpiRoleLauncher, launcher.Labels[labelMPIJobRole], "the launcher is bound last: %s", names(all))
	assert.Equal(t, capacity.OnDemand, types[launcher.Node], "the launcher in the room held for it, on on-demand")
	for _, w := range all[:2] {
		assert.Equal(t, capacity.Spot, types[w.Node], "worker %s on spot", w.Name)
	}
	t.Logf("workers bound %s after the MPIJob; launcher created %s and bound %s after it",
		all[1].Bound.Sub(created).Round(time.Millisecond), launcher.Created.Sub(created).Round(time.Millisecond),
		launcher.Bound.Sub(created).Round(time.Millisecond))
	waitAllocated(t, "root.ml", "3", 30*time.Second)
	pods.checkBoundOnce(t, 3)
	op.requireRunning(t)
}

// testMPIJobWaitForWorkersReadyMinAvailable: the workaround the MPI
// operator's users apply (kubeflow/mpi-operator#608):
// runPolicy.schedulingPolicy.minAvailable = the workers. The PodGroup's
// gang is the 2 workers; they are bound together, run and become Ready
// (the package's simulated kubelet), the operator then creates the
// launcher, and muster binds it as a member beyond minMember. The launcher
// is outside the gang's all-or-nothing: it may wait for room on its own.
func testMPIJobWaitForWorkersReadyMinAvailable(t *testing.T, op *operator, d *dyn) {
	ns, pods := jobNamespace(t, "root.ml")
	framework.CreateNodes(t, framework.Node("mpi-ma-1", "4", "16Gi", nil))

	job := mpiJob(t, "WaitForWorkersReady", 2)
	created := time.Now()
	d.create(t, ns, job)
	d.deleteAtEnd(t, ns, job)
	workers := pods.waitBound(t, 2, time.Minute)[:2] // the launcher may be bound already, after them
	for _, p := range workers {
		assert.Equal(t, mpiRoleWorker, p.Labels[labelMPIJobRole], "pod %s", p.Name)
	}
	pg, err := framework.PodGroupClient(t).SchedulingV1alpha1().PodGroups(ns).Get(context.Background(), "pi", metav1.GetOptions{})
	require.NoError(t, err)
	assert.EqualValues(t, 2, pg.Spec.MinMember)
	all := pods.waitBound(t, 3, time.Minute) // by the moment of their bind
	launcher := all[2]
	assert.Equal(t, mpiRoleLauncher, launcher.Labels[labelMPIJobRole], "the last bound is the launcher: %s", names(all))
	assert.Equal(t, "pi", launcher.Labels[gang.LabelPodGroup])
	t.Logf("workers bound %s after the MPIJob; launcher %s created %s and bound %s after it",
		workers[1].Bound.Sub(created).Round(time.Millisecond), launcher.Name,
		launcher.Created.Sub(created).Round(time.Millisecond), launcher.Bound.Sub(created).Round(time.Millisecond))
	// The launcher never waited, so it carries no muster.dev/Admitted
	// condition; the queue counts it.
	waitAllocated(t, "root.ml", "3", 30*time.Second)
	pods.checkBoundOnce(t, 3)
	op.requireRunning(t)
}

func podReady(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

func ptrString(p *int32) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}
