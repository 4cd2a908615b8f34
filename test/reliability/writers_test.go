package reliability

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	pginformers "sigs.k8s.io/scheduler-plugins/pkg/generated/informers/externalversions"

	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

// writeWatch records who wrote muster's shared state, as the apiserver saw
// it: every write of the status ConfigMap and of the status of the
// PodGroups of some namespaces, attributed to its field manager (the
// writing process's argv[0]: startBinaryAs), and every change of the lease
// holder, with the holder's field manager and acquire time. Everything is
// observed through watches, in the apiserver's order, from the start.
type writeWatch struct {
	mu     sync.Mutex
	writes []sharedWrite
	// lastPG: each PodGroup's last status writer.
	lastPG map[string]string
	terms  []leaseTerm
}

// sharedWrite is one write of shared state, made between Lo (the time the
// apiserver stamped on the writer's managed fields entry, to the second,
// so at or before the write) and Hi (when the watch delivered it, after
// the write).
type sharedWrite struct {
	Lo, Hi          time.Time
	Object, Manager string
}

// stamp is the time of a managed fields entry (zero without one).
func stamp(e metav1.ManagedFieldsEntry) time.Time {
	if e.Time == nil {
		return time.Time{}
	}
	return e.Time.Time
}

// leaseTerm is a holder's hold on the lease, from its acquire time (the
// holder's clock: the same host as the test's).
type leaseTerm struct {
	Holder, Manager string
	Acquired        time.Time
}

func watchWrites(t *testing.T, namespaces ...string) *writeWatch {
	t.Helper()
	w := &writeWatch{lastPG: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	byName := func(name string) informers.SharedInformerOption {
		return informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		})
	}
	f := informers.NewSharedInformerFactoryWithOptions(framework.CP.Client, 0, informers.WithNamespace(musterNamespace), byName(framework.StatusConfigMap))
	_, err := f.Core().V1().ConfigMaps().Informer().AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(o any, initial bool) {
			if !initial {
				w.onStatus(o)
			}
		},
		UpdateFunc: func(_, o any) { w.onStatus(o) },
	})
	require.NoError(t, err)
	lf := informers.NewSharedInformerFactoryWithOptions(framework.CP.Client, 0, informers.WithNamespace(musterNamespace), byName(status.LeaseName))
	_, err = lf.Coordination().V1().Leases().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.onLease,
		UpdateFunc: func(_, o any) { w.onLease(o) },
	})
	require.NoError(t, err)
	f.Start(ctx.Done())
	lf.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	lf.WaitForCacheSync(ctx.Done())
	for _, ns := range namespaces {
		pf := pginformers.NewSharedInformerFactoryWithOptions(framework.PodGroupClient(t), 0, pginformers.WithNamespace(ns))
		_, err := pf.Scheduling().V1alpha1().PodGroups().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			UpdateFunc: w.onPodGroup,
		})
		require.NoError(t, err)
		pf.Start(ctx.Done())
		pf.WaitForCacheSync(ctx.Done())
	}
	return w
}

// onStatus: the writer of a status ConfigMap revision is the manager that
// owns the report's key (a write that changes a field takes it over).
func (w *writeWatch) onStatus(o any) {
	cm, ok := o.(*v1.ConfigMap)
	if !ok {
		return
	}
	at := time.Now()
	key := []byte(`"f:` + status.Key + `"`)
	for _, e := range cm.ManagedFields {
		if e.FieldsV1 != nil && bytes.Contains(e.FieldsV1.Raw, key) {
			w.add(sharedWrite{Lo: stamp(e), Hi: at, Object: "ConfigMap " + cm.Name, Manager: e.Manager})
			return
		}
	}
}

// onPodGroup: the writer of a status revision is the manager whose entry
// for the status subresource is new or has a new time (the apiserver
// stamps the entry of the manager whose write changed something); a second
// write within the same second by the same manager changes no entry, and
// is its last writer's.
func (w *writeWatch) onPodGroup(old, o any) {
	before, ok1 := old.(*schedv1alpha1.PodGroup)
	pg, ok2 := o.(*schedv1alpha1.PodGroup)
	if !ok1 || !ok2 || apiequality.Semantic.DeepEqual(before.Status, pg.Status) {
		return
	}
	at := time.Now()
	name := "PodGroup " + pg.Namespace + "/" + pg.Name
	prev := map[string]metav1.ManagedFieldsEntry{}
	for _, e := range before.ManagedFields {
		prev[e.Manager+"/"+e.Subresource] = e
	}
	var writes []sharedWrite
	for _, e := range pg.ManagedFields {
		if e.Subresource != "status" {
			continue
		}
		p, seen := prev[e.Manager+"/"+e.Subresource]
		if !seen || e.Time == nil || p.Time == nil || !e.Time.Equal(p.Time) {
			writes = append(writes, sharedWrite{Lo: stamp(e), Hi: at, Object: name, Manager: e.Manager})
		}
	}
	w.mu.Lock()
	if last := w.lastPG[name]; len(writes) == 0 && last != "" {
		for _, e := range pg.ManagedFields {
			if e.Manager == last && e.Subresource == "status" {
				writes = append(writes, sharedWrite{Lo: stamp(e), Hi: at, Object: name, Manager: last})
			}
		}
	}
	w.mu.Unlock()
	for _, s := range writes {
		w.add(s)
	}
}

// onLease records each new holder: its identity, the manager that wrote it
// and its acquire time.
func (w *writeWatch) onLease(o any) {
	l, ok := o.(*coordinationv1.Lease)
	if !ok || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" || l.Spec.AcquireTime == nil {
		return
	}
	holder := *l.Spec.HolderIdentity
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.terms); n > 0 && w.terms[n-1].Holder == holder && w.terms[n-1].Acquired.Equal(l.Spec.AcquireTime.Time) {
		return // a renewal
	}
	manager := ""
	for _, e := range l.ManagedFields {
		if e.FieldsV1 != nil && bytes.Contains(e.FieldsV1.Raw, []byte(`"f:holderIdentity"`)) {
			manager = e.Manager
		}
	}
	w.terms = append(w.terms, leaseTerm{Holder: holder, Manager: manager, Acquired: l.Spec.AcquireTime.Time})
}

func (w *writeWatch) add(s sharedWrite) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, s)
	if strings.HasPrefix(s.Object, "PodGroup ") {
		w.lastPG[s.Object] = s.Manager
	}
}

// by counts the writes by manager of objects whose description starts with
// kind ("ConfigMap", "PodGroup"), observed after since.
func (w *writeWatch) by(manager, kind string, since time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.writes {
		if s.Manager == manager && strings.HasPrefix(s.Object, kind) && s.Hi.After(since) {
			n++
		}
	}
	return n
}

// catchUp records the lease's current holder, read now. After an apiserver
// outage the lease watch reconnects with client-go's backoff (up to about
// 30 s), later than the watches of the objects written: a holder that took
// the lease meanwhile, and wrote, would be missing from the terms.
func (w *writeWatch) catchUp(t *testing.T) {
	t.Helper()
	var lease *coordinationv1.Lease
	require.NoError(t, pollUntil(time.Minute, func(ctx context.Context) bool {
		l, err := framework.CP.Client.CoordinationV1().Leases(musterNamespace).Get(ctx, status.LeaseName, metav1.GetOptions{})
		lease = l
		return err == nil
	}), "reading the lease")
	w.onLease(lease)
}

// term returns the lease term of a manager acquired most recently.
func (w *writeWatch) term(manager string) (leaseTerm, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.terms) - 1; i >= 0; i-- {
		if w.terms[i].Manager == manager {
			return w.terms[i], true
		}
	}
	return leaseTerm{}, false
}

// violations lists the writes by any of managers made while another
// process held the lease: a manager holds it from its acquire time until
// the next holder's, and a write is one if no time between its Lo and Hi
// falls in a term of its writer.
func (w *writeWatch) violations(managers ...string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ours := map[string]bool{}
	for _, m := range managers {
		ours[m] = true
	}
	terms := append([]leaseTerm{}, w.terms...)
	sort.Slice(terms, func(i, j int) bool { return terms[i].Acquired.Before(terms[j].Acquired) })
	var out []string
	for _, s := range w.writes {
		if !ours[s.Manager] {
			continue
		}
		held := false
		var holder *leaseTerm
		for i, tm := range terms {
			if !tm.Acquired.After(s.Hi) {
				holder = &terms[i]
			}
			if tm.Manager != s.Manager {
				continue
			}
			var end time.Time
			if i+1 < len(terms) {
				end = terms[i+1].Acquired
			}
			if !s.Hi.Before(tm.Acquired) && (end.IsZero() || s.Lo.Before(end)) {
				held = true
			}
		}
		switch {
		case held:
		case holder == nil:
			out = append(out, fmt.Sprintf("%s wrote %s between %s and %s, before anyone held the lease",
				s.Manager, s.Object, s.Lo.Format(time.StampMilli), s.Hi.Format(time.StampMilli)))
		default:
			out = append(out, fmt.Sprintf("%s wrote %s between %s and %s, while %s (%s) held the lease, acquired at %s",
				s.Manager, s.Object, s.Lo.Format(time.StampMilli), s.Hi.Format(time.StampMilli), holder.Manager, holder.Holder, holder.Acquired.Format(time.StampMilli)))
		}
	}
	return out
}

// counts summarises the writes per manager and kind.
func (w *writeWatch) counts() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for _, s := range w.writes {
		kind, _, _ := strings.Cut(s.Object, " ")
		out[s.Manager+" "+kind]++
	}
	return out
}
