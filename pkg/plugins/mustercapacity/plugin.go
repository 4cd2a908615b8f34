// Package capacity is the MusterCapacity plugin: spot / on-demand placement.
// require-* policies filter nodes, prefer-* policies score them; nodes being
// taken away score lowest and get no new gang members; a gang's spot members
// are spread over spot pools. The decisions are pkg/capacity's; this package
// reads pods and nodes and maps the answers to framework statuses and scores.
package mustercapacity

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"muster.dev/muster/pkg/apis/config"
	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/metrics"
	"muster.dev/muster/pkg/plugins"
	"muster.dev/muster/pkg/plugins/profile"
	"muster.dev/muster/pkg/resources"
	"muster.dev/muster/pkg/waitreason"
)

// Name is the plugin's name in a KubeSchedulerConfiguration profile.
const Name = "MusterCapacity"

const stateKey fwk.StateKey = Name

// Plugin places pods by node capacity type.
type Plugin struct {
	args    config.MusterCapacityArgs
	weights capacity.Weights
	rt      *profile.Runtime
	nodes   corelisters.NodeLister
	views   *nodeIndex
}

var (
	_ fwk.PreFilterPlugin = &Plugin{}
	_ fwk.FilterPlugin    = &Plugin{}
	_ fwk.PreScorePlugin  = &Plugin{}
	_ fwk.ScorePlugin     = &Plugin{}
	_ fwk.PostBindPlugin  = &Plugin{}
	_ fwk.SignPlugin      = &Plugin{}

	_ profile.PluginFactory = New
)

// New builds the plugin from its validated args, on its profile's runtime.
func New(_ context.Context, obj runtime.Object, h fwk.Handle, rt *profile.Runtime) (fwk.Plugin, error) {
	args, err := plugins.DecodeArgs(Name, obj, configv1.DefaultCapacityArgs)
	if err != nil {
		return nil, err
	}
	if err := config.ValidateMusterCapacityArgs(field.NewPath(Name+"Args"), args); err != nil {
		return nil, fmt.Errorf("invalid %s args: %w", Name, err)
	}
	views, err := newNodeIndex(h.SharedInformerFactory().Core().V1().Nodes().Informer())
	if err != nil {
		return nil, fmt.Errorf("%s: watching nodes: %w", Name, err)
	}
	return &Plugin{
		args:    *args,
		weights: capacity.Weights{Policy: args.PolicyWeight, Spread: args.SpreadWeight, Disruption: args.DisruptionWeight},
		rt:      rt,
		nodes:   h.SharedInformerFactory().Core().V1().Nodes().Lister(),
		views:   views,
	}, nil
}

// Name implements fwk.Plugin.
func (pl *Plugin) Name() string { return Name }

// Args returns the plugin's effective args.
func (pl *Plugin) Args() config.MusterCapacityArgs { return pl.args }

// cycleState is the pod's placement policy and, for a gang member, how its
// gang sits on the spot pools.
type cycleState struct {
	policy capacity.Policy
	source capacity.Source
	member bool
	ref    gang.Ref
	// slots: the member goes into its gang's planned slots; the plan already
	// spread the gang, so the pool rule is not applied again.
	slots bool
	// spotMembers, inPool and roomy describe the gang's spot members for the
	// spread rule: their number, how many each spot pool holds, and which
	// spot pools could still take this pod.
	spotMembers int
	inPool      map[string]int
	roomy       map[string]bool
}

func (s *cycleState) Clone() fwk.StateData { return s }

// PreFilter resolves the pod's policy. A malformed muster.dev/capacity-policy
// annotation refuses the pod until it is fixed, with the reason in its
// condition and a FailedScheduling Event: never silently "any".
func (pl *Plugin) PreFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	if err := pl.rt.Ready(); err != nil {
		return nil, fwk.AsStatus(err)
	}
	pol, src, err := pl.rt.PolicyOf(pod)
	if err != nil {
		pl.rt.Waiting(pod, waitreason.InvalidCapacityPolicy, err.Error())
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	cs := &cycleState{policy: pol, source: src}
	if ref, ok := pl.rt.GangOf(pod); ok {
		cs.member, cs.ref = true, ref
		cs.slots = pl.rt.Gangs.HasSlots(ref)
		if !cs.slots && capacity.MaySpot(pol) {
			pl.spreadState(cs, pod, nodes)
		}
	}
	state.Write(stateKey, cs)
	if pol.Required() == "" && !cs.member {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	// Filter's reasons name the policy, not where it came from: that is here.
	klog.FromContext(ctx).V(4).Info("Capacity policy", "pod", klog.KObj(pod), "policy", pol, "source", src)
	return nil, nil
}

// PreFilterExtensions implements fwk.PreFilterPlugin.
func (pl *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// spreadState counts the gang's members on each spot pool (bound and
// assumed pods on the snapshot) and the spot pools with room for the pod on
// a node it may use.
func (pl *Plugin) spreadState(cs *cycleState, pod *v1.Pod, nodes []fwk.NodeInfo) {
	cs.inPool, cs.roomy = map[string]int{}, map[string]bool{}
	req := pl.rt.PodRequest(pod)
	for _, ni := range nodes {
		n := ni.Node()
		if n == nil {
			continue
		}
		view := pl.views.get(n)
		pool := view.SpotPool()
		if pool == "" {
			continue
		}
		for _, pi := range ni.GetPods() {
			if ref, ok := pl.rt.GangOf(pi.GetPod()); ok && ref == cs.ref {
				cs.inPool[pool]++
			}
		}
		// Room on a node being taken away is none for a gang member (Filter).
		if !view.Disrupted && pl.fits(ni, req) {
			cs.roomy[pool] = true
		}
	}
	info, _ := pl.rt.Gangs.Get(cs.ref)
	cs.spotMembers = max(info.Members, int(info.Spec.MinMember))
}

// Filter reasons. Each is one fixed string, so that kube-scheduler's
// summary of a pod's failed nodes groups them ("0/9 nodes are available: 3
// node is being taken away; ..."); what differs from node to node (the
// disruption, the pool and its count) goes to the log at V(4), and muster
// explain shows it. The capacity type's reason is capacity.Refusal: one per
// policy that requires a type.
const (
	ErrReasonDisrupted = "node is being taken away; no new gang members go there"
	ErrReasonSpread    = "spot pool already holds half of the gang's spot members; another pool has room"
)

// Filter applies require-* policies, keeps gang members off nodes being
// taken away, and spreads a gang's extra members over spot pools.
func (pl *Plugin) Filter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, ni fwk.NodeInfo) *fwk.Status {
	n := ni.Node()
	if n == nil {
		return fwk.NewStatus(fwk.Error, "node not found")
	}
	cs := readState(state)
	view := pl.views.get(n)
	if !capacity.Allows(cs.policy, view.Type) {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, capacity.Refusal(cs.policy, view.Type))
	}
	if !cs.member {
		return nil
	}
	logger := klog.FromContext(ctx)
	if view.Disrupted {
		logger.V(4).Info("Node is being taken away; no new gang members go there", "pod", klog.KObj(pod), "node", n.Name, "disruption", view.Reason)
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, ErrReasonDisrupted)
	}
	if pool := view.SpotPool(); pool != "" && !cs.slots && cs.inPool != nil {
		other := false
		for p := range cs.roomy {
			if p != pool {
				other = true
				break
			}
		}
		if !capacity.SpreadAllows(cs.inPool[pool], cs.spotMembers, other) {
			logger.V(4).Info("Spot pool already holds its share of the gang; another pool has room", "pod", klog.KObj(pod), "node", n.Name,
				"gang", cs.ref.String(), "pool", pool, "inPool", cs.inPool[pool], "spotMembers", cs.spotMembers, "maxPerPool", capacity.MaxPerPool(cs.spotMembers))
			return fwk.NewStatus(fwk.Unschedulable, ErrReasonSpread)
		}
	}
	return nil
}

// PreScore skips Score when it would give every node the same score: the
// pod prefers no capacity type (or the cluster has only one), no node is
// being taken away, and it is not a gang member to spread. That is the
// common case, and Score runs for every node of every pod.
func (pl *Plugin) PreScore(_ context.Context, state fwk.CycleState, _ *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	s, err := state.Read(stateKey)
	if err != nil {
		return fwk.NewStatus(fwk.Skip)
	}
	if cs := s.(*cycleState); !cs.member && pl.views.uniform(cs.policy) {
		return fwk.NewStatus(fwk.Skip)
	}
	return nil
}

// Score ranks nodes 0..100: the policy's preference, spreading a gang's spot
// members, and nodes being taken away lowest of all (see capacity.Score).
// The profile's plugin weight sets how much this counts against
// kube-scheduler's own scores.
func (pl *Plugin) Score(_ context.Context, state fwk.CycleState, _ *v1.Pod, ni fwk.NodeInfo) (int64, *fwk.Status) {
	n := ni.Node()
	if n == nil {
		return 0, fwk.NewStatus(fwk.Error, "node not found")
	}
	cs := readState(state)
	view := pl.views.get(n)
	spread := capacity.MaxScore
	if pool := view.SpotPool(); pool != "" && cs.inPool != nil {
		spread = capacity.SpreadScore(cs.inPool[pool], cs.spotMembers)
	}
	return capacity.Score(pl.weights, capacity.ScoreInput{
		PolicyPreference: capacity.Preference(cs.policy, view.Type),
		SpreadScore:      spread,
		Disrupted:        view.Disrupted,
	}), nil
}

// ScoreExtensions implements fwk.ScorePlugin: scores are already 0..100.
func (pl *Plugin) ScoreExtensions() fwk.ScoreExtensions { return nil }

// PostBind counts the placement by capacity type and role.
func (pl *Plugin) PostBind(_ context.Context, _ fwk.CycleState, pod *v1.Pod, nodeName string) {
	n, err := pl.nodes.Get(nodeName)
	if err != nil {
		return
	}
	metrics.Placements.WithLabelValues(string(capacity.TypeOf(n.Labels)), string(capacity.RoleOf(pod.Labels))).Inc()
}

// SignPod implements fwk.SignPlugin: the policy decides the pod's scores, so
// it is part of the signature; gang members depend on their gang's live
// placement and opt out of batching.
func (pl *Plugin) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	if _, ok := pl.rt.GangOf(pod); ok {
		return nil, fwk.NewStatus(fwk.Unschedulable, "gang members are spread against their gang's live placement")
	}
	pol, _, err := pl.rt.PolicyOf(pod)
	if err != nil {
		return nil, fwk.NewStatus(fwk.Unschedulable, err.Error())
	}
	return []fwk.SignFragment{{Key: capacity.AnnotationPolicy, Value: string(pol)}}, nil
}

func readState(state fwk.CycleState) *cycleState {
	s, err := state.Read(stateKey)
	if err != nil {
		return &cycleState{policy: capacity.Any}
	}
	return s.(*cycleState)
}

// fits reports whether the node has room for req by its requested resources.
func (pl *Plugin) fits(ni fwk.NodeInfo, req resources.Vector) bool {
	alloc, used := pl.rt.NodeUsage(ni)
	for name, q := range req {
		if q > alloc[name]-used[name] {
			return false
		}
	}
	return true
}
