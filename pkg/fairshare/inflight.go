package fairshare

import (
	"time"

	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

// InFlight is the book of reclaims under way, between the moment a
// preemptor's victims are chosen and the moment the usage ledger shows the
// result: the preemptor does not hold its room in the ledger yet (it waits
// for its victims to go), and the victims still count in theirs until their
// deletion is seen. Reclaim decisions taken meanwhile correct the ledger's
// usage with it (Adjust), so that concurrent reclaims add up to a guarantee
// and no more.
//
// Every entry ends with what it is about: a preemptor's claim when the
// preemptor is admitted (its request is in the ledger from then on) or gone,
// a victim when its deletion is seen, and anything at all after the grace
// period, whatever was missed. Each method that ends entries reports
// whether it did, so that the caller can retry what the entries held back.
//
// InFlight is not safe for concurrent use; it holds no clock (callers pass
// the time).
type InFlight struct {
	grace      time.Duration
	preemptors map[string]*inflightPreemptor
	victims    map[string]*inflightVictim
}

type inflightPreemptor struct {
	queue   string
	request resources.Vector
	// claims: the preemptor waits for its room and the ledger does not
	// count it yet.
	claims  bool
	victims map[string]bool
	until   time.Time
}

type inflightVictim struct {
	queue     string
	request   resources.Vector
	preemptor string
	until     time.Time
}

// InFlightVictim is a victim of a recorded reclaim.
type InFlightVictim struct {
	Key, Queue string
	Request    resources.Vector
}

// NewInFlight returns an empty book whose entries last at most grace.
func NewInFlight(grace time.Duration) *InFlight {
	return &InFlight{grace: grace, preemptors: map[string]*inflightPreemptor{}, victims: map[string]*inflightVictim{}}
}

// Record notes that preemptor (of queue, asking for request) preempted
// victims at now. It returns when the entries expire.
func (f *InFlight) Record(preemptor, queue string, request resources.Vector, victims []InFlightVictim, now time.Time) time.Time {
	until := now.Add(f.grace)
	p := &inflightPreemptor{queue: queue, request: request.Clone(), claims: true, victims: map[string]bool{}, until: until}
	if old, ok := f.preemptors[preemptor]; ok {
		for v := range old.victims {
			p.victims[v] = true // still exiting: they stay its victims
		}
	}
	for _, v := range victims {
		p.victims[v.Key] = true
		f.victims[v.Key] = &inflightVictim{queue: v.Queue, request: v.Request.Clone(), preemptor: preemptor, until: until}
	}
	f.preemptors[preemptor] = p
	return until
}

// Admitted ends a preemptor's claim: the ledger holds its request now. Its
// victims stay in the book until they are gone.
func (f *InFlight) Admitted(preemptor string) bool {
	p, ok := f.preemptors[preemptor]
	if !ok || !p.claims {
		return false
	}
	p.claims = false
	f.dropIfDone(preemptor, p)
	return true
}

// Gone ends everything about key: a pod or gang that no longer exists, as a
// preemptor (its claim, and its link to its victims, which go on exiting
// and stay in the book until they are gone) and as a victim.
func (f *InFlight) Gone(key string) bool {
	changed := false
	if p, ok := f.preemptors[key]; ok {
		changed = true
		delete(f.preemptors, key)
		for v := range p.victims {
			if e, ok := f.victims[v]; ok {
				e.preemptor = ""
			}
		}
	}
	if v, ok := f.victims[key]; ok {
		changed = true
		delete(f.victims, key)
		if p, ok := f.preemptors[v.preemptor]; ok {
			delete(p.victims, key)
			f.dropIfDone(v.preemptor, p)
		}
	}
	return changed
}

// Expire drops every entry whose grace period has passed at now.
func (f *InFlight) Expire(now time.Time) bool {
	changed := false
	for key, v := range f.victims {
		if !now.Before(v.until) {
			changed = true
			f.Gone(key)
		}
	}
	for key, p := range f.preemptors {
		if !now.Before(p.until) {
			changed = true
			f.Gone(key)
		}
	}
	return changed
}

func (f *InFlight) dropIfDone(key string, p *inflightPreemptor) {
	if !p.claims && len(p.victims) == 0 {
		delete(f.preemptors, key)
	}
}

// Adjust corrects usage (by queue path, each leaf's ancestors included) for
// the reclaims under way at now: it adds the request of every preemptor
// still waiting for its room, unless the ledger holds it already (held),
// and takes off every victim the ledger still counts (counted). It returns
// how many other preemptors' claims (not self's) it added.
func (f *InFlight) Adjust(usage map[string]resources.Vector, self string, now time.Time, held, counted func(key string) bool) int {
	claims := 0
	for key, p := range f.preemptors {
		if !p.claims || !now.Before(p.until) || held(key) {
			continue
		}
		addUp(usage, p.queue, p.request, +1)
		if key != self {
			claims++
		}
	}
	for key, v := range f.victims {
		if now.Before(v.until) && counted(key) {
			addUp(usage, v.queue, v.request, -1)
		}
	}
	return claims
}

// Claims is what the preemptors of leaf other than self wait to hold at
// now, the ledger not holding it yet (held): room their victims free is
// theirs, and a queue's max counts it before anyone else may take it.
func (f *InFlight) Claims(leaf, self string, now time.Time, held func(key string) bool) resources.Vector {
	out := resources.Vector{}
	for key, p := range f.preemptors {
		if key != self && p.claims && p.queue == leaf && now.Before(p.until) && !held(key) {
			out.Add(p.request)
		}
	}
	return out
}

// Waiting reports whether the preemptor has victims that are still exiting
// at now: it should not preempt more meanwhile.
func (f *InFlight) Waiting(preemptor string, now time.Time) bool {
	p, ok := f.preemptors[preemptor]
	if !ok || !now.Before(p.until) {
		return false
	}
	return len(p.victims) > 0
}

// Evicted reports whether key is a victim still exiting at now.
func (f *InFlight) Evicted(key string, now time.Time) bool {
	v, ok := f.victims[key]
	return ok && now.Before(v.until)
}

// Len is the number of entries in the book (preemptors and victims).
func (f *InFlight) Len() int { return len(f.preemptors) + len(f.victims) }

// addUp adds (sign +1) or removes (-1) req from the usage of a queue and its
// ancestors, by path.
func addUp(usage map[string]resources.Vector, leaf string, req resources.Vector, sign int64) {
	for p := leaf; p != ""; p = queue.ParentPath(p) {
		u := usage[p]
		if u == nil {
			u = resources.Vector{}
			usage[p] = u
		}
		for r, a := range req {
			u[r] += sign * a
		}
	}
}
