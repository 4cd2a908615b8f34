// Package status publishes muster's queue status for admins: the ConfigMap
// muster-queue-status (key status.yaml), readable with kubectl alone and
// printed by `muster status`.
package status

import (
	"fmt"
	"time"

	"sigs.k8s.io/yaml"

	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
	"muster.dev/muster/pkg/waitreason"
)

// Key is the key of the report in the status ConfigMap.
const Key = "status.yaml"

// Report is status.yaml. Field names are part of muster's interface.
type Report struct {
	// UpdatedAt is when the scheduler wrote the report (RFC 3339).
	UpdatedAt string `json:"updatedAt"`
	// Config says which queue configuration is in force.
	Config Config `json:"config"`
	// Queues lists every queue, root first, parents before their children.
	Queues []Queue `json:"queues"`
	// PendingGangs lists the gangs that wait for admission or for members,
	// oldest first, with the reason.
	PendingGangs []Gang `json:"pendingGangs,omitempty"`
	// PendingGangsOmitted counts the pending gangs left out (the newest) to
	// keep the report within a ConfigMap's size.
	PendingGangsOmitted int `json:"pendingGangsOmitted,omitempty"`
	// Holds lists, by queue, the pod or gang at the head of a leaf queue
	// that waits for room and the room it holds meanwhile: pods behind it
	// in its queue (and pods of queues above their fair share while its
	// own is below) may not take it.
	Holds []Hold `json:"holds,omitempty"`
}

// Hold is the room the head of a queue holds while it waits.
type Hold struct {
	Queue string `json:"queue"`
	// Holder is "Pod namespace/name" or the gang ("PodGroup ml/train").
	Holder string `json:"holder"`
	// Priority is the holder's priority in its queue's order (0 in a fifo
	// queue).
	Priority int32             `json:"priority,omitempty"`
	Holding  map[string]string `json:"holding"`
	Nodes    int               `json:"nodes"`
	// Since is when it began to hold (RFC 3339).
	Since string `json:"since"`
	// Yielded counts the holds a single pod gave up past the gang timeout:
	// it stands behind those that never did.
	Yielded int `json:"yielded,omitempty"`
}

// Gang is a gang that is not bound yet.
type Gang struct {
	Gang      string `json:"gang"`
	Queue     string `json:"queue,omitempty"`
	Phase     string `json:"phase"`
	Members   int    `json:"members"`
	MinMember int32  `json:"minMember"`
	// Placed counts members reserved or bound.
	Placed int    `json:"placed"`
	Since  string `json:"since"`
	// ReasonCode says why the gang waits, for programs (a waitreason.Code,
	// stable); Reason says it in a sentence, for people.
	ReasonCode waitreason.Code `json:"reasonCode,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	Timeouts   int             `json:"timeouts,omitempty"`
	// Position is the gang's place among its queue's gangs waiting for
	// room, oldest first (1: the first).
	Position int `json:"position,omitempty"`
	// Holding is the room the gang holds as the head of its queue, on
	// HoldingNodes nodes: later pods of its queue may not take it.
	Holding      map[string]string `json:"holding,omitempty"`
	HoldingNodes int               `json:"holdingNodes,omitempty"`
}

// Config says which queue configuration is in force.
type Config struct {
	Source          string `json:"source"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
	AppliedAt       string `json:"appliedAt,omitempty"`
	// Valid is false when no valid configuration is in force: nothing is admitted.
	Valid bool `json:"valid"`
	// LastError is why the latest edit was refused (the previous
	// configuration stays in force), if it was.
	LastError   string `json:"lastError,omitempty"`
	LastErrorAt string `json:"lastErrorAt,omitempty"`
}

// Queue is one queue's line of the report. Resource amounts are Kubernetes
// quantities; a queue's figures include its whole subtree.
type Queue struct {
	Queue  string  `json:"queue"`
	Leaf   bool    `json:"leaf,omitempty"`
	Weight float64 `json:"weight"`
	// Guaranteed as configured; Max is the effective max (the tightest of
	// the queue's and its ancestors'); absent resources are unlimited.
	Guaranteed map[string]string `json:"guaranteed,omitempty"`
	Max        map[string]string `json:"max,omitempty"`
	// Allocated: requests of bound pods; Reserved: admitted and not yet
	// bound; Pending: requests of pods waiting.
	Allocated   map[string]string `json:"allocated,omitempty"`
	Reserved    map[string]string `json:"reserved,omitempty"`
	Pending     map[string]string `json:"pending,omitempty"`
	RunningPods int               `json:"runningPods"`
	PendingPods int               `json:"pendingPods"`
	// FairShare is what the queue should hold given everyone's demand now
	// (weighted DRF, guarantees first); DominantShare is its usage in its
	// most-used resource, as a fraction of the capacity it may draw on.
	FairShare     map[string]string `json:"fairShare,omitempty"`
	DominantShare float64           `json:"dominantShare"`
	// CapacityPolicy is the queue's default pod placement, if it sets one.
	CapacityPolicy string `json:"capacityPolicy,omitempty"`
	// Ordering is how the queue serves its own pods (priority or fifo);
	// MinRuntimeSeconds how long its pods are protected from preemption.
	Ordering          string `json:"ordering,omitempty"`
	MinRuntimeSeconds int64  `json:"minRuntimeSeconds,omitempty"`
}

// Build assembles the report from a tree, its usage and its fair shares
// (by path; either may be nil).
func Build(t *queue.Tree, usage map[string]queue.Usage, fair map[string]resources.Vector, dominant map[string]float64, cfg Config, now time.Time) Report {
	r := Report{UpdatedAt: now.UTC().Format(time.RFC3339), Config: cfg}
	if t == nil {
		return r
	}
	for _, q := range t.Queues {
		u := usage[q.Path]
		r.Queues = append(r.Queues, Queue{
			Queue: q.Path, Leaf: q.IsLeaf(), Weight: q.Weight,
			Guaranteed: quantities(q.Guaranteed), Max: quantities(q.EffectiveMax),
			Allocated: quantities(u.Allocated), Reserved: quantities(u.Reserved), Pending: quantities(u.Pending),
			RunningPods: u.Running, PendingPods: u.Waiting,
			CapacityPolicy: string(q.CapacityPolicy),
			Ordering:       string(q.Ordering), MinRuntimeSeconds: int64(q.MinRuntime / time.Second),
			FairShare: quantities(fair[q.Path]), DominantShare: round3(dominant[q.Path]),
		})
	}
	return r
}

func round3(f float64) float64 {
	if f > 1e9 {
		return 1e9 // infinite: usage of what it may not draw on
	}
	return float64(int64(f*1000+0.5)) / 1000
}

func quantities(v resources.Vector) map[string]string {
	if len(v) == 0 {
		return nil
	}
	return v.Quantities()
}

func encodeRaw(r Report) ([]byte, error) { return yaml.Marshal(r) }

// MaxSize bounds status.yaml below the 1 MiB a ConfigMap may hold, with
// room for the object's metadata.
const MaxSize = 900 << 10

// Encode renders the report as status.yaml. A report larger than MaxSize
// (thousands of pending gangs) keeps the oldest pending gangs that fit and
// counts the others in pendingGangsOmitted: the queues are always whole.
func Encode(r Report) ([]byte, error) {
	b, err := encodeRaw(r)
	if err != nil {
		return nil, fmt.Errorf("encoding queue status: %w", err)
	}
	if len(b) <= MaxSize {
		return b, nil
	}
	// Measure the queues alone and each gang's entry, take the longest
	// prefix that adds up within MaxSize, and check it (the sum is an
	// estimate of the list's indentation: shrink until it fits).
	all := r.PendingGangs
	r.PendingGangs, r.PendingGangsOmitted = nil, len(all)
	b, err = encodeRaw(r)
	if err != nil {
		return nil, fmt.Errorf("encoding queue status: %w", err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("queue status is %d bytes even without pending gangs, more than a ConfigMap holds", len(b))
	}
	best, size, n := b, len(b)+len("pendingGangs:\n"), 0
	for _, g := range all {
		e, err := yaml.Marshal([]Gang{g})
		if err != nil {
			return nil, fmt.Errorf("encoding queue status: %w", err)
		}
		if size+len(e) > MaxSize {
			break
		}
		size, n = size+len(e), n+1
	}
	for ; n > 0; n = n * 9 / 10 {
		r.PendingGangs, r.PendingGangsOmitted = all[:n], len(all)-n
		if b, err = encodeRaw(r); err != nil {
			return nil, fmt.Errorf("encoding queue status: %w", err)
		}
		if len(b) <= MaxSize {
			return b, nil
		}
	}
	return best, nil
}

// Decode parses status.yaml.
func Decode(data []byte) (Report, error) {
	var r Report
	if err := yaml.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("decoding %s: %w", Key, err)
	}
	return r, nil
}

// Quantities renders amounts as Kubernetes quantities, by resource name.
func Quantities(v resources.Vector) map[string]string { return quantities(v) }
