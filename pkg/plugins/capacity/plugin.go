// Package capacity is the MusterCapacity plugin: spot / on-demand placement,
// spreading over spot pools and avoiding nodes that are being reclaimed.
package capacity

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
const Name = "MusterCapacity"

// Plugin places pods by node capacity type.
//
// Until placement lands (issue #6) it decides nothing: PreFilter and PreScore
// answer Skip, so neither its Filter nor its Score runs.
type Plugin struct {
	args   config.MusterCapacityArgs
	handle fwk.Handle
}

var (
	_ fwk.PreFilterPlugin = &Plugin{}
	_ fwk.FilterPlugin    = &Plugin{}
	_ fwk.PreScorePlugin  = &Plugin{}
	_ fwk.ScorePlugin     = &Plugin{}
	_ fwk.SignPlugin      = &Plugin{}
)

// New builds the plugin from its validated args.
func New(_ context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, err := plugins.DecodeArgs(Name, obj, configv1.DefaultCapacityArgs)
	if err != nil {
		return nil, err
	}
	if err := config.ValidateMusterCapacityArgs(field.NewPath(Name+"Args"), args); err != nil {
		return nil, fmt.Errorf("invalid %s args: %w", Name, err)
	}
	return &Plugin{args: *args, handle: h}, nil
}

// Name implements fwk.Plugin.
func (pl *Plugin) Name() string { return Name }

// Args returns the plugin's effective args.
func (pl *Plugin) Args() config.MusterCapacityArgs { return pl.args }

// PreFilter implements fwk.PreFilterPlugin. No policy yet: Filter is skipped.
func (pl *Plugin) PreFilter(_ context.Context, _ fwk.CycleState, _ *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	return nil, fwk.NewStatus(fwk.Skip)
}

// PreFilterExtensions implements fwk.PreFilterPlugin.
func (pl *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// Filter implements fwk.FilterPlugin. Not reached while PreFilter skips.
func (pl *Plugin) Filter(_ context.Context, _ fwk.CycleState, _ *v1.Pod, _ fwk.NodeInfo) *fwk.Status {
	return nil
}

// PreScore implements fwk.PreScorePlugin. No scores yet: Score is skipped.
func (pl *Plugin) PreScore(_ context.Context, _ fwk.CycleState, _ *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	return fwk.NewStatus(fwk.Skip)
}

// Score implements fwk.ScorePlugin. Not reached while PreScore skips.
func (pl *Plugin) Score(_ context.Context, _ fwk.CycleState, _ *v1.Pod, _ fwk.NodeInfo) (int64, *fwk.Status) {
	return 0, nil
}

// ScoreExtensions implements fwk.ScorePlugin.
func (pl *Plugin) ScoreExtensions() fwk.ScoreExtensions { return nil }

// SignPod implements fwk.SignPlugin.
func (pl *Plugin) SignPod(_ context.Context, _ *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return nil, nil
}
