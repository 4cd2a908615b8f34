package mustergang

import (
	"context"
	"fmt"

	schedv1beta1 "k8s.io/api/scheduling/v1beta1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/waitreason"
)

// The Workload API's pod groups (scheduling.k8s.io/v1beta1) get from muster
// the condition kube-scheduler 1.37 writes on them with the GenericWorkload
// gate on (pkg/scheduler/schedule_one_podgroup.go, updatePodGroupCondition):
// PodGroupInitiallyScheduled, True with reason Scheduled once the gang is
// scheduled, False with reason Unschedulable (or SchedulerError) and the
// scheduler's message while it cannot be. Once True it never goes back to
// False, even if members are later evicted or deleted, as the API defines
// it. Like upstream, nothing is written while the gang is short of members
// (upstream's GangScheduling plugin keeps such pods out of any cycle), nor
// while an admitted gang is being bound.

// Scheduled is the reason of the PodGroupInitiallyScheduled condition when
// it is True (kube-scheduler writes it as a literal; the API names no
// constant for it).
const workloadReasonScheduled = "Scheduled"

// runWorkloadStatus writes, every statusInterval, the condition of the
// Workload pod groups whose gangs muster knows, and of those whose quorum
// it let through at Permit (markScheduled; a gang forgotten since, its
// members finished, is still told it was scheduled). Only the leading
// replica writes; a standby keeps its marks for when it leads.
func (pl *Plugin) runWorkloadStatus(ctx context.Context) {
	pl.whileLeading(ctx, func() {
		refs := map[gang.Ref]bool{}
		pl.mu.Lock()
		for ref := range pl.workloadScheduled {
			refs[ref] = true
		}
		pl.mu.Unlock()
		for _, info := range pl.reg.List() {
			if info.Ref.Kind == gang.KindWorkload {
				refs[info.Ref] = true
			}
		}
		for ref := range refs {
			err := pl.syncWorkloadCondition(ctx, ref)
			if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
				klog.FromContext(ctx).V(2).Info("Updating the status of a Workload API PodGroup", "podGroup", ref.String(), "err", err)
				continue // retried on the next tick
			}
			pl.mu.Lock()
			delete(pl.workloadScheduled, ref)
			pl.mu.Unlock()
		}
	})
}

// markScheduled notes that a Workload gang's quorum was let through.
func (pl *Plugin) markScheduled(ref gang.Ref, members int) {
	if ref.Kind != gang.KindWorkload || pl.sources.workloadInformer == nil {
		return
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.workloadScheduled[ref] = members
}

// syncWorkloadCondition brings a pod group's condition up to date.
func (pl *Plugin) syncWorkloadCondition(ctx context.Context, ref gang.Ref) error {
	obj, err := pl.sources.Object(ctx, gang.ResourceWorkloadPodGroup, ref.Namespace, ref.Name)
	if err != nil {
		return err
	}
	pg, ok := obj.(*schedv1beta1.PodGroup)
	if !ok {
		return fmt.Errorf("PodGroup %s is a %T", ref, obj)
	}
	info, known := pl.reg.Get(ref)
	pl.mu.Lock()
	members, scheduled := pl.workloadScheduled[ref]
	pl.mu.Unlock()
	cond := workloadCondition(info, known, scheduled, members)
	if cond == nil {
		return nil
	}
	want, changed := withCondition(pg, *cond)
	if !changed {
		return nil
	}
	pg = pg.DeepCopy()
	pg.Status = want
	_, err = pl.handle.ClientSet().SchedulingV1beta1().PodGroups(pg.Namespace).UpdateStatus(ctx, pg, metav1.UpdateOptions{})
	return err
}

// workloadCondition is the PodGroupInitiallyScheduled condition a gang's
// state calls for, or nil when it calls for none: scheduled once its quorum
// was let through at Permit or is bound; unschedulable while, complete, it
// is refused (no room, its queue's limits, a timeout, ...); an error of
// muster's while its definition cannot be used.
func workloadCondition(info gang.Info, known, scheduled bool, members int) *metav1.Condition {
	if scheduled || known && info.Phase == gang.PhaseBound {
		if !scheduled {
			members = info.Bound
		}
		return &metav1.Condition{Type: schedv1beta1.PodGroupInitiallyScheduled, Status: metav1.ConditionTrue,
			Reason: workloadReasonScheduled, Message: fmt.Sprintf("muster scheduled the gang: %d members placed together", members)}
	}
	if !known || info.Phase != gang.PhasePending || info.ReasonCode == "" {
		return nil
	}
	reason := schedv1beta1.PodGroupReasonUnschedulable
	switch info.ReasonCode {
	case waitreason.MembersMissing, waitreason.MembersGated, waitreason.GangSourceMissing:
		return nil
	case waitreason.InvalidGang, waitreason.InvalidCapacityPolicy:
		reason = schedv1beta1.PodGroupReasonSchedulerError
	}
	return &metav1.Condition{Type: schedv1beta1.PodGroupInitiallyScheduled, Status: metav1.ConditionFalse,
		Reason: reason, Message: info.Reason}
}

// withCondition returns the pod group's status with cond set as
// kube-scheduler sets it (apimeta.SetStatusCondition, the pod group's
// generation observed), and whether that changes it. A True condition is
// final: never turned back to False, nor rewritten as members come and go.
func withCondition(pg *schedv1beta1.PodGroup, cond metav1.Condition) (schedv1beta1.PodGroupStatus, bool) {
	existing := apimeta.FindStatusCondition(pg.Status.Conditions, cond.Type)
	if existing != nil && existing.Status == metav1.ConditionTrue {
		return pg.Status, false
	}
	cond.ObservedGeneration = pg.Generation
	st := *pg.Status.DeepCopy()
	if !apimeta.SetStatusCondition(&st.Conditions, cond) {
		return pg.Status, false
	}
	return st, !apiequality.Semantic.DeepEqual(st, pg.Status)
}
