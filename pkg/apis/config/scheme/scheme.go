// Package scheme registers muster's plugin args into kube-scheduler's config
// scheme. Import it (for its side effect) wherever a KubeSchedulerConfiguration
// naming muster's plugins is loaded: the scheduler binary, tests, the sandbox.
package scheme

import (
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"

	"muster.dev/muster/pkg/apis/config"
	configv1 "muster.dev/muster/pkg/apis/config/v1"
)

func init() {
	// kube-scheduler's scheme package has already run its AddToScheme by the
	// time this runs (it is imported above), so our late registrations into its
	// builders must be applied to its Scheme explicitly.
	utilruntime.Must(config.AddToScheme(schedscheme.Scheme))
	utilruntime.Must(configv1.AddToScheme(schedscheme.Scheme))
}
