//go:build schedperf

// Package schedperf runs kube-scheduler's own benchmark suite, scheduler_perf
// (k8s.io/kubernetes/test/integration/scheduler_perf), on muster and on the
// default profile: upstream's referee, whose numbers are the ones the
// Kubernetes project publishes. It needs an etcd binary on PATH (`make
// bin/etcd` builds one from the etcd module muster already depends on).
package schedperf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "k8s.io/component-base/logs/json/register"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	perf "k8s.io/kubernetes/test/integration/scheduler_perf"

	"muster.dev/muster/manifests"
	"muster.dev/muster/pkg/scheduler"
)

func TestMain(m *testing.M) {
	if err := perf.InitTests(); err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// BenchmarkPerfScheduling runs performance-config.yaml: each test case
// twice, *_default and *_muster.
func BenchmarkPerfScheduling(b *testing.B) {
	registry := frameworkruntime.Registry{}
	for _, o := range scheduler.RegistryOptions(nil) {
		if err := o(registry); err != nil {
			b.Fatal(err)
		}
	}
	perf.RunBenchmarkPerfScheduling(b, writeConfig(b), "muster", registry)
}

// writeConfig writes muster's profile under the name scheduler_perf's pods
// use (default-scheduler) and the suite's configuration, with absolute
// paths, to a temporary directory, and returns the configuration's path.
func writeConfig(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	here, err := os.Getwd()
	if err != nil {
		b.Fatal(err)
	}
	musterConfig := strings.Replace(string(manifests.SchedulerConfig), "- schedulerName: "+scheduler.SchedulerName+"\n", "- schedulerName: default-scheduler\n", 1)
	if musterConfig == string(manifests.SchedulerConfig) {
		b.Fatal("muster's configuration has no profile named " + scheduler.SchedulerName)
	}
	musterPath := filepath.Join(dir, "muster-config.yaml")
	if err := os.WriteFile(musterPath, []byte(musterConfig), 0o600); err != nil {
		b.Fatal(err)
	}
	suite, err := os.ReadFile("performance-config.yaml")
	if err != nil {
		b.Fatal(err)
	}
	s := strings.ReplaceAll(string(suite), "MUSTER_CONFIG", musterPath)
	s = strings.ReplaceAll(s, "templates/", filepath.Join(here, "templates")+"/")
	path := filepath.Join(dir, "performance-config.yaml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}
