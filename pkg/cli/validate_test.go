package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"

	"muster.dev/muster/pkg/status"
)

func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewRootCommand(&out, &errOut)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err := cmd.Execute()
	switch {
	case err == nil:
		code = 0
	case err == errSilentFailure:
		code = 1
	default:
		code = 1
		errOut.WriteString("Error: " + err.Error())
	}
	return code, out.String(), errOut.String()
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	valid := "queues:\n  - name: analytics\n    weight: 2\n    max: {cpu: \"128\"}\n    queues:\n      - name: etl\n  - name: default\nnamespaceQueues:\n  \"*\": root.default\n"
	cases := map[string]struct {
		args     []string
		stdin    string
		wantCode int
		wantOut  []string
		wantErr  []string
	}{
		"valid file": {args: []string{"validate", write("ok.yaml", valid)}, wantOut: []string{
			"valid: 3 queues, 2 leaves", "├─ analytics  (weight 2; max cpu=128)", "│  └─ etl", "└─ default", "* -> root.default"}},
		"valid from stdin": {args: []string{"validate", "-"}, stdin: valid, wantOut: []string{"valid: 3 queues"}},
		"the ConfigMap manifest": {args: []string{"validate", filepath.Join("..", "..", "manifests", "queues-example.yaml")},
			wantOut: []string{"valid:", "root.analytics.etl"}},
		"every error with its path": {
			args:     []string{"validate", write("bad.yaml", "queues:\n  - name: a\n    max: {cpu: \"8\"}\n    queues:\n      - {name: b, max: {cpu: \"16\"}, weight: 0}\nnamespaceQueues:\n  x: nope\n")},
			wantCode: 1,
			wantErr: []string{"invalid queue configuration, 3 error(s)", "root.a.b.max.cpu: 16 exceeds parent max 8",
				"root.a.b.weight: must be greater than 0", "namespaceQueues.x: queue nope does not exist"},
		},
		"a ConfigMap without the key": {args: []string{"validate", write("cm.yaml", "kind: ConfigMap\napiVersion: v1\ndata:\n  other: x\n")},
			wantCode: 1, wantErr: []string{"has no queues.yaml key"}},
		"missing file": {args: []string{"validate", filepath.Join(dir, "nope.yaml")}, wantCode: 1, wantErr: []string{"no such file"}},
		"no argument":  {args: []string{"validate"}, wantCode: 1, wantErr: []string{"accepts 1 arg"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := run(t, tc.stdin, tc.args...)
			assert.Equal(t, tc.wantCode, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
			for _, w := range tc.wantOut {
				assert.Contains(t, out, w)
			}
			for _, w := range tc.wantErr {
				assert.Contains(t, errOut, w)
			}
		})
	}
}

func TestPrintStatus(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	r := status.Report{
		UpdatedAt: now.Add(-5 * time.Minute).Format(time.RFC3339),
		Config: status.Config{Source: "ConfigMap muster-system/muster-queues", ResourceVersion: "42", AppliedAt: "2026-11-27T11:00:00Z",
			Valid: true, LastError: "root.a.max.cpu: \"lots\" is not a valid quantity", LastErrorAt: "2026-11-27T11:30:00Z"},
		Queues: []status.Queue{
			{Queue: "root", Weight: 1, Allocated: map[string]string{"cpu": "6"}, RunningPods: 3},
			{Queue: "root.a", Weight: 2, Leaf: true, Max: map[string]string{"cpu": "8", "memory": "64Gi"}, Allocated: map[string]string{"cpu": "6"},
				Pending: map[string]string{"cpu": "2"}, RunningPods: 3, PendingPods: 1},
		},
	}
	var out bytes.Buffer
	printStatus(&out, r, clocktesting.NewFakeClock(now))
	text := out.String()
	for _, want := range []string{
		"Config: ConfigMap muster-system/muster-queues (resourceVersion 42",
		"Last edit refused at 2026-11-27T11:30:00Z",
		"is not a valid quantity",
		"WARNING: this status is 5m0s old",
		"QUEUE", "root", "  a ", "cpu=8,memory=64Gi", "3/1",
	} {
		assert.Contains(t, text, want)
	}
	assert.NotContains(t, text, "no valid queue configuration")
}
