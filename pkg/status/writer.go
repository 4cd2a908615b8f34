package status

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// LeaseName is muster-scheduler's leader-election lease, as the shipped
// scheduler configuration names it.
const LeaseName = "muster-scheduler"

// Writer refreshes the status ConfigMap.
type Writer struct {
	Client          kubernetes.Interface
	Namespace, Name string
	Interval        time.Duration
	Clock           clock.WithTicker
	// Report builds the current report.
	Report func(now time.Time) Report
	// Identity is this process's host name, the prefix of its lease
	// identity; default os.Hostname().
	Identity string
}

// Run writes the report every Interval until ctx ends. Of several replicas,
// only the one holding the lease writes (any, when there is no lease: leader
// election is off).
func (w *Writer) Run(ctx context.Context) {
	logger := klog.FromContext(ctx).WithName("status")
	if w.Clock == nil {
		w.Clock = clock.RealClock{}
	}
	if w.Identity == "" {
		w.Identity, _ = os.Hostname()
	}
	ticker := w.Clock.NewTicker(w.Interval)
	defer ticker.Stop()
	for {
		if err := w.WriteOnce(ctx); err != nil && ctx.Err() == nil {
			logger.Error(err, "Writing queue status", "configMap", klog.KRef(w.Namespace, w.Name))
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
	}
}

// WriteOnce writes the report now, if this replica should.
func (w *Writer) WriteOnce(ctx context.Context) error {
	if !w.leading(ctx) {
		return nil
	}
	data, err := Encode(w.Report(w.Clock.Now()))
	if err != nil {
		return err
	}
	cms := w.Client.CoreV1().ConfigMaps(w.Namespace)
	cm, err := cms.Get(ctx, w.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, &v1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace,
				Labels: map[string]string{"app.kubernetes.io/name": "muster-scheduler"}},
			Data: map[string]string{Key: string(data)},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return fmt.Errorf("reading status ConfigMap: %w", err)
	}
	cm = cm.DeepCopy()
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[Key] = string(data)
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	return err
}

func (w *Writer) leading(ctx context.Context) bool {
	return Leading(ctx, w.Client, w.Namespace, w.Identity, w.Clock)
}

// Leading reports whether this process should write shared state: it holds
// muster-scheduler's lease (kube-scheduler's lease identity is the host name
// and a suffix), or nobody holds it (leader election is off, or the holder
// is gone).
func Leading(ctx context.Context, client kubernetes.Interface, namespace, identity string, clk clock.PassiveClock) bool {
	if identity == "" {
		identity, _ = os.Hostname()
	}
	lease, err := client.CoordinationV1().Leases(namespace).Get(ctx, LeaseName, metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		return true // no leader election
	}
	if strings.HasPrefix(*lease.Spec.HolderIdentity, identity+"_") {
		return true
	}
	if lease.Spec.RenewTime != nil && lease.Spec.LeaseDurationSeconds != nil {
		expiry := lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second)
		return clk.Now().After(expiry) // the holder is gone
	}
	return false
}
