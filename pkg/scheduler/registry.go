// Package scheduler builds muster-scheduler: kube-scheduler with muster's
// plugins registered. The same construction serves the binary
// (cmd/muster-scheduler), the in-process runs of tests and benchmarks, and
// the sandbox, so what is tested is what ships.
package scheduler

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	_ "muster.dev/muster/pkg/apis/config/scheme" // registers the plugin args types
	"muster.dev/muster/pkg/leadership"
	"muster.dev/muster/pkg/plugins/mustercapacity"
	"muster.dev/muster/pkg/plugins/mustergang"
	"muster.dev/muster/pkg/plugins/musterqueue"
	"muster.dev/muster/pkg/plugins/profile"
)

// SchedulerName is the schedulerName pods opt into.
const SchedulerName = "muster"

// PluginNames lists muster's plugins in the order the profile enables them.
var PluginNames = []string{musterqueue.Name, mustergang.Name, mustercapacity.Name}

// RegistryOptions registers muster's plugins with kube-scheduler's framework.
//
// lead is this process's leadership: each profile's runtime writes shared
// state (the status ConfigMap, PodGroup status) only while lead says this
// process leads, and starts (reads the queues, publishes status) as soon as
// it first does, rather than on its first pod. A nil lead writes always and
// starts on the first pod (tools that run the plugins without leader
// election, such as scheduler_perf).
func RegistryOptions(lead *leadership.Tracker) []app.Option {
	s := &starter{lead: lead, started: map[*profile.Runtime]bool{}}
	return []app.Option{
		app.WithPlugin(musterqueue.Name, s.wrap(musterqueue.New)),
		app.WithPlugin(mustergang.Name, s.wrap(mustergang.New)),
		app.WithPlugin(mustercapacity.Name, s.wrap(mustercapacity.New)),
	}
}

// starter gives each profile's runtime the process's leadership before its
// plugins are built, and starts the runtime once the process leads.
type starter struct {
	lead    *leadership.Tracker
	mu      sync.Mutex
	started map[*profile.Runtime]bool
}

func (s *starter) wrap(f frameworkruntime.PluginFactory) frameworkruntime.PluginFactory {
	return func(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
		if s.lead != nil {
			rt := profile.Get(ctx, h)
			rt.SetLeader(s.lead)
			s.startOnLead(ctx, rt)
		}
		return f(ctx, obj, h)
	}
}

// startOnLead starts rt when this process first leads: by then every
// plugin is built (the tracker resolves after kube-scheduler's Setup).
func (s *starter) startOnLead(ctx context.Context, rt *profile.Runtime) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started[rt] {
		return
	}
	s.started[rt] = true
	go func() {
		if !s.lead.WaitLeading(ctx) {
			return
		}
		if err := rt.Ready(); err != nil {
			klog.FromContext(ctx).Error(err, "Starting muster's runtime", "profile", rt.Profile)
		}
	}()
}
