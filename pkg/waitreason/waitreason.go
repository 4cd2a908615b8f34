// Package waitreason names why muster holds a pod back at admission: one
// typed code per reason, for programs (the reason of the pod condition
// ConditionType, reasonCode in the status ConfigMap, muster explain), next
// to the sentence for people that stays free to change. Pure Go, no
// client-go: the gang registry and the queue core carry codes too.
//
// The codes are part of muster's interface (docs/reference.md): add one
// when a new reason to wait appears, never reuse or rename one.
package waitreason

// Code is why muster holds a pod back, or Admitted when it no longer does.
type Code string

// ConditionType is the pod condition muster writes on a pod it holds back
// at admission: status False with the Code as its reason and the sentence
// as its message, and True (reason Admitted) once a pod that waited is
// admitted. A pod muster never held back has none. kube-scheduler's
// PodScheduled condition stays as it is (reason Unschedulable, a plugin
// cannot set its own).
const ConditionType = "muster.dev/Admitted"

// Why a gang waits for its members or its source.
const (
	// MembersMissing: fewer pods of the gang exist than its minimum.
	MembersMissing Code = "MembersMissing"
	// MembersGated: enough pods exist, but some are held by scheduling
	// gates and do not count until the gates are lifted.
	MembersGated Code = "MembersGated"
	// GangSourceMissing: the object that defines the gang does not exist
	// yet (its PodGroup, a Spark executor's driver).
	GangSourceMissing Code = "GangSourceMissing"
	// InvalidGang: the gang's definition cannot be used (a malformed
	// annotation, a PodGroup that cannot be read).
	InvalidGang Code = "InvalidGang"
)

// Why a pod or a gang is not admitted to its queue.
const (
	// InvalidCapacityPolicy: the muster.dev/capacity-policy annotation (or
	// the queue's capacityPolicy) names no policy.
	InvalidCapacityPolicy Code = "InvalidCapacityPolicy"
	// NoQueueConfig: no valid queue configuration is in force (or muster is
	// starting): nothing is admitted.
	NoQueueConfig Code = "NoQueueConfig"
	// NoQueue: the pod has no queue it may use (no such queue, not a leaf,
	// the namespace may not submit to it, nothing maps the namespace).
	NoQueue Code = "NoQueue"
	// QueueAtMax: admitting it would take its queue, or an ancestor, over
	// its max; it waits for usage there to drop.
	QueueAtMax Code = "QueueAtMax"
	// FairShare: its queue holds its fair share and the free capacity is
	// owed to queues below theirs.
	FairShare Code = "FairShare"
	// NeverFitsQueue: the request alone exceeds a max of its queue or an
	// ancestor: it can never be admitted there as configured.
	NeverFitsQueue Code = "NeverFitsQueue"
)

// Why an admissible gang is not admitted yet.
const (
	// NotEnoughRoom: its members cannot all be placed node by node now,
	// and reclaim cannot make room.
	NotEnoughRoom Code = "NotEnoughRoom"
	// MinResources: less than the PodGroup's minResources is free in total.
	MinResources Code = "MinResources"
	// ReclaimUnderWay: pods were preempted to give its queue its
	// guaranteed capacity back; it is admitted once they are gone.
	ReclaimUnderWay Code = "ReclaimUnderWay"
	// BackingOff: it timed out and waits out its backoff before the next
	// attempt.
	BackingOff Code = "BackingOff"
	// Released: its admission was undone (a member could not be bound, a
	// node or its PodGroup was deleted); it is admitted again from scratch.
	Released Code = "Released"
	// NeverFitsCluster: its members could not all be placed even on the
	// empty cluster as it is; it waits for nodes to be added.
	NeverFitsCluster Code = "NeverFitsCluster"
)

// Admitted is the reason of the condition once a pod that waited is
// admitted (status True).
const Admitted Code = "Admitted"

// NeverFits reports whether waiting cannot help as things are: only a
// change of the queue configuration or of the cluster can.
func (c Code) NeverFits() bool { return c == NeverFitsQueue || c == NeverFitsCluster }
