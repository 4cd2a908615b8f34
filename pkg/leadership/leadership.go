// Package leadership tells muster's plugins whether this process is the one
// replica that may write shared state: the queue status ConfigMap and the
// status of PodGroups. Every replica builds its plugins and runs their
// goroutines (kube-scheduler builds the scheduler before it competes for the
// lease), so each needs to know, at any moment, whether it holds
// muster-scheduler's lease itself.
//
// A Tracker learns this process's exact lease identity once kube-scheduler's
// configuration is complete, and sees every write of the lease this process
// makes (it wraps the resource lock the leader elector uses): it holds the
// lease from a successful write naming it as holder until that write's term
// ends. Nothing else (a lease that expired, a host name that matches) makes
// it the writer.
package leadership

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// mode is what the tracker knows about leader election in this process.
type mode int

const (
	// unresolved: the scheduler is being built; nobody has said yet whether
	// leader election is on. Nothing is written meanwhile.
	unresolved mode = iota
	// off: leader election is off; this process is the only writer.
	off
	// elected: leader election is on; this process writes while it holds
	// the lease.
	elected
)

// Term is what this process knows of its own hold on the lease: the last
// write of the lease record it made successfully.
type Term struct {
	// Holder is the identity the record named ("" when it released the lease).
	Holder string
	// At is when the write began, by this process's clock: the record
	// reached the apiserver after it, so other replicas count the lease's
	// duration from a later moment.
	At time.Time
	// Valid is how long the write keeps this process the writer.
	Valid time.Duration
}

// HeldBy is the decision: a term holds for identity from its write until
// Valid has passed. An empty identity never holds.
func (t Term) HeldBy(identity string, now time.Time) bool {
	return identity != "" && t.Holder == identity && now.Before(t.At.Add(t.Valid))
}

// Tracker follows this process's leadership. Its zero value is not usable;
// build it with New. A nil *Tracker leads (no leader election to follow).
type Tracker struct {
	clock clock.PassiveClock

	mu       sync.Mutex
	mode     mode
	identity string
	// valid is how long a successful renewal keeps this process the
	// writer: the renew deadline (the elector gives up leading when it has
	// not renewed for that long), at most the lease duration.
	valid time.Duration
	term  Term
	// first is closed the first time this process leads.
	first     chan struct{}
	firstOnce sync.Once
}

// New returns a tracker that does not lead until Follow tells it how
// leader election is configured.
func New(clk clock.PassiveClock) *Tracker {
	return &Tracker{clock: clk, first: make(chan struct{})}
}

// Follow resolves the tracker once kube-scheduler's configuration is
// complete: with le nil (leader election off) this process leads from now
// on; otherwise it takes le's lock identity and replaces le.Lock with a lock
// that reports every write of the lease to the tracker. Call it before the
// leader elector is built from le.
func (t *Tracker) Follow(le *leaderelection.LeaderElectionConfig) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if le == nil || le.Lock == nil {
		t.mode = off
		t.firstOnce.Do(func() { close(t.first) })
		return
	}
	t.mode = elected
	t.identity = le.Lock.Identity()
	t.valid = le.LeaseDuration
	if le.RenewDeadline > 0 && le.RenewDeadline < t.valid {
		t.valid = le.RenewDeadline
	}
	le.Lock = &observedLock{Interface: le.Lock, t: t}
}

// Identity is this process's lease identity ("" before Follow, or with
// leader election off).
func (t *Tracker) Identity() string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.identity
}

// Leading reports whether this process may write shared state now: leader
// election is off, or its last successful write of the lease named it and
// is younger than the renew deadline.
func (t *Tracker) Leading() bool {
	if t == nil {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.mode {
	case off:
		return true
	case elected:
		return t.term.HeldBy(t.identity, t.clock.Now())
	default:
		return false
	}
}

// WaitLeading blocks until this process leads for the first time (true)
// or ctx ends (false).
func (t *Tracker) WaitLeading(ctx context.Context) bool {
	if t == nil {
		return true
	}
	select {
	case <-t.first:
		return true
	case <-ctx.Done():
		return false
	}
}

// wrote records the outcome of a write of the lease record ler that began
// at.
func (t *Tracker) wrote(ctx context.Context, ler resourcelock.LeaderElectionRecord, at time.Time, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	was := t.term.HeldBy(t.identity, at)
	switch {
	case err == nil && ler.HolderIdentity == t.identity:
		t.term = Term{Holder: t.identity, At: at, Valid: min(t.valid, time.Duration(ler.LeaseDurationSeconds)*time.Second)}
		t.firstOnce.Do(func() { close(t.first) })
		if !was {
			klog.FromContext(ctx).Info("Holding muster's lease: this replica writes the queue status and PodGroup status", "identity", t.identity)
		}
	case err == nil:
		// Released (the holder is empty) or handed to another identity.
		t.end(ctx, was, "the lease was released")
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		// Someone else changed (or created) the lease since this process
		// last read it: it may have taken it. Stop writing until a write
		// names this process again.
		t.end(ctx, was, "the lease changed under this replica")
	default:
		// The write may or may not have landed: the last known term stands
		// and ends by itself.
	}
}

// seen records a read of the lease: a record naming another holder, or no
// lease at all, ends this process's term at once.
func (t *Tracker) seen(ctx context.Context, rec *resourcelock.LeaderElectionRecord, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	was := t.term.HeldBy(t.identity, t.clock.Now())
	switch {
	case err == nil && rec != nil && rec.HolderIdentity != t.identity:
		t.end(ctx, was, "another replica holds the lease")
	case apierrors.IsNotFound(err):
		t.end(ctx, was, "the lease is gone")
	}
}

func (t *Tracker) end(ctx context.Context, was bool, why string) {
	t.term = Term{}
	if was {
		klog.FromContext(ctx).Info("No longer holding muster's lease: this replica stops writing shared state", "identity", t.identity, "reason", why)
	}
}

// observedLock is the leader elector's lock, with every read and write of
// the lease reported to the tracker.
type observedLock struct {
	resourcelock.Interface
	t *Tracker
}

func (l *observedLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	rec, raw, err := l.Interface.Get(ctx)
	l.t.seen(ctx, rec, err)
	return rec, raw, err
}

func (l *observedLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	at := l.t.clock.Now()
	err := l.Interface.Create(ctx, ler)
	l.t.wrote(ctx, ler, at, err)
	return err
}

func (l *observedLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	at := l.t.clock.Now()
	err := l.Interface.Update(ctx, ler)
	l.t.wrote(ctx, ler, at, err)
	return err
}
