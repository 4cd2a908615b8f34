package capacity

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePolicy(t *testing.T) {
	for _, p := range Policies {
		t.Run(string(p), func(t *testing.T) {
			got, err := ParsePolicy(string(p))
			require.NoError(t, err)
			assert.Equal(t, p, got)
		})
	}
	_, err := ParsePolicy("cheap")
	assert.EqualError(t, err, `"cheap" is not a capacity policy; use one of require-spot, prefer-spot, prefer-on-demand, require-on-demand, any`)
}

func TestRoleOf(t *testing.T) {
	cases := map[string]struct {
		labels map[string]string
		want   Role
	}{
		"spark driver":           {map[string]string{"spark-role": "driver"}, RoleDriver},
		"spark executor":         {map[string]string{"spark-role": "executor"}, RoleExecutor},
		"unknown spark role":     {map[string]string{"spark-role": "shuffle"}, RoleOther},
		"role is case-sensitive": {map[string]string{"spark-role": "Driver"}, RoleOther},
		"no spark label":         {map[string]string{"app": "trainer"}, RoleOther},
		"no labels":              {nil, RoleOther},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, RoleOf(tc.labels))
		})
	}
	// Metric label values: they must not change.
	assert.Equal(t, []string{"driver", "executor", "other"},
		[]string{string(RoleDriver), string(RoleExecutor), string(RoleOther)})
}

func TestPolicyFor(t *testing.T) {
	ann := func(v string) map[string]string { return map[string]string{AnnotationPolicy: v} }
	cases := map[string]struct {
		annotations map[string]string
		role        Role
		queue       Policy
		want        Policy
		wantSource  Source
		wantErr     string
	}{
		"annotation wins over the driver default": {ann("require-spot"), RoleDriver, "", RequireSpot, SourceAnnotation, ""},
		"annotation wins over the executor default": {
			ann("require-on-demand"), RoleExecutor, PreferSpot, RequireOnDemand, SourceAnnotation, ""},
		"annotation wins over the queue":       {ann("any"), RoleOther, RequireOnDemand, Any, SourceAnnotation, ""},
		"annotation with surrounding space":    {ann(" prefer-spot\n"), RoleOther, "", PreferSpot, SourceAnnotation, ""},
		"driver default":                       {nil, RoleDriver, "", PreferOnDemand, SourceDriverDefault, ""},
		"driver default wins over the queue":   {nil, RoleDriver, RequireSpot, PreferOnDemand, SourceDriverDefault, ""},
		"executor default":                     {nil, RoleExecutor, "", PreferSpot, SourceExecutorDefault, ""},
		"executor default wins over the queue": {nil, RoleExecutor, PreferOnDemand, PreferSpot, SourceExecutorDefault, ""},
		"queue policy":                         {nil, RoleOther, RequireOnDemand, RequireOnDemand, SourceQueue, ""},
		"other annotations do not count": {
			map[string]string{"muster.dev/queue": "root.x"}, RoleOther, PreferSpot, PreferSpot, SourceQueue, ""},
		"default": {nil, RoleOther, "", Any, SourceDefault, ""},
		"unknown annotation is an error, not any": {ann("cheap"), RoleExecutor, PreferSpot, "", SourceAnnotation,
			`annotation muster.dev/capacity-policy: "cheap" is not a capacity policy; use one of require-spot, prefer-spot, prefer-on-demand, require-on-demand, any`},
		"empty annotation is an error": {ann(""), RoleOther, "", "", SourceAnnotation,
			`annotation muster.dev/capacity-policy: "" is not a capacity policy; use one of require-spot, prefer-spot, prefer-on-demand, require-on-demand, any`},
		"annotation is case-sensitive": {ann("Require-Spot"), RoleOther, "", "", SourceAnnotation,
			`annotation muster.dev/capacity-policy: "Require-Spot" is not a capacity policy; use one of require-spot, prefer-spot, prefer-on-demand, require-on-demand, any`},
		"invalid queue policy is an error": {nil, RoleOther, "spotty", "", SourceQueue,
			`queue capacityPolicy: "spotty" is not a capacity policy; use one of require-spot, prefer-spot, prefer-on-demand, require-on-demand, any`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, src, err := PolicyFor(tc.annotations, tc.role, tc.queue)
			if tc.wantErr != "" {
				assert.EqualError(t, err, tc.wantErr)
			} else {
				assert.NoError(t, err)
			}
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.wantSource, src)
		})
	}
}

func TestSourceWithQueue(t *testing.T) {
	cases := map[string]struct {
		source Source
		queue  string
		want   Source
	}{
		"queue source names the queue":   {SourceQueue, "root.x", "queue root.x"},
		"queue source without a name":    {SourceQueue, "", SourceQueue},
		"annotation is left alone":       {SourceAnnotation, "root.x", SourceAnnotation},
		"driver default is left alone":   {SourceDriverDefault, "root.x", SourceDriverDefault},
		"executor default is left alone": {SourceExecutorDefault, "root.x", SourceExecutorDefault},
		"default is left alone":          {SourceDefault, "root.x", SourceDefault},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.source.WithQueue(tc.queue))
		})
	}
	// The documented strings, as events and explain output show them.
	assert.Equal(t, []string{"annotation", "spark-driver default", "spark-executor default", "queue root.x", "default"},
		[]string{string(SourceAnnotation), string(SourceDriverDefault), string(SourceExecutorDefault),
			string(SourceQueue.WithQueue("root.x")), string(SourceDefault)})
}

func TestAllowsAndPreference(t *testing.T) {
	type want struct {
		allows     bool
		preference int64
	}
	cases := map[string]struct {
		policy Policy
		typ    Type
		want   want
	}{
		"require-spot on spot":           {RequireSpot, Spot, want{true, 100}},
		"require-spot on on-demand":      {RequireSpot, OnDemand, want{false, 100}},
		"require-on-demand on on-demand": {RequireOnDemand, OnDemand, want{true, 100}},
		"require-on-demand on spot":      {RequireOnDemand, Spot, want{false, 100}},
		"prefer-spot on spot":            {PreferSpot, Spot, want{true, 100}},
		"prefer-spot on on-demand":       {PreferSpot, OnDemand, want{true, 0}},
		"prefer-on-demand on on-demand":  {PreferOnDemand, OnDemand, want{true, 100}},
		"prefer-on-demand on spot":       {PreferOnDemand, Spot, want{true, 0}},
		"any on spot":                    {Any, Spot, want{true, 100}},
		"any on on-demand":               {Any, OnDemand, want{true, 100}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, want{Allows(tc.policy, tc.typ), Preference(tc.policy, tc.typ)})
		})
	}
}
