// Package scheduler builds muster-scheduler: kube-scheduler with muster's
// plugins registered. The same construction serves the binary
// (cmd/muster-scheduler), the in-process runs of tests and benchmarks, and
// the sandbox, so what is tested is what ships.
package scheduler

import (
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	_ "muster.dev/muster/pkg/apis/config/scheme" // registers the plugin args types
	"muster.dev/muster/pkg/plugins/mustercapacity"
	"muster.dev/muster/pkg/plugins/mustergang"
	"muster.dev/muster/pkg/plugins/musterqueue"
)

// SchedulerName is the schedulerName pods opt into.
const SchedulerName = "muster"

// PluginNames lists muster's plugins in the order the profile enables them.
var PluginNames = []string{musterqueue.Name, mustergang.Name, mustercapacity.Name}

// RegistryOptions registers muster's plugins with kube-scheduler's framework.
func RegistryOptions() []app.Option {
	return []app.Option{
		app.WithPlugin(musterqueue.Name, musterqueue.New),
		app.WithPlugin(mustergang.Name, mustergang.New),
		app.WithPlugin(mustercapacity.Name, mustercapacity.New),
	}
}
