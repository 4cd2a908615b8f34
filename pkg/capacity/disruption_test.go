package capacity

import (
	"testing"

	"github.com/stretchr/testify/assert"
	v1 "k8s.io/api/core/v1"
)

func TestDisruption(t *testing.T) {
	taint := func(key, value string, effect v1.TaintEffect) v1.Taint {
		return v1.Taint{Key: key, Value: value, Effect: effect}
	}
	noSchedule := func(key string) v1.Taint { return taint(key, "", v1.TaintEffectNoSchedule) }
	cases := map[string]struct {
		labels        map[string]string
		taints        []v1.Taint
		unschedulable bool
		want          string // "" = not disrupted
	}{
		"healthy node": {},
		"unrelated taints and labels": {
			labels: map[string]string{"karpenter.sh/capacity-type": "spot", "kubernetes.io/os": "linux"},
			taints: []v1.Taint{noSchedule("nvidia.com/gpu"), noSchedule("karpenter.sh/unregistered")},
		},

		"nth spot interruption": {
			taints: []v1.Taint{taint("aws-node-termination-handler/spot-itn", "1712345678", v1.TaintEffectNoSchedule)},
			want:   "tainted aws-node-termination-handler/spot-itn (spot interruption notice)",
		},
		"nth asg lifecycle termination": {
			taints: []v1.Taint{noSchedule("aws-node-termination-handler/asg-lifecycle-termination")},
			want:   "tainted aws-node-termination-handler/asg-lifecycle-termination (ASG scale-in)",
		},
		"nth scheduled maintenance": {
			taints: []v1.Taint{noSchedule("aws-node-termination-handler/scheduled-maintenance")},
			want:   "tainted aws-node-termination-handler/scheduled-maintenance (EC2 scheduled maintenance)",
		},
		"nth rebalance recommendation, PreferNoSchedule": {
			taints: []v1.Taint{taint("aws-node-termination-handler/rebalance-recommendation", "", v1.TaintEffectPreferNoSchedule)},
			want:   "tainted aws-node-termination-handler/rebalance-recommendation (EC2 rebalance recommendation)",
		},
		"nth taint unknown to muster": {
			taints: []v1.Taint{noSchedule("aws-node-termination-handler/something-new")},
			want:   "tainted aws-node-termination-handler/something-new (node termination handler)",
		},
		"several unknown nth taints: smallest key": {
			taints: []v1.Taint{noSchedule("aws-node-termination-handler/zz"), noSchedule("aws-node-termination-handler/aa")},
			want:   "tainted aws-node-termination-handler/aa (node termination handler)",
		},
		"nth label": {
			labels: map[string]string{"aws-node-termination-handler/event-id": "instance-event-0d59937288b749b32"},
			want:   "labelled aws-node-termination-handler/event-id (node termination handler)",
		},
		"nth labels: smallest key": {
			labels: map[string]string{
				"aws-node-termination-handler/event-id":    "e-1",
				"aws-node-termination-handler/action":      "UncordonAfterReboot",
				"aws-node-termination-handler/action-time": "1712345678",
			},
			want: "labelled aws-node-termination-handler/action (node termination handler)",
		},

		"karpenter v1 disrupted": {
			taints: []v1.Taint{noSchedule("karpenter.sh/disrupted")},
			want:   "tainted karpenter.sh/disrupted (Karpenter disruption)",
		},
		"karpenter v1beta1 disruption=disrupting": {
			taints: []v1.Taint{taint("karpenter.sh/disruption", "disrupting", v1.TaintEffectNoSchedule)},
			want:   "tainted karpenter.sh/disruption=disrupting (Karpenter disruption)",
		},
		"karpenter v1beta1 disruption with another value is not removal": {
			taints: []v1.Taint{taint("karpenter.sh/disruption", "something", v1.TaintEffectNoSchedule)},
		},

		"cluster-autoscaler to be deleted": {
			taints: []v1.Taint{taint("ToBeDeletedByClusterAutoscaler", "1712345678", v1.TaintEffectNoSchedule)},
			want:   "tainted ToBeDeletedByClusterAutoscaler (cluster-autoscaler scale-down)",
		},
		"cluster-autoscaler deletion candidate": {
			taints: []v1.Taint{taint("DeletionCandidateOfClusterAutoscaler", "1712345678", v1.TaintEffectPreferNoSchedule)},
			want:   "tainted DeletionCandidateOfClusterAutoscaler (cluster-autoscaler scale-down candidate)",
		},

		"gke impending termination taint": {
			taints: []v1.Taint{noSchedule("cloud.google.com/impending-node-termination")},
			want:   "tainted cloud.google.com/impending-node-termination (GKE node termination)",
		},
		"gke impending termination label": {
			labels: map[string]string{"cloud.google.com/impending-node-termination": "true"},
			want:   "labelled cloud.google.com/impending-node-termination (GKE node termination)",
		},

		"cordoned": {unschedulable: true, want: "cordoned"},
		"cordon taint without the flag": {
			taints: []v1.Taint{noSchedule("node.kubernetes.io/unschedulable")},
			want:   "cordoned",
		},

		"spot interruption wins over cordon and karpenter, whatever the taint order": {
			taints: []v1.Taint{
				noSchedule("node.kubernetes.io/unschedulable"),
				noSchedule("karpenter.sh/disrupted"),
				noSchedule("aws-node-termination-handler/spot-itn"),
			},
			unschedulable: true,
			want:          "tainted aws-node-termination-handler/spot-itn (spot interruption notice)",
		},
		"karpenter wins over cluster-autoscaler": {
			taints: []v1.Taint{noSchedule("ToBeDeletedByClusterAutoscaler"), noSchedule("karpenter.sh/disrupted")},
			want:   "tainted karpenter.sh/disrupted (Karpenter disruption)",
		},
		"gke termination wins over a deletion candidate": {
			taints: []v1.Taint{noSchedule("DeletionCandidateOfClusterAutoscaler"), noSchedule("cloud.google.com/impending-node-termination")},
			want:   "tainted cloud.google.com/impending-node-termination (GKE node termination)",
		},
		"known taint wins over a label": {
			labels: map[string]string{"cloud.google.com/impending-node-termination": "true"},
			taints: []v1.Taint{noSchedule("ToBeDeletedByClusterAutoscaler")},
			want:   "tainted ToBeDeletedByClusterAutoscaler (cluster-autoscaler scale-down)",
		},
		"label wins over cordon": {
			labels:        map[string]string{"aws-node-termination-handler/event-id": "e-1"},
			unschedulable: true,
			want:          "labelled aws-node-termination-handler/event-id (node termination handler)",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			reason, disrupted := Disruption(tc.labels, tc.taints, tc.unschedulable)
			assert.Equal(t, tc.want, reason)
			assert.Equal(t, tc.want != "", disrupted)
		})
	}
}
