package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testdataMarker precedes, in docs/integrations/*.md, a YAML block that must
// be the named file of test/ecosystem/testdata as it is: the documentation
// shows exactly what the tests against the real operators run.
var testdataMarker = regexp.MustCompile("(?s)<!-- testdata: ([a-z0-9.-]+) -->\n```yaml\n(.*?)```\n")

func TestIntegrationDocsShowTheTestedYAML(t *testing.T) {
	docs, err := filepath.Glob(filepath.Join("integrations", "*.md"))
	require.NoError(t, err)
	require.NotEmpty(t, docs)
	shown := map[string]bool{}
	for _, doc := range docs {
		data, err := os.ReadFile(doc)
		require.NoError(t, err)
		for _, m := range testdataMarker.FindAllSubmatch(data, -1) {
			name := string(m[1])
			want, err := os.ReadFile(filepath.Join("..", "test", "ecosystem", "testdata", name))
			if !assert.NoError(t, err, "%s shows testdata %s", doc, name) {
				continue
			}
			assert.Equal(t, string(want), string(m[2]), "%s: the YAML after the marker for %s must be the file as it is", doc, name)
			shown[name] = true
		}
	}
	files, err := filepath.Glob(filepath.Join("..", "test", "ecosystem", "testdata", "*.yaml"))
	require.NoError(t, err)
	for _, f := range files {
		assert.True(t, shown[filepath.Base(f)], "test/ecosystem/testdata/%s is shown in no docs/integrations page", filepath.Base(f))
	}
}
