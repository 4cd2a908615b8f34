// Package bench holds muster's end-to-end benchmarks, on the same in-process
// control plane as the integration tests, each comparing muster with
// kube-scheduler's default profile (or measuring a muster property) in one
// process run, so that machine noise cancels out in the ratios. Run them
// with `make bench`; results and method are in docs/benchmarks.md.
package bench

import (
	"os"
	"testing"

	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/controlplane"
	"muster.dev/muster/pkg/simkubelet"
	"muster.dev/muster/test/framework"
)

func TestMain(m *testing.M) {
	// The simulated kubelet runs only pods that declare a duration: pods of
	// throughput benchmarks stay Pending after binding, so that the only
	// load on the apiserver is the scheduler's.
	os.Exit(framework.MainWith(m, controlplane.Options{}, &simkubelet.Options{
		Workers: 16,
		Filter: func(p *v1.Pod) bool {
			_, ok := p.Annotations[cluster.AnnotationDuration]
			return ok
		},
	}))
}
