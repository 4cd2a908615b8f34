package mustergang

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/tools/cache"

	"muster.dev/muster/pkg/gang"
)

// memberIndex indexes pods by the labels gang sources list members by, as
// "namespace/key=value": listing a gang's members then costs its members,
// not every pod of its namespace (one namespace may hold thousands of
// pending pods: BenchmarkScale spent a third of its CPU matching them).
const memberIndex = "byMemberLabel"

// memberLabels are the labels the gang sources select members by
// (gang.Source.Members).
var memberLabels = []string{gang.LabelGang, gang.LabelPodGroup, gang.LabelJobSet, gang.LabelSparkApp, gang.LabelRayCluster}

func memberIndexKey(namespace, key, value string) string {
	return namespace + "/" + key + "=" + value
}

func indexMemberLabels(obj any) ([]string, error) {
	p, ok := obj.(*v1.Pod)
	if !ok {
		return nil, nil
	}
	var out []string
	for _, k := range memberLabels {
		if v, ok := p.Labels[k]; ok {
			out = append(out, memberIndexKey(p.Namespace, k, v))
		}
	}
	return out, nil
}

// addMemberIndex adds the index to a pod informer, once (the scheduler's
// informer is shared by every profile).
func addMemberIndex(inf cache.SharedIndexInformer) error {
	if _, ok := inf.GetIndexer().GetIndexers()[memberIndex]; ok {
		return nil
	}
	if err := inf.AddIndexers(cache.Indexers{memberIndex: indexMemberLabels}); err != nil {
		return fmt.Errorf("indexing pods by gang: %w", err)
	}
	return nil
}

// listMembers lists the pods of namespace matching selector through the
// index when the selector requires one of memberLabels to equal a value;
// handled is false otherwise (the caller lists the namespace).
func listMembers(indexer cache.Indexer, namespace string, selector labels.Selector) (pods []*v1.Pod, handled bool, err error) {
	if indexer == nil {
		return nil, false, nil
	}
	reqs, selectable := selector.Requirements()
	if !selectable {
		return nil, false, nil
	}
	for _, r := range reqs {
		if (r.Operator() != selection.Equals && r.Operator() != selection.DoubleEquals) || r.Values().Len() != 1 || !isMemberLabel(r.Key()) {
			continue
		}
		objs, err := indexer.ByIndex(memberIndex, memberIndexKey(namespace, r.Key(), r.Values().UnsortedList()[0]))
		if err != nil {
			return nil, false, nil // not indexed here: list the namespace
		}
		for _, o := range objs {
			if p, ok := o.(*v1.Pod); ok && selector.Matches(labels.Set(p.Labels)) {
				pods = append(pods, p)
			}
		}
		return pods, true, nil
	}
	return nil, false, nil
}

func isMemberLabel(key string) bool {
	for _, k := range memberLabels {
		if k == key {
			return true
		}
	}
	return false
}
