package ops

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

const (
	dashboardFile = "../../manifests/dashboards/muster.json"
	ruleFile      = "../../manifests/prometheus-rule.yaml"
	datasourceUID = "${datasource}"
)

// Every muster metric (docs/reference.md), and the kube-scheduler metrics the
// issue asks the dashboard to show.
var dashboardMustShow = []string{
	"muster_queue_resource", "muster_queue_pods", "muster_gang_admission_wait_seconds_bucket",
	"muster_gang_timeouts_total", "muster_preemptions_total", "muster_placements_total",
	"muster_config_reloads_total", "scheduler_schedule_attempts_total",
	"scheduler_scheduling_attempt_duration_seconds_bucket", "scheduler_pending_pods",
}

// The parts of Grafana's dashboard model this test reads.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []target    `json:"targets"`
	Panels     []panel     `json:"panels"` // a collapsed row's panels
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *datasource `json:"datasource"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasource     `json:"datasource"`
}

// queryText is a variable's query: a string, or {"query": "..."}.
func (v variable) queryText() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(v.Query, &o)
	return o.Query
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	require.True(t, json.Valid(b), "%s is not valid JSON", dashboardFile)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d))
	return d
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

var labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

func TestDashboard(t *testing.T) {
	metrics := knownMetrics(t)
	d := loadDashboard(t)
	assert.NotEmpty(t, d.Title)
	assert.NotEmpty(t, d.UID)

	// Variables: the data source, and queue from muster_queue_resource.
	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		require.NotContains(t, vars, v.Name, "variable %s twice", v.Name)
		vars[v.Name] = v
	}
	require.Contains(t, vars, "datasource")
	assert.Equal(t, "datasource", vars["datasource"].Type)
	assert.Equal(t, `"prometheus"`, string(vars["datasource"].Query))
	require.Contains(t, vars, "queue")
	assert.Regexp(t, `^label_values\(muster_queue_resource(\{.*\})?, *queue\)$`, vars["queue"].queryText())
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		t.Run("variable "+v.Name, func(t *testing.T) {
			require.NotNil(t, v.Datasource)
			assert.Equal(t, datasourceUID, v.Datasource.UID)
			m := labelValuesRE.FindStringSubmatch(v.queryText())
			require.NotNil(t, m, "query %q: label_values(SELECTOR, LABEL) expected", v.queryText())
			assert.Empty(t, checkExpr(metrics, m[1]))
			sels, err := selectors(m[1])
			require.NoError(t, err)
			require.Len(t, sels, 1)
			info, _, ok := lookup(metrics, sels[0].Metric)
			require.True(t, ok)
			assert.True(t, info.labels[m[2]] || contains(targetLabels, m[2]), "%s has no label %s", sels[0].Metric, m[2])
			assertVariablesDefined(t, vars, v.queryText())
		})
	}

	ids := map[int]bool{}
	seen := map[string]bool{}
	for _, p := range allPanels(d.Panels) {
		t.Run(fmt.Sprintf("panel %d %s", p.ID, p.Title), func(t *testing.T) {
			assert.NotEmpty(t, p.Title)
			assert.False(t, ids[p.ID], "panel id %d twice", p.ID)
			ids[p.ID] = true
			assert.NotNil(t, p.GridPos, "gridPos")
			if p.Type == "row" {
				return
			}
			require.NotNil(t, p.Datasource, "panel has no datasource")
			assert.Equal(t, datasourceUID, p.Datasource.UID, "panels use the ${datasource} variable")
			require.NotEmpty(t, p.Targets, "panel has no targets")
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				assert.NotEmpty(t, tg.RefID)
				assert.False(t, refs[tg.RefID], "refId %s twice", tg.RefID)
				refs[tg.RefID] = true
				if tg.Datasource != nil {
					assert.Equal(t, datasourceUID, tg.Datasource.UID)
				}
				require.NotEmpty(t, strings.TrimSpace(tg.Expr), "target %s has no expr", tg.RefID)
				for _, problem := range checkExpr(metrics, tg.Expr) {
					assert.Fail(t, problem, "target %s: %s", tg.RefID, tg.Expr)
				}
				assertVariablesDefined(t, vars, tg.Expr)
				sels, _ := selectors(tg.Expr)
				for _, s := range sels {
					seen[s.Metric] = true
				}
			}
		})
	}
	for _, m := range dashboardMustShow {
		assert.True(t, seen[m], "no panel shows %s", m)
	}
}

// assertVariablesDefined checks that every $var in a query is a dashboard
// variable or one of Grafana's built-ins ($__interval, $__rate_interval, ...).
func assertVariablesDefined(t *testing.T, vars map[string]variable, q string) {
	t.Helper()
	for _, m := range grafanaVarRE.FindAllStringSubmatch(q, -1) {
		name := m[1] + m[2]
		if strings.HasPrefix(name, "__") {
			continue
		}
		assert.Contains(t, vars, name, "%q uses $%s, which the dashboard does not define", q, name)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestAlertQueries checks every expression of the PrometheusRule. The rule
// file's structure, labels and runbook links are checked by
// manifests/rules_test.go.
func TestAlertQueries(t *testing.T) {
	metrics := knownMetrics(t)
	b, err := os.ReadFile(ruleFile)
	require.NoError(t, err)
	var pr struct {
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert, Record, Expr string
				}
			}
		}
	}
	require.NoError(t, yaml.Unmarshal(b, &pr))
	n := 0
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			n++
			t.Run(r.Alert+r.Record, func(t *testing.T) {
				for _, problem := range checkExpr(metrics, r.Expr) {
					assert.Fail(t, problem, r.Expr)
				}
				assert.NotContains(t, r.Expr, "$", "alerts cannot use Grafana variables")
			})
		}
	}
	assert.Positive(t, n, "no rules in %s", ruleFile)
}

// TestKnownMetrics checks the registry this package builds: muster's
// metrics with their labels, and the kube-scheduler and leader-election
// metrics the dashboard and alerts rely on.
func TestKnownMetrics(t *testing.T) {
	metrics := knownMetrics(t)
	for name, labels := range map[string][]string{
		"muster_queue_resource":                     {"queue", "resource", "type"},
		"muster_queue_pods":                         {"queue", "state"},
		"muster_gang_admission_wait_seconds":        {"queue"},
		"muster_gang_timeouts_total":                {"queue"},
		"muster_preemptions_total":                  {"queue", "reason"},
		"muster_placements_total":                   {"capacity_type", "role"},
		"muster_config_reloads_total":               {"result"},
		"scheduler_schedule_attempts_total":         {"result", "profile"},
		"scheduler_pending_pods":                    {"queue"},
		"leader_election_master_status":             {"name"},
		"rest_client_rate_limiter_duration_seconds": {"verb", "host"},
		"up": nil,
	} {
		info, ok := metrics[name]
		if !assert.True(t, ok, "%s is not registered", name) {
			continue
		}
		assert.Equal(t, toSet(labels), info.labels, name)
	}
}

func TestCheckExprCatchesMistakes(t *testing.T) {
	metrics := knownMetrics(t)
	for _, tc := range []struct {
		name, expr, want string
	}{
		{"misspelled metric", `sum(rate(muster_gang_timeout_total[5m]))`, "metric muster_gang_timeout_total does not exist"},
		{"misspelled histogram", `histogram_quantile(0.9, sum by (le) (rate(muster_gang_admision_wait_seconds_bucket[5m])))`, "metric muster_gang_admision_wait_seconds_bucket does not exist"},
		{"counter name without its s", `muster_placement_total`, "metric muster_placement_total does not exist"},
		{"unknown label", `muster_queue_pods{status="pending"}`, "metric muster_queue_pods has no label status"},
		{"le on a non-bucket series", `muster_gang_admission_wait_seconds_count{le="1"}`, "has no label le"},
		{"misspelled function", `rat(muster_placements_total[5m])`, `unknown function with name "rat"`},
		{"no metric at all", `vector(1)`, "reads no metric"},
		{"second operand", `muster_queue_pods / on (queue) muster_queue_pod`, "metric muster_queue_pod does not exist"},
		{"unclosed matcher", `muster_queue_pods{queue="x"`, "cannot parse"},
		{"unquoted label value", `muster_queue_pods{queue=x}`, "cannot parse"},
		{"range of a range", `rate(rate(muster_placements_total[5m])[5m])`, "cannot parse"},
		{"rate of an instant vector", `rate(muster_placements_total)`, "cannot parse"},
		{"no metric name", `{__name__="muster_queue_pods"}`, "names no metric"},
		{"misspelled grouping label", `sum by (queu) (muster_queue_pods)`, "sum groups by queu"},
		{"grouping by a label aggregated away", `sum by (queue) (sum by (state) (muster_queue_pods))`, "sum groups by queue"},
		{"without a label the metric lacks", `sum without (reason) (muster_queue_pods)`, "groups by reason"},
		{"quantile without le", `histogram_quantile(0.9, sum by (queue) (rate(muster_gang_admission_wait_seconds_bucket[5m])))`, "has no le label"},
		{"on a label one side lacks", `muster_queue_pods / on (resource) muster_queue_resource`, "on (resource)"},
		{"group_left of a label the right side lacks", `muster_queue_pods * on (queue) group_left (role) max by (queue) (muster_queue_resource)`, "group_left (role)"},
		{"label_replace of a missing label", `label_replace(muster_queue_pods, "q", "$1", "queues", "(.*)")`, "label_replace reads label queues"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems := checkExpr(metrics, tc.expr)
			require.NotEmpty(t, problems)
			assert.Contains(t, strings.Join(problems, "\n"), tc.want)
		})
	}
	for _, ok := range []string{
		`up{job="muster-scheduler-metrics"} == 1`,
		`histogram_quantile(0.95, sum by (le, queue) (rate(muster_gang_admission_wait_seconds_bucket{job=~"$job", queue=~"$queue"}[$__rate_interval])))`,
		`sum by (queue) (muster_queue_resource{type="allocated"}) > on (queue) group_left max by (queue) (muster_queue_resource{type="guaranteed"})`,
		`muster_queue_pods * on (queue) group_left (resource) max by (queue, resource) (muster_queue_resource)`,
		`sum without (instance, pod) (rate(muster_placements_total[${__rate_interval}]))`,
		`topk(3, sum by (queue) (muster_queue_pods)) > bool 0`,
		`label_replace(muster_queue_pods, "q", "$1", "queue", "root\\.(.*)")`,
		`count_values("n", muster_queue_pods)`,
		`max_over_time(sum by (queue) (muster_queue_pods)[1h:5m] @ start()) > 1e3 * 0.5`,
	} {
		assert.Empty(t, checkExpr(metrics, ok), ok)
	}
}

func TestSelectors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []selector
	}{
		{`up`, []selector{{Metric: "up"}}},
		{`up{job="a"}`, []selector{{Metric: "up", Labels: []string{"job"}}}},
		{`sum by (queue, type) (rate(a_total{x=~"$v", y!="}{,"}[5m] offset 1h))`, []selector{{Metric: "a_total", Labels: []string{"x", "y"}}}},
		{`SUM(a) BY (b) / ON(c) GROUP_LEFT(d) e`, []selector{{Metric: "a"}, {Metric: "e"}}},
		{`histogram_quantile(0.99, sum without (instance) (rate(h_bucket[${__rate_interval}])))`, []selector{{Metric: "h_bucket"}}},
		{`a unless b and c or d`, []selector{{Metric: "a"}, {Metric: "b"}, {Metric: "c"}, {Metric: "d"}}},
		{`label_replace(a, "dst", "$1", "src", "(.*)")`, []selector{{Metric: "a"}}},
		{"a # comment with b\n+ c", []selector{{Metric: "a"}, {Metric: "c"}}},
		{`max_over_time(a[1h:5m] @ start()) > 1e3 * 0.5`, []selector{{Metric: "a"}}},
		{`absent(up{job="m"} == 1)`, []selector{{Metric: "up", Labels: []string{"job"}}}},
		{`rate(a[5m]) > bool 0`, []selector{{Metric: "a"}}},
		{`a:recorded:rate5m`, []selector{{Metric: "a:recorded:rate5m"}}},
		{`a{queue=~"${queue:regex}", resource="$resource"}[$__range]`, []selector{{Metric: "a", Labels: []string{"queue", "resource"}}}},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := selectors(tc.expr)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	for _, bad := range []string{`a{job="x"`, `rate(a[5m)`, `{__name__="a"}`, `a{job=x}`, `a{job="x}`, `sum by (a (b)`, `rate(a[$__nonsense])`} {
		_, err := selectors(bad)
		assert.Error(t, err, bad)
	}
}

func TestSubstituteVariables(t *testing.T) {
	for in, want := range map[string]string{
		`rate(a{q=~"$queue"}[$__rate_interval])`:          `rate(a{q=~"x"}[5m])`,
		`rate(a{q=~"${queue:regex}"}[${__interval}])`:     `rate(a{q=~"x"}[5m])`,
		`label_replace(a, "d", "$1", "s", "(.*)")`:        `label_replace(a, "d", "$1", "s", "(.*)")`,
		`increase(a{job=~"$job"}[$__range]) > $threshold`: `increase(a{job=~"x"}[5m]) > x`,
	} {
		assert.Equal(t, want, substituteVariables(in, nil), in)
	}
	assert.Equal(t, `a{queue=~".*", resource="cpu"}`, substituteVariables(`a{queue=~"$queue", resource="$resource"}`, map[string]string{"queue": ".*", "resource": "cpu"}))
}

// The dashboard file is what a human would produce: indented, one trailing
// newline, no tabs.
func TestDashboardFormatted(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, json.Indent(&buf, bytes.TrimSpace(b), "", "  "))
	assert.Equal(t, buf.String()+"\n", string(b), "format %s with 2-space indentation (jq . or json.Indent)", dashboardFile)
}
