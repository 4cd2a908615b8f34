package plugintest

import (
	"fmt"
	"strconv"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/clock"
)

// newClientset is a fake clientset that behaves as the apiserver does where
// muster depends on it: every object it stores gets a new resourceVersion
// and, when it is new, a creation time (the fake leaves both empty; muster
// tells versions of an object apart by the one, and times gangs from the
// other); ConfigMap lists and watches honour field selectors (the queue
// ConfigMap's watch must not see the status ConfigMap next to it); and a
// bound pod deleted with a grace period is marked for deletion and stays
// until the kubelet would be done with it (Env.Finalize).
func newClientset(clk clock.PassiveClock, discovery []*metav1.APIResourceList, objects ...runtime.Object) *fake.Clientset {
	var version atomic.Int64
	stamp := func(o runtime.Object) {
		if m, err := meta.Accessor(o); err == nil {
			m.SetResourceVersion(strconv.FormatInt(version.Add(1), 10))
			if created := m.GetCreationTimestamp(); created.IsZero() {
				m.SetCreationTimestamp(metav1.NewTime(clk.Now()))
			}
		}
	}
	stamped := make([]runtime.Object, len(objects))
	for i, o := range objects {
		stamped[i] = o.DeepCopyObject()
		stamp(stamped[i])
	}
	cs := fake.NewClientset(stamped...)
	cs.Resources = append(cs.Resources, discovery...)
	onWrite := func(a clienttesting.Action) (bool, runtime.Object, error) {
		if w, ok := a.(interface{ GetObject() runtime.Object }); ok && w.GetObject() != nil {
			stamp(w.GetObject())
		}
		return false, nil, nil
	}
	cs.PrependReactor("create", "*", onWrite)
	cs.PrependReactor("update", "*", onWrite)
	cs.PrependReactor("delete", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		return deleteGracefully(cs, clk, a.(clienttesting.DeleteActionImpl), stamp)
	})
	selectConfigMapsByField(cs)
	return cs
}

// selectConfigMapsByField makes ConfigMap lists and watches honour field
// selectors (the fake ignores them).
func selectConfigMapsByField(cs *fake.Clientset) {
	gvr := v1.SchemeGroupVersion.WithResource("configmaps")
	matches := func(sel fields.Selector, o runtime.Object) bool {
		cm, ok := o.(*v1.ConfigMap)
		return !ok || sel.Matches(fields.Set{"metadata.name": cm.Name, "metadata.namespace": cm.Namespace})
	}
	cs.PrependReactor("list", "configmaps", func(a clienttesting.Action) (bool, runtime.Object, error) {
		la := a.(clienttesting.ListAction)
		obj, err := cs.Tracker().List(gvr, v1.SchemeGroupVersion.WithKind("ConfigMap"), la.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		list := obj.(*v1.ConfigMapList)
		kept := list.Items[:0]
		for i := range list.Items {
			if matches(la.GetListRestrictions().Fields, &list.Items[i]) {
				kept = append(kept, list.Items[i])
			}
		}
		list.Items = kept
		return true, list, nil
	})
	cs.PrependWatchReactor("configmaps", func(a clienttesting.Action) (bool, watch.Interface, error) {
		wa := a.(clienttesting.WatchAction)
		w, err := cs.Tracker().Watch(gvr, wa.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		sel := wa.GetWatchRestrictions().Fields
		return true, watch.Filter(w, func(e watch.Event) (watch.Event, bool) { return e, matches(sel, e.Object) }), nil
	})
}

// deleteGracefully marks a bound pod deleted with a grace period (the
// default) as deleting, checking the UID precondition as the apiserver does;
// anything else is deleted at once by the fake's own reactor.
func deleteGracefully(cs *fake.Clientset, clk clock.PassiveClock, a clienttesting.DeleteActionImpl, stamp func(runtime.Object)) (bool, runtime.Object, error) {
	opts := a.DeleteOptions
	if opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds == 0 {
		return false, nil, nil
	}
	obj, err := cs.Tracker().Get(a.GetResource(), a.GetNamespace(), a.GetName())
	if err != nil {
		return false, nil, nil
	}
	p := obj.(*v1.Pod)
	if pre := opts.Preconditions; pre != nil && pre.UID != nil && *pre.UID != p.UID {
		return true, nil, apierrors.NewConflict(a.GetResource().GroupResource(), a.GetName(),
			fmt.Errorf("the UID in the precondition (%s) does not match the UID in record (%s)", *pre.UID, p.UID))
	}
	if p.Spec.NodeName == "" || p.DeletionTimestamp != nil {
		return p.DeletionTimestamp != nil, p, nil
	}
	p = p.DeepCopy()
	now, grace := metav1.NewTime(clk.Now()), int64(v1.DefaultTerminationGracePeriodSeconds)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	stamp(p)
	return true, p, cs.Tracker().Update(a.GetResource(), p, a.GetNamespace())
}
