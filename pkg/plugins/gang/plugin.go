// Package gang is the MusterGang plugin: all-or-nothing admission of gangs
// (PodGroups, annotation gangs, Spark applications, Workload API groups).
package gang

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	fwk "k8s.io/kube-scheduler/framework"

	"muster.dev/muster/pkg/apis/config"
	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/plugins"
)

// Name is the plugin's name in a KubeSchedulerConfiguration profile.
const Name = "MusterGang"

// Plugin holds gang members until their quorum fits.
//
// Until gangs land (issue #5) it decides nothing: PreFilter answers Skip and
// Permit allows every pod at once.
type Plugin struct {
	args   config.MusterGangArgs
	handle fwk.Handle
}

var (
	_ fwk.PreFilterPlugin = &Plugin{}
	_ fwk.PermitPlugin    = &Plugin{}
	_ fwk.SignPlugin      = &Plugin{}
)

// New builds the plugin from its validated args.
func New(_ context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, err := plugins.DecodeArgs(Name, obj, configv1.DefaultGangArgs)
	if err != nil {
		return nil, err
	}
	if err := config.ValidateMusterGangArgs(field.NewPath(Name+"Args"), args); err != nil {
		return nil, fmt.Errorf("invalid %s args: %w", Name, err)
	}
	return &Plugin{args: *args, handle: h}, nil
}

// Name implements fwk.Plugin.
func (pl *Plugin) Name() string { return Name }

// Args returns the plugin's effective args.
func (pl *Plugin) Args() config.MusterGangArgs { return pl.args }

// PreFilter implements fwk.PreFilterPlugin. No gangs yet: nothing to check.
func (pl *Plugin) PreFilter(_ context.Context, _ fwk.CycleState, _ *v1.Pod, _ []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	return nil, fwk.NewStatus(fwk.Skip)
}

// PreFilterExtensions implements fwk.PreFilterPlugin.
func (pl *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// Permit implements fwk.PermitPlugin. No gangs yet: every pod may bind.
func (pl *Plugin) Permit(_ context.Context, _ fwk.CycleState, _ *v1.Pod, _ string) (*fwk.Status, time.Duration) {
	return nil, 0
}

// SignPod implements fwk.SignPlugin.
func (pl *Plugin) SignPod(_ context.Context, _ *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return nil, nil
}
