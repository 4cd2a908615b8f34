package explain

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
	"muster.dev/muster/pkg/status"
)

// overMax checks the pod's request against the queue and every ancestor's
// own max, with the usage muster published. never is true when the request
// alone exceeds a max.
func overMax(leaf *queue.Queue, st *status.Report, req resources.Vector) (string, bool) {
	for _, q := range leaf.Ancestors() {
		if len(q.Max) == 0 {
			continue
		}
		line := findQueue(st, q.Path)
		if line == nil {
			continue
		}
		used := vector(line.Allocated).Plus(vector(line.Reserved))
		for _, r := range q.Max.Names() {
			if req[r] == 0 {
				continue
			}
			if req[r] > q.Max[r] {
				return fmt.Sprintf("the pod requests %s %s but queue %s's max is %s: it can never be admitted there",
					resources.Format(r, req[r]), r, q.Path, resources.Format(r, q.Max[r])), true
			}
			if used[r]+req[r] > q.Max[r] {
				return fmt.Sprintf("queue %s is at its max for %s: %s in use (allocated + reserved) + %s requested > %s max",
					q.Path, r, resources.Format(r, used[r]), resources.Format(r, req[r]), resources.Format(r, q.Max[r])), false
			}
		}
	}
	return "", false
}

func findQueue(st *status.Report, path string) *status.Queue {
	if st == nil {
		return nil
	}
	for i := range st.Queues {
		if st.Queues[i].Queue == path {
			return &st.Queues[i]
		}
	}
	return nil
}

// usageLines returns the leaf's and its ancestors' published lines.
func usageLines(leaf *queue.Queue, st *status.Report) []QueueLine {
	var out []QueueLine
	for _, q := range leaf.Ancestors() {
		line := findQueue(st, q.Path)
		if line == nil {
			continue
		}
		ql := QueueLine{Queue: *line}
		if len(q.Max) > 0 {
			ql.OwnMax = q.Max.Quantities()
		}
		out = append(out, ql)
	}
	return out
}

// vector parses a status quantity map; unparsable entries are skipped (the
// scheduler wrote them, so they parse).
func vector(m map[string]string) resources.Vector {
	v := resources.Vector{}
	for k, s := range m {
		q, err := resource.ParseQuantity(s)
		if err != nil {
			continue
		}
		name := v1.ResourceName(k)
		v[name] = resources.FromQuantity(name, q)
	}
	return v
}
