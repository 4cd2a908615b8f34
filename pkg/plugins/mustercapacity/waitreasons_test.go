package mustercapacity

import (
	"testing"

	"github.com/stretchr/testify/assert"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/plugins/profile/profiletest"
	"muster.dev/muster/pkg/waitreason"
)

// TestInvalidCapacityPolicyReason: a pod whose capacity policy annotation
// names no policy waits with InvalidCapacityPolicy.
func TestInvalidCapacityPolicyReason(t *testing.T) {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "p", UID: "uid-p",
		Annotations: map[string]string{capacity.AnnotationPolicy: "cheap"}}, Spec: v1.PodSpec{SchedulerName: profiletest.Profile}}
	c := profiletest.New(t, "", nil, p)
	pl := &Plugin{rt: c.Runtime}
	_, st := pl.PreFilter(c.Ctx, framework.NewCycleState(), p, nil)
	assert.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code())
	assert.Equal(t, profiletest.Reason{Code: waitreason.InvalidCapacityPolicy, Message: st.Message()}, c.Reasons.Of(p))
}
