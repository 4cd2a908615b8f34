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

// AppliedKey is the key under which the status ConfigMap keeps the
// queues.yaml in force, so that a replica starting while the queue ConfigMap
// holds an invalid edit can run with the last valid configuration.
const AppliedKey = "applied-queues.yaml"

// Writer refreshes the status ConfigMap.
type Writer struct {
	Client          kubernetes.Interface
	Namespace, Name string
	Interval        time.Duration
	Clock           clock.WithTicker
	// Report builds the current report.
	Report func(now time.Time) Report
	// Applied, when set, returns the queues.yaml in force, kept under
	// AppliedKey ("" removes the key: the built-in default is in force).
	Applied func() string
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
			Data: w.data(nil, data),
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return fmt.Errorf("reading status ConfigMap: %w", err)
	}
	cm = cm.DeepCopy()
	cm.Data = w.data(cm.Data, data)
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	return err
}

// data is the ConfigMap's data with the report and the applied
// configuration set.
func (w *Writer) data(d map[string]string, report []byte) map[string]string {
	if d == nil {
		d = map[string]string{}
	}
	d[Key] = string(report)
	if w.Applied != nil {
		if raw := w.Applied(); raw != "" {
			d[AppliedKey] = raw
		} else {
			delete(d, AppliedKey)
		}
	}
	return d
}

// ReadApplied returns the queues.yaml a writer kept under AppliedKey; ""
// when there is none.
func ReadApplied(ctx context.Context, client kubernetes.Interface, namespace, name string) (string, error) {
	cm, err := client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading status ConfigMap %s/%s: %w", namespace, name, err)
	}
	return cm.Data[AppliedKey], nil
}

func (w *Writer) leading(ctx context.Context) bool {
	return w.Leading == nil || w.Leading(ctx)
}
