package plugintest

import (
	"sync/atomic"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// Clock is the tests' fake clock. The fake clock runs the timers it fires
// while it holds its lock, so a fake that reads it from inside one (the
// activator a timer retries pods through, the clientset a timer writes
// through) would deadlock: the fakes read Seen instead, the time the clock
// was last set to, which needs no lock.
type Clock struct {
	*clocktesting.FakeClock
	seen atomic.Int64 // UnixNano
}

// NewClock returns a fake clock set to t.
func NewClock(t time.Time) *Clock {
	c := &Clock{FakeClock: clocktesting.NewFakeClock(t)}
	c.seen.Store(t.UnixNano())
	return c
}

// Step moves the clock by d, firing the timers due.
func (c *Clock) Step(d time.Duration) {
	c.seen.Store(c.FakeClock.Now().Add(d).UnixNano())
	c.FakeClock.Step(d)
}

// SetTime sets the clock to t, firing the timers due.
func (c *Clock) SetTime(t time.Time) {
	c.seen.Store(t.UnixNano())
	c.FakeClock.SetTime(t)
}

// Seen is the time the clock was last set to, read without its lock.
func (c *Clock) Seen() time.Time { return time.Unix(0, c.seen.Load()).UTC() }

// seenClock is Clock's lock-free view as a clock.PassiveClock.
type seenClock struct{ c *Clock }

func (s seenClock) Now() time.Time                  { return s.c.Seen() }
func (s seenClock) Since(t time.Time) time.Duration { return s.c.Seen().Sub(t) }
