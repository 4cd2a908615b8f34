package gang

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	gangcore "muster.dev/muster/pkg/gang"
)

// statusInterval is how often PodGroup statuses are brought up to date.
const statusInterval = 2 * time.Second

// runStatus keeps the status of every PodGroup muster schedules as the API
// defines it, from its pods (terminal ones included). Only the leading
// replica writes.
func (pl *Plugin) runStatus(ctx context.Context) {
	if pl.sources.pgs == nil {
		return
	}
	ticker := pl.clock.NewTicker(statusInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
		if !pl.rt.Leading(ctx) {
			continue
		}
		for _, info := range pl.reg.List() {
			if info.Ref.Kind != gangcore.KindPodGroup {
				continue
			}
			if err := pl.syncPodGroupStatus(ctx, info); err != nil && ctx.Err() == nil {
				klog.FromContext(ctx).V(2).Info("Updating PodGroup status", "podGroup", info.Ref.String(), "err", err)
			}
		}
	}
}

func (pl *Plugin) syncPodGroupStatus(ctx context.Context, info gangcore.Info) error {
	pg, err := pl.sources.pgs.PodGroups(info.Ref.Namespace).Get(info.Ref.Name)
	if err != nil {
		return err
	}
	pods, err := pl.sources.allMembers.Pods(info.Ref.Namespace).List(labels.SelectorFromSet(labels.Set{gangcore.LabelPodGroup: info.Ref.Name}))
	if err != nil {
		return err
	}
	want := podGroupStatus(pg, pods, info)
	if apiequality.Semantic.DeepEqual(pg.Status, want) {
		return nil
	}
	pg = pg.DeepCopy()
	pg.Status = want
	_, err = pl.sources.pgClient.SchedulingV1alpha1().PodGroups(pg.Namespace).UpdateStatus(ctx, pg, metav1.UpdateOptions{})
	return err
}

// podGroupStatus computes a PodGroup's status from its pods, with the
// phases' API meanings: Scheduling once minMember are bound, Running once
// minMember run, Finished once minMember succeeded, Failed when a member
// failed and minMember can no longer run or finish.
func podGroupStatus(pg *schedv1alpha1.PodGroup, pods []*v1.Pod, info gangcore.Info) schedv1alpha1.PodGroupStatus {
	st := pg.Status
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
