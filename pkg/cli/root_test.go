package cli

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestInvokedAs(t *testing.T) {
	for argv0, want := range map[string]string{
		"muster":                            "muster",
		"/usr/local/bin/muster":             "muster",
		"kubectl-muster":                    "kubectl muster",
		"/home/me/.krew/bin/kubectl-muster": "kubectl muster",
		"./bin/muster-scheduler-not-plugin": "muster",
	} {
		assert.Equal(t, want, invokedAs(argv0), argv0)
	}
}

func TestExplainNeedsOnePodOrGang(t *testing.T) {
	for _, args := range [][]string{{"explain"}, {"explain", "a", "b"}, {"explain", "a", "--gang", "g"}} {
		var out, errOut bytes.Buffer
		assert.Equal(t, 1, Main(args, &out, &errOut), "%v", args)
		assert.Contains(t, errOut.String(), "give one pod", "%v", args)
	}
}
