package ecosystem

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

// The queue tree: a queue per operator, and root.default for everything
// else. namespaceQueues names namespaces exactly (no globs), so each test
// maps the namespace it made to its queue, as an admin maps a team's
// namespace (mapQueue).
const queuesYAML = `
queues:
  - name: ray
  - name: batch
  - name: ml
  - name: default
namespaceQueues:
%s  "*": root.default
`

var namespaceQueues = map[string]string{}

// startMuster writes the queues and runs muster-scheduler in-process with
// the shipped configuration (manifests/scheduler-config.yaml) until the
// test ends.
func startMuster(t *testing.T) {
	t.Helper()
	clear(namespaceQueues)
	framework.SetQueues(t, fmt.Sprintf(queuesYAML, ""))
	framework.StartMuster(t)
}

// mapQueue makes queue the queue of namespace ns (namespaceQueues) and
// waits until muster has applied the edit (its status report names the
// ConfigMap's new version). Tests run one at a time.
func mapQueue(t *testing.T, ns, queue string) {
	t.Helper()
	namespaceQueues[ns] = queue
	keys := make([]string, 0, len(namespaceQueues))
	for k := range namespaceQueues {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var lines strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&lines, "  %s: %s\n", k, namespaceQueues[k])
	}
	cm := framework.SetQueues(t, fmt.Sprintf(queuesYAML, lines.String()))
	framework.WaitStatus(t, framework.CP.Client, 30*time.Second, "muster to apply the queues of version "+cm.ResourceVersion, func(r status.Report) (bool, error) {
		return r.Config.Valid && r.Config.ResourceVersion == cm.ResourceVersion, nil
	})
}

// The capacity-type label nodes carry here: Karpenter's, as most clusters
// with spot have (SPEC section 5; muster.dev/capacity-type would win).
const labelKarpenterCapacityType = "karpenter.sh/capacity-type"

// spotNode and onDemandNode are nodes of cpu CPUs and 64Gi, labelled as
// Karpenter labels them, in zone.
func spotNode(name, cpu, zone string) cluster.Node {
	return framework.Node(name, cpu, "64Gi", map[string]string{labelKarpenterCapacityType: "spot",
		cluster.LabelZone: zone, cluster.LabelInstanceType: "m7i.4xlarge"})
}

func onDemandNode(name, cpu, zone string) cluster.Node {
	return framework.Node(name, cpu, "64Gi", map[string]string{labelKarpenterCapacityType: "on-demand",
		cluster.LabelZone: zone, cluster.LabelInstanceType: "m7i.2xlarge"})
}

// capacityTypes maps node name to its capacity type as muster reads it.
func capacityTypes(t *testing.T, nodes ...cluster.Node) map[string]capacity.Type {
	t.Helper()
	out := map[string]capacity.Type{}
	for _, n := range nodes {
		out[n.Name] = capacity.TypeOf(n.Labels)
	}
	return out
}

// waitPendingGang waits until muster's status ConfigMap lists the gang as
// pending in queue, and returns its entry.
func waitPendingGang(t *testing.T, gang, queue string, timeout time.Duration) status.Gang {
	t.Helper()
	var found status.Gang
	framework.WaitStatus(t, framework.CP.Client, timeout, fmt.Sprintf("%s pending in %s in the status ConfigMap", gang, queue), func(r status.Report) (bool, error) {
		for _, g := range r.PendingGangs {
			if g.Gang == gang && g.Queue == queue {
				found = g
				return true, nil
			}
		}
		return false, nil
	})
	return found
}

// waitAllocated waits until the status ConfigMap shows queue holding
// exactly cpu of bound pods.
func waitAllocated(t *testing.T, queue, cpu string, timeout time.Duration) {
	t.Helper()
	want := resource.MustParse(cpu)
	framework.WaitStatus(t, framework.CP.Client, timeout, fmt.Sprintf("%s allocated cpu %s in the status ConfigMap", queue, cpu), func(r status.Report) (bool, error) {
		for _, q := range r.Queues {
			if q.Queue != queue {
				continue
			}
			got, err := resource.ParseQuantity(q.Allocated[string(v1.ResourceCPU)])
			return err == nil && got.Cmp(want) == 0, nil
		}
		return false, nil
	})
}

// jobNamespace is a namespace for a test whose operator makes batch Jobs,
// mapped to queue, with its pods watched. Its Jobs are deleted when the
// test ends, before the namespace: no garbage collector runs here to
// delete them, nor their pods.
func jobNamespace(t *testing.T, queue string) (string, *podLog) {
	t.Helper()
	ns := framework.NewNamespace(t)
	t.Cleanup(func() {
		_ = framework.CP.Client.BatchV1().Jobs(ns).DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{})
	})
	mapQueue(t, ns, queue)
	return ns, watchPods(t, ns)
}
