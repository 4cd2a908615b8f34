package v1_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"

	"muster.dev/muster/pkg/apis/config"
	_ "muster.dev/muster/pkg/apis/config/scheme"
)

// load decodes a KubeSchedulerConfiguration the way kube-scheduler does
// (strict, defaulted, converted to the internal version) and returns the
// args of each plugin of its first profile.
func load(t *testing.T, doc string) (map[string]any, error) {
	t.Helper()
	obj, _, err := schedscheme.Codecs.UniversalDecoder().Decode([]byte(doc), nil, nil)
	if err != nil {
		return nil, err
	}
	cfg, ok := obj.(*schedconfig.KubeSchedulerConfiguration)
	require.True(t, ok, "decoded a %T", obj)
	require.NotEmpty(t, cfg.Profiles)
	args := map[string]any{}
	for _, pc := range cfg.Profiles[0].PluginConfig {
		args[pc.Name] = pc.Args
	}
	return args, nil
}

const header = `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
  - schedulerName: muster
    plugins:
      multiPoint:
        enabled:
          - name: MusterQueue
          - name: MusterGang
          - name: MusterCapacity
`

func TestArgsDecoding(t *testing.T) {
	cases := map[string]struct {
		pluginConfig string
		wantQueue    config.MusterQueueArgs
		wantGang     config.MusterGangArgs
		wantCapacity config.MusterCapacityArgs
		wantErr      string
	}{
		"no pluginConfig: every default": {
			wantQueue:    config.MusterQueueArgs{Namespace: "muster-system", QueuesConfigMap: "muster-queues", StatusConfigMap: "muster-queue-status", StatusIntervalSeconds: 5},
			wantGang:     config.MusterGangArgs{DefaultTimeoutSeconds: 300, BackoffSeconds: 10},
			wantCapacity: config.MusterCapacityArgs{PolicyWeight: 60, SpreadWeight: 30, DisruptionWeight: 10},
		},
		"some fields set, the rest defaulted": {
			pluginConfig: `
    pluginConfig:
      - name: MusterQueue
        args:
          namespace: scheduling
      - name: MusterGang
        args:
          defaultTimeoutSeconds: 60
`,
			wantQueue:    config.MusterQueueArgs{Namespace: "scheduling", QueuesConfigMap: "muster-queues", StatusConfigMap: "muster-queue-status", StatusIntervalSeconds: 5},
			wantGang:     config.MusterGangArgs{DefaultTimeoutSeconds: 60, BackoffSeconds: 10},
			wantCapacity: config.MusterCapacityArgs{PolicyWeight: 60, SpreadWeight: 30, DisruptionWeight: 10},
		},
		"reading Spark's ConfigMaps turned on": {
			pluginConfig: `
    pluginConfig:
      - name: MusterGang
        args:
          readSparkConfigMaps: true
`,
			wantQueue:    config.MusterQueueArgs{Namespace: "muster-system", QueuesConfigMap: "muster-queues", StatusConfigMap: "muster-queue-status", StatusIntervalSeconds: 5},
			wantGang:     config.MusterGangArgs{DefaultTimeoutSeconds: 300, BackoffSeconds: 10, ReadSparkConfigMaps: true},
			wantCapacity: config.MusterCapacityArgs{PolicyWeight: 60, SpreadWeight: 30, DisruptionWeight: 10},
		},
		"one capacity weight set: the others are 0": {
			pluginConfig: `
    pluginConfig:
      - name: MusterCapacity
        args:
          policyWeight: 100
`,
			wantQueue:    config.MusterQueueArgs{Namespace: "muster-system", QueuesConfigMap: "muster-queues", StatusConfigMap: "muster-queue-status", StatusIntervalSeconds: 5},
			wantGang:     config.MusterGangArgs{DefaultTimeoutSeconds: 300, BackoffSeconds: 10},
			wantCapacity: config.MusterCapacityArgs{PolicyWeight: 100},
		},
		"unknown field": {
			pluginConfig: `
    pluginConfig:
      - name: MusterGang
        args:
          timeout: 60
`,
			wantErr: `unknown field "timeout"`,
		},
		"wrong type": {
			pluginConfig: `
    pluginConfig:
      - name: MusterQueue
        args:
          statusIntervalSeconds: "often"
`,
			wantErr: "MusterQueue",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			args, err := load(t, header+tc.pluginConfig)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.IsType(t, &config.MusterQueueArgs{}, args["MusterQueue"])
			require.IsType(t, &config.MusterGangArgs{}, args["MusterGang"])
			require.IsType(t, &config.MusterCapacityArgs{}, args["MusterCapacity"])
			assert.Equal(t, tc.wantQueue, stripTypeMeta(*args["MusterQueue"].(*config.MusterQueueArgs)))
			assert.Equal(t, tc.wantGang, stripTypeMeta(*args["MusterGang"].(*config.MusterGangArgs)))
			assert.Equal(t, tc.wantCapacity, stripTypeMeta(*args["MusterCapacity"].(*config.MusterCapacityArgs)))
		})
	}
}

func stripTypeMeta[T config.MusterQueueArgs | config.MusterGangArgs | config.MusterCapacityArgs](v T) T {
	switch a := any(&v).(type) {
	case *config.MusterQueueArgs:
		a.TypeMeta = config.MusterQueueArgs{}.TypeMeta
	case *config.MusterGangArgs:
		a.TypeMeta = config.MusterGangArgs{}.TypeMeta
	case *config.MusterCapacityArgs:
		a.TypeMeta = config.MusterCapacityArgs{}.TypeMeta
	}
	return v
}
