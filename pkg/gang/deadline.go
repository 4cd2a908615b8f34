package gang

import "time"

// Deadline is when the gang's wait for its quorum ends (see waitDeadline).
func (i Info) Deadline() time.Time {
	return waitDeadline(i.FirstSeen, i.BackoffUntil, i.Spec.Timeout)
}

// waitDeadline is the one rule for when a gang's wait for its quorum ends:
// its timeout after the wait began, which is when its first member arrived
// or, after a timeout, when its backoff ended, whichever is later.
func waitDeadline(firstSeen, backoffUntil time.Time, timeout time.Duration) time.Time {
	start := firstSeen
	if backoffUntil.After(start) {
		start = backoffUntil
	}
	return start.Add(timeout)
}
