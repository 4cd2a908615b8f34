package fairshare

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// reclaimQueues: a and b guarantee 4 cpus, c guarantees nothing, ml
// guarantees gpus only.
const reclaimQueues = `
queues:
  - name: a
    guaranteed: {cpu: "4"}
  - name: b
    guaranteed: {cpu: "4"}
  - name: c
  - name: ml
    guaranteed: {nvidia.com/gpu: "2"}
`

var reclaimT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// vic builds a Victim: a running pod of a leaf (named without "root."),
// on a node, asking for whole cpus; started at reclaimT0, priority 0, no
// gang, disruption allowed.
type vic struct{ v Victim }

func pod(key, leaf string, node int, cpus float64) *vic {
	return &vic{Victim{
		Key: key, Namespace: "ns-" + leaf, Name: key, Queue: queue.RootName + "." + leaf, Node: node,
		Request: resources.Vector{cpu: cores(cpus)}, Started: reclaimT0, DisruptionAllowed: true,
	}}
}

func (b *vic) prio(p int32) *vic { b.v.Priority = p; return b }

// age: started that many minutes after reclaimT0 (larger: newer).
func (b *vic) age(minutes int) *vic {
	b.v.Started = reclaimT0.Add(time.Duration(minutes) * time.Minute)
	return b
}
func (b *vic) gang(g string) *vic                   { b.v.Gang = g; return b }
func (b *vic) pdb() *vic                            { b.v.DisruptionAllowed = false; return b }
func (b *vic) young() *vic                          { b.v.Young = true; return b }
func (b *vic) lead() *vic                           { b.v.Lead = true; return b }
func (b *vic) also(r v1.ResourceName, n int64) *vic { b.v.Request[r] = n; return b }

// member is one pod of the preemptor, asking for whole cpus.
func member(name string, cpus float64) gang.Member {
	return gang.Member{Name: name, Request: resources.Vector{cpu: cores(cpus)}}
}

func cpuFree(cpus ...float64) []resources.Vector {
	out := make([]resources.Vector, len(cpus))
	for i, c := range cpus {
		out[i] = resources.Vector{cpu: cores(c)}
	}
	return out
}

// reclaimInput builds a ReclaimInput whose usage is the victims' requests
// plus extra (by leaf, without "root."), rolled up the tree.
func reclaimInput(t *testing.T, tree *queue.Tree, leaf string, prio int32, members []gang.Member,
	free []resources.Vector, victims []*vic, extra map[string]resources.Vector) ReclaimInput {
	t.Helper()
	q := tree.Get(queue.RootName + "." + leaf)
	require.NotNil(t, q, leaf)
	byLeaf := map[string]resources.Vector{}
	for l, u := range extra {
		byLeaf[queue.RootName+"."+l] = u.Clone()
	}
	in := ReclaimInput{Tree: tree, Queue: q, Priority: prio, Members: members}
	for _, b := range victims {
		if byLeaf[b.v.Queue] == nil {
			byLeaf[b.v.Queue] = resources.Vector{}
		}
		byLeaf[b.v.Queue].Add(b.v.Request)
		v := b.v
		v.Request = v.Request.Clone()
		in.Victims = append(in.Victims, v)
	}
	in.Usage = rollUp(tree, byLeaf)
	for i, f := range free {
		in.Nodes = append(in.Nodes, gang.Node{Name: fmt.Sprintf("node-%d", i), Free: f.Clone()})
	}
	return in
}

// checkPlan checks a returned plan against the rules, whatever the input:
// the victims are candidates, each once, with the right reason; the members
// fit node by node where the victims were; victim queues keep their
// guarantees; victim gangs are taken whole or left at their quorum; and no
// victim (or gang's victims) could be spared.
func checkPlan(t *testing.T, in ReclaimInput, p *ReclaimPlan) {
	t.Helper()
	require.Len(t, p.Reasons, len(p.Victims))
	cands := map[string]Victim{}
	gangSize := map[string]int{}
	for _, v := range in.Victims {
		cands[v.Key] = v
		if v.Gang != "" {
			gangSize[v.Gang]++
		}
	}
	seen := map[string]bool{}
	reclaim := false
	for i, v := range p.Victims {
		require.Contains(t, cands, v.Key)
		assert.Equal(t, cands[v.Key].Node, v.Node, v.Key)
		assert.False(t, seen[v.Key], "%s chosen twice", v.Key)
		seen[v.Key] = true
		if v.Queue == in.Queue.Path {
			assert.Equal(t, ReasonPriority, p.Reasons[i], v.Key)
			assert.Less(t, v.Priority, in.Priority, "%s: same queue, not lower priority", v.Key)
		} else {
			assert.Equal(t, ReasonReclaim, p.Reasons[i], v.Key)
			reclaim = true
		}
	}

	// The preemptor stays within its guarantee when it reclaims.
	total := resources.Vector{}
	for _, m := range in.Members {
		total.Add(m.Request)
	}
	if reclaim {
		guaranteed := 0
		for r, a := range total {
			if g, ok := in.Queue.Guaranteed[r]; ok && a > 0 {
				guaranteed++
				assert.LessOrEqual(t, in.Usage[in.Queue.Path][r]+a, g, "preemptor above its guarantee in %s", r)
			}
		}
		assert.Positive(t, guaranteed, "reclaim by a queue without a guarantee on the request")
	}

	// Victim queues keep their guarantees.
	after := map[string]resources.Vector{}
	for _, v := range p.Victims {
		if after[v.Queue] == nil {
			after[v.Queue] = in.Usage[v.Queue].Clone()
		}
		after[v.Queue].Sub(v.Request)
	}
	for i, v := range p.Victims {
		if p.Reasons[i] != ReasonReclaim {
			continue
		}
		for r, g := range in.Tree.Get(v.Queue).Guaranteed {
			assert.GreaterOrEqual(t, after[v.Queue][r], g, "victim queue %s below its guarantee in %s", v.Queue, r)
		}
	}

	// Gangs: whole, or still at their quorum.
	taken := map[string]int{}
	for _, v := range p.Victims {
		if v.Gang != "" {
			taken[v.Gang]++
		}
	}
	for g, n := range taken {
		q := in.Gangs[g]
		assert.True(t, n == gangSize[g] || q.Bound-n >= q.Min,
			"gang %s left below its quorum: %d of %d taken, bound %d, min %d", g, n, gangSize[g], q.Bound, q.Min)
	}

	// The members fit where the plan puts them.
	free := freeAfter(in.Nodes, p.Victims)
	require.Len(t, p.Plan.Node, len(in.Members))
	for i, m := range in.Members {
		n := p.Plan.Node[i]
		require.True(t, n >= 0 && n < len(free), "member %d on node %d", i, n)
		if in.Eligible != nil {
			assert.True(t, in.Eligible(m.Class, n), "member %d on ineligible node %d", i, n)
		}
		free[n].Free.Sub(m.Request)
		for r, a := range m.Request {
			if a > 0 {
				assert.GreaterOrEqual(t, free[n].Free[r], int64(0), "node %d overcommitted in %s", n, r)
			}
		}
	}

	// No more than needed: sparing any lone victim, or all victims of one
	// gang, leaves no room.
	spare := map[string][]Victim{}
	for _, v := range p.Victims {
		k := "pod:" + v.Key
		if v.Gang != "" {
			k = "gang:" + v.Gang
		}
		spare[k] = append(spare[k], v)
	}
	for k := range spare {
		var rest []Victim
		for _, v := range p.Victims {
			if !containsKey(spare[k], v.Key) {
				rest = append(rest, v)
			}
		}
		_, short := gang.Pack(freeAfter(in.Nodes, rest), in.Members, in.Eligible)
		underMax := true
		if in.UnderMax != nil {
			freed := resources.Vector{}
			for _, v := range rest {
				freed.Add(v.Request)
			}
			underMax = in.UnderMax(freed)
		}
		assert.True(t, short != nil || !underMax, "%s was not needed", k)
	}
}

func containsKey(vs []Victim, key string) bool {
	for _, v := range vs {
		if v.Key == key {
			return true
		}
	}
	return false
}

// freeAfter is the nodes' free capacity once the victims are gone.
func freeAfter(nodes []gang.Node, victims []Victim) []gang.Node {
	out := make([]gang.Node, len(nodes))
	for i, n := range nodes {
		out[i] = gang.Node{Name: n.Name, Free: n.Free.Clone()}
	}
	for _, v := range victims {
		out[v.Node].Free.Add(v.Request)
	}
	return out
}

func TestReclaim(t *testing.T) {
	tree := mustTree(t, reclaimQueues)
	twoCPUs := []gang.Member{member("p", 2)}
	onlyNode1 := func(_, node int) bool { return node == 1 }

	tests := map[string]struct {
		queue    string // the preemptor's leaf; default a
		priority int32
		members  []gang.Member               // default: one pod of 2 cpus
		free     []resources.Vector          // default: one full node
		extra    map[string]resources.Vector // usage beyond the victims, by leaf
		victims  []*vic
		gangs    map[string]GangQuorum
		eligible func(class, node int) bool
		maxCPUs  float64 // the preemptor's queue's max, at which it is: 0 none

		want      map[string]string // victim key -> reason; nil: no plan
		wantNodes []int             // the plan's node per member, when it matters
		why       string            // part of the answer when there is no plan
	}{
		// When it is allowed at all.
		"fits without preempting": {
			free:    cpuFree(2),
			victims: []*vic{pod("c1", "c", 0, 2)},
			why:     "the pod fits without preempting anything",
		},
		"fits without preempting on the one eligible node": {
			free:     cpuFree(0, 2),
			victims:  []*vic{pod("c1", "c", 0, 2)},
			eligible: onlyNode1,
			why:      "the pod fits without preempting anything",
		},
		"reclaims from a queue without a guarantee": {
			victims: []*vic{pod("c1", "c", 0, 2)},
			want:    map[string]string{"c1": ReasonReclaim},
		},
		"reclaims while the request takes the queue exactly to its guarantee": {
			extra:   map[string]resources.Vector{"a": {cpu: cores(2)}},
			victims: []*vic{pod("c1", "c", 0, 2)},
			want:    map[string]string{"c1": ReasonReclaim},
		},
		"no reclaim when the request would take the queue above its guarantee": {
			extra:   map[string]resources.Vector{"a": {cpu: cores(3)}},
			victims: []*vic{pod("c1", "c", 0, 2)},
			why:     "queue root.a is not below its guaranteed with this request, so it may not reclaim from other queues",
		},
		"no reclaim by a queue that is already above its guarantee": {
			extra:   map[string]resources.Vector{"a": {cpu: cores(5)}},
			victims: []*vic{pod("c1", "c", 0, 2)},
			why:     "queue root.a is not below its guaranteed",
		},
		"no reclaim by a queue without a guarantee": {
			queue:   "c",
			victims: []*vic{pod("b1", "b", 0, 2), pod("b2", "b", 0, 2), pod("b3", "b", 0, 2)},
			why:     "queue root.c is not below its guaranteed with this request",
		},
		"no reclaim of cpu by a queue that guarantees only gpus": {
			queue:   "ml",
			victims: []*vic{pod("c1", "c", 0, 2)},
			why:     "queue root.ml is not below its guaranteed with this request",
		},
		"a gpu request reclaims under a gpu guarantee, whatever its cpu": {
			queue:   "ml",
			members: []gang.Member{{Name: "p", Request: resources.Vector{cpu: cores(8), gpu: 1}}},
			free:    []resources.Vector{{cpu: 0, gpu: 0}},
			victims: []*vic{pod("c1", "c", 0, 8).also(gpu, 1)},
			want:    map[string]string{"c1": ReasonReclaim},
		},
		"a request over the guarantee in one guaranteed resource is refused": {
			queue:   "ml",
			members: []gang.Member{{Name: "p", Request: resources.Vector{cpu: cores(1), gpu: 3}}},
			free:    []resources.Vector{{cpu: 0, gpu: 0}},
			victims: []*vic{pod("c1", "c", 0, 2).also(gpu, 4)},
			why:     "queue root.ml is not below its guaranteed",
		},

		// Victim queues keep their guarantees.
		"a victim queue is not taken below its guarantee: another queue's older pod goes": {
			victims: []*vic{pod("b1", "b", 0, 2).age(3), pod("b2", "b", 0, 2).age(2), pod("c1", "c", 0, 2).age(1)},
			want:    map[string]string{"c1": ReasonReclaim},
		},
		"a victim queue gives down to exactly its guarantee and no further": {
			members: []gang.Member{member("p", 4)},
			victims: []*vic{
				pod("b3", "b", 0, 2).age(3), pod("b2", "b", 0, 2).age(2), pod("b1", "b", 0, 2).age(1),
				pod("c1", "c", 0, 2),
			},
			want: map[string]string{"b3": ReasonReclaim, "c1": ReasonReclaim},
		},
		"a victim queue above its guarantee gives": {
			victims: []*vic{pod("b1", "b", 0, 2), pod("b2", "b", 0, 2), pod("b3", "b", 0, 2)},
			want:    map[string]string{"b1": ReasonReclaim},
		},
		"nothing to take without breaking a guarantee": {
			victims: []*vic{pod("b1", "b", 0, 2), pod("b2", "b", 0, 2)},
			why:     "preempting every eligible pod would not make room (victim queues keep their guarantees)",
		},

		// Own queue: priority only.
		"own queue: a lower priority pod goes, for priority": {
			priority: 5,
			victims:  []*vic{pod("a1", "a", 0, 2).prio(4)},
			want:     map[string]string{"a1": ReasonPriority},
		},
		"own queue: equal priority never goes": {
			priority: 5,
			victims:  []*vic{pod("a1", "a", 0, 2).prio(5)},
			why:      "preempting every eligible pod would not make room",
		},
		"own queue: higher priority never goes": {
			priority: 5,
			victims:  []*vic{pod("a1", "a", 0, 2).prio(6)},
			why:      "preempting every eligible pod would not make room",
		},
		"own queue: lower priority goes even when the queue may not reclaim": {
			priority: 5,
			extra:    map[string]resources.Vector{"a": {cpu: cores(10)}},
			victims:  []*vic{pod("c1", "c", 0, 2).age(9), pod("a1", "a", 0, 2).prio(1)},
			want:     map[string]string{"a1": ReasonPriority},
		},
		"own queue at equal priority is not taken when the queue may not reclaim": {
			priority: 5,
			extra:    map[string]resources.Vector{"a": {cpu: cores(10)}},
			victims:  []*vic{pod("c1", "c", 0, 2), pod("a1", "a", 0, 2).prio(5)},
			why:      "queue root.a is not below its guaranteed",
		},
		"across queues, a higher priority pod is still reclaimed": {
			victims: []*vic{pod("c1", "c", 0, 2).prio(100)},
			want:    map[string]string{"c1": ReasonReclaim},
		},
		"own-queue and other-queue victims together": {
			priority: 5,
			members:  []gang.Member{member("p", 3)},
			victims:  []*vic{pod("a1", "a", 0, 1).prio(1), pod("c1", "c", 0, 2).prio(3)},
			want:     map[string]string{"a1": ReasonPriority, "c1": ReasonReclaim},
		},
		// Conservative: the guarantee check counts the queue's usage before
		// its own lower-priority pods go (2 running + 4 asked > 4), though
		// after this plan it would be at 4.
		"own-queue victims still count against the guarantee": {
			priority: 5,
			members:  []gang.Member{member("p", 4)},
			victims:  []*vic{pod("a1", "a", 0, 2).prio(1), pod("c1", "c", 0, 2).prio(3)},
			why:      "queue root.a is not below its guaranteed",
		},

		// Order.
		"PDB-protected pods go last": {
			victims: []*vic{pod("c1", "c", 0, 2).pdb().age(9), pod("c2", "c", 0, 2).prio(50)},
			want:    map[string]string{"c2": ReasonReclaim},
		},
		"a PDB-protected pod goes when nothing else will do": {
			victims: []*vic{pod("c1", "c", 0, 2).pdb(), pod("b1", "b", 0, 2), pod("b2", "b", 0, 2)},
			want:    map[string]string{"c1": ReasonReclaim},
		},
		"lowest priority first": {
			victims: []*vic{pod("c1", "c", 0, 2).prio(2).age(9), pod("c2", "c", 0, 2).prio(1), pod("c3", "c", 0, 2).prio(3)},
			want:    map[string]string{"c2": ReasonReclaim},
		},
		"then the newest": {
			victims: []*vic{pod("c1", "c", 0, 2).age(1), pod("c2", "c", 0, 2).age(3), pod("c3", "c", 0, 2).age(2)},
			want:    map[string]string{"c2": ReasonReclaim},
		},
		"then by key": {
			victims: []*vic{pod("c-b", "c", 0, 2), pod("c-c", "c", 0, 2), pod("c-a", "c", 0, 2)},
			want:    map[string]string{"c-a": ReasonReclaim},
		},
		"a small victim chosen first is spared when a later one suffices alone": {
			members: []gang.Member{member("p", 3)},
			victims: []*vic{pod("c1", "c", 0, 1).age(2), pod("c2", "c", 0, 3).age(1)},
			want:    map[string]string{"c2": ReasonReclaim},
		},

		// Gangs.
		"a gang at its quorum goes whole though one member would do": {
			victims: []*vic{pod("g1", "c", 0, 2).gang("c/spark"), pod("g2", "c", 0, 2).gang("c/spark")},
			gangs:   map[string]GangQuorum{"c/spark": {Min: 2, Bound: 2}},
			want:    map[string]string{"g1": ReasonReclaim, "g2": ReasonReclaim},
		},
		"a gang whose quorum is unknown goes whole": {
			victims: []*vic{pod("g1", "c", 0, 2).gang("c/spark"), pod("g2", "c", 0, 2).gang("c/spark")},
			want:    map[string]string{"g1": ReasonReclaim, "g2": ReasonReclaim},
		},
		"a gang above its quorum gives a single member": {
			victims: []*vic{pod("g1", "c", 0, 2).gang("c/spark"), pod("g2", "c", 0, 2).gang("c/spark")},
			gangs:   map[string]GangQuorum{"c/spark": {Min: 1, Bound: 2}},
			want:    map[string]string{"g1": ReasonReclaim},
		},
		"a gang above its quorum gives members down to its quorum": {
			members: []gang.Member{member("p", 4)},
			victims: []*vic{
				pod("g1", "c", 0, 2).gang("c/spark"), pod("g2", "c", 0, 2).gang("c/spark"), pod("g3", "c", 0, 2).gang("c/spark"),
			},
			gangs: map[string]GangQuorum{"c/spark": {Min: 1, Bound: 3}},
			want:  map[string]string{"g1": ReasonReclaim, "g2": ReasonReclaim},
		},
		"a gang above its quorum goes whole when more than its spare members are needed": {
			members: []gang.Member{member("p", 2)},
			victims: []*vic{
				pod("g1", "c", 0, 1).gang("c/spark"), pod("g2", "c", 0, 1).gang("c/spark"), pod("g3", "c", 0, 1).gang("c/spark"),
			},
			gangs: map[string]GangQuorum{"c/spark": {Min: 2, Bound: 3}},
			want:  map[string]string{"g1": ReasonReclaim, "g2": ReasonReclaim, "g3": ReasonReclaim},
		},
		// The gang's members are newer than c1, so they go first: the spare
		// one alone, then, as one more is needed, the rest of the gang.
		"a gang beyond its spare members goes whole before an older pod": {
			members: []gang.Member{member("p", 2)},
			victims: []*vic{
				pod("g1", "c", 0, 1).gang("c/spark").age(5), pod("g2", "c", 0, 1).gang("c/spark").age(5),
				pod("g3", "c", 0, 1).gang("c/spark").age(5), pod("c1", "c", 0, 1).age(4),
			},
			gangs: map[string]GangQuorum{"c/spark": {Min: 2, Bound: 3}},
			want:  map[string]string{"g1": ReasonReclaim, "g2": ReasonReclaim, "g3": ReasonReclaim},
		},
		"a gang's spare member and a newer pod": {
			members: []gang.Member{member("p", 2)},
			victims: []*vic{
				pod("g1", "c", 0, 1).gang("c/spark").age(5), pod("g2", "c", 0, 1).gang("c/spark").age(5),
				pod("g3", "c", 0, 1).gang("c/spark").age(5), pod("c1", "c", 0, 1).age(6),
			},
			gangs: map[string]GangQuorum{"c/spark": {Min: 2, Bound: 3}},
			want:  map[string]string{"g1": ReasonReclaim, "c1": ReasonReclaim},
		},
		// A Spark app loses executors before its driver, even the driver
		// being newer; the driver goes only with its whole app.
		"a gang's executors go before its driver": {
			members: []gang.Member{member("p", 2)},
			victims: []*vic{
				pod("drv", "c", 0, 1).gang("c/spark").lead().age(9), pod("e1", "c", 0, 1).gang("c/spark").age(5),
				pod("e2", "c", 0, 1).gang("c/spark").age(5), pod("e3", "c", 0, 1).gang("c/spark").age(5),
			},
			gangs: map[string]GangQuorum{"c/spark": {Min: 1, Bound: 4}},
			want:  map[string]string{"e1": ReasonReclaim, "e2": ReasonReclaim},
		},
		// Without the driver's lead mark the newest pod, the driver, would go
		// first as a spare member and leave its executors without it.
		"a newest driver is not taken as a spare member": {
			members: []gang.Member{member("p", 3)},
			victims: []*vic{
				pod("drv", "c", 0, 1).gang("c/spark").lead().age(9), pod("e1", "c", 0, 1).gang("c/spark").age(5),
				pod("e2", "c", 0, 1).gang("c/spark").age(5), pod("c1", "c", 0, 1).age(7),
			},
			gangs: map[string]GangQuorum{"c/spark": {Min: 1, Bound: 3}},
			want:  map[string]string{"c1": ReasonReclaim, "e1": ReasonReclaim, "e2": ReasonReclaim},
		},
		"a driver goes with its whole app when more than its executors are needed": {
			members: []gang.Member{member("p", 4)},
			victims: []*vic{
				pod("drv", "c", 0, 1).gang("c/spark").lead(), pod("e1", "c", 0, 1).gang("c/spark"),
				pod("e2", "c", 0, 1).gang("c/spark"), pod("c1", "c", 0, 1).age(-1),
			},
			gangs: map[string]GangQuorum{"c/spark": {Min: 1, Bound: 3}},
			want:  map[string]string{"drv": ReasonReclaim, "e1": ReasonReclaim, "e2": ReasonReclaim, "c1": ReasonReclaim},
		},

		// At the queue's max: priority within the queue only.
		"at its max, a higher-priority pod takes one lower-priority pod of its queue though nodes have room": {
			priority: 5, maxCPUs: 4, free: cpuFree(4),
			victims: []*vic{pod("a1", "a", 0, 2).age(1), pod("a2", "a", 0, 2).age(2), pod("c1", "c", 0, 2).prio(-9)},
			want:    map[string]string{"a2": ReasonPriority},
		},
		"at its max, a pod of another queue is never taken": {
			priority: 5, maxCPUs: 4, free: cpuFree(0),
			extra:   map[string]resources.Vector{"a": {cpu: cores(4)}},
			victims: []*vic{pod("c1", "c", 0, 2).prio(-9)},
			why:     "queue root.a is at its max, and preempting every lower-priority pod of it would not make room",
		},
		"at its max, pods of equal priority are not taken": {
			priority: 5, maxCPUs: 4, free: cpuFree(4),
			victims: []*vic{pod("a1", "a", 0, 2).prio(5), pod("a2", "a", 0, 2).prio(5)},
			why:     "is at its max",
		},
		"at its max, the victims must also make room on a node": {
			priority: 5, maxCPUs: 4, free: cpuFree(0, 0),
			victims: []*vic{pod("a1", "a", 0, 1), pod("a2", "a", 1, 1), pod("a3", "a", 0, 2).prio(1)},
			want:    map[string]string{"a3": ReasonPriority},
		},

		// minRuntimeSeconds.
		"a young pod is spared while an older one frees the room": {
			victims: []*vic{pod("young", "c", 0, 2).young().prio(-5), pod("old", "c", 0, 2).prio(3)},
			want:    map[string]string{"old": ReasonReclaim},
		},
		"a young pod is taken when nothing else frees the room": {
			members: []gang.Member{member("p", 4)},
			victims: []*vic{pod("young", "c", 0, 2).young(), pod("old", "c", 0, 2)},
			want:    map[string]string{"young": ReasonReclaim, "old": ReasonReclaim},
		},

		"a gang with a member the preemptor may not take is not taken": {
			priority: 5,
			victims: []*vic{
				pod("g1", "a", 0, 2).gang("a/job").prio(1).age(5), pod("g2", "a", 0, 2).gang("a/job").prio(7).age(5),
				pod("a1", "a", 0, 2).prio(2),
			},
			gangs: map[string]GangQuorum{"a/job": {Min: 2, Bound: 2}},
			want:  map[string]string{"a1": ReasonPriority},
		},
		"a whole gang is as important as its highest priority member": {
			victims: []*vic{
				pod("g1", "c", 0, 2).gang("c/spark"), pod("g2", "c", 0, 2).gang("c/spark").prio(3),
				pod("c1", "c", 0, 2).prio(2),
			},
			gangs: map[string]GangQuorum{"c/spark": {Min: 2, Bound: 2}},
			want:  map[string]string{"c1": ReasonReclaim},
		},
		"a whole gang is as new as its newest member": {
			victims: []*vic{
				pod("g1", "c", 0, 2).gang("c/spark"), pod("g2", "c", 0, 2).gang("c/spark").age(3),
				pod("c1", "c", 0, 2).age(2),
			},
			gangs: map[string]GangQuorum{"c/spark": {Min: 2, Bound: 2}},
			want:  map[string]string{"g1": ReasonReclaim, "g2": ReasonReclaim},
		},
		"a whole gang with one PDB-protected member goes last": {
			victims: []*vic{
				pod("g1", "c", 0, 2).gang("c/spark"), pod("g2", "c", 0, 2).gang("c/spark").pdb(),
				pod("c1", "c", 0, 2).prio(9),
			},
			gangs: map[string]GangQuorum{"c/spark": {Min: 2, Bound: 2}},
			want:  map[string]string{"c1": ReasonReclaim},
		},
		"a gang above its quorum with a member the preemptor may not take gives only its spare members": {
			priority: 5,
			members:  []gang.Member{member("p", 2)},
			victims: []*vic{
				pod("g1", "a", 0, 1).gang("a/job").prio(1), pod("g2", "a", 0, 1).gang("a/job").prio(1),
				pod("g3", "a", 0, 1).gang("a/job").prio(7), pod("a1", "a", 0, 1).prio(2),
			},
			gangs: map[string]GangQuorum{"a/job": {Min: 2, Bound: 3}},
			want:  map[string]string{"g1": ReasonPriority, "a1": ReasonPriority},
		},
		"a gang in the preemptor's own queue goes whole, for priority": {
			priority: 5,
			victims:  []*vic{pod("g1", "a", 0, 1).gang("a/job").prio(1), pod("g2", "a", 0, 1).gang("a/job").prio(1)},
			gangs:    map[string]GangQuorum{"a/job": {Min: 2, Bound: 2}},
			want:     map[string]string{"g1": ReasonPriority, "g2": ReasonPriority},
		},
		"a gang that would take its queue below its guarantee is skipped for a single pod": {
			victims: []*vic{
				pod("g1", "b", 0, 2).gang("b/job").age(5), pod("g2", "b", 0, 2).gang("b/job").age(5),
				pod("b1", "b", 0, 2), pod("c1", "c", 0, 2),
			},
			gangs: map[string]GangQuorum{"b/job": {Min: 2, Bound: 2}},
			want:  map[string]string{"b1": ReasonReclaim},
		},

		// Never more than needed.
		"small victims chosen first are spared once a big one is chosen": {
			members: []gang.Member{member("p", 4)},
			victims: []*vic{pod("s1", "c", 0, 1).age(3), pod("s2", "c", 0, 1).age(2), pod("big", "c", 0, 4).age(1)},
			want:    map[string]string{"big": ReasonReclaim},
		},
		"what is free already counts": {
			members: []gang.Member{member("p", 4)},
			free:    cpuFree(3),
			victims: []*vic{pod("c1", "c", 0, 2).age(1), pod("c2", "c", 0, 1).age(2)},
			want:    map[string]string{"c2": ReasonReclaim},
		},

		// Several nodes.
		"the victim on the node where one will do, not two on another": {
			free: cpuFree(0, 0),
			victims: []*vic{
				pod("x1", "c", 0, 1).age(3), pod("x2", "c", 0, 1).age(1),
				pod("y", "c", 1, 2).age(2),
			},
			want:      map[string]string{"y": ReasonReclaim},
			wantNodes: []int{1},
		},
		// Order wins over count: two newer pods on node 0 go rather than
		// the one older pod on node 1 (newest first, as the spec says).
		"newer victims go before fewer older ones": {
			free: cpuFree(0, 0),
			victims: []*vic{
				pod("x1", "c", 0, 1).age(3), pod("x2", "c", 0, 1).age(2),
				pod("y", "c", 1, 2).age(1),
			},
			want:      map[string]string{"x1": ReasonReclaim, "x2": ReasonReclaim},
			wantNodes: []int{0},
		},
		"victims on a node where the request cannot fit anyway are spared": {
			members: []gang.Member{member("p", 4)},
			free:    []resources.Vector{{cpu: cores(2)}, {cpu: 0}},
			victims: []*vic{pod("y", "c", 1, 2).age(9), pod("x", "c", 0, 2)},
			want:    map[string]string{"x": ReasonReclaim},
		},
		"a gang preemptor over two nodes, one victim": {
			members: []gang.Member{member("p-0", 1), member("p-1", 1), member("p-2", 1)},
			free:    cpuFree(0, 1),
			victims: []*vic{pod("x", "c", 0, 2).age(1), pod("y", "c", 1, 1).age(2)},
			want:    map[string]string{"x": ReasonReclaim},
		},
		"a gang preemptor with a victim on each node": {
			members: []gang.Member{member("p-0", 2), member("p-1", 2)},
			free:    cpuFree(1, 1),
			victims: []*vic{pod("x", "c", 0, 1), pod("y", "c", 1, 1), pod("z", "c", 1, 4).prio(9)},
			want:    map[string]string{"x": ReasonReclaim, "y": ReasonReclaim},
		},
		"gang preemptor members of two classes": {
			members: []gang.Member{member("p-0", 2), {Name: "p-1", Request: resources.Vector{cpu: cores(2)}, Class: 1}},
			free:    cpuFree(0, 0, 2),
			// class 0 may use nodes 0 and 2, class 1 only node 1
			eligible: func(class, node int) bool { return (class == 1) == (node == 1) },
			victims:  []*vic{pod("x", "c", 0, 2).age(5), pod("y", "c", 1, 2)},
			want:     map[string]string{"y": ReasonReclaim},
		},
		"victims on ineligible nodes are not taken": {
			free:      cpuFree(0, 0),
			eligible:  onlyNode1,
			victims:   []*vic{pod("x", "c", 0, 2).age(9), pod("y", "c", 1, 2)},
			want:      map[string]string{"y": ReasonReclaim},
			wantNodes: []int{1},
		},
		"no eligible node at all": {
			free:     cpuFree(0, 0),
			eligible: func(int, int) bool { return false },
			victims:  []*vic{pod("x", "c", 0, 2), pod("y", "c", 1, 2)},
			why:      "preempting every eligible pod would not make room",
		},
		"freeing the wrong resource does not help": {
			queue:   "ml",
			members: []gang.Member{{Name: "p", Request: resources.Vector{cpu: cores(1), gpu: 1}}},
			free:    []resources.Vector{{cpu: cores(8), gpu: 0}},
			victims: []*vic{pod("c1", "c", 0, 4).age(2), pod("c2", "c", 0, 1).also(gpu, 1)},
			want:    map[string]string{"c2": ReasonReclaim},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			leaf, members, free := tc.queue, tc.members, tc.free
			if leaf == "" {
				leaf = "a"
			}
			if members == nil {
				members = twoCPUs
			}
			if free == nil {
				free = cpuFree(0)
			}
			in := reclaimInput(t, tree, leaf, tc.priority, members, free, tc.victims, tc.extra)
			in.Gangs, in.Eligible = tc.gangs, tc.eligible
			if tc.maxCPUs > 0 {
				used, limit := in.Usage[in.Queue.Path][cpu], cores(tc.maxCPUs)
				in.UnderMax = func(freed resources.Vector) bool {
					need := int64(0)
					for _, m := range members {
						need += m.Request[cpu]
					}
					return used-freed[cpu]+need <= limit
				}
			}
			before := fmt.Sprint(in)

			p, why := Reclaim(in)
			assert.Equal(t, before, fmt.Sprint(in), "Reclaim changed its input")
			if tc.want == nil {
				assert.Nil(t, p)
				assert.Contains(t, message(why), tc.why)
				return
			}
			require.NotNil(t, p, why)
			assert.Empty(t, why)
			got := map[string]string{}
			for i, v := range p.Victims {
				got[v.Key] = p.Reasons[i]
			}
			assert.Equal(t, tc.want, got)
			if tc.wantNodes != nil {
				assert.Equal(t, tc.wantNodes, p.Plan.Node)
			}
			checkPlan(t, in, p)
		})
	}
}

// TestReclaimDeterministic: the same input gives the same plan, whatever
// the order of the candidates.
func TestReclaimDeterministic(t *testing.T) {
	tree := mustTree(t, reclaimQueues)
	victims := []*vic{
		pod("g1", "c", 0, 1).gang("c/x"), pod("g2", "c", 1, 1).gang("c/x"),
		pod("h1", "c", 0, 1).gang("c/y"), pod("h2", "c", 1, 1).gang("c/y"),
		pod("c1", "c", 0, 1), pod("c2", "c", 1, 1), pod("b1", "b", 0, 3), pod("b2", "b", 1, 3),
	}
	in := reclaimInput(t, tree, "a", 0, []gang.Member{member("p-0", 2), member("p-1", 2)}, cpuFree(0, 0), victims, nil)
	in.Gangs = map[string]GangQuorum{"c/x": {Min: 2, Bound: 2}, "c/y": {Min: 2, Bound: 2}}
	// The victims of a whole gang come in the order they were given: compare
	// the choice, not the order.
	summary := func(p *ReclaimPlan) []string {
		out := []string{fmt.Sprint(p.Plan.Node)}
		for i, v := range p.Victims {
			out = append(out, v.Key+"="+p.Reasons[i])
		}
		sort.Strings(out)
		return out
	}
	first, why := Reclaim(in)
	require.NotNil(t, first, why)
	checkPlan(t, in, first)
	r := rand.New(rand.NewPCG(7, 7))
	for range 50 {
		r.Shuffle(len(in.Victims), func(i, j int) { in.Victims[i], in.Victims[j] = in.Victims[j], in.Victims[i] })
		again, _ := Reclaim(in)
		require.NotNil(t, again)
		assert.Equal(t, summary(first), summary(again))
	}
}

// reclaimWorld is a random small cluster for the no-ping-pong property.
type reclaimWorld struct {
	tree    *queue.Tree
	leaves  []string
	free    []resources.Vector
	pods    []Victim
	gangs   map[string]GangQuorum
	byLeaf  map[string]resources.Vector
	started int // minutes, increasing with every pod
}

func newReclaimWorld(t *testing.T, r *rand.Rand) *reclaimWorld {
	t.Helper()
	w := &reclaimWorld{gangs: map[string]GangQuorum{}, byLeaf: map[string]resources.Vector{}}
	var b strings.Builder
	b.WriteString("queues:\n")
	for i := range 2 + r.IntN(3) {
		name := fmt.Sprintf("q%d", i)
		w.leaves = append(w.leaves, queue.RootName+"."+name)
		fmt.Fprintf(&b, "  - name: %s\n", name)
		var g []string
		if r.IntN(4) != 0 {
			g = append(g, fmt.Sprintf("cpu: %q", fmt.Sprint(2+r.IntN(9))))
		}
		if r.IntN(3) == 0 {
			g = append(g, fmt.Sprintf("%s: %q", gpu, fmt.Sprint(1+r.IntN(3))))
		}
		if len(g) > 0 {
			fmt.Fprintf(&b, "    guaranteed: {%s}\n", strings.Join(g, ", "))
		}
	}
	w.tree = mustTree(t, b.String())
	capacity := make([]resources.Vector, 1+r.IntN(4))
	for i := range capacity {
		capacity[i] = resources.Vector{cpu: cores(float64(4 + r.IntN(5)))}
		if r.IntN(2) == 0 {
			capacity[i][gpu] = int64(r.IntN(3))
		}
	}
	w.free = capacity
	// Running pods: singles and gangs (of one leaf and priority), placed
	// where they fit.
	for n := 0; n < 4+r.IntN(14); n++ {
		leaf := w.leaves[r.IntN(len(w.leaves))]
		size, g := 1, ""
		if r.IntN(4) == 0 {
			size, g = 2+r.IntN(2), fmt.Sprintf("gang-%d", n)
		}
		prio := int32(r.IntN(4))
		var placed []Victim
		for i := range size {
			req := randomPodRequest(r)
			node, start := -1, r.IntN(len(w.free))
			for k := range w.free {
				if fitsIn(w.free[(start+k)%len(w.free)], req) {
					node = (start + k) % len(w.free)
					break
				}
			}
			if node < 0 {
				continue
			}
			w.free[node].Sub(req)
			w.started++
			placed = append(placed, Victim{
				Key: fmt.Sprintf("pod-%d-%d", n, i), Namespace: "ns", Name: fmt.Sprintf("pod-%d-%d", n, i),
				Queue: leaf, Node: node, Request: req, Priority: prio, Gang: g,
				Started:           reclaimT0.Add(time.Duration(w.started) * time.Minute),
				DisruptionAllowed: r.IntN(5) != 0,
			})
		}
		if len(placed) == 0 {
			continue
		}
		if g != "" {
			w.gangs[g] = GangQuorum{Min: 1 + r.IntN(len(placed)), Bound: len(placed)}
		}
		for _, v := range placed {
			w.add(v)
		}
	}
	return w
}

func randomPodRequest(r *rand.Rand) resources.Vector {
	req := resources.Vector{cpu: cores(float64(1 + r.IntN(3)))}
	if r.IntN(3) == 0 {
		req[gpu] = 1
	}
	return req
}

func fitsIn(free, req resources.Vector) bool {
	for res, a := range req {
		if a > free[res] {
			return false
		}
	}
	return true
}

func (w *reclaimWorld) add(v Victim) {
	w.pods = append(w.pods, v)
	if w.byLeaf[v.Queue] == nil {
		w.byLeaf[v.Queue] = resources.Vector{}
	}
	w.byLeaf[v.Queue].Add(v.Request)
}

// remove takes the pods out of the cluster, freeing their nodes.
func (w *reclaimWorld) remove(keys map[string]bool) {
	var kept []Victim
	for _, v := range w.pods {
		if !keys[v.Key] {
			kept = append(kept, v)
			continue
		}
		w.free[v.Node].Add(v.Request)
		w.byLeaf[v.Queue].Sub(v.Request)
	}
	w.pods = kept
}

func (w *reclaimWorld) input(leaf string, prio int32, members []gang.Member) ReclaimInput {
	in := ReclaimInput{
		Tree: w.tree, Usage: rollUp(w.tree, w.byLeaf), Queue: w.tree.Get(leaf), Priority: prio,
		Members: members, Gangs: map[string]GangQuorum{},
	}
	for g, q := range w.gangs {
		in.Gangs[g] = q
	}
	for i, f := range w.free {
		in.Nodes = append(in.Nodes, gang.Node{Name: fmt.Sprintf("node-%d", i), Free: f.Clone()})
	}
	for _, v := range w.pods {
		v.Request = v.Request.Clone()
		in.Victims = append(in.Victims, v)
	}
	return in
}

// TestReclaimNoPingPong: after a reclaim, the preemptor's queue is at or
// under its guarantee and every victim queue at or above its own; and a
// victim queue turned preemptor, then or after its own pods have gone,
// never reclaims the pods that took its place.
func TestReclaimNoPingPong(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 14))
	plans, swapped := 0, 0
	for iter := range 3000 {
		w := newReclaimWorld(t, r)
		leaf := w.leaves[r.IntN(len(w.leaves))]
		prio := int32(r.IntN(5))
		var members []gang.Member
		for i := range 1 + r.IntN(3) {
			members = append(members, gang.Member{Name: fmt.Sprintf("new-%d", i), Request: randomPodRequest(r)})
		}
		in := w.input(leaf, prio, members)
		p, why := Reclaim(in)
		if p == nil {
			checkRefusal(t, in, why)
			continue
		}
		plans++
		ok := t.Run(fmt.Sprintf("iter-%d", iter), func(t *testing.T) {
			checkPlan(t, in, p)
			victimQueues := map[string]bool{}
			gone := map[string]bool{}
			for i, v := range p.Victims {
				gone[v.Key] = true
				if p.Reasons[i] == ReasonReclaim {
					victimQueues[v.Queue] = true
				}
			}
			// Apply the plan: the victims go, the members run where planned.
			w.remove(gone)
			for g := range w.gangs {
				n := 0
				for _, v := range w.pods {
					if v.Gang == g {
						n++
					}
				}
				q := w.gangs[g]
				q.Bound = n
				w.gangs[g] = q
			}
			total := resources.Vector{}
			for i, m := range members {
				total.Add(m.Request)
				w.free[p.Plan.Node[i]].Sub(m.Request)
				w.started++
				v := Victim{
					Key: m.Name, Namespace: "ns", Name: m.Name, Queue: leaf, Node: p.Plan.Node[i],
					Request: m.Request.Clone(), Priority: prio, DisruptionAllowed: true,
					Started: reclaimT0.Add(time.Duration(w.started) * time.Minute),
				}
				if len(members) > 1 {
					v.Gang = "new"
				}
				w.add(v)
			}
			if len(members) > 1 {
				w.gangs["new"] = GangQuorum{Min: 1 + r.IntN(len(members)), Bound: len(members)}
			}
			usage := rollUp(w.tree, w.byLeaf)
			if len(victimQueues) > 0 {
				pq := w.tree.Get(leaf)
				for res, a := range total {
					if g, ok := pq.Guaranteed[res]; ok && a > 0 {
						assert.LessOrEqual(t, usage[leaf][res], g, "preemptor %s above its guarantee in %s", leaf, res)
					}
				}
			}
			for vq := range victimQueues {
				for res, g := range w.tree.Get(vq).Guaranteed {
					assert.GreaterOrEqual(t, usage[vq][res], g, "victim queue %s below its guarantee in %s", vq, res)
				}
			}

			// Roles swapped: each victim queue asks for what it lost, at
			// the highest priority, first right away, then once its own
			// pods have gone.
			for _, vq := range sortedKeys(victimQueues) {
				var want []gang.Member
				for _, v := range p.Victims {
					if v.Queue == vq {
						want = append(want, gang.Member{Name: v.Key, Request: v.Request.Clone()})
					}
				}
				for _, emptied := range []bool{false, true} {
					if emptied {
						own := map[string]bool{}
						for _, v := range w.pods {
							if v.Queue == vq {
								own[v.Key] = true
							}
						}
						w.remove(own)
					}
					back := w.input(vq, 1<<30, want)
					bp, _ := Reclaim(back)
					if bp == nil {
						continue
					}
					swapped++
					checkPlan(t, back, bp)
					for _, v := range bp.Victims {
						assert.False(t, strings.HasPrefix(v.Key, "new-"), "%s takes back %s from %s (emptied %v)", vq, v.Key, leaf, emptied)
					}
				}
			}
		})
		if !ok {
			break
		}
	}
	t.Logf("%d plans, %d reclaims back", plans, swapped)
	assert.Greater(t, plans, 300, "too few plans to say much")
}

// checkRefusal checks that a refusal says why truly, and that its code
// says the same as its sentence.
func checkRefusal(t *testing.T, in ReclaimInput, ref *ReclaimRefusal) {
	t.Helper()
	require.NotNil(t, ref, "no plan and no refusal")
	why := ref.Error()
	_, short := gang.Pack(in.Nodes, in.Members, in.Eligible)
	if why == "the pod fits without preempting anything" {
		assert.Equal(t, RefusalNotNeeded, ref.Code, why)
		assert.Nil(t, short, why)
		return
	}
	require.NotNil(t, short, "refused though it fits: %s", why)
	if strings.Contains(why, "is not below its guaranteed") {
		assert.Equal(t, RefusalNotBelowGuarantee, ref.Code, why)
		total := resources.Vector{}
		for _, m := range in.Members {
			total.Add(m.Request)
		}
		within, any := true, false
		for r, a := range total {
			if g, ok := in.Queue.Guaranteed[r]; ok && a > 0 {
				any = true
				within = within && in.Usage[in.Queue.Path][r]+a <= g
			}
		}
		assert.False(t, any && within, "%s: but %v + %v is within %v", why, in.Usage[in.Queue.Path], total, in.Queue.Guaranteed)
		return
	}
	assert.True(t, strings.HasPrefix(why, "preempting every eligible pod would not make room (victim queues keep their guarantees)"), why)
	want := RefusalNoRoom
	switch {
	case len(ref.Protected) > 0:
		want = RefusalProtectedByGuarantee
	case len(ref.NotOwed) > 0:
		want = RefusalNotOwed
	}
	assert.Equal(t, want, ref.Code, why)
	assert.Equal(t, len(ref.Protected) > 0, strings.Contains(why, "drop below their guaranteed: "+strings.Join(ref.Protected, ", ")), why)
	assert.Equal(t, len(ref.NotOwed) > 0, strings.Contains(why, "it may not reclaim from "+strings.Join(ref.NotOwed, ", ")+":"), why)
}

// message is a refusal's sentence, "" for none.
func message(ref *ReclaimRefusal) string {
	if ref == nil {
		return ""
	}
	return ref.Error()
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
