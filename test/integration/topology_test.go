package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
)

const (
	rackKey  = "example.com/rack"
	blockKey = "example.com/block"
)

// racks creates three racks of two 4-CPU nodes, r0 and r1 in block b0 and
// r2 in block b1, with foreign pods (bound by no scheduler) taking 1 CPU
// on each node of r0 and r1 and 3 on each node of r2: free, r0 6, r1 6,
// r2 2. It returns each node's rack and block, and deletes r1's foreign
// pods when free is called.
func racks(t *testing.T, ns, prefix string) (rackOf, blockOf map[string]string, freeR1 func()) {
	t.Helper()
	ctx := testContext(t)
	rackOf, blockOf = map[string]string{}, map[string]string{}
	var nodes []cluster.Node
	var r1 []string
	for r := range 3 {
		for i := range 2 {
			name := fmt.Sprintf("%s-r%d-%d", prefix, r, i)
			rack, block := fmt.Sprintf("r%d", r), "b0"
			if r == 2 {
				block = "b1"
			}
			rackOf[name], blockOf[name] = rack, block
			nodes = append(nodes, node(name, "4", "16Gi", map[string]string{rackKey: rack, blockKey: block}))
		}
	}
	createNodes(t, nodes...)
	for _, n := range nodes {
		used := "1"
		if rackOf[n.Name] == "r2" {
			used = "3"
		}
		p := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "foreign-" + n.Name},
			Spec: v1.PodSpec{NodeName: n.Name, Containers: []v1.Container{{Name: "c", Image: "none",
				Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse(used)}}}}},
		}
		_, err := env.cp.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		require.NoError(t, err)
		if rackOf[n.Name] == "r1" {
			r1 = append(r1, p.Name)
		}
	}
	return rackOf, blockOf, func() {
		for _, name := range r1 {
			require.NoError(t, env.cp.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
		}
	}
}

// topologyGang creates a gang of n one-CPU members with the topology
// annotation, in queue q.
func topologyGang(t *testing.T, ns, name string, n int, q, annotation, keys string) []cluster.Pod {
	t.Helper()
	members := gangPods(ns, name, n, "1", 0, map[string]string{queue.LabelQueue: q, gang.LabelGang: name},
		map[string]string{gang.AnnotationMinMember: fmt.Sprint(n), annotation: keys})
	require.NoError(t, cluster.CreatePods(testContext(t), env.cp.Client, members))
	return members
}

// placedIn waits for every member to be bound and returns the set of
// domains (by the given map) they landed in.
func placedIn(t *testing.T, ns string, members []cluster.Pod, domainOf map[string]string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range members {
		p := waitBound(t, ns, m.Name, time.Minute)
		out[domainOf[p.Spec.NodeName]]++
	}
	return out
}

// admittedEvent waits for the gang's Admitted Event (on whichever member
// its admission ran for) and returns its message.
func admittedEvent(t *testing.T, ns string, members []cluster.Pod) string {
	t.Helper()
	var msg string
	waitFor(t, 30*time.Second, "the gang's Admitted Event", func(context.Context) (bool, error) {
		for _, m := range members {
			if evs := eventsFor(t, ns, m.Name, "GangAdmitted"); len(evs) > 0 {
				msg = evs[len(evs)-1]
				return true, nil
			}
		}
		return false, nil
	})
	return msg
}

// TestTopologyRequired: a gang that must be in one rack waits while no rack
// has room for all of it, told how close the best came, and is bound in
// one rack as soon as one frees up.
func TestTopologyRequired(t *testing.T) {
	ns := newNamespace(t)
	setQueues(t, "queues:\n  - name: ml\n")
	rackOf, _, freeR1 := racks(t, ns, "topo-req")
	startMuster(t)

	members := topologyGang(t, ns, "train", 8, "ml", gang.AnnotationTopologyRequired, rackKey)
	msg := waitUnschedulable(t, ns, "train-0", 30*time.Second, "no "+rackKey+" has room for all 8 members")
	assert.Contains(t, msg, "the best, "+rackKey+"=r0, has room for 6", "14 CPUs are free, but no rack has 8")

	freeR1()
	got := placedIn(t, ns, members, rackOf)
	assert.Equal(t, map[string]int{"r1": 8}, got, "all in the rack that freed up")
	assert.Contains(t, admittedEvent(t, ns, members), "all in "+rackKey+"=r1")
}

// TestTopologyPreferred: a gang that prefers one rack gets one when a rack
// has room, and is spread over racks, saying so, when none has.
func TestTopologyPreferred(t *testing.T) {
	ns := newNamespace(t)
	setQueues(t, "queues:\n  - name: ml\n")
	rackOf, _, _ := racks(t, ns, "topo-pref")
	startMuster(t)

	small := topologyGang(t, ns, "small", 5, "ml", gang.AnnotationTopologyPreferred, rackKey)
	got := placedIn(t, ns, small, rackOf)
	assert.Len(t, got, 1, "five members fit in one rack: %v", got)
	assert.Contains(t, admittedEvent(t, ns, small), "all in "+rackKey+"=r")

	// Now r0 or r1 has 1 CPU free, the other 6, and r2 2: 9 CPUs, but no
	// rack has 7.
	big := topologyGang(t, ns, "big", 7, "ml", gang.AnnotationTopologyPreferred, rackKey)
	got = placedIn(t, ns, big, rackOf)
	assert.Greater(t, len(got), 1, "spread: %v", got)
	assert.Contains(t, admittedEvent(t, ns, big), "spread over domains: no "+rackKey+" had room for the whole gang")
}

// TestTopologyTwoLevels: with a block and a rack key, the gang goes in one
// rack when one has room, else in one block.
func TestTopologyTwoLevels(t *testing.T) {
	ns := newNamespace(t)
	setQueues(t, "queues:\n  - name: ml\n")
	rackOf, blockOf, _ := racks(t, ns, "topo-two")
	startMuster(t)
	keys := blockKey + "," + rackKey

	inRack := topologyGang(t, ns, "in-rack", 6, "ml", gang.AnnotationTopologyRequired, keys)
	got := placedIn(t, ns, inRack, rackOf)
	assert.Len(t, got, 1, "six members fit in r0 or r1: %v", got)

	// Left: 6 in the other rack of b0, 2 in r2 (b1); a gang of 7 fits in
	// no rack and no block; one of 6 fits the rack; and with the first
	// gang gone, one of 8 fits block b0 only.
	for _, p := range inRack {
		require.NoError(t, env.cp.Client.CoreV1().Pods(ns).Delete(testContext(t), p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
	}
	inBlock := topologyGang(t, ns, "in-block", 8, "ml", gang.AnnotationTopologyRequired, keys)
	got = placedIn(t, ns, inBlock, blockOf)
	assert.Equal(t, map[string]int{"b0": 8}, got)
	assert.Contains(t, admittedEvent(t, ns, inBlock), "all in "+blockKey+"=b0")
}

// TestTopologyElasticMembers: members beyond a gang's quorum stay in the
// domain its quorum was placed in when the topology is required, though
// another rack is emptier.
func TestTopologyElasticMembers(t *testing.T) {
	ns := newNamespace(t)
	setQueues(t, "queues:\n  - name: ml\n")
	rackOf, _, _ := racks(t, ns, "topo-elastic")
	startMuster(t)

	quorum := gangPods(ns, "train", 4, "1", 0, map[string]string{queue.LabelQueue: "ml", gang.LabelGang: "train"},
		map[string]string{gang.AnnotationMinMember: "4", gang.AnnotationTopologyRequired: rackKey})
	require.NoError(t, cluster.CreatePods(testContext(t), env.cp.Client, quorum))
	got := placedIn(t, ns, quorum, rackOf)
	require.Len(t, got, 1, "the quorum in one rack: %v", got)
	var rack string
	for r := range got {
		rack = r
	}

	extra := gangPods(ns, "train-extra", 2, "1", 0, map[string]string{queue.LabelQueue: "ml", gang.LabelGang: "train"},
		map[string]string{gang.AnnotationMinMember: "4", gang.AnnotationTopologyRequired: rackKey})
	require.NoError(t, cluster.CreatePods(testContext(t), env.cp.Client, extra))
	assert.Equal(t, map[string]int{rack: 2}, placedIn(t, ns, extra, rackOf), "the extra members join the quorum's rack")
}

// TestTopologyReclaim: a queue below its guarantee reclaims room for a gang
// that must be in one rack inside one rack: its victims are all there.
func TestTopologyReclaim(t *testing.T) {
	ctx := testContext(t)
	ns := newNamespace(t)
	setQueues(t, `
queues:
  - name: borrower
  - name: owner
    guaranteed: {cpu: "8"}
`)
	rackOf := map[string]string{}
	var nodes []cluster.Node
	for r := range 3 {
		for i := range 2 {
			name := fmt.Sprintf("topo-reclaim-r%d-%d", r, i)
			rackOf[name] = fmt.Sprintf("r%d", r)
			nodes = append(nodes, node(name, "4", "16Gi", map[string]string{rackKey: rackOf[name]}))
		}
	}
	createNodes(t, nodes...)
	startMuster(t)
	victims := watchVictims(t, ns)
	require.NoError(t, cluster.CreatePods(ctx, env.cp.Client, musterPods(ns, "borrow", 24, "1", 0, map[string]string{queue.LabelQueue: "borrower"})))
	waitFor(t, time.Minute, "the borrower to fill the racks", func(context.Context) (bool, error) { return boundIn(t, ns, "borrower") == 24, nil })
	borrowerRack := map[string]string{}
	list, err := env.cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, p := range list.Items {
		borrowerRack[p.Name] = rackOf[p.Spec.NodeName]
	}

	members := topologyGang(t, ns, "train", 8, "owner", gang.AnnotationTopologyRequired, rackKey)
	got := placedIn(t, ns, members, rackOf)
	require.Len(t, got, 1, "the gang in one rack: %v", got)
	var rack string
	for r := range got {
		rack = r
	}
	deleted := victims.Deleted()
	assert.Len(t, deleted, 8, "exactly the gang's room reclaimed: %v", deleted)
	for name := range deleted {
		assert.Equal(t, rack, borrowerRack[name], "victim %s in the gang's rack", name)
	}
}
