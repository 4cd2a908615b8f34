package status

import (
	"context"
	"fmt"
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
	// Leading reports whether this process may write (of several
	// replicas, the one holding the lease); nil: always.
	Leading func(context.Context) bool
}

// Run writes the report every Interval until ctx ends, whenever Leading
// says this process is the writer.
func (w *Writer) Run(ctx context.Context) {
	logger := klog.FromContext(ctx).WithName("status")
	if w.Clock == nil {
		w.Clock = clock.RealClock{}
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
	return w.Leading == nil || w.Leading(ctx)
}
