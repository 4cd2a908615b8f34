package manifests

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

// prometheusRule is the part of the Prometheus Operator's PrometheusRule that
// prometheus-rule.yaml uses (the operator's Go types are not a dependency).
// Decoding is strict, so a misspelled field fails.
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []ruleGroup `json:"groups"`
	} `json:"spec"`
}

type ruleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []rule `json:"rules"`
}

type rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func init() {
	decoders["monitoring.coreos.com/v1/PrometheusRule"] = func() any { return &prometheusRule{} }
}

const (
	ruleFile       = "prometheus-rule.yaml"
	runbookDoc     = "../docs/troubleshooting.md"
	runbookURLBase = "https://github.com/muster-dev/muster/blob/main/docs/troubleshooting.md#"
)

// The alerts issue #8 asks for; more are welcome.
var requiredAlerts = []string{
	"MusterConfigReloadRefused",
	"MusterGangTimeouts",
	"MusterQueueStarvedBelowGuarantee",
	"MusterSchedulerDown",
	"MusterSchedulerNotLeading",
	"MusterSchedulingLatencyHigh",
}

func TestPrometheusRule(t *testing.T) {
	docs, err := decodeFile(ruleFile)
	require.NoError(t, err)
	require.Len(t, docs, 1)
	pr, ok := docs[0].obj.(*prometheusRule)
	require.True(t, ok, "%s holds a %s", ruleFile, docs[0].kind)
	assert.Equal(t, musterNamespace, pr.Namespace)
	assert.Equal(t, "monitoring", pr.Labels["app.kubernetes.io/component"],
		"Prometheus Operator objects carry app.kubernetes.io/component=monitoring so that clusters without the operator can leave them out")

	anchors := markdownAnchors(t, runbookDoc)
	alerts := sets.New[string]()
	groups := sets.New[string]()
	require.NotEmpty(t, pr.Spec.Groups)
	for _, g := range pr.Spec.Groups {
		assert.NotEmpty(t, g.Name)
		assert.False(t, groups.Has(g.Name), "group %s twice", g.Name)
		groups.Insert(g.Name)
		require.NotEmpty(t, g.Rules, "group %s", g.Name)
		for _, r := range g.Rules {
			t.Run(r.Alert+r.Record, func(t *testing.T) {
				require.NotEmpty(t, strings.TrimSpace(r.Expr))
				if r.Record != "" {
					assert.Empty(t, r.Alert, "a rule is either a recording rule or an alert")
					return
				}
				require.NotEmpty(t, r.Alert)
				assert.Regexp(t, `^Muster[A-Za-z]+$`, r.Alert)
				assert.False(t, alerts.Has(r.Alert), "alert %s twice", r.Alert)
				alerts.Insert(r.Alert)
				if r.For != "" {
					_, err := model.ParseDuration(r.For)
					assert.NoError(t, err, "for: %q", r.For)
				}
				assert.Contains(t, []string{"critical", "warning", "info"}, r.Labels["severity"], "severity label")
				for _, a := range []string{"summary", "description", "runbook_url"} {
					assert.NotEmpty(t, strings.TrimSpace(r.Annotations[a]), "annotation %s", a)
				}
				for k := range r.Annotations {
					assert.Contains(t, []string{"summary", "description", "runbook_url"}, k, "unexpected annotation")
				}
				url := r.Annotations["runbook_url"]
				require.True(t, strings.HasPrefix(url, runbookURLBase), "runbook_url %q must point into %s", url, runbookURLBase)
				anchor := strings.TrimPrefix(url, runbookURLBase)
				assert.True(t, anchors.Has(anchor), "runbook_url anchor #%s is no heading of docs/troubleshooting.md", anchor)
				assert.Equal(t, strings.ToLower(r.Alert), anchor, "the runbook of an alert is the heading named after it")
				// Templates in annotations name only labels the expression keeps.
				for _, m := range regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`).FindAllStringSubmatch(r.Annotations["summary"]+r.Annotations["description"], -1) {
					assert.Contains(t, r.Expr, m[1], "annotation uses $labels.%s, which the expression does not mention", m[1])
				}
			})
		}
	}
	for _, a := range requiredAlerts {
		assert.True(t, alerts.Has(a), "alert %s is missing", a)
	}
}

// markdownAnchors returns the anchors GitHub gives the headings of a
// Markdown file: lower case, punctuation but '-' and '_' dropped, spaces
// turned into '-', and -1, -2, ... for repeated headings. Fenced code blocks
// hold no headings.
func markdownAnchors(t *testing.T, file string) sets.Set[string] {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	out := sets.New[string]()
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		a := githubAnchor(text)
		if n := seen[a]; n > 0 {
			out.Insert(a + "-" + strconv.Itoa(n))
		} else {
			out.Insert(a)
		}
		seen[a]++
	}
	return out
}

func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9') || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestMarkdownAnchors(t *testing.T) {
	dir := t.TempDir()
	f := dir + "/doc.md"
	require.NoError(t, os.WriteFile(f, []byte("# Title\n## Why is my pod `Pending`?\n```\n# not a heading\n```\n## Title\n### MusterGangTimeouts\n"), 0o644))
	assert.Equal(t, sets.New("title", "why-is-my-pod-pending", "title-1", "mustergangtimeouts"), markdownAnchors(t, f))
}
