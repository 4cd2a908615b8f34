package cli

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReportFormat(t *testing.T) {
	for path, want := range map[string]string{
		"report.json": formatJSON, "report": formatJSON, "out/Report.JSON": formatJSON,
		"report.html": formatHTML, "report.htm": formatHTML, "r.HTML": formatHTML,
	} {
		got, err := reportFormat(path)
		require.NoError(t, err, path)
		assert.Equal(t, want, got, path)
	}
	_, err := reportFormat("report.pdf")
	assert.ErrorContains(t, err, ".json or .html")
}

// Refused before anything starts.
func TestSandboxFlagsRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"unknown report format":  {[]string{"sandbox", "--short", "-o", "report.txt"}, ".json or .html"},
		"keep with a comparison": {[]string{"sandbox", "--keep", "--compare", "default"}, "--keep keeps one run"},
		"prometheus missing":     {[]string{"sandbox", "--short", "--prometheus-bin", "/nonexistent/prometheus"}, "apt-get install prometheus"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			assert.Equal(t, 1, Main(tc.args, &out, &errOut))
			assert.Contains(t, errOut.String(), tc.want)
		})
	}
}
