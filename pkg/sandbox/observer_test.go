package sandbox

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	clocktesting "k8s.io/utils/clock/testing"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/gang"
)

// gangWorld drives an observer by hand: pods are submitted, bound, finished
// or lost, and the clock moves in real time (scale 1).
type gangWorld struct {
	t   *testing.T
	clk *clocktesting.FakeClock
	obs *observer
}

func newGangWorld(t *testing.T) *gangWorld {
	clk := clocktesting.NewFakeClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	require.NoError(t, idx.Add(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node"}}))
	obs := newObserver(clk, nil, corelisters.NewNodeLister(idx), 1)
	obs.start = clk.Now()
	return &gangWorld{t: t, clk: clk, obs: obs}
}

func (w *gangWorld) submit(a *app, names ...string) {
	pods := make([]cluster.Pod, len(names))
	for i, n := range names {
		pods[i] = cluster.Pod{Namespace: a.ns, Name: n, Requests: map[v1.ResourceName]string{v1.ResourceCPU: "1"},
			Labels: map[string]string{labelApp: a.name, labelKind: a.kind}}
		switch {
		case a.kind == kindSpark && n == a.name+"-driver":
			pods[i].Labels[gang.LabelSparkRole] = string(gang.SparkDriver)
		case a.kind == kindSpark:
			pods[i].Labels[gang.LabelSparkRole] = string(gang.SparkExecutor)
		}
	}
	w.obs.submitted(a, pods)
}

func (w *gangWorld) pod(a *app, name string) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: name}}
}

func (w *gangWorld) bind(a *app, names ...string) {
	for _, n := range names {
		p := w.pod(a, n)
		p.Spec.NodeName = "node"
		p.Status.Phase = v1.PodRunning
		w.obs.observe(p, false)
	}
}

func (w *gangWorld) finish(a *app, names ...string) {
	for _, n := range names {
		p := w.pod(a, n)
		p.Spec.NodeName = "node"
		p.Status.Phase = v1.PodSucceeded
		w.obs.observe(p, false)
	}
}

func (w *gangWorld) lose(a *app, names ...string) {
	for _, n := range names {
		p := w.pod(a, n)
		p.Spec.NodeName = "node"
		w.obs.podLost(p)
		w.obs.observe(p, true)
	}
}

// wait samples once a second for d.
func (w *gangWorld) wait(d time.Duration) {
	for end := w.clk.Now().Add(d); w.clk.Now().Before(end); {
		w.clk.Step(time.Second)
		w.obs.sample()
	}
}

func names(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// TestObserverPartialGangs: a gang is partially bound only when some but
// fewer than its quorum of members were bound for longer than a binding
// burst before it ever reached its quorum; what happens to its members
// afterwards (they finish at different times, are lost to an interruption
// and replaced, dynamic executors wait) does not count. A gang is admitted
// once its quorum was bound, however soon after a member goes.
func TestObserverPartialGangs(t *testing.T) {
	training := func() *app {
		return &app{kind: kindTraining, ns: "ml", name: "train", training: &Training{Workers: 4}}
	}
	spark := func() *app {
		return &app{kind: kindSpark, ns: "etl", name: "etl", spark: &SparkApp{MinExecutors: 2, Executors: 3, MaxExecutors: 5}}
	}
	cases := map[string]struct {
		kind    string
		play    func(w *gangWorld, a *app)
		partial int
	}{
		"training: bound in one burst": {
			kind: kindTraining,
			play: func(w *gangWorld, a *app) {
				w.submit(a, names("w", 0, 4)...)
				w.wait(3 * time.Second)
				w.bind(a, names("w", 0, 2)...)
				w.wait(3 * time.Second)
				w.bind(a, names("w", 2, 4)...)
				w.wait(30 * time.Second)
			},
		},
		"training: workers finish at different times": {
			kind: kindTraining,
			play: func(w *gangWorld, a *app) {
				w.submit(a, names("w", 0, 4)...)
				w.bind(a, names("w", 0, 4)...)
				w.wait(60 * time.Second)
				w.finish(a, "w-0")
				w.wait(5 * time.Second)
				w.finish(a, "w-1")
				w.wait(30 * time.Second)
				w.finish(a, "w-2", "w-3")
				w.wait(5 * time.Second)
			},
		},
		// The sandbox's spot interruption took a worker's node half a
		// second after the gang bound: no sample saw the gang whole, and
		// TestSandboxTrace counted 1 of 2 gangs admitted under load.
		"training: a worker lost before the next sample": {
			kind: kindTraining,
			play: func(w *gangWorld, a *app) {
				w.submit(a, names("w", 0, 4)...)
				w.wait(3 * time.Second)
				w.bind(a, names("w", 0, 4)...)
				w.lose(a, "w-0")
				w.wait(30 * time.Second)
			},
		},
		"training: a worker lost before its bind was watched": {
			kind: kindTraining,
			play: func(w *gangWorld, a *app) {
				w.submit(a, names("w", 0, 4)...)
				w.bind(a, names("w", 1, 4)...)
				w.lose(a, "w-0") // the world lists it on its node first
				w.wait(30 * time.Second)
			},
		},
		"spark: the app ends within a second of the quorum": {
			kind: kindSpark,
			play: func(w *gangWorld, a *app) {
				w.submit(a, "etl-driver")
				w.bind(a, "etl-driver")
				w.submit(a, "etl-exec-1", "etl-exec-2", "etl-exec-3")
				w.bind(a, "etl-exec-1", "etl-exec-2")
				w.finish(a, "etl-driver")
				w.lose(a, "etl-exec-1", "etl-exec-2", "etl-exec-3")
				w.wait(5 * time.Second)
			},
		},
		"training: half bound for longer than a burst": {
			kind: kindTraining,
			play: func(w *gangWorld, a *app) {
				w.submit(a, names("w", 0, 4)...)
				w.bind(a, names("w", 0, 2)...)
				w.wait(2 * partialGrace)
				w.bind(a, names("w", 2, 4)...)
				w.wait(5 * time.Second)
			},
			partial: 1,
		},
		"spark: driver alone before its executors exist": {
			kind: kindSpark,
			play: func(w *gangWorld, a *app) {
				w.submit(a, "etl-driver")
				w.bind(a, "etl-driver")
				w.wait(2 * partialGrace)
				w.submit(a, "etl-exec-1", "etl-exec-2", "etl-exec-3")
				w.bind(a, "etl-exec-1", "etl-exec-2", "etl-exec-3")
				w.wait(5 * time.Second)
			},
		},
		"spark: executor lost after the quorum, replaced later; dynamic executors wait": {
			kind: kindSpark,
			play: func(w *gangWorld, a *app) {
				w.submit(a, "etl-driver")
				w.bind(a, "etl-driver")
				w.submit(a, "etl-exec-1", "etl-exec-2", "etl-exec-3")
				w.bind(a, "etl-exec-1", "etl-exec-2")
				w.wait(5 * time.Second)
				w.lose(a, "etl-exec-1", "etl-exec-2") // below its quorum, exec-3 still waiting
				w.submit(a, "etl-exec-4", "etl-exec-5")
				w.wait(2 * partialGrace)
				w.bind(a, "etl-exec-4")
				w.submit(a, "etl-exec-6", "etl-exec-7")
				w.wait(2 * partialGrace)
			},
		},
		"spark: executors exist and wait while the driver runs": {
			kind: kindSpark,
			play: func(w *gangWorld, a *app) {
				w.submit(a, "etl-driver")
				w.bind(a, "etl-driver")
				w.submit(a, "etl-exec-1", "etl-exec-2", "etl-exec-3")
				w.bind(a, "etl-exec-1")
				w.wait(2 * partialGrace)
				w.bind(a, "etl-exec-2", "etl-exec-3")
				w.wait(5 * time.Second)
			},
			partial: 1,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			w := newGangWorld(t)
			a := training()
			if tc.kind == kindSpark {
				a = spark()
			}
			tc.play(w, a)
			r := w.obs.report(SchedulerMuster, "test", 0)
			assert.Equal(t, 1, r.Gangs.Total)
			assert.Equal(t, 1, r.Gangs.Admitted, "the gang reached its quorum")
			assert.Equal(t, tc.partial, r.Gangs.PartiallyBound, "partially bound; timeline: %v", r.Timeline)
			if tc.partial > 0 {
				require.NotEmpty(t, r.Timeline)
				assert.Contains(t, r.Timeline[len(r.Timeline)-1], a.key()+" partially bound")
			}
		})
	}
}

// TestObserverPodsLostToInterruptions: a pod found on an interrupted node
// is lost, and stays lost when its success, racing the node's removal, is
// watched afterwards (the world deletes it: the cluster does not count it
// as succeeded); a pod that succeeded before the node went is not lost.
func TestObserverPodsLostToInterruptions(t *testing.T) {
	a := &app{kind: kindBatch, ns: "batch", name: "jobs"}
	onNode := func(w *gangWorld, phase v1.PodPhase) *v1.Pod {
		p := w.pod(a, "jobs-0")
		p.Spec.NodeName, p.Status.Phase = "node", phase
		return p
	}
	for name, tc := range map[string]struct {
		play      func(w *gangWorld)
		succeeded int
	}{
		"succeeds before the node goes": {
			play: func(w *gangWorld) { w.finish(a, "jobs-0") },
			// reclaimNode skips pods that succeeded
			succeeded: 1,
		},
		"lost while running": {
			play: func(w *gangWorld) {
				w.obs.podLost(onNode(w, v1.PodRunning))
				w.obs.observe(onNode(w, v1.PodRunning), true)
			},
		},
		"success watched after it was found on the node": {
			play: func(w *gangWorld) {
				w.obs.podLost(onNode(w, v1.PodRunning))
				w.obs.observe(onNode(w, v1.PodSucceeded), false)
				w.obs.observe(onNode(w, v1.PodSucceeded), true)
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			w := newGangWorld(t)
			w.submit(a, "jobs-0")
			w.bind(a, "jobs-0")
			tc.play(w)
			assert.True(t, w.obs.finished(), "nothing left to run")
			r := w.obs.report(SchedulerMuster, "test", 0)
			assert.Equal(t, PodCounts{Submitted: 1, Bound: 1, Succeeded: tc.succeeded}, r.Pods)
		})
	}
}

// TestObserverDomains: the report lists, for each training with a topology
// constraint or DRA GPUs, the racks and blocks its workers were bound in.
func TestObserverDomains(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for i, rack := range []string{"r0", "r0", "r1"} {
		require.NoError(t, idx.Add(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("n%d", i),
			Labels: map[string]string{LabelRack: rack, LabelBlock: "b0"}}}))
	}
	obs := newObserver(clk, nil, corelisters.NewNodeLister(idx), 1)
	obs.start = clk.Now()
	w := &gangWorld{t: t, clk: clk, obs: obs}
	together := &app{kind: kindTraining, ns: "ml", name: "together", training: &Training{Workers: 2, Devices: 1, TopologyRequired: LabelRack}}
	spread := &app{kind: kindTraining, ns: "ml", name: "spread", training: &Training{Workers: 2}}
	waiting := &app{kind: kindTraining, ns: "ml", name: "waiting", training: &Training{Workers: 2, TopologyPreferred: LabelBlock + "," + LabelRack}}
	for _, a := range []*app{together, spread, waiting} {
		w.submit(a, a.name+"-0", a.name+"-1")
	}
	bindTo := func(a *app, name, node string) {
		p := w.pod(a, name)
		p.Spec.NodeName, p.Status.Phase = node, v1.PodRunning
		obs.observe(p, false)
	}
	bindTo(together, "together-0", "n0")
	bindTo(together, "together-1", "n1")
	bindTo(spread, "spread-0", "n0")
	bindTo(spread, "spread-1", "n2")

	r := obs.report("muster", "t", 0)
	require.Len(t, r.Domains, 2, "the training without a placement is not listed")
	assert.Equal(t, GangDomains{Gang: "ml/together", Placement: "required rack, 1 DRA GPU/worker", Workers: 2,
		Racks: []string{"r0"}, Blocks: []string{"b0"}}, r.Domains[0])
	assert.Equal(t, GangDomains{Gang: "ml/waiting", Placement: "preferred block,rack", Racks: []string{}, Blocks: []string{}}, r.Domains[1])
	assert.Equal(t, "1 / 1 (2 bound)", domainsOf(r, "ml/together"))
	assert.Equal(t, "never bound", domainsOf(r, "ml/waiting"))
}
