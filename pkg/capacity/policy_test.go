package capacity

import (
	"fmt"
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
		"spark driver":                      {map[string]string{"spark-role": "driver"}, RoleDriver},
		"spark executor":                    {map[string]string{"spark-role": "executor"}, RoleExecutor},
		"unknown spark role":                {map[string]string{"spark-role": "shuffle"}, RoleOther},
		"role is case-sensitive":            {map[string]string{"spark-role": "Driver"}, RoleOther},
		"no spark label":                    {map[string]string{"app": "trainer"}, RoleOther},
		"no labels":                         {nil, RoleOther},
		"ray head":                          {map[string]string{"ray.io/node-type": "head"}, RoleDriver},
		"ray worker":                        {map[string]string{"ray.io/node-type": "worker"}, RoleExecutor},
		"ray other node type":               {map[string]string{"ray.io/node-type": "redis-cleanup"}, RoleOther},
		"pytorch master":                    {map[string]string{"training.kubeflow.org/job-role": "master", "training.kubeflow.org/replica-type": "master"}, RoleDriver},
		"pytorch worker":                    {map[string]string{"training.kubeflow.org/replica-type": "worker"}, RoleExecutor},
		"tf parameter server":               {map[string]string{"training.kubeflow.org/replica-type": "ps"}, RoleDriver},
		"tf evaluator":                      {map[string]string{"training.kubeflow.org/replica-type": "evaluator"}, RoleOther},
		"mpi launcher":                      {map[string]string{"training.kubeflow.org/job-role": "launcher"}, RoleDriver},
		"mpi worker":                        {map[string]string{"training.kubeflow.org/job-role": "worker"}, RoleExecutor},
		"jobset driver":                     {map[string]string{"jobset.sigs.k8s.io/replicatedjob-name": "driver"}, RoleDriver},
		"trainer node":                      {map[string]string{"jobset.sigs.k8s.io/replicatedjob-name": "node"}, RoleExecutor},
		"jobset other job":                  {map[string]string{"jobset.sigs.k8s.io/replicatedjob-name": "dataset-initializer"}, RoleOther},
		"spark label first":                 {map[string]string{"spark-role": "executor", "ray.io/node-type": "head"}, RoleExecutor},
		"unknown value, next label decides": {map[string]string{"training.kubeflow.org/job-role": "x", "training.kubeflow.org/replica-type": "worker"}, RoleExecutor},
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

// TestPolicyOfRoleSources: the default a role gives names the label that
// gave it, except Spark's, whose sources keep their names.
func TestPolicyOfRoleSources(t *testing.T) {
	cases := map[string]struct {
		labels     map[string]string
		want       Policy
		wantSource Source
	}{
		"spark driver": {map[string]string{"spark-role": "driver"}, PreferOnDemand, SourceDriverDefault},
		"ray head":     {map[string]string{"ray.io/node-type": "head"}, PreferOnDemand, "ray.io/node-type=head default"},
		"mpi worker":   {map[string]string{"training.kubeflow.org/job-role": "worker"}, PreferSpot, "training.kubeflow.org/job-role=worker default"},
		"no role":      {map[string]string{"app": "x"}, RequireOnDemand, SourceQueue},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p, src, err := PolicyOf(nil, tc.labels, RequireOnDemand)
			require.NoError(t, err)
			assert.Equal(t, tc.want, p)
			assert.Equal(t, tc.wantSource, src)
		})
	}
	p, src, err := PolicyOf(map[string]string{AnnotationPolicy: "any"}, map[string]string{"ray.io/node-type": "head"}, "")
	require.NoError(t, err)
	assert.Equal(t, Any, p, "the annotation wins over the role")
	assert.Equal(t, SourceAnnotation, src)
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

// TestPolicyTable pins down what each policy means on each capacity type,
// healthy and being taken away: the filter, its reason, the score, the gang
// planner's strict and relaxed passes and whether its members count as spot
// members. Every answer is written out, not derived: the table in policy.go
// is what it tests.
func TestPolicyTable(t *testing.T) {
	type want struct {
		required, preferred Type
		allows              bool
		preference          int64
		strict, relaxed     bool // Eligible
		maySpot             bool
	}
	type key struct {
		policy    Policy
		typ       Type
		disrupted bool
	}
	cases := map[key]want{
		{RequireSpot, Spot, false}:         {Spot, "", true, 100, true, true, true},
		{RequireSpot, Spot, true}:          {Spot, "", true, 100, false, false, true},
		{RequireSpot, OnDemand, false}:     {Spot, "", false, 100, false, false, true},
		{RequireSpot, OnDemand, true}:      {Spot, "", false, 100, false, false, true},
		{PreferSpot, Spot, false}:          {"", Spot, true, 100, true, true, true},
		{PreferSpot, Spot, true}:           {"", Spot, true, 100, false, false, true},
		{PreferSpot, OnDemand, false}:      {"", Spot, true, 0, false, true, true},
		{PreferSpot, OnDemand, true}:       {"", Spot, true, 0, false, false, true},
		{PreferOnDemand, Spot, false}:      {"", OnDemand, true, 0, false, true, false},
		{PreferOnDemand, Spot, true}:       {"", OnDemand, true, 0, false, false, false},
		{PreferOnDemand, OnDemand, false}:  {"", OnDemand, true, 100, true, true, false},
		{PreferOnDemand, OnDemand, true}:   {"", OnDemand, true, 100, false, false, false},
		{RequireOnDemand, Spot, false}:     {OnDemand, "", false, 100, false, false, false},
		{RequireOnDemand, Spot, true}:      {OnDemand, "", false, 100, false, false, false},
		{RequireOnDemand, OnDemand, false}: {OnDemand, "", true, 100, true, true, false},
		{RequireOnDemand, OnDemand, true}:  {OnDemand, "", true, 100, false, false, false},
		{Any, Spot, false}:                 {"", "", true, 100, true, true, true},
		{Any, Spot, true}:                  {"", "", true, 100, false, false, true},
		{Any, OnDemand, false}:             {"", "", true, 100, true, true, true},
		{Any, OnDemand, true}:              {"", "", true, 100, false, false, true},
	}
	require.Len(t, cases, len(Policies)*2*2, "every policy x capacity type x disrupted")
	for k, w := range cases {
		t.Run(fmt.Sprintf("%s on %s disrupted=%v", k.policy, k.typ, k.disrupted), func(t *testing.T) {
			v := NodeView{Type: k.typ, Pool: "m5/a", Disrupted: k.disrupted}
			got := want{
				required: k.policy.Required(), preferred: k.policy.Preferred(),
				allows: Allows(k.policy, k.typ), preference: Preference(k.policy, k.typ),
				strict: Eligible(k.policy, v, true), relaxed: Eligible(k.policy, v, false),
				maySpot: MaySpot(k.policy),
			}
			assert.Equal(t, w, got)
		})
	}
	// A name that is no policy asks nothing, like any.
	assert.True(t, Allows("cheap", OnDemand))
	assert.Equal(t, MaxScore, Preference("cheap", Spot))
}

// TestRefusal: the filter's reason is one fixed string per policy and type,
// with nothing of the pod (its policy's source) or the node in it, so that
// kube-scheduler's per-pod summary groups the nodes it refuses.
func TestRefusal(t *testing.T) {
	assert.Equal(t, "node is on-demand; the pod's capacity policy is require-spot", Refusal(RequireSpot, OnDemand))
	assert.Equal(t, "node is spot; the pod's capacity policy is require-on-demand", Refusal(RequireOnDemand, Spot))
}
