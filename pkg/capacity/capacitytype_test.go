package capacity

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTypeOf(t *testing.T) {
	cases := map[string]struct {
		labels map[string]string
		want   Type
	}{
		"no labels":                  {nil, OnDemand},
		"unrelated labels":           {map[string]string{"kubernetes.io/os": "linux"}, OnDemand},
		"muster spot":                {map[string]string{LabelMuster: "spot"}, Spot},
		"muster on-demand":           {map[string]string{LabelMuster: "on-demand"}, OnDemand},
		"muster wins over karpenter": {map[string]string{LabelMuster: "on-demand", LabelKarpenter: "spot"}, OnDemand},
		"karpenter spot":             {map[string]string{LabelKarpenter: "spot"}, Spot},
		"karpenter on-demand":        {map[string]string{LabelKarpenter: "on-demand"}, OnDemand},
		"karpenter reserved":         {map[string]string{LabelKarpenter: "reserved"}, OnDemand},
		"eks spot":                   {map[string]string{LabelEKS: "SPOT"}, Spot},
		"eks on-demand":              {map[string]string{LabelEKS: "ON_DEMAND"}, OnDemand},
		"eks is case-sensitive":      {map[string]string{LabelEKS: "spot"}, OnDemand},
		"gke spot":                   {map[string]string{LabelGKESpot: "true"}, Spot},
		"gke spot false":             {map[string]string{LabelGKESpot: "false"}, OnDemand},
		"gke preemptible":            {map[string]string{LabelGKEPreemptible: "true"}, Spot},
		"aks spot":                   {map[string]string{LabelAKSPriority: "spot"}, Spot},
		"aks regular":                {map[string]string{LabelAKSPriority: "regular"}, OnDemand},
		"first present label decides, even with an unknown value": {
			map[string]string{LabelMuster: "cheap", LabelKarpenter: "spot"}, OnDemand},
		"gke spot label before preemptible": {map[string]string{LabelGKESpot: "true", LabelGKEPreemptible: "false"}, Spot},
		"karpenter before eks":              {map[string]string{LabelKarpenter: "on-demand", LabelEKS: "SPOT"}, OnDemand},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, TypeOf(tc.labels))
		})
	}
}
