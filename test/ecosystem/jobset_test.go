package ecosystem

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/test/framework"
)

// TestEcosystemJobSet runs JobSet's jobset-controller v0.11.0 as a process
// with its defaulting webhook registered (it cannot run without it), the
// Job controller in-process, muster in-process, and JobSet's paralleljobs
// example plus schedulerName: muster (testdata/jobset.yaml;
// docs/integrations/jobset.md shows it). JobSet creates the Jobs, the Job
// controller the pods; muster must bind the JobSet's 5 pods all together or
// not at all.
func TestEcosystemJobSet(t *testing.T) {
	b := operatorBuild(t, "jobset")
	installCRDs(t, b.crds)
	startMuster(t)
	startJobController(t)
	op := startJobSetController(t, b)
	d := newDyn(t)

	t.Run("AllOrNothing", func(t *testing.T) { testJobSetAllOrNothing(t, op, d) })
}

// startJobSetController runs jobset-controller with
// hack/ecosystem/examples/jobset-config.yaml filled in (its own cert
// management off, a webhook port and a serving certificate of the
// test's), waits until it is ready, and registers its mutating webhook
// (hack/ecosystem/examples/jobset-webhook.yaml) on loopback. The webhook is
// in force once a dry-run JobSet comes back defaulted.
func startJobSetController(t *testing.T, b *build) *operator {
	t.Helper()
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	ca := servingCert(t, certDir)
	webhook, health := freeAddr(t), freeAddr(t)
	_, port, _ := strings.Cut(webhook, ":")

	examples := filepath.Join(framework.RepoRoot(t), "hack", "ecosystem", "examples")
	cfg, err := os.ReadFile(filepath.Join(examples, "jobset-config.yaml"))
	require.NoError(t, err)
	cfg = []byte(strings.NewReplacer("WEBHOOK_PORT", port, "CERT_DIR", certDir,
		"healthProbeBindAddress: 127.0.0.1:0", "healthProbeBindAddress: "+health).Replace(string(cfg)))
	cfgFile := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfgFile, cfg, 0o644))

	op := startOperator(t, "jobset-controller", b.bin, nil, "--kubeconfig="+framework.CP.Kubeconfig, "--config="+cfgFile)
	t.Logf("jobset-controller ready (/readyz: webhook server up) %s after start", op.waitReady(t, health, 2*time.Minute).Round(time.Millisecond))

	mwc, err := os.ReadFile(filepath.Join(examples, "jobset-webhook.yaml"))
	require.NoError(t, err)
	mwc = []byte(strings.NewReplacer("WEBHOOK_PORT", port, "CA_BUNDLE", base64.StdEncoding.EncodeToString(ca)).Replace(string(mwc)))
	d := newDyn(t)
	objs := decodeYAML(t, mwc)
	require.Len(t, objs, 1)
	d.create(t, "", objs[0])
	d.deleteAtEnd(t, "", objs[0])

	js := testdata(t, "jobset.yaml")[0]
	start := time.Now()
	framework.WaitFor(t, 30*time.Second, "JobSet's webhook to default a dry-run JobSet", func(ctx context.Context) (bool, error) {
		op.requireRunning(t)
		out, err := d.resource(t, js.GroupVersionKind(), "default").Create(ctx, js.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, nil
		}
		_, found, _ := unstructured.NestedMap(out.Object, "spec", "network")
		return found, nil
	})
	t.Logf("JobSet's webhook in force %s after registration", time.Since(start).Round(time.Millisecond))
	return op
}

// testJobSetAllOrNothing: paralleljobs' 5 pods (workers 4 + driver 1, 2 CPU
// each) on nodes with room for 4: none is bound, and muster says the JobSet
// does not fit; one more node and all 5 are bound, each once, in the
// namespace's queue.
func testJobSetAllOrNothing(t *testing.T, op *operator, d *dyn) {
	ns, pods := jobNamespace(t, "root.batch")
	nodes := []cluster.Node{onDemandNode("js-1", "4", "zone-a"), spotNode("js-2", "4", "zone-a")}
	framework.CreateNodes(t, nodes...)

	js := testdata(t, "jobset.yaml")[0]
	created := time.Now()
	d.create(t, ns, js)
	d.deleteAtEnd(t, ns, js)
	members := pods.waitPods(t, 5, time.Minute)
	t.Logf("JobSet and the Job controller created %d pods %s after the JobSet: %s", len(members), time.Since(created).Round(time.Millisecond), names(members))
	for _, p := range members {
		assert.Equal(t, "paralleljobs", p.Labels[gang.LabelJobSet], "pod %s", p.Name)
	}

	ref := "JobSet " + ns + "/paralleljobs"
	t.Logf("held back: %s", unschedulable(t, ns, members, time.Minute, ref, "does not fit on this cluster"))
	assert.Equal(t, 0, framework.CountBound(t, ns), "no member bound while the gang does not fit")
	g := waitPendingGang(t, ref, "root.batch", 30*time.Second)
	assert.EqualValues(t, 5, g.MinMember, "workers 4 + driver 1")

	added := time.Now()
	extra := spotNode("js-3", "4", "zone-b")
	framework.CreateNodes(t, extra)
	bound := pods.waitBound(t, 5, time.Minute)
	t.Logf("all %d bound %s after the node was added (first bind after %s): %v", len(bound),
		bound[len(bound)-1].Bound.Sub(added).Round(time.Millisecond), bound[0].Bound.Sub(added).Round(time.Millisecond), nodeOf(t, bound))
	perNode := map[string]int{}
	for _, p := range bound {
		perNode[p.Node]++
		assert.Contains(t, admittedTo(t, ns, p.Name, 30*time.Second), "root.batch", "pod %s admitted to its namespace's queue", p.Name)
	}
	for n, c := range perNode {
		assert.LessOrEqual(t, c, 2, "node %s holds at most 2 pods of 2 CPU", n)
	}
	// The roles' defaults, from the replicated jobs' names: the driver
	// prefers on-demand, the workers spot.
	types := capacityTypes(t, append(nodes, extra)...)
	for _, p := range bound {
		want := capacity.Spot
		if p.Labels["jobset.sigs.k8s.io/replicatedjob-name"] == "driver" {
			want = capacity.OnDemand
		}
		assert.Equal(t, want, types[p.Node], "pod %s on %s", p.Name, p.Node)
	}
	waitAllocated(t, "root.batch", "10", 30*time.Second)
	framework.WaitFor(t, 15*time.Second, "the GangAdmitted Event on the JobSet", func(context.Context) (bool, error) {
		return len(framework.EventsFor(t, ns, "paralleljobs", "GangAdmitted")) > 0, nil
	})
	pods.checkBoundOnce(t, 5)
	op.requireRunning(t)
}
