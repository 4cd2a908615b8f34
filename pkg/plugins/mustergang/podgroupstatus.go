package mustergang

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/gang"
)

// statusInterval is how often PodGroup statuses are brought up to date.
const statusInterval = 2 * time.Second

// runStatus keeps the status of every PodGroup muster schedules as the API
// defines it, from its pods (terminal ones included). The PodGroups whose
// members or object changed are marked (markStatus) and brought up to date
// every statusInterval; a PodGroup is synced even after muster has forgotten
// its gang (its members all finished), so that its last phase, Finished or
// Failed, is written. Only the leading replica writes; a standby keeps its
// marks for when it leads. It runs once PodGroups are served.
func (pl *Plugin) runStatus(ctx context.Context) {
	pl.whileLeading(ctx, func() {
		pl.mu.Lock()
		refs := make([]gang.Ref, 0, len(pl.statusDirty))
		for ref := range pl.statusDirty {
			refs = append(refs, ref)
		}
		pl.statusDirty = map[gang.Ref]bool{}
		pl.mu.Unlock()
		for _, ref := range refs {
			err := pl.syncPodGroupStatus(ctx, ref)
			if err == nil || apierrors.IsNotFound(err) {
				continue
			}
			pl.markStatus(ref) // retried on the next tick
			if ctx.Err() == nil {
				klog.FromContext(ctx).V(2).Info("Updating PodGroup status", "podGroup", ref.String(), "err", err)
			}
		}
	})
}

// whileLeading runs sync every statusInterval while this replica leads,
// until ctx ends.
func (pl *Plugin) whileLeading(ctx context.Context, sync func()) {
	ticker := pl.clock.NewTicker(statusInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
		if pl.rt.Leading(ctx) {
			sync()
		}
	}
}

// markStatus notes that a PodGroup's status may need an update.
func (pl *Plugin) markStatus(ref gang.Ref) {
	if ref.Kind != gang.KindPodGroup || pl.sources.pgs() == nil {
		return
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.statusDirty[ref] = true
}

// markStatusOf notes a member's change: its gang's PodGroup, and the
// PodGroup a pod names without being its gang (a Spark application's, see
// gang.PodGroupOf), whose status muster writes too.
func (pl *Plugin) markStatusOf(p *v1.Pod, ref gang.Ref) {
	pl.markStatus(ref)
	if name := gang.PodGroupOf(p); name != "" && ref.Kind != gang.KindPodGroup {
		pl.markStatus(gang.Ref{Kind: gang.KindPodGroup, Namespace: p.Namespace, Name: name})
	}
}

// unmarkStatus forgets a PodGroup that is gone.
func (pl *Plugin) unmarkStatus(ref gang.Ref) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	delete(pl.statusDirty, ref)
}

func (pl *Plugin) syncPodGroupStatus(ctx context.Context, ref gang.Ref) error {
	access := pl.sources.pgs()
	pg, err := access.lister.PodGroups(ref.Namespace).Get(ref.Name)
	if err != nil {
		return err
	}
	selector := labels.SelectorFromSet(labels.Set{gang.LabelPodGroup: ref.Name})
	pods, ok, err := listMembers(access.memberIndex, ref.Namespace, selector)
	if !ok && err == nil {
		pods, err = access.allMembers.Pods(ref.Namespace).List(selector)
	}
	if err != nil {
		return err
	}
	info, known := pl.reg.Get(ref) // zero once forgotten: the start time written stays
	for _, p := range pods {
		if known {
			break
		}
		// A PodGroup that is not its pods' gang (a Spark application's):
		// the gang it composes with started the schedule.
		if r, _, ok := pl.sources.identify(p); ok && r != ref {
			info, known = pl.reg.Get(r)
		}
	}
	want := podGroupStatus(pg, pods, info)
	if apiequality.Semantic.DeepEqual(pg.Status, want) {
		return nil
	}
	pg = pg.DeepCopy()
	pg.Status = want
	_, err = access.client.SchedulingV1alpha1().PodGroups(pg.Namespace).UpdateStatus(ctx, pg, metav1.UpdateOptions{})
	return err
}

// podGroupStatus computes a PodGroup's status from its pods, with the
// phases' API meanings: Scheduling once minMember are bound, Running once
// minMember run, Finished once minMember succeeded, Failed when a member
// failed and minMember can no longer run or finish.
func podGroupStatus(pg *schedv1alpha1.PodGroup, pods []*v1.Pod, info gang.Info) schedv1alpha1.PodGroupStatus {
	st := pg.Status
	// Finished and Failed are final for the run they describe: pods cleaned
	// up afterwards do not turn the PodGroup back to Pending. A new live
	// member (the PodGroup reused for another run) starts over.
	if st.Phase == schedv1alpha1.PodGroupFinished || st.Phase == schedv1alpha1.PodGroupFailed {
		live := false
		for _, p := range pods {
			live = live || p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed
		}
		if !live {
			return st
		}
	}
	st.Running, st.Succeeded, st.Failed = 0, 0, 0
	bound := int32(0)
	for _, p := range pods {
		switch p.Status.Phase {
		case v1.PodRunning:
			st.Running++
		case v1.PodSucceeded:
			st.Succeeded++
		case v1.PodFailed:
			st.Failed++
		}
		if p.Spec.NodeName != "" && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
			bound++
		}
	}
	min := max(pg.Spec.MinMember, 1)
	switch {
	case st.Succeeded >= min:
		st.Phase = schedv1alpha1.PodGroupFinished
	case st.Failed > 0 && st.Running+st.Succeeded < min:
		st.Phase = schedv1alpha1.PodGroupFailed
	case st.Running+st.Succeeded >= min && st.Running > 0:
		st.Phase = schedv1alpha1.PodGroupRunning
	case bound >= min:
		st.Phase = schedv1alpha1.PodGroupScheduling
	default:
		st.Phase = schedv1alpha1.PodGroupPending
	}
	if st.ScheduleStartTime.IsZero() && !info.FirstSeen.IsZero() {
		st.ScheduleStartTime = metav1.NewTime(info.FirstSeen)
	}
	return st
}
