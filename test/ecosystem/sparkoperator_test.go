package ecosystem

import (
	"context"
	"net/url"
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

// TestEcosystemSparkOperator runs Kubeflow's Spark operator v2.3.0 (its
// controller, no webhook) as a process with --enable-batch-scheduler
// --kube-scheduler-names=muster, muster in-process, and the operator's
// spark-pi-kube-scheduler example (testdata/sparkapplication.yaml) with no
// muster annotation. The operator makes its PodGroup (minMember 1) and
// runs spark-submit; a stand-in records the submission and the test
// creates the driver and its executors as Spark 4.0 does
// (sparksubmit_test.go). muster must admit the driver only with room for
// the executors the SparkApplication asks for.
func TestEcosystemSparkOperator(t *testing.T) {
	b := operatorBuild(t, "spark-operator")
	installCRDs(t, b.crds)
	startMuster(t)
	home := newSparkHome(t)
	op := startSparkOperator(t, b, home)

	t.Run("SparkApplication", func(t *testing.T) { testSparkApplication(t, op, home, newDyn(t)) })
}

// startSparkOperator runs the operator's controller as findings of this
// repository's hack/ecosystem record it: the apiserver's address in
// KUBERNETES_SERVICE_HOST/PORT (the operator builds spark-submit's
// --master from them), SPARK_HOME with the stand-in spark-submit.
func startSparkOperator(t *testing.T, b *build, home *sparkHome) *operator {
	t.Helper()
	u, err := url.Parse(framework.CP.Config.Host)
	require.NoError(t, err)
	health := freeAddr(t)
	op := startOperator(t, "spark-operator", b.bin,
		[]string{"KUBERNETES_SERVICE_HOST=" + u.Hostname(), "KUBERNETES_SERVICE_PORT=" + u.Port(), "SPARK_HOME=" + home.dir},
		"controller", "start",
		"--kubeconfig="+framework.CP.Kubeconfig,
		"--enable-batch-scheduler",
		"--kube-scheduler-names="+scheduler.SchedulerName,
		"--metrics-bind-address=0",
		"--health-probe-bind-address="+health)
	t.Logf("spark-operator ready (/readyz) %s after start", op.waitReady(t, health, 2*time.Minute).Round(time.Millisecond))
	return op
}

// testSparkApplication: the example's driver (1 core) and 2 executors (1
// core each, 512m + 384 MiB) on an on-demand node of 1 CPU and a spot node
// of 1 CPU: room for two of the three, so the driver is not bound; one
// more spot node and it is, on on-demand, with its executors' room held on
// spot; the executors bind there; a third executor (dynamic allocation's)
// is admitted on its own when a node has room; the PodGroup's status and
// the queue's allocation follow.
func testSparkApplication(t *testing.T, op *operator, home *sparkHome, d *dyn) {
	ns := framework.NewNamespace(t)
	mapQueue(t, ns, "root.batch")
	pods := watchPods(t, ns)
	// The example's driver.serviceAccount, as the operator's Helm chart makes it.
	_, err := framework.CP.Client.CoreV1().ServiceAccounts(ns).Create(context.Background(),
		&v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "spark-operator-spark"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	nodes := []cluster.Node{onDemandNode("sp-od-1", "1", "zone-a"), spotNode("sp-spot-1", "1", "zone-a")}
	framework.CreateNodes(t, nodes...)

	app := testdata(t, "sparkapplication.yaml")[0]
	created := time.Now()
	d.create(t, ns, app)
	d.deleteAtEnd(t, ns, app)
	sub := home.wait(t, time.Minute)
	t.Logf("spark-submit run %s after the SparkApplication: %v", time.Since(created).Round(time.Millisecond), sub.args)
	assert.Equal(t, scheduler.SchedulerName, sub.conf["spark.kubernetes.scheduler.name"])
	assert.Equal(t, "spark-pi-kube-scheduler-pg", sub.conf["spark.kubernetes.driver.label."+gang.LabelPodGroup])
	spark := resolveSparkApp(t, sub)
	driver := spark.createDriver(t)
	sub.done(t)
	t.Logf("driver %s (spark-app-selector %s) and ConfigMap %s created %s after the SparkApplication",
		driver.Name, spark.appID, spark.driverConfig, time.Since(created).Round(time.Millisecond))

	pg, err := framework.PodGroupClient(t).SchedulingV1alpha1().PodGroups(ns).Get(context.Background(), "spark-pi-kube-scheduler-pg", metav1.GetOptions{})
	require.NoError(t, err, "the operator's PodGroup")
	t.Logf("the operator's PodGroup: minMember %d, minResources %v", pg.Spec.MinMember, pg.Spec.MinResources)

	ref := "Spark " + ns + "/" + spark.appID
	t.Logf("held back: %s", framework.WaitUnschedulable(t, ns, driver.Name, time.Minute, ref, "does not fit"))
	assert.Equal(t, 0, framework.CountBound(t, ns), "the driver waits for its executors' room")
	g := waitPendingGang(t, ref, "root.batch", 30*time.Second)
	t.Logf("pending: %+v", g)

	extra := spotNode("sp-spot-2", "1", "zone-b")
	added := time.Now()
	framework.CreateNodes(t, extra)
	bound := pods.waitBound(t, 1, time.Minute)
	t.Logf("driver bound %s after the node was added, on %s", bound[0].Bound.Sub(added).Round(time.Millisecond), bound[0].Node)
	types := capacityTypes(t, append(nodes, extra)...)
	assert.Equal(t, capacity.OnDemand, types[bound[0].Node], "the driver (prefer-on-demand, its role's default) on %s", bound[0].Node)
	testSparkExecutors(t, op, spark, pods, types, d, ns)
}

// testSparkExecutors: once the driver runs, its executors (as the driver
// creates them) bind to the room held for them, on spot; one more is
// admitted on its own when there is room for it.
func testSparkExecutors(t *testing.T, op *operator, spark *sparkApp, pods *podLog, types map[string]capacity.Type, d *dyn, ns string) {
	t.Helper()
	framework.WaitFor(t, time.Minute, "the driver to run and the operator to see it", func(ctx context.Context) (bool, error) {
		u, err := d.resource(t, gang.ResourceSparkApplication.GroupVersion().WithKind("SparkApplication"), ns).Get(ctx, "spark-pi-kube-scheduler", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		state, _, _ := unstructured.NestedString(u.Object, "status", "applicationState", "state")
		return state == "RUNNING", nil
	})
	conf := spark.createExecutorConfig(t)
	for id := 1; id <= 2; id++ {
		spark.createExecutor(t, id, conf)
	}
	bound := pods.waitBound(t, 3, time.Minute)
	t.Logf("placed: %v", nodeOf(t, bound))
	for _, p := range bound {
		if p.Labels[gang.LabelSparkRole] == string(gang.SparkExecutor) {
			assert.Equal(t, capacity.Spot, types[p.Node], "executor %s (prefer-spot) on %s", p.Name, p.Node)
		}
	}
	// The condition is written on pods that waited: the driver. The
	// executors never waited (their room was held); the queue's
	// allocation below counts them.
	assert.Contains(t, admittedTo(t, ns, spark.driverName, 30*time.Second), "root.batch", "the driver admitted to its namespace's queue")
	framework.WaitFor(t, 30*time.Second, "the PodGroup's status to say Running", func(ctx context.Context) (bool, error) {
		pg, err := framework.PodGroupClient(t).SchedulingV1alpha1().PodGroups(ns).Get(ctx, "spark-pi-kube-scheduler-pg", metav1.GetOptions{})
		return err == nil && pg.Status.Phase == schedv1alpha1.PodGroupRunning, err
	})
	waitAllocated(t, "root.batch", "3", 30*time.Second)

	// Dynamic allocation's next executor: no room is held for it; it waits
	// for a node, then is admitted alone, in the queue.
	third := spark.createExecutor(t, 3, conf)
	t.Logf("executor 3 waits: %s", framework.WaitUnschedulable(t, ns, third.Name, time.Minute))
	framework.CreateNodes(t, spotNode("sp-spot-3", "1", "zone-c"))
	framework.WaitBound(t, ns, third.Name, time.Minute)
	// Its wait was the nodes' (no room), not muster's: it carries no
	// muster.dev/Admitted condition; the queue counts it.
	waitAllocated(t, "root.batch", "4", 30*time.Second)
	pods.checkBoundOnce(t, 4)
	op.requireRunning(t)
}
