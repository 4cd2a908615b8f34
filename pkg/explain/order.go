package explain

import (
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/status"
)

// mostAhead bounds the entries "waits behind" names.
const mostAhead = 5

// waiter is one entry of a leaf queue's order: a single pod, or a gang
// (its waiting members together, by its highest priority and its first
// member's arrival, as muster's QueueSort keeps them).
type waiter struct {
	name     string // "pod ns/name", "gang PodGroup ns/name"
	priority int32  // 0 in a fifo queue
	arrived  time.Time
}

func (w waiter) before(o waiter) bool {
	if w.priority != o.priority {
		return w.priority > o.priority
	}
	if !w.arrived.Equal(o.arrived) {
		return w.arrived.Before(o.arrived)
	}
	return w.name < o.name
}

// describeOrder says where a waiting pod (or its gang) stands in its
// queue's order, what it waits behind, and the room held at the head of
// its queue: from the pending pods the CLI read (in.Pending) and the holds
// in the published status.
func (x *explainer) describeOrder() {
	p, in := x.in.Pod, x.in
	if x.leaf == nil || p.Spec.NodeName != "" || p.Status.Phase != v1.PodPending {
		return
	}
	self := "pod " + p.Namespace + "/" + p.Name
	var selfRef gang.Ref
	if in.Gang != nil {
		selfRef = in.Gang.Ref
		self = "gang " + in.Gang.Ref.String()
	}
	if in.Pending != nil {
		order := x.queueOrder(self)
		for i, w := range order {
			if w.name != self {
				continue
			}
			x.e.Order = fmt.Sprintf("number %d of %d waiting in %s (ordering %s: %s)", i+1, len(order), x.leaf.Path,
				x.leaf.Ordering, orderingWords(x.leaf.Ordering))
			for _, a := range order[:min(i, mostAhead)] {
				x.e.WaitsBehind = append(x.e.WaitsBehind, fmt.Sprintf("%s (priority %d, since %s)", a.name, a.priority, a.arrived.UTC().Format(time.RFC3339)))
			}
			if in.PendingNamespaceOnly {
				x.e.Warnings = append(x.e.Warnings, fmt.Sprintf("pods of other namespaces could not be listed: the order counts only the pods of namespace %s", p.Namespace))
			}
			if i > mostAhead {
				x.e.WaitsBehind = append(x.e.WaitsBehind, fmt.Sprintf("and %d more", i-mostAhead))
			}
			break
		}
	}
	if in.Status == nil {
		return
	}
	for _, h := range in.Status.Holds {
		if h.Queue != x.leaf.Path {
			continue
		}
		if h.Holder == selfRef.String() && in.Gang != nil || in.Gang == nil && h.Holder == gang.PodRef(p.Namespace, p.Name).String() {
			x.e.Holds = fmt.Sprintf("it holds %s on %d node(s) as the head of %s since %s: pods behind it may not take that room",
				compactQuantities(h.Holding), h.Nodes, h.Queue, h.Since)
		} else {
			x.e.Holds = fmt.Sprintf("%s, the head of %s, holds %s on %d node(s) since %s: this pod may not take that room unless it stands before it",
				holderName(h), h.Queue, compactQuantities(h.Holding), h.Nodes, h.Since)
		}
	}
}

func holderName(h status.Hold) string {
	if strings.HasPrefix(h.Holder, string(gang.KindPod)+" ") {
		return "pod " + strings.TrimPrefix(h.Holder, string(gang.KindPod)+" ")
	}
	return "gang " + h.Holder
}

func orderingWords(o queue.Ordering) string {
	if o == queue.OrderFIFO {
		return "arrival only"
	}
	return "priority, then arrival"
}

// queueOrder puts the pending pods of the pod's leaf queue in its order:
// each gang once, the subject (self) among them.
func (x *explainer) queueOrder(self string) []waiter {
	in, leaf := x.in, x.leaf
	byName := map[string]*waiter{}
	add := func(name string, prio int32, arrived time.Time) {
		if leaf.Ordering == queue.OrderFIFO {
			prio = 0
		}
		w := byName[name]
		if w == nil {
			byName[name] = &waiter{name: name, priority: prio, arrived: arrived}
			return
		}
		w.priority = max(w.priority, prio)
		if arrived.Before(w.arrived) {
			w.arrived = arrived
		}
	}
	pending := in.Pending
	if !containsPod(pending, in.Pod) {
		pending = append(pending[:len(pending):len(pending)], in.Pod)
	}
	for _, p := range pending {
		if p.Spec.SchedulerName != in.SchedulerName || p.Spec.NodeName != "" || p.Status.Phase != v1.PodPending || p.DeletionTimestamp != nil {
			continue
		}
		name, label := "pod "+p.Namespace+"/"+p.Name, p.Labels[queue.LabelQueue]
		if ref, _, ok := gang.Identify(p); ok {
			name = "gang " + ref.String()
			switch gs := gangStatus(in.Status, ref); {
			case in.Gang != nil && ref == in.Gang.Ref && in.Gang.QueueLabel != "":
				label = in.Gang.QueueLabel
			case gs != nil && gs.Queue != "":
				if gs.Queue == leaf.Path {
					add(name, corev1helpers.PodPriority(p), p.CreationTimestamp.Time)
				}
				continue
			}
		}
		if q, perr := in.Tree.Place(p.Namespace, label); perr == nil && q.Path == leaf.Path {
			add(name, corev1helpers.PodPriority(p), p.CreationTimestamp.Time)
		}
	}
	out := make([]waiter, 0, len(byName))
	for _, w := range byName {
		out = append(out, *w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].before(out[j]) })
	return out
}

func containsPod(pods []*v1.Pod, p *v1.Pod) bool {
	for _, o := range pods {
		if o.UID == p.UID && o.Namespace == p.Namespace && o.Name == p.Name {
			return true
		}
	}
	return false
}
