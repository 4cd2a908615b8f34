package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	fwk "k8s.io/kube-scheduler/framework"
	clocktesting "k8s.io/utils/clock/testing"

	"muster.dev/muster/pkg/plugins/profile"
)

// handle is the part of a framework handle a runtime reads when it is made.
type handle struct {
	fwk.Handle
	name string
}

func (h *handle) ProfileName() string { return h.name }

func (h *handle) SharedInformerFactory() informers.SharedInformerFactory {
	return informers.NewSharedInformerFactory(fake.NewClientset(), 0)
}

type plugin struct{ rt *profile.Runtime }

func (*plugin) Name() string { return "test" }

func newTestPlugin(_ context.Context, _ runtime.Object, _ fwk.Handle, rt *profile.Runtime) (fwk.Plugin, error) {
	return &plugin{rt: rt}, nil
}

// TestProfilesShareOneRuntimePerHandle: the plugins of one profile share its
// runtime, built with the registry's options; another profile has its own;
// a profile's runtime is dropped when its context ends.
func TestProfilesShareOneRuntimePerHandle(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	p := &profiles{opts: []profile.Option{profile.WithClock(clk)}, runtimes: map[fwk.Handle]*profile.Runtime{}}
	build := p.factory(newTestPlugin)
	ctx, cancel := context.WithCancel(context.Background())
	a, b := &handle{name: "a"}, &handle{name: "b"}

	runtimeOf := func(ctx context.Context, h fwk.Handle) *profile.Runtime {
		pl, err := build(ctx, nil, h)
		require.NoError(t, err)
		return pl.(*plugin).rt
	}
	first, second, other := runtimeOf(ctx, a), runtimeOf(ctx, a), runtimeOf(context.Background(), b)
	assert.Same(t, first, second, "one runtime per profile")
	assert.NotSame(t, first, other, "another profile has its own")
	assert.Equal(t, "a", first.Profile)
	assert.Same(t, clk, first.Clock, "the registry's options configure the runtime")

	cancel()
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		_, ok := p.runtimes[a]
		return !ok
	}, 10*time.Second, 10*time.Millisecond, "the runtime of a profile whose context ended is dropped")
	assert.NotSame(t, first, runtimeOf(context.Background(), a), "a profile built again gets a fresh runtime")
}
