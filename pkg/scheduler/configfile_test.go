package scheduler

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"muster.dev/muster/manifests"
)

func TestSetDefaultKubeconfig(t *testing.T) {
	cases := map[string]struct {
		in          string
		wantChanged bool
		want        string // clientConnection.kubeconfig afterwards
		wantErr     string
	}{
		"shipped config gets it":     {in: string(manifests.SchedulerConfig), wantChanged: true, want: "/kc"},
		"no clientConnection":        {in: "kind: KubeSchedulerConfiguration\n", wantChanged: true, want: "/kc"},
		"file's own kubeconfig wins": {in: "clientConnection:\n  kubeconfig: /mine\n", want: "/mine"},
		"empty document":             {in: "", wantErr: "empty"},
		"not YAML":                   {in: "a: [", wantErr: "parsing"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, changed, err := SetDefaultKubeconfig([]byte(tc.in), "/kc")
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantChanged, changed)
			var doc struct {
				ClientConnection struct {
					Kubeconfig string  `json:"kubeconfig"`
					QPS        float64 `json:"qps"`
				} `json:"clientConnection"`
				Profiles []any `json:"profiles"`
			}
			require.NoError(t, yaml.Unmarshal(out, &doc))
			assert.Equal(t, tc.want, doc.ClientConnection.Kubeconfig)
			if name == "shipped config gets it" {
				assert.Equal(t, 500.0, doc.ClientConnection.QPS, "the rest of the file is kept")
				assert.Len(t, doc.Profiles, 1)
			}
		})
	}
}
