package framework

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	pgclientset "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/podgroup"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/status"
)

// The ConfigMaps of muster's queue tree and of its published status.
const (
	QueuesConfigMap = configv1.DefaultQueuesConfigMap
	StatusConfigMap = configv1.DefaultStatusConfigMap
)

// SetQueues writes queues.yaml into the muster-queues ConfigMap (as an admin
// would), creating it if needed; the queue and status ConfigMaps are
// removed when the test ends.
func SetQueues(t testing.TB, queuesYAML string) *v1.ConfigMap {
	t.Helper()
	ctx := context.Background()
	cms := CP.Client.CoreV1().ConfigMaps(MusterNamespace)
	cm, err := cms.Get(ctx, QueuesConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cm, err = cms.Create(ctx, &v1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: QueuesConfigMap, Namespace: MusterNamespace},
			Data:       map[string]string{queue.ConfigKey: queuesYAML},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		t.Cleanup(func() {
			_ = cms.Delete(context.Background(), QueuesConfigMap, metav1.DeleteOptions{})
			_ = cms.Delete(context.Background(), StatusConfigMap, metav1.DeleteOptions{})
		})
		return cm
	}
	require.NoError(t, err)
	cm.Data = map[string]string{queue.ConfigKey: queuesYAML}
	cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	return cm
}

// WaitStatus polls the status report muster publishes, read with c, until
// cond holds, and returns it. A missing ConfigMap is waited for; a report
// that does not decode, or an error of cond, ends the wait.
func WaitStatus(t testing.TB, c kubernetes.Interface, timeout time.Duration, what string, cond func(status.Report) (bool, error)) status.Report {
	t.Helper()
	var (
		r    status.Report
		last string // the last status.yaml read, shown if the wait fails
	)
	defer func() {
		if t.Failed() {
			t.Logf("the last status report read while waiting for %s:\n%s", what, last)
		}
	}()
	WaitFor(t, timeout, what, func(ctx context.Context) (bool, error) {
		cm, err := c.CoreV1().ConfigMaps(MusterNamespace).Get(ctx, StatusConfigMap, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = cm.Data[status.Key]
		r, err = status.Decode([]byte(last))
		if err != nil {
			return false, err
		}
		return cond(r)
	})
	return r
}

// EventsFor lists the Events about an object with the given reason, each
// as "type: message".
func EventsFor(t testing.TB, ns, name, reason string) []string {
	t.Helper()
	list, err := CP.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.AndSelectors(
			fields.OneTermEqualSelector("involvedObject.name", name),
			fields.OneTermEqualSelector("reason", reason),
		).String(),
	})
	require.NoError(t, err)
	var notes []string
	for _, e := range list.Items {
		notes = append(notes, e.Type+": "+e.Message)
	}
	return notes
}

// PodGroupClient is an admin client for scheduler-plugins PodGroups.
func PodGroupClient(t testing.TB) pgclientset.Interface {
	t.Helper()
	c, err := podgroup.NewClient(CP.Config)
	require.NoError(t, err)
	return c
}

// WatchPods follows the pods of each namespace through an informer (a
// watch: every change, in the apiserver's order, not sampled) with handler,
// from a synced start until the test ends.
func WatchPods(t testing.TB, handler cache.ResourceEventHandler, namespaces ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, ns := range namespaces {
		f := informers.NewSharedInformerFactoryWithOptions(CP.Client, 0, informers.WithNamespace(ns))
		_, err := f.Core().V1().Pods().Informer().AddEventHandler(handler)
		require.NoError(t, err)
		f.Start(ctx.Done())
		f.WaitForCacheSync(ctx.Done())
	}
}
