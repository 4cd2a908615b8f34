package gang

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/resources"
)

func cpus(n int64) resources.Vector { return resources.Vector{v1.ResourceCPU: n * 1000} }

// TestHoldsFor: which holds keep room from a pod or gang about to take it.
func TestHoldsFor(t *testing.T) {
	train := Ref{Kind: KindPodGroup, Namespace: "ml", Name: "train"}
	big := PodRef("etl", "big")
	holds := NewHolds()
	require.True(t, holds.Offer(Hold{Ref: train, Leaf: "root.ml", Priority: 10, Arrived: t0, Need: map[string]resources.Vector{"n1": cpus(4), "n2": cpus(2)}, Since: t0}))
	require.True(t, holds.Offer(Hold{Ref: big, Leaf: "root.etl", Arrived: t0, Need: map[string]resources.Vector{"n2": cpus(3)}, Since: t0}))
	owed := func(leaf string) bool { return leaf == "root.ml" } // root.etl is at or above its share

	cases := []struct {
		name string
		sub  Subject
		want map[string]resources.Vector
	}{
		{"the holder itself", Subject{Ref: train, Leaf: "root.ml", Priority: 10, Arrived: t0}, nil},
		{"later, same priority, same queue", Subject{Ref: PodRef("ml", "x"), Leaf: "root.ml", Priority: 10, Arrived: t0.Add(time.Second)},
			map[string]resources.Vector{"n1": cpus(4), "n2": cpus(2)}},
		{"earlier but lower priority, same queue", Subject{Ref: PodRef("ml", "x"), Leaf: "root.ml", Priority: 0, Arrived: t0.Add(-time.Hour)},
			map[string]resources.Vector{"n1": cpus(4), "n2": cpus(2)}},
		{"higher priority, same queue", Subject{Ref: PodRef("ml", "x"), Leaf: "root.ml", Priority: 11, Arrived: t0.Add(time.Hour)}, nil},
		{"earlier, same priority, same queue", Subject{Ref: PodRef("ml", "x"), Leaf: "root.ml", Priority: 10, Arrived: t0.Add(-time.Second)}, nil},
		{"the same second, same priority, same queue, by name", Subject{Ref: Ref{Kind: KindSpark, Namespace: "ml", Name: "app"}, Leaf: "root.ml", Priority: 10, Arrived: t0},
			map[string]resources.Vector{"n1": cpus(4), "n2": cpus(2)}},
		{"the same second, a member of a gang already served", Subject{Ref: Ref{Kind: KindSpark, Namespace: "ml", Name: "app"}, Leaf: "root.ml", Priority: 10, Arrived: t0, Served: true}, nil},
		{"another queue within its share", Subject{Ref: PodRef("b", "x"), Leaf: "root.batch", Arrived: t0.Add(time.Hour)}, nil},
		{"another queue above its share: only the owed queue's hold", Subject{Ref: PodRef("b", "x"), Leaf: "root.batch", Arrived: t0.Add(time.Hour), AboveFairShare: true},
			map[string]resources.Vector{"n1": cpus(4), "n2": cpus(2)}},
		{"the single pod's own queue, behind it", Subject{Ref: PodRef("etl", "y"), Leaf: "root.etl", Arrived: t0.Add(time.Second)},
			map[string]resources.Vector{"n2": cpus(3)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, holds.For(c.sub, owed))
		})
	}
}

// TestHoldsOffer: one hold per queue, the holder that stands first; a new
// plan of the same holder keeps its start; a single pod that yields stands
// behind those that never did.
func TestHoldsOffer(t *testing.T) {
	a, b := PodRef("ns", "a"), PodRef("ns", "b")
	holds := NewHolds()
	need := map[string]resources.Vector{"n1": cpus(1)}
	require.True(t, holds.Offer(Hold{Ref: a, Leaf: "q", Arrived: t0, Need: need, Since: t0}))
	assert.False(t, holds.Ahead(Hold{Ref: b, Leaf: "q", Arrived: t0.Add(time.Second)}))
	assert.True(t, holds.Ahead(Hold{Ref: b, Leaf: "q", Priority: 1, Arrived: t0.Add(time.Second)}))
	assert.True(t, holds.Ahead(Hold{Ref: b, Leaf: "other", Arrived: t0.Add(time.Second)}))
	assert.False(t, holds.Offer(Hold{Ref: b, Leaf: "q", Arrived: t0.Add(time.Second), Need: need, Since: t0.Add(time.Minute)}), "b stands behind a")
	require.True(t, holds.Offer(Hold{Ref: a, Leaf: "q", Arrived: t0, Need: map[string]resources.Vector{"n2": cpus(1)}, Since: t0.Add(time.Minute)}))
	h, ok := holds.Of(a)
	require.True(t, ok)
	assert.Equal(t, t0, h.Since, "a new plan keeps when it began to hold")
	assert.Equal(t, cpus(1), h.Total())

	holds.Yield(a)
	assert.Equal(t, 0, holds.Len())
	assert.Equal(t, 1, holds.Yielded(a))
	require.True(t, holds.Offer(Hold{Ref: b, Leaf: "q", Arrived: t0.Add(time.Second), Need: need, Since: t0}))
	assert.False(t, holds.Offer(Hold{Ref: a, Leaf: "q", Timeouts: holds.Yielded(a), Arrived: t0, Need: need, Since: t0}),
		"a yielded: it stands behind b now")
	require.True(t, holds.Offer(Hold{Ref: PodRef("ns", "c"), Leaf: "q", Priority: 5, Arrived: t0.Add(time.Hour), Need: need, Since: t0}),
		"a higher priority takes the head")

	holds.Forget(a)
	assert.Equal(t, 0, holds.Yielded(a))
	holds.Keep(func(h Hold) bool { return h.Ref != PodRef("ns", "c") })
	assert.Equal(t, 0, holds.Len())
}

// TestHoldsRelease: released room is announced (pods kept off it are
// retried); a new plan of the same holder on the same room is not.
func TestHoldsRelease(t *testing.T) {
	holds := NewHolds()
	released := 0
	holds.OnRelease(func() { released++ })
	a, b := PodRef("ns", "a"), PodRef("ns", "b")
	need := map[string]resources.Vector{"n1": cpus(1)}
	steps := []struct {
		name string
		do   func()
		want int
	}{
		{"a first hold", func() { holds.Offer(Hold{Ref: a, Leaf: "q", Arrived: t0, Need: need}) }, 0},
		{"the same plan again", func() { holds.Offer(Hold{Ref: a, Leaf: "q", Arrived: t0, Need: need}) }, 0},
		{"a new plan", func() {
			holds.Offer(Hold{Ref: a, Leaf: "q", Arrived: t0, Need: map[string]resources.Vector{"n2": cpus(1)}})
		}, 1},
		{"refused: b stands behind", func() { holds.Offer(Hold{Ref: b, Leaf: "q", Arrived: t0.Add(time.Second), Need: need}) }, 1},
		{"dropped", func() { holds.Drop(a) }, 2},
		{"dropping nothing", func() { holds.Drop(a) }, 2},
		{"b holds", func() { holds.Offer(Hold{Ref: b, Leaf: "q", Arrived: t0.Add(time.Second), Need: need}) }, 2},
		{"a takes b's place", func() { holds.Offer(Hold{Ref: a, Leaf: "q", Arrived: t0, Need: need}) }, 3},
		{"a yields", func() { holds.Yield(a) }, 4},
		{"b holds again, then is kept no more", func() {
			holds.Offer(Hold{Ref: b, Leaf: "q", Arrived: t0.Add(time.Second), Need: need})
			holds.Keep(func(Hold) bool { return false })
		}, 5},
		{"forgetting a holder that holds nothing", func() { holds.Forget(b) }, 5},
	}
	for _, s := range steps {
		s.do()
		assert.Equal(t, s.want, released, s.name)
	}
}
