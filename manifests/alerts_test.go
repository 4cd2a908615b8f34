package manifests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// alertTestFile holds promtool's unit tests of the alerts; its rule_files
// names alertRulesFile, which TestAlertRules writes beside a copy of it.
const (
	alertTestFile  = "testdata/alerts_test.yaml"
	alertRulesFile = "muster-rules.yaml"
)

// promtoolMissing is what a machine without promtool is told.
const promtoolMissing = "promtool not found: apt-get install prometheus (or set PROMTOOL to its path)"

// promtool returns the path of promtool (PROMTOOL, else PATH). Without it the
// test is skipped, unless MUSTER_REQUIRE_PROMTOOL or CI is set (make
// test-alerts, .ci/run): there a missing promtool fails.
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL"); p != "" {
		return p
	}
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	if os.Getenv("MUSTER_REQUIRE_PROMTOOL") != "" || os.Getenv("CI") != "" {
		t.Fatal(promtoolMissing)
	}
	t.Skip(promtoolMissing)
	return ""
}

// rulesFile writes the PrometheusRule's spec, the plain rules file
// Prometheus and promtool read, into dir.
func rulesFile(t *testing.T, dir string) string {
	t.Helper()
	pr := loadPrometheusRule(t)
	b, err := yaml.Marshal(map[string]any{"groups": pr.Spec.Groups})
	require.NoError(t, err)
	path := filepath.Join(dir, alertRulesFile)
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path
}

func loadPrometheusRule(t *testing.T) *prometheusRule {
	t.Helper()
	docs, err := decodeFile(ruleFile)
	require.NoError(t, err)
	require.Len(t, docs, 1)
	pr, ok := docs[0].obj.(*prometheusRule)
	require.True(t, ok, "%s holds a %s", ruleFile, docs[0].kind)
	return pr
}

// TestAlertRules runs promtool on the alerts: `promtool check rules` on the
// rules file (Prometheus' own validation, templates included), then `promtool
// test rules` on testdata/alerts_test.yaml.
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	dir := t.TempDir()
	rules := rulesFile(t, dir)
	tests, err := os.ReadFile(alertTestFile)
	require.NoError(t, err)
	testPath := filepath.Join(dir, filepath.Base(alertTestFile))
	require.NoError(t, os.WriteFile(testPath, tests, 0o644))

	for _, args := range [][]string{{"check", "rules", rules}, {"test", "rules", testPath}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		t.Logf("promtool %s:\n%s", strings.Join(args[:2], " "), out)
		require.NoError(t, err, "promtool %s failed:\n%s", strings.Join(args, " "), out)
	}
}

// The parts of promtool's test file that TestAlertTestsCoverEveryAlert reads.
type promtoolTests struct {
	RuleFiles []string `json:"rule_files"`
	Tests     []struct {
		Name          string `json:"name"`
		AlertRuleTest []struct {
			EvalTime  string           `json:"eval_time"`
			Alertname string           `json:"alertname"`
			ExpAlerts []map[string]any `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// TestAlertTestsCoverEveryAlert checks, without promtool, that the unit
// tests exercise every alert both ways: each alert fires in some test and
// stays silent in another; an alert with a `for:` is also checked silent in
// the test where it fires, less than its `for:` before it fires; and no
// test names an alert that does not exist (promtool would pass a silent
// check of a misspelled name).
func TestAlertTestsCoverEveryAlert(t *testing.T) {
	pr := loadPrometheusRule(t)
	b, err := os.ReadFile(alertTestFile)
	require.NoError(t, err)
	var pt promtoolTests
	require.NoError(t, yaml.Unmarshal(b, &pt), alertTestFile)
	assert.Equal(t, []string{alertRulesFile}, pt.RuleFiles)

	type check struct {
		at    time.Duration
		fires bool
	}
	checks := map[string]map[string][]check{} // alert -> test -> checks
	for _, tc := range pt.Tests {
		require.NotEmpty(t, tc.Name)
		for _, c := range tc.AlertRuleTest {
			at, err := model.ParseDuration(c.EvalTime)
			require.NoError(t, err, "%s: eval_time %q", tc.Name, c.EvalTime)
			if checks[c.Alertname] == nil {
				checks[c.Alertname] = map[string][]check{}
			}
			checks[c.Alertname][tc.Name] = append(checks[c.Alertname][tc.Name], check{time.Duration(at), len(c.ExpAlerts) > 0})
		}
	}

	alerts := map[string]bool{}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = true
			t.Run(r.Alert, func(t *testing.T) {
				var fires, silent, pendingChecked bool
				var forDur time.Duration
				if r.For != "" {
					d, err := model.ParseDuration(r.For)
					require.NoError(t, err)
					forDur = time.Duration(d)
				}
				for _, cs := range checks[r.Alert] {
					for _, c := range cs {
						if c.fires {
							fires = true
						} else {
							silent = true
						}
					}
					// Silent at some moment, then firing less than `for:` later.
					for _, f := range cs {
						for _, s := range cs {
							if f.fires && !s.fires && s.at < f.at && f.at-s.at < forDur {
								pendingChecked = true
							}
						}
					}
				}
				assert.True(t, fires, "no test of %s expects it to fire", r.Alert)
				assert.True(t, silent, "no test of %s expects it to stay silent", r.Alert)
				if forDur > 0 {
					assert.True(t, pendingChecked, "no test of %s checks that it waits for its for: %s before it fires", r.Alert, r.For)
				}
			})
		}
	}
	for name := range checks {
		assert.True(t, alerts[name], "%s tests alert %s, which %s does not define", alertTestFile, name, ruleFile)
	}
}
