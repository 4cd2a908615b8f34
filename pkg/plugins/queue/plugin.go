// Package queue is the MusterQueue plugin: admission of pods to their tenant
// queue (limits, ACLs) against muster's live queue tree.
package queue

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	fwk "k8s.io/kube-scheduler/framework"

	"muster.dev/muster/pkg/apis/config"
	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/plugins"
)

// Name is the plugin's name in a KubeSchedulerConfiguration profile.
const Name = "MusterQueue"

// Plugin admits pods to tenant queues.
//
// Until the queue tree lands (issue #3) it decides nothing: PreFilter answers
// Skip, so every pod passes through to kube-scheduler's own plugins.
type Plugin struct {
	args   config.MusterQueueArgs
	handle fwk.Handle
}

var (
	_ fwk.PreFilterPlugin = &Plugin{}
	_ fwk.SignPlugin      = &Plugin{}
)

// New builds the plugin from its validated args.
func New(_ context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, err := plugins.DecodeArgs(Name, obj, configv1.DefaultQueueArgs)
	if err != nil {
		return nil, err
	}
	if err := config.ValidateMusterQueueArgs(field.NewPath(Name+"Args"), args); err != nil {
		return nil, fmt.Errorf("invalid %s args: %w", Name, err)
	}
	return &Plugin{args: *args, handle: h}, nil
}

// Name implements fwk.Plugin.
func (pl *Plugin) Name() string { return Name }

// Args returns the plugin's effective args.
func (pl *Plugin) Args() config.MusterQueueArgs { return pl.args }

// PreFilter implements fwk.PreFilterPlugin. No queue tree yet: nothing to check.
func (pl *Plugin) PreFilter(_ context.Context, _ fwk.CycleState, _ *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	return nil, fwk.NewStatus(fwk.Skip)
}

// PreFilterExtensions implements fwk.PreFilterPlugin.
func (pl *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// SignPod implements fwk.SignPlugin: the plugin does not yet depend on
// anything about the pod, so it adds nothing to the signature.
func (pl *Plugin) SignPod(_ context.Context, _ *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return nil, nil
}
