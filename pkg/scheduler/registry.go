// Package scheduler builds muster-scheduler: kube-scheduler with muster's
// plugins registered. The same construction serves the binary
// (cmd/muster-scheduler), the in-process runs of tests and benchmarks, and
// the sandbox, so what is tested is what ships.
package scheduler

import (
	"context"
	"slices"
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
// election, such as scheduler_perf). opts configure every runtime (its
// clock).
func RegistryOptions(lead *leadership.Tracker, opts ...profile.Option) []app.Option {
	p := &profiles{lead: lead, opts: opts, runtimes: map[fwk.Handle]*profile.Runtime{}}
	return []app.Option{
		app.WithPlugin(musterqueue.Name, p.factory(musterqueue.New)),
		app.WithPlugin(mustergang.Name, p.factory(mustergang.NewFactory())),
		app.WithPlugin(mustercapacity.Name, p.factory(mustercapacity.New)),
	}
}

// profiles owns the runtime of each scheduler profile muster's plugins are
// built for (one per framework handle, made when the profile's first plugin
// is built, dropped when its context ends) and hands each plugin its
// profile's runtime. A runtime follows the process's leadership and starts
// once the process leads.
type profiles struct {
	lead     *leadership.Tracker
	opts     []profile.Option
	mu       sync.Mutex
	runtimes map[fwk.Handle]*profile.Runtime
}

// factory adapts a muster plugin's factory to the framework's.
func (p *profiles) factory(newPlugin profile.PluginFactory) frameworkruntime.PluginFactory {
	return func(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
		return newPlugin(ctx, obj, h, p.runtime(ctx, h))
	}
}

// runtime returns the runtime of the profile behind h, creating it for the
// profile's first plugin.
func (p *profiles) runtime(ctx context.Context, h fwk.Handle) *profile.Runtime {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rt, ok := p.runtimes[h]; ok {
		return rt
	}
	opts := p.opts
	if p.lead != nil {
		opts = append(slices.Clip(opts), profile.WithLeader(p.lead))
	}
	rt := profile.New(ctx, h, opts...)
	p.runtimes[h] = rt
	go func() {
		<-ctx.Done()
		p.mu.Lock()
		delete(p.runtimes, h)
		p.mu.Unlock()
	}()
	if p.lead != nil {
		go p.startOnLead(ctx, rt)
	}
	return rt
}

// startOnLead starts rt when this process first leads: by then every
// plugin is built (the tracker resolves after kube-scheduler's Setup).
func (p *profiles) startOnLead(ctx context.Context, rt *profile.Runtime) {
	if !p.lead.WaitLeading(ctx) {
		return
	}
	if err := rt.Ready(); err != nil {
		klog.FromContext(ctx).Error(err, "Starting muster's runtime", "profile", rt.Profile)
	}
}
