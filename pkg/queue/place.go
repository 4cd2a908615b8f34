package queue

import (
	"fmt"
	"strings"

	"muster.dev/muster/pkg/waitreason"
)

// LabelQueue is the pod (and PodGroup) label that names a queue: a full
// path or a leaf name unique in the tree.
const LabelQueue = "muster.dev/queue"

// PlacementError says why a pod has no queue it may be admitted to. Such a
// pod is never bound; the message is meant for its PodScheduled condition.
type PlacementError struct {
	// Queue is the queue concerned, if there is one.
	Queue string
	// Code is waitreason.NoQueue, or waitreason.NoQueueConfig when no
	// configuration is in force to place the pod in.
	Code waitreason.Code
	Msg  string
}

func (e *PlacementError) Error() string { return e.Msg }

// Place returns the leaf queue for a pod of the namespace whose
// muster.dev/queue label is label (empty: no label), or why there is none:
// the queue does not exist, is ambiguous or not a leaf, the namespace may not
// submit to it, or nothing maps the namespace to a queue.
func (t *Tree) Place(namespace, label string) (*Queue, *PlacementError) {
	var q *Queue
	how := ""
	if label != "" {
		var err error
		if q, err = t.Resolve(label); err != nil {
			return nil, &PlacementError{Code: waitreason.NoQueue, Queue: label, Msg: fmt.Sprintf("%v (from label %s=%s)", err, LabelQueue, label)}
		}
		how = fmt.Sprintf("label %s=%s", LabelQueue, label)
	} else if mapped, ok := t.namespaceQueues[namespace]; ok {
		q, how = mapped, "namespaceQueues."+namespace
	} else if fallback, ok := t.namespaceQueues["*"]; ok {
		q, how = fallback, `namespaceQueues."*"`
	} else {
		return nil, &PlacementError{Code: waitreason.NoQueue, Msg: fmt.Sprintf(
			`namespace %s has no queue: the pod has no %s label and namespaceQueues names neither %s nor "*"`, namespace, LabelQueue, namespace)}
	}
	if !q.IsLeaf() {
		return nil, &PlacementError{Code: waitreason.NoQueue, Queue: q.Path, Msg: fmt.Sprintf(
			"queue %s (from %s) is not a leaf queue; pods are admitted to leaf queues only: %s", q.Path, how, strings.Join(leafPaths(q), ", "))}
	}
	if q == t.Root {
		return nil, &PlacementError{Code: waitreason.NoQueue, Queue: q.Path, Msg: fmt.Sprintf(
			"root (from %s) is the top of the queue tree, not a queue pods can use; name a leaf queue", how)}
	}
	if ok, by := q.AdmitsNamespace(namespace); !ok {
		return nil, &PlacementError{Code: waitreason.NoQueue, Queue: q.Path, Msg: fmt.Sprintf(
			"namespace %s may not submit to queue %s (from %s): %s admits namespaces %s",
			namespace, q.Path, how, by.Path, strings.Join(by.Namespaces, ", "))}
	}
	return q, nil
}
