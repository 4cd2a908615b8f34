// Package queue is muster's tenant queue tree: parsing and validating
// queues.yaml, placing pods in leaf queues (labels, namespaceQueues, ACLs),
// and accounting each queue's usage against its limits. Pure Go: no
// client-go, no metrics, no clock.
package queue

import (
	"fmt"
	"math"
	"path"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/resources"
)

// RootName is the implicit top of every tree.
const RootName = "root"

// Queue is one node of a validated tree. Queues are immutable once built;
// a new configuration builds a new tree.
type Queue struct {
	// Name is the queue's own name; Path the full dotted path from root.
	Name, Path string
	Parent     *Queue
	Children   []*Queue
	// Weight is the queue's share of idle capacity relative to its siblings.
	Weight float64
	// Guaranteed and Max are as configured (nil: not set).
	Guaranteed, Max resources.Vector
	// EffectiveMax is the tightest max of the queue and its ancestors, per
	// resource; a resource absent from it is unlimited.
	EffectiveMax resources.Vector
	// Namespaces are the globs the queue itself lists (nil: inherited).
	Namespaces []string
	// CapacityPolicy is the default placement of the queue's pods, inherited
	// from the nearest ancestor that sets one; empty when none does.
	CapacityPolicy capacity.Policy
	// Ordering is how the queue's pods are served among themselves
	// (OrderPriority, the default, or OrderFIFO), inherited from the nearest
	// ancestor that sets one.
	Ordering Ordering
	// MinRuntime protects the queue's pods that have run less than it from
	// preemption unless nothing else frees the room; inherited like
	// Ordering; 0: no protection.
	MinRuntime time.Duration
	// Depth is 0 for root.
	Depth int
}

// Ordering is how a leaf queue's pods are served among themselves.
type Ordering string

const (
	// OrderPriority serves higher pod priority first, then first come.
	OrderPriority Ordering = "priority"
	// OrderFIFO serves first come first, whatever the priority.
	OrderFIFO Ordering = "fifo"
)

// Orderings are the values the ordering field accepts.
var Orderings = []Ordering{OrderPriority, OrderFIFO}

// IsLeaf reports whether pods may be admitted to the queue.
func (q *Queue) IsLeaf() bool { return len(q.Children) == 0 }

// Ancestors returns the queue and its ancestors, the queue first.
func (q *Queue) Ancestors() []*Queue {
	out := make([]*Queue, 0, q.Depth+1)
	for a := q; a != nil; a = a.Parent {
		out = append(out, a)
	}
	return out
}

// AdmitsNamespace reports whether pods of the namespace may be submitted to
// the queue: every queue on its path that lists namespaces must list a glob
// matching it (a child cannot widen what its parent allows). The returned
// queue is the one that refuses, if any.
func (q *Queue) AdmitsNamespace(ns string) (bool, *Queue) {
	for a := q; a != nil; a = a.Parent {
		if a.Namespaces == nil {
			continue
		}
		if !matchAny(a.Namespaces, ns) {
			return false, a
		}
	}
	return true, nil
}

func matchAny(globs []string, ns string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, ns); ok {
			return true
		}
	}
	return false
}

// Tree is a validated queue configuration.
type Tree struct {
	Root *Queue
	// Queues lists every queue, root first, parents before children.
	Queues []*Queue

	byPath          map[string]*Queue
	byName          map[string][]*Queue
	namespaceQueues map[string]*Queue // "*" is the fallback
}

// Parse parses and validates queues.yaml. On any problem it returns a
// ConfigError listing every one of them with its path, and no tree.
func Parse(data []byte) (*Tree, error) {
	var e errs
	f := parse(data, &e)
	if f == nil {
		return nil, e.err()
	}
	t := build(f, &e)
	if err := e.err(); err != nil {
		return nil, err
	}
	return t, nil
}

// DefaultConfig is the configuration muster runs with when there is no
// queue ConfigMap: one queue, root.default, without limits, for everyone.
const DefaultConfig = `queues:
  - name: default
namespaceQueues:
  "*": root.default
`

// Default returns the tree of DefaultConfig.
func Default() *Tree {
	t, err := Parse([]byte(DefaultConfig))
	if err != nil {
		panic(fmt.Sprintf("the default queue config is invalid: %v", err))
	}
	return t
}

func build(f *file, e *errs) *Tree {
	t := &Tree{byPath: map[string]*Queue{}, byName: map[string][]*Queue{}, namespaceQueues: map[string]*Queue{}}
	t.Root = &Queue{Name: RootName, Path: RootName, Weight: 1, Ordering: OrderPriority}
	t.add(t.Root)
	t.addChildren(t.Root, f.queues, e)
	t.resolveNamespaceQueues(f, e)
	return t
}

func (t *Tree) add(q *Queue) {
	t.Queues = append(t.Queues, q)
	t.byPath[q.Path] = q
	t.byName[q.Name] = append(t.byName[q.Name], q)
}

func (t *Tree) addChildren(parent *Queue, specs []*spec, e *errs) {
	seen := map[string]string{}
	for _, s := range specs {
		if s.name != "" {
			if first, dup := seen[s.name]; dup {
				e.add(s.path, "duplicate queue name %q under %s (first at %s)", s.name, parent.Path, first)
				continue
			}
			seen[s.name] = s.path
		}
		q := &Queue{
			Name: s.name, Path: s.path, Parent: parent, Weight: s.weight,
			Guaranteed: s.guaranteed, Max: s.max, Namespaces: s.namespaces,
			CapacityPolicy: s.capacityPolicy, Depth: parent.Depth + 1,
			Ordering: s.ordering, MinRuntime: parent.MinRuntime,
		}
		if q.CapacityPolicy == "" {
			q.CapacityPolicy = parent.CapacityPolicy
		}
		if q.Ordering == "" {
			q.Ordering = parent.Ordering
		}
		if s.minRuntime != nil {
			q.MinRuntime = *s.minRuntime
		}
		// max may not exceed the parent's (effective) max.
		for _, r := range s.max.Names() {
			if pm, ok := parent.EffectiveMax[r]; ok && s.max[r] > pm {
				e.add(s.path+".max."+string(r), "%s exceeds parent max %s", resources.Format(r, s.max[r]), resources.Format(r, pm))
			}
		}
		q.EffectiveMax = resources.MinLimit(parent.EffectiveMax, s.max)
		// guaranteed may not exceed the queue's own (effective) max.
		for _, r := range s.guaranteed.Names() {
			if m, ok := q.EffectiveMax[r]; ok && s.guaranteed[r] > m {
				e.add(s.path+".guaranteed."+string(r), "%s exceeds max %s", resources.Format(r, s.guaranteed[r]), resources.Format(r, m))
			}
		}
		parent.Children = append(parent.Children, q)
		if s.name != "" {
			t.add(q)
		}
		t.addChildren(q, s.children, e)
	}
	// The children's guaranteed may not sum above the parent's, for each
	// resource the parent guarantees. root guarantees the whole cluster,
	// whatever its size, so its children are not checked against it.
	if parent.Parent == nil || parent.Guaranteed == nil {
		return
	}
	sum, overflow := resources.Vector{}, map[v1.ResourceName]bool{}
	for _, c := range parent.Children {
		for r, g := range c.Guaranteed {
			// amounts go up to MaxInt64: a sum that would wrap is above any guarantee
			if sum[r] > math.MaxInt64-g {
				overflow[r] = true
			} else {
				sum[r] += g
			}
		}
	}
	for _, r := range sum.Names() {
		g, ok := parent.Guaranteed[r]
		switch {
		case !ok:
		case overflow[r]:
			e.add(parent.Path+".guaranteed."+string(r), "children's guaranteed sum to more than %s, above this queue's guaranteed %s",
				resources.Format(r, math.MaxInt64), resources.Format(r, g))
		case sum[r] > g:
			e.add(parent.Path+".guaranteed."+string(r), "children's guaranteed sum to %s, above this queue's guaranteed %s",
				resources.Format(r, sum[r]), resources.Format(r, g))
		}
	}
}

func (t *Tree) resolveNamespaceQueues(f *file, e *errs) {
	for _, ns := range f.nsOrder {
		p := "namespaceQueues." + ns
		q, err := t.Resolve(f.namespaceQueues[ns])
		if err != nil {
			e.add(p, "%v", err)
			continue
		}
		if !q.IsLeaf() {
			e.add(p, "%s is not a leaf queue; pods are admitted to leaf queues only (its leaves: %s)", q.Path, strings.Join(leafPaths(q), ", "))
			continue
		}
		if ns != "*" {
			if ok, by := q.AdmitsNamespace(ns); !ok {
				e.add(p, "%s does not admit namespace %s (%s.namespaces is %v)", q.Path, ns, by.Path, by.Namespaces)
				continue
			}
		}
		t.namespaceQueues[ns] = q
	}
}

func leafPaths(q *Queue) []string {
	if q.IsLeaf() {
		return []string{q.Path}
	}
	var out []string
	for _, c := range q.Children {
		out = append(out, leafPaths(c)...)
	}
	return out
}

// Get returns the queue with the full path, or nil.
func (t *Tree) Get(path string) *Queue { return t.byPath[path] }

// Resolve finds a queue by full path (root.analytics.etl) or by a name that
// is unique in the tree (etl).
func (t *Tree) Resolve(ref string) (*Queue, error) {
	if q, ok := t.byPath[ref]; ok {
		return q, nil
	}
	if strings.Contains(ref, ".") {
		return nil, fmt.Errorf("queue %s does not exist", ref)
	}
	switch qs := t.byName[ref]; len(qs) {
	case 0:
		return nil, fmt.Errorf("queue %s does not exist", ref)
	case 1:
		return qs[0], nil
	default:
		paths := make([]string, len(qs))
		for i, q := range qs {
			paths[i] = q.Path
		}
		sort.Strings(paths)
		return nil, fmt.Errorf("queue name %s is ambiguous (%s); use the full path", ref, strings.Join(paths, ", "))
	}
}

// Leaves returns the leaf queues in tree order.
func (t *Tree) Leaves() []*Queue {
	var out []*Queue
	for _, q := range t.Queues {
		if q.IsLeaf() {
			out = append(out, q)
		}
	}
	return out
}

// NamespaceQueues returns the namespaceQueues mapping by queue path ("*" is
// the fallback).
func (t *Tree) NamespaceQueues() map[string]string {
	out := make(map[string]string, len(t.namespaceQueues))
	for ns, q := range t.namespaceQueues {
		out[ns] = q.Path
	}
	return out
}
