package scheduler

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2/ktesting"
)

func testElection(client *fake.Clientset, identity string) leaderelection.LeaderElectionConfig {
	return leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: "muster-system", Name: "muster-scheduler"},
			Client:     client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
		},
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 100 * time.Millisecond,
		ReleaseOnCancel: true, Name: "kube-scheduler",
	}
}

// runElected runs the scheduler once it holds the lease, and returns when
// its context ends, with the scheduler stopped and the lease released:
// unlike kube-scheduler's Run, which exits the process.
func TestRunElected(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	client := fake.NewClientset()
	started := make(chan struct{})
	stoppedRun := false
	done := make(chan error, 1)
	go func() {
		done <- runElected(ctx, testElection(client, "me"), func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			stoppedRun = true
			return errors.New("finished")
		})
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the scheduler did not start: the lease was not taken")
	}
	lease, err := client.CoordinationV1().Leases("muster-system").Get(ctx, "muster-scheduler", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "me", *lease.Spec.HolderIdentity)

	cancel()
	select {
	case err := <-done:
		require.EqualError(t, err, "finished", "run's own error, once it has returned")
		assert.True(t, stoppedRun)
	case <-time.After(30 * time.Second):
		t.Fatal("runElected did not return after its context ended")
	}
	lease, err = client.CoordinationV1().Leases("muster-system").Get(context.Background(), "muster-scheduler", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Empty(t, ptrValue(lease.Spec.HolderIdentity), "the lease is released")
}

// A lease another replica holds: the scheduler never runs, and stopping
// returns at once.
func TestRunElectedNeverLeading(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	other := "other"
	secs := int32(3600)
	now := metav1.NewMicroTime(time.Now())
	client := fake.NewClientset(&coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: "muster-system", Name: "muster-scheduler"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &other, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now},
	})
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err := runElected(ctx, testElection(client, "me"), func(context.Context) error {
		t.Error("ran without the lease")
		return nil
	})
	assert.NoError(t, err)
}

func ptrValue(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
