package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestValidateMusterQueueArgs(t *testing.T) {
	good := MusterQueueArgs{Namespace: "muster-system", QueuesConfigMap: "muster-queues", StatusConfigMap: "muster-queue-status", StatusIntervalSeconds: 5}
	cases := map[string]struct {
		mutate func(*MusterQueueArgs)
		want   []string
	}{
		"valid":                {func(*MusterQueueArgs) {}, nil},
		"bad namespace":        {func(a *MusterQueueArgs) { a.Namespace = "Muster" }, []string{"args.namespace"}},
		"empty configmap":      {func(a *MusterQueueArgs) { a.QueuesConfigMap = "" }, []string{"args.queuesConfigMap"}},
		"same configmaps":      {func(a *MusterQueueArgs) { a.StatusConfigMap = a.QueuesConfigMap }, []string{"must differ from queuesConfigMap"}},
		"interval 0":           {func(a *MusterQueueArgs) { a.StatusIntervalSeconds = 0 }, []string{"args.statusIntervalSeconds"}},
		"every error reported": {func(a *MusterQueueArgs) { a.Namespace, a.StatusIntervalSeconds = "", 7200 }, []string{"args.namespace", "args.statusIntervalSeconds"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a := good
			tc.mutate(&a)
			assertErrors(t, ValidateMusterQueueArgs(field.NewPath("args"), &a), tc.want)
		})
	}
}

func TestValidateMusterGangArgs(t *testing.T) {
	cases := map[string]struct {
		args MusterGangArgs
		want []string
	}{
		"valid":              {MusterGangArgs{DefaultTimeoutSeconds: 300, BackoffSeconds: 10}, nil},
		"no backoff is fine": {MusterGangArgs{DefaultTimeoutSeconds: 1}, nil},
		"zero timeout":       {MusterGangArgs{DefaultTimeoutSeconds: 0}, []string{"args.defaultTimeoutSeconds"}},
		"negative backoff":   {MusterGangArgs{DefaultTimeoutSeconds: 5, BackoffSeconds: -1}, []string{"args.backoffSeconds"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assertErrors(t, ValidateMusterGangArgs(field.NewPath("args"), &tc.args), tc.want)
		})
	}
}

func TestValidateMusterCapacityArgs(t *testing.T) {
	cases := map[string]struct {
		args MusterCapacityArgs
		want []string
	}{
		"valid":        {MusterCapacityArgs{PolicyWeight: 60, SpreadWeight: 30, DisruptionWeight: 10}, nil},
		"one weight":   {MusterCapacityArgs{PolicyWeight: 100}, nil},
		"all zero":     {MusterCapacityArgs{}, []string{"must not all be 0"}},
		"too big":      {MusterCapacityArgs{PolicyWeight: 101, SpreadWeight: 1}, []string{"args.policyWeight"}},
		"two negative": {MusterCapacityArgs{SpreadWeight: -1, DisruptionWeight: -2}, []string{"args.spreadWeight", "args.disruptionWeight"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assertErrors(t, ValidateMusterCapacityArgs(field.NewPath("args"), &tc.args), tc.want)
		})
	}
}

func assertErrors(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		assert.NoError(t, err)
		return
	}
	if assert.Error(t, err) {
		for _, w := range want {
			assert.Contains(t, err.Error(), w)
		}
	}
}
