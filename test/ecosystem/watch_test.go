package ecosystem

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"muster.dev/muster/pkg/waitreason"
	"muster.dev/muster/test/framework"
)

// podLog follows a namespace's pods by watch (every change, in the
// apiserver's order) and records when each appeared and was bound, and
// where; a pod whose node changes once set is recorded as an error.
type podLog struct {
	mu     sync.Mutex
	pods   map[types.UID]*podRecord
	rebind []string
}

type podRecord struct {
	Name           string
	Labels         map[string]string
	Node           string
	Created, Bound time.Time
}

func watchPods(t *testing.T, ns string) *podLog {
	t.Helper()
	l := &podLog{pods: map[types.UID]*podRecord{}}
	framework.WatchPods(t, cache.ResourceEventHandlerFuncs{
		AddFunc:    l.observe,
		UpdateFunc: func(_, o any) { l.observe(o) },
	}, ns)
	return l
}

func (l *podLog) observe(o any) {
	p, ok := o.(*v1.Pod)
	if !ok {
		return
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.pods[p.UID]
	if r == nil {
		r = &podRecord{Name: p.Name, Labels: p.Labels, Created: now}
		l.pods[p.UID] = r
	}
	switch {
	case p.Spec.NodeName == "" || p.Spec.NodeName == r.Node:
	case r.Node == "":
		r.Node, r.Bound = p.Spec.NodeName, now
	default:
		l.rebind = append(l.rebind, fmt.Sprintf("%s: %s, then %s", p.Name, r.Node, p.Spec.NodeName))
	}
}

// all returns the pods seen, by creation.
func (l *podLog) all() []podRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]podRecord, 0, len(l.pods))
	for _, r := range l.pods {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// bound returns the pods bound so far, by the moment of their bind.
func (l *podLog) bound() []podRecord {
	var out []podRecord
	for _, r := range l.all() {
		if r.Node != "" {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Bound.Before(out[j].Bound) })
	return out
}

// waitPods waits until n pods have been seen and returns them.
func (l *podLog) waitPods(t *testing.T, n int, timeout time.Duration) []podRecord {
	t.Helper()
	framework.WaitFor(t, timeout, fmt.Sprintf("%d pods", n), func(context.Context) (bool, error) {
		return len(l.all()) >= n, nil
	})
	return l.all()
}

// waitBound waits until n pods are bound and returns them.
func (l *podLog) waitBound(t *testing.T, n int, timeout time.Duration) []podRecord {
	t.Helper()
	framework.WaitFor(t, timeout, fmt.Sprintf("%d pods bound", n), func(context.Context) (bool, error) {
		return len(l.bound()) >= n, nil
	})
	return l.bound()
}

// checkBoundOnce: no pod moved from one node to another, and every pod
// seen is one of the want pods (the operator neither recreated nor added
// any).
func (l *podLog) checkBoundOnce(t *testing.T, want int) {
	t.Helper()
	l.mu.Lock()
	rebind := append([]string(nil), l.rebind...)
	l.mu.Unlock()
	assert.Empty(t, rebind, "pods bound twice")
	assert.Len(t, l.all(), want, "pods the operator created")
}

// admittedTo waits until the pod's muster.dev/Admitted condition is True
// and returns its message ("admitted to queue Q").
func admittedTo(t *testing.T, ns, name string, timeout time.Duration) string {
	t.Helper()
	var msg string
	framework.WaitFor(t, timeout, fmt.Sprintf("pod %s/%s to carry %s=True", ns, name, waitreason.ConditionType), func(ctx context.Context) (bool, error) {
		p, err := framework.CP.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range p.Status.Conditions {
			if string(c.Type) == waitreason.ConditionType && c.Status == v1.ConditionTrue {
				msg = c.Message
				return true, nil
			}
		}
		return false, nil
	})
	return msg
}

// unschedulable waits until every pod named is held back with a
// PodScheduled message containing each of want; none may be bound.
func unschedulable(t *testing.T, ns string, pods []podRecord, timeout time.Duration, want ...string) string {
	t.Helper()
	var msg string
	for _, p := range pods {
		msg = framework.WaitUnschedulable(t, ns, p.Name, timeout, want...)
	}
	return msg
}

// names lists the pods' names.
func names(pods []podRecord) string {
	s := make([]string, len(pods))
	for i, p := range pods {
		s[i] = p.Name
	}
	return strings.Join(s, ", ")
}

// nodeOf returns the node each pod is bound to, by name; a pod not bound fails.
func nodeOf(t *testing.T, pods []podRecord) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range pods {
		require.NotEmpty(t, p.Node, "pod %s not bound", p.Name)
		out[p.Name] = p.Node
	}
	return out
}
