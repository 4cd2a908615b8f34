package capacity

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestPoolOf(t *testing.T) {
	const (
		stableType = "node.kubernetes.io/instance-type"
		betaType   = "beta.kubernetes.io/instance-type"
		stableZone = "topology.kubernetes.io/zone"
		betaZone   = "failure-domain.beta.kubernetes.io/zone"
	)
	cases := map[string]struct {
		labels map[string]string
		want   string
	}{
		"stable labels":    {map[string]string{stableType: "m5.xlarge", stableZone: "us-east-1a"}, "m5.xlarge/us-east-1a"},
		"beta labels only": {map[string]string{betaType: "m5.xlarge", betaZone: "us-east-1b"}, "m5.xlarge/us-east-1b"},
		"stable wins over beta": {
			map[string]string{stableType: "c6i.large", betaType: "m4.large", stableZone: "eu-west-1a", betaZone: "eu-west-1c"},
			"c6i.large/eu-west-1a"},
		"empty stable falls back to beta": {map[string]string{stableType: "", betaType: "m5.large", stableZone: "z"}, "m5.large/z"},
		"no zone":                         {map[string]string{stableType: "m5.xlarge"}, "m5.xlarge/unknown"},
		"no instance type":                {map[string]string{stableZone: "us-east-1a"}, "unknown/us-east-1a"},
		"no labels":                       {nil, "unknown/unknown"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, PoolOf(tc.labels))
		})
	}
}
