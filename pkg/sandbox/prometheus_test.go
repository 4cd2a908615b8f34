package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"
)

const dashboardFile = "../../manifests/dashboards/muster.json"

// prometheusBin returns the prometheus binary, or skips the test on a
// machine without one; in CI (which installs it) a missing one fails.
func prometheusBin(t *testing.T) string {
	t.Helper()
	bin, err := LookPrometheus("")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (CI installs it: hack/install-test-tools.sh)", err)
		}
		t.Skipf("%v: this test runs a real Prometheus", err)
	}
	return bin
}

// dashboardQuery is one query of the Grafana dashboard.
type dashboardQuery struct {
	Panel, Expr string
	// Match is set for a variable's label_values(MATCH, LABEL) query.
	Match, Label string
}

// dashboardQueries reads every panel target and variable query of the
// dashboard.
func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"` // a string, or {"query": "..."}
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(b, &d))
	var out []dashboardQuery
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			require.NoError(t, json.Unmarshal(r, &p))
			for _, tg := range p.Targets {
				out = append(out, dashboardQuery{Panel: p.Title + " / " + tg.RefID, Expr: tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		require.NoError(t, json.Unmarshal(v.Query, &q), "variable %s", v.Name)
		m := labelValues.FindStringSubmatch(q.Query)
		require.NotNil(t, m, "variable %s: label_values(...) expected, got %q", v.Name, q.Query)
		out = append(out, dashboardQuery{Panel: "variable $" + v.Name, Match: m[1], Label: m[2]})
	}
	require.NotEmpty(t, out)
	return out
}

var grafanaVar = regexp.MustCompile(`\$\{([a-zA-Z_][a-zA-Z0-9_]*)(?::[^}]*)?\}|\$([a-zA-Z_][a-zA-Z0-9_]*)`)

// substitute replaces Grafana's variables as Grafana would for a dashboard
// showing the whole replay: all queues, cpu, the sandbox's job.
func substitute(t *testing.T, expr string, vars map[string]string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVar.FindStringSubmatch(m)
		v, ok := vars[sub[1]+sub[2]]
		assert.True(t, ok, "no value for %s in %q", m, expr)
		return v
	})
}

// promAPI asks the Prometheus HTTP API and returns the data of a
// successful answer.
func promAPI(ctx context.Context, base, path string, params url.Values) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path+"?"+params.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("%s: HTTP %d, %w", path, resp.StatusCode, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s: %s", path, body.Error)
	}
	return body.Data, nil
}

// answer runs one dashboard query over [start, end] as Grafana does (a
// panel asks for a range, at one step per scrape; a variable for the label
// values of the range) and returns how many series had data.
func answer(ctx context.Context, base string, q dashboardQuery, expr string, start, end time.Time, step time.Duration) (int, error) {
	window := url.Values{"start": {ts(start)}, "end": {ts(end)}}
	if q.Match != "" {
		window.Set("match[]", expr)
		data, err := promAPI(ctx, base, "/api/v1/label/"+q.Label+"/values", window)
		if err != nil {
			return 0, err
		}
		var values []string
		err = json.Unmarshal(data, &values)
		return len(values), err
	}
	window.Set("query", expr)
	window.Set("step", ts(time.Unix(0, 0).Add(step)))
	data, err := promAPI(ctx, base, "/api/v1/query_range", window)
	if err != nil {
		return 0, err
	}
	var v struct {
		Result []struct {
			Values []json.RawMessage `json:"values"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return 0, err
	}
	n := 0
	for _, r := range v.Result {
		if len(r.Values) > 0 {
			n++
		}
	}
	return n, nil
}

// ts is a time as the Prometheus API takes it: Unix seconds.
func ts(t time.Time) string { return strconv.FormatFloat(float64(t.UnixNano())/1e9, 'f', 3, 64) }

// TestSandboxPrometheus replays the short trace with a real Prometheus
// scraping muster-scheduler, then asks it every query of the Grafana
// dashboard (panels and variables): each must return data over the replay.
// It also checks
// that Prometheus scraped the scheduler and loaded muster's alerts.
func TestSandboxPrometheus(t *testing.T) {
	bin := prometheusBin(t)
	queries := dashboardQueries(t)
	_, ctx := ktesting.NewTestContext(t)
	var out bytes.Buffer
	started := time.Now()
	checked := false
	_, err := Run(ctx, Options{
		Out: &out, Short: true, Prometheus: bin, Timeout: 3 * time.Minute,
		OnFinished: func(ctx context.Context, f Finished) error {
			checked = true
			require.NotEmpty(t, f.PrometheusURL)
			replay := time.Since(started)
			step := DefaultScrapeInterval
			vars := map[string]string{
				"job": PrometheusJob, "queue": ".*", "resource": "cpu", "datasource": "prometheus",
				// Grafana's: max($__interval + scrape interval, 4 scrape
				// intervals), with $__interval the step.
				"__rate_interval": (4 * step).String(),
			}
			pending := map[string]dashboardQuery{}
			for _, q := range queries {
				pending[q.Panel] = q
			}
			last := map[string]string{}
			pollStart := time.Now()
			err := wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
				for name, q := range pending {
					expr := substitute(t, q.Expr+q.Match, vars)
					n, err := answer(ctx, f.PrometheusURL, q, expr, started, time.Now(), step)
					switch {
					case err != nil && ctx.Err() != nil:
						return false, nil // the deadline: keep what was learnt before
					case err != nil:
						last[name] = err.Error()
					case n == 0:
						last[name] = "no data: " + expr
					default:
						delete(pending, name)
					}
				}
				return len(pending) == 0, nil
			})
			t.Logf("replay took %s; every dashboard query answered %s later", replay.Round(time.Second), time.Since(pollStart).Round(time.Second))
			if err != nil {
				var names []string
				for name := range pending {
					names = append(names, name+": "+last[name])
				}
				sort.Strings(names)
				t.Errorf("%d of %d dashboard queries returned no data from the sandbox's Prometheus:\n%s", len(names), len(queries), strings.Join(names, "\n"))
			}

			// Prometheus scraped the scheduler and evaluates muster's alerts.
			data, err := promAPI(ctx, f.PrometheusURL, "/api/v1/targets", nil)
			require.NoError(t, err)
			var targets struct {
				ActiveTargets []struct {
					Labels map[string]string `json:"labels"`
					Health string            `json:"health"`
				} `json:"activeTargets"`
			}
			require.NoError(t, json.Unmarshal(data, &targets))
			require.Len(t, targets.ActiveTargets, 1)
			assert.Equal(t, PrometheusJob, targets.ActiveTargets[0].Labels["job"])
			assert.Equal(t, "up", targets.ActiveTargets[0].Health)
			data, err = promAPI(ctx, f.PrometheusURL, "/api/v1/rules", url.Values{"type": {"alert"}})
			require.NoError(t, err)
			var rules struct {
				Groups []struct {
					Rules []struct {
						Name   string `json:"name"`
						Health string `json:"health"`
						State  string `json:"state"`
					} `json:"rules"`
				} `json:"groups"`
			}
			require.NoError(t, json.Unmarshal(data, &rules))
			n := 0
			for _, g := range rules.Groups {
				for _, r := range g.Rules {
					n++
					assert.Equal(t, "ok", r.Health, "alert %s", r.Name)
					// A healthy sandbox fires none (a gang timeout or a
					// starved queue would be a finding).
					assert.NotEqual(t, "firing", r.State, "alert %s", r.Name)
					if r.Name == "MusterSchedulerNotLeading" {
						assert.Equal(t, "inactive", r.State, "the sandbox's scheduler leads (leader election as shipped)")
					}
				}
			}
			assert.Equal(t, 6, n, "muster's alerts are loaded")
			return nil
		},
	})
	require.NoError(t, err, out.String())
	require.True(t, checked)
	assert.Contains(t, out.String(), "Started Prometheus at http://127.0.0.1:")
}
