// Package manifests embeds the files of manifests/ that muster's binaries
// need at run time, so the sandbox and the tests use exactly what ships.
package manifests

import (
	"embed"
	"io/fs"
)

//go:embed crds/*.yaml
var crds embed.FS

// SchedulerConfig is manifests/scheduler-config.yaml.
//
//go:embed scheduler-config.yaml
var SchedulerConfig []byte

// QueuesExample is manifests/queues-example.yaml: the ConfigMap muster-queues
// (namespace muster-system) with an example queue tree under the key
// queues.yaml.
//
//go:embed queues-example.yaml
var QueuesExample []byte

// PrometheusRule is manifests/prometheus-rule.yaml: the Prometheus
// Operator's PrometheusRule with muster's alerts (its spec is a plain
// Prometheus rules file).
//
//go:embed prometheus-rule.yaml
var PrometheusRule []byte

// CRDs returns the CustomResourceDefinitions muster reads, one YAML document each.
func CRDs() ([][]byte, error) {
	var out [][]byte
	err := fs.WalkDir(crds, "crds", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := crds.ReadFile(path)
		if err != nil {
			return err
		}
		out = append(out, b)
		return nil
	})
	return out, err
}
