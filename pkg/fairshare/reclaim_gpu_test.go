package fairshare

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/resources"
)

// demoQueues is the sandbox demo's queue tree (pkg/sandbox/demo/queues.yaml).
const demoQueues = `
queues:
  - name: analytics
    weight: 2
    guaranteed: {cpu: "96"}
    queues:
      - name: etl
      - name: adhoc
        max: {cpu: "48"}
  - name: ml
    guaranteed: {cpu: "32", nvidia.com/gpu: "4"}
  - name: batch
`

// gpuWorld is the demo's situation when the training gang resnet arrives:
// four on-demand g5.2xlarge nodes (8 cpu, 32Gi, 1 GPU), the only GPUs,
// and four m5.4xlarge nodes (16 cpu, 64Gi), partly filled with batch pods
// of 2 cpu and 4Gi (root.batch guarantees nothing); gpuPods[i] batch pods
// sit on GPU node i, cpuPods[i] on CPU node i. extra pods are added as they
// are (Node indexes: GPU nodes 0-3, CPU nodes 4-7).
func gpuWorld(t *testing.T, gpuPods, cpuPods []int, extra []*vic, usage map[string]resources.Vector) ReclaimInput {
	t.Helper()
	tree := mustTree(t, demoQueues)
	var free []resources.Vector
	for range 4 {
		free = append(free, resources.Vector{cpu: cores(8), mem: 32 * gi, gpu: 1, v1.ResourcePods: 110})
	}
	for range 4 {
		free = append(free, resources.Vector{cpu: cores(16), mem: 64 * gi, v1.ResourcePods: 110})
	}
	var victims []*vic
	add := func(node, count int) {
		for i := range count {
			v := pod(fmt.Sprintf("batch-%d-%d", node, i), "batch", node, 2).also(mem, 4*gi).age(i)
			victims = append(victims, v)
		}
	}
	for n, c := range gpuPods {
		add(n, c)
	}
	for n, c := range cpuPods {
		add(4+n, c)
	}
	victims = append(victims, extra...)
	for _, v := range victims {
		free[v.v.Node].Sub(v.v.Request)
	}
	var members []gang.Member
	for i := range 4 {
		members = append(members, gang.Member{Name: fmt.Sprintf("resnet-worker-%d", i),
			Request: resources.Vector{cpu: cores(6), mem: 24 * gi, gpu: 1, v1.ResourcePods: 1}})
	}
	return reclaimInput(t, tree, "ml", 0, members, free, victims, usage)
}

// TestReclaimGPUGang: a training gang whose queue (root.ml) is below its
// guarantee takes room on the GPU nodes from batch pods there, no more than
// needed and none elsewhere; pods of a queue below its own guarantee in the
// way make reclaim refuse, and say which queue.
func TestReclaimGPUGang(t *testing.T) {
	t.Run("batch pods on the GPU nodes", func(t *testing.T) {
		// GPU node 0 is full (4 pods: 0 cpu, 16Gi free): 3 must go for
		// 6 cpu; node 1 (3 pods, 2 cpu free): 2; node 2 (1 pod, 6 cpu
		// free): none; node 3 (2 pods, 4 cpu free): 1.
		in := gpuWorld(t, []int{4, 3, 1, 2}, []int{8, 8, 8, 8}, nil, nil)
		p, why := Reclaim(in)
		require.NotNil(t, p, why)
		checkPlan(t, in, p)
		perNode := map[int]int{}
		for i, v := range p.Victims {
			assert.Equal(t, "root.batch", v.Queue)
			assert.Equal(t, ReasonReclaim, p.Reasons[i])
			perNode[v.Node]++
		}
		assert.Equal(t, map[int]int{0: 3, 1: 2, 3: 1}, perNode, "victims per node")
		assert.ElementsMatch(t, []int{0, 1, 2, 3}, p.Plan.Node, "one worker on each GPU node")
	})

	t.Run("a queue below its guarantee in the way", func(t *testing.T) {
		// GPU node 3 holds three Spark drivers of root.analytics.etl
		// (their executors on the CPU nodes; analytics holds 51 of its
		// guaranteed 96 cpu) and a batch pod: without a driver it has 5
		// cpu at most, and the drivers stay.
		var spark []*vic
		gangs := map[string]GangQuorum{}
		for i, app := range []string{"etl-a", "etl-b", "etl-c"} {
			g := "Spark spark-etl/" + app
			spark = append(spark, pod(app+"-driver", "analytics.etl", 3, 1).also(mem, 4*gi).age(i).gang(g))
			for e := range 4 {
				spark = append(spark, pod(fmt.Sprintf("%s-exec-%d", app, e), "analytics.etl", 4+e, 4).also(mem, 16*gi).age(i).gang(g))
			}
			gangs[g] = GangQuorum{Min: 5, Bound: 5}
		}
		in := gpuWorld(t, []int{1, 1, 1, 1}, []int{2, 2, 2, 2}, spark, nil)
		in.Gangs = gangs
		p, why := Reclaim(in)
		require.Nil(t, p)
		assert.Contains(t, message(why), "preempting every eligible pod would not make room")
		assert.Contains(t, message(why), "their queues would drop below their guaranteed: root.analytics")
	})

	t.Run("ml at its gpu guarantee reclaims no more", func(t *testing.T) {
		usage := map[string]resources.Vector{"ml": {cpu: cores(24), mem: 96 * gi, gpu: 4}}
		in := gpuWorld(t, []int{4, 3, 1, 2}, nil, nil, usage)
		p, why := Reclaim(in)
		require.Nil(t, p)
		assert.Contains(t, message(why), "queue root.ml is not below its guaranteed")
	})
}

// TestReclaimForParentGuarantee: a leaf that guarantees nothing reclaims
// for its parent's guarantee from queues outside the parent (the demo's
// Spark apps in root.analytics.etl waited behind batch pods while analytics
// held half its guarantee), but not from its sibling, which shares the
// parent; and not beyond the parent's guarantee.
func TestReclaimForParentGuarantee(t *testing.T) {
	tree := mustTree(t, demoQueues)
	exec := func(name string) gang.Member {
		return gang.Member{Name: name, Request: resources.Vector{cpu: cores(4)}}
	}
	cases := map[string]struct {
		victims []*vic
		usage   map[string]resources.Vector
		want    []string // victim keys; nil: refused
		why     string
	}{
		"from batch, analytics below its guarantee": {
			victims: []*vic{pod("b1", "batch", 0, 2), pod("b2", "batch", 0, 2).age(1), pod("b3", "batch", 0, 2).age(2)},
			usage:   map[string]resources.Vector{"analytics.etl": {cpu: cores(40)}, "analytics.adhoc": {cpu: cores(13)}},
			want:    []string{"b3", "b2"},
		},
		"not from its sibling inside analytics": {
			victims: []*vic{pod("q1", "analytics.adhoc", 0, 2), pod("q2", "analytics.adhoc", 0, 2)},
			usage:   map[string]resources.Vector{"analytics.etl": {cpu: cores(40)}},
			why:     "it may not reclaim from root.analytics.adhoc",
		},
		"not beyond analytics' guarantee": {
			victims: []*vic{pod("b1", "batch", 0, 2), pod("b2", "batch", 0, 2)},
			usage:   map[string]resources.Vector{"analytics.etl": {cpu: cores(80)}, "analytics.adhoc": {cpu: cores(14)}},
			why:     "not below its guaranteed",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := reclaimInput(t, tree, "analytics.etl", 0, []gang.Member{exec("exec-0")}, cpuFree(0), tc.victims, tc.usage)
			p, why := Reclaim(in)
			if tc.want == nil {
				require.Nil(t, p)
				assert.Contains(t, message(why), tc.why)
				return
			}
			require.NotNil(t, p, why)
			var got []string
			for _, v := range p.Victims {
				got = append(got, v.Key)
			}
			assert.ElementsMatch(t, tc.want, got)
		})
	}
}
