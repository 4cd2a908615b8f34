package leadership

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	clocktesting "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestTermHeldBy(t *testing.T) {
	term := Term{Holder: "host_a", At: t0, Valid: 3 * time.Second}
	cases := map[string]struct {
		term     Term
		identity string
		now      time.Time
		want     bool
	}{
		"holder, just written":                      {term, "host_a", t0, true},
		"holder, within the term":                   {term, "host_a", t0.Add(2999 * time.Millisecond), true},
		"holder, term over":                         {term, "host_a", t0.Add(3 * time.Second), false},
		"holder, long after":                        {term, "host_a", t0.Add(time.Hour), false},
		"another replica on the same host":          {term, "host_b", t0.Add(time.Second), false},
		"another replica once the term is over":     {term, "host_b", t0.Add(time.Hour), false},
		"a prefix of the holder's identity":         {term, "host", t0, false},
		"no identity":                               {Term{At: t0, Valid: time.Hour}, "", t0, false},
		"released lease (empty holder)":             {Term{At: t0, Valid: time.Hour}, "host_a", t0, false},
		"nothing written yet (the zero term)":       {Term{}, "host_a", t0, false},
		"a clock that went back before the write":   {term, "host_a", t0.Add(-time.Second), true},
		"term of zero length (lease duration 0 s)":  {Term{Holder: "host_a", At: t0}, "host_a", t0, false},
		"holder, a nanosecond before the term ends": {term, "host_a", t0.Add(3*time.Second - 1), true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.term.HeldBy(tc.identity, tc.now))
		})
	}
}

// fakeLock is a lease in memory, shared by the locks of several replicas;
// fail makes the next write fail with that error (after it landed, when
// landed is set).
type fakeLock struct {
	id     string
	lease  *lease
	clock  *clocktesting.FakeClock
	fail   error
	landed bool
}

type lease struct {
	rec *resourcelock.LeaderElectionRecord
}

func (l *fakeLock) Get(context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	if l.lease.rec == nil {
		return nil, nil, apierrors.NewNotFound(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, "muster-scheduler")
	}
	r := *l.lease.rec
	return &r, []byte(r.HolderIdentity + r.RenewTime.String()), nil
}

func (l *fakeLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	if l.lease.rec != nil {
		return apierrors.NewAlreadyExists(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, "muster-scheduler")
	}
	return l.Update(ctx, ler)
}

func (l *fakeLock) Update(_ context.Context, ler resourcelock.LeaderElectionRecord) error {
	if err := l.fail; err != nil {
		l.fail = nil
		if l.landed {
			l.lease.rec = &ler
		}
		return err
	}
	l.lease.rec = &ler
	return nil
}

func (l *fakeLock) RecordEvent(string) {}
func (l *fakeLock) Identity() string   { return l.id }
func (l *fakeLock) Describe() string   { return "fake/" + l.id }
func (l *fakeLock) record() resourcelock.LeaderElectionRecord {
	now := metav1.NewTime(l.clock.Now())
	return resourcelock.LeaderElectionRecord{HolderIdentity: l.id, LeaseDurationSeconds: 4, RenewTime: now, AcquireTime: now}
}

// replica is a process with its tracker following its own lock.
type replica struct {
	t    *Tracker
	lock resourcelock.Interface
	fake *fakeLock
}

func newReplica(clk *clocktesting.FakeClock, l *lease, id string) replica {
	fake := &fakeLock{id: id, lease: l, clock: clk}
	tr := New(clk)
	cfg := &leaderelection.LeaderElectionConfig{Lock: fake, LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second}
	tr.Follow(cfg)
	return replica{t: tr, lock: cfg.Lock, fake: fake}
}

// TestTrackerTwoReplicasOneHost follows two replicas of one host through a
// term, a renewal, the leader's death and a takeover: exactly one of them
// leads at any moment, and neither while the lease is held by a dead
// replica or has expired without being taken.
func TestTrackerTwoReplicasOneHost(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(t0)
	l := &lease{}
	a := newReplica(clk, l, "host_aaaa")
	b := newReplica(clk, l, "host_bbbb")
	assert.Equal(t, "host_aaaa", a.t.Identity())
	assert.False(t, a.t.Leading(), "nobody has written the lease yet")
	assert.False(t, b.t.Leading())

	// a creates the lease; b reads it and sees a holding it.
	_, _, err := a.lock.Get(ctx)
	require.True(t, apierrors.IsNotFound(err))
	require.NoError(t, a.lock.Create(ctx, a.fake.record()))
	_, _, err = b.lock.Get(ctx)
	require.NoError(t, err)
	assert.True(t, a.t.Leading())
	assert.False(t, b.t.Leading(), "b shares a's host name, not its identity")

	// a renews every second: it keeps leading.
	for i := 0; i < 5; i++ {
		clk.Step(time.Second)
		require.NoError(t, a.lock.Update(ctx, a.fake.record()))
		assert.True(t, a.t.Leading())
		assert.False(t, b.t.Leading())
	}

	// a dies (no more renewals). Its term ends at the renew deadline;
	// b must not write while the lease is a's, nor once it expired.
	clk.Step(2999 * time.Millisecond)
	assert.True(t, a.t.Leading(), "within the renew deadline of the last renewal")
	clk.Step(time.Millisecond)
	assert.False(t, a.t.Leading(), "renew deadline passed")
	clk.Step(2 * time.Second) // the lease (4 s) expired and nobody renewed it
	_, _, err = b.lock.Get(ctx)
	require.NoError(t, err)
	assert.False(t, b.t.Leading(), "an expired lease makes nobody the writer")

	// b takes the lease: from then on b leads and a does not.
	require.NoError(t, b.lock.Update(ctx, b.fake.record()))
	assert.True(t, b.t.Leading())
	assert.False(t, a.t.Leading())
	// a, thawed, reads the lease: it sees b as holder.
	_, _, err = a.lock.Get(ctx)
	require.NoError(t, err)
	assert.False(t, a.t.Leading())
}

func TestTrackerWrites(t *testing.T) {
	ctx := context.Background()
	conflict := apierrors.NewConflict(schema.GroupResource{Resource: "leases"}, "muster-scheduler", errors.New("changed"))
	timeout := errors.New("context deadline exceeded")
	cases := map[string]struct {
		// after a's successful renewal at t0, 1 s passes, then step runs.
		step func(a replica, l *lease)
		want bool
	}{
		"renewal fails with a conflict: someone changed the lease": {
			step: func(a replica, _ *lease) {
				a.fake.fail = conflict
				_ = a.lock.Update(ctx, a.fake.record())
			},
		},
		"renewal times out: the last term stands": {
			step: func(a replica, _ *lease) {
				a.fake.fail = timeout
				_ = a.lock.Update(ctx, a.fake.record())
			},
			want: true,
		},
		"renewal times out after it landed: the last term still ends by itself": {
			step: func(a replica, _ *lease) {
				a.fake.fail, a.fake.landed = timeout, true
				_ = a.lock.Update(ctx, a.fake.record())
			},
			want: true,
		},
		"release (empty holder)": {
			step: func(a replica, _ *lease) {
				_ = a.lock.Update(ctx, resourcelock.LeaderElectionRecord{LeaseDurationSeconds: 1})
			},
		},
		"the lease is deleted": {
			step: func(a replica, l *lease) {
				l.rec = nil
				_, _, _ = a.lock.Get(ctx)
			},
		},
		"another holder is read (forced takeover)": {
			step: func(a replica, l *lease) {
				r := a.fake.record()
				r.HolderIdentity = "elsewhere_cccc"
				l.rec = &r
				_, _, _ = a.lock.Get(ctx)
			},
		},
		"a read that names this replica does not extend the term": {
			step: func(a replica, _ *lease) {
				_, _, _ = a.lock.Get(ctx)
			},
			want: true,
		},
		"a lost create race": {
			step: func(a replica, l *lease) {
				_ = a.lock.Create(ctx, a.fake.record()) // AlreadyExists
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(t0)
			l := &lease{}
			a := newReplica(clk, l, "host_aaaa")
			require.NoError(t, a.lock.Update(ctx, a.fake.record()))
			clk.Step(time.Second)
			tc.step(a, l)
			assert.Equal(t, tc.want, a.t.Leading())
			clk.Step(2 * time.Second) // the term of t0's renewal is over
			assert.False(t, a.t.Leading(), "no term outlives its renew deadline")
		})
	}
}

func TestTrackerModes(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)

	unresolved := New(clk)
	assert.False(t, unresolved.Leading(), "nothing is written before leader election is known")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.False(t, unresolved.WaitLeading(ctx))

	disabled := New(clk)
	disabled.Follow(nil)
	assert.True(t, disabled.Leading(), "leader election off: this process writes")
	assert.Empty(t, disabled.Identity())
	assert.True(t, disabled.WaitLeading(context.Background()))

	var none *Tracker
	assert.True(t, none.Leading(), "no tracker: this process writes")

	// The term is the renew deadline, at most the lease duration.
	l := &lease{}
	fake := &fakeLock{id: "h_1", lease: l, clock: clk}
	tr := New(clk)
	cfg := &leaderelection.LeaderElectionConfig{Lock: fake, LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second}
	tr.Follow(cfg)
	done := make(chan bool, 1)
	go func() { done <- tr.WaitLeading(context.Background()) }()
	rec := fake.record()
	rec.LeaseDurationSeconds = 15
	require.NoError(t, cfg.Lock.Update(context.Background(), rec))
	assert.True(t, <-done, "WaitLeading returns once the process leads")
	clk.Step(9 * time.Second)
	assert.True(t, tr.Leading())
	clk.Step(time.Second)
	assert.False(t, tr.Leading(), "10 s renew deadline")
}
