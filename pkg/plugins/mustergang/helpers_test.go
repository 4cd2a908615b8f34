package mustergang

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	schedv1beta1 "k8s.io/api/scheduling/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/features"
	featurestesting "k8s.io/client-go/features/testing"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	pgfake "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned/fake"

	"muster.dev/muster/pkg/apis/config"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/plugintest"
	"muster.dev/muster/pkg/plugins/profile"
)

// setup describes the cluster a test runs MusterGang on.
type setup struct {
	queues  string
	objects []runtime.Object
	// podGroups are scheduler-plugins PodGroups; servePodGroups serves
	// their CRD (implied by any PodGroup).
	podGroups      []*schedv1alpha1.PodGroup
	servePodGroups bool
	// podGroupsLater are PodGroups whose CRD is not served at start-up
	// (gangEnv.Serve serves it).
	podGroupsLater []*schedv1alpha1.PodGroup
	// workloads serves the Workload API's pod groups (scheduling.k8s.io/v1beta1).
	workloads bool
	// custom are operators' objects (RayClusters, JobSets) as unstructured;
	// serveRay and serveJobSet serve their CRDs.
	custom                []runtime.Object
	serveRay, serveJobSet bool
	args                  *config.MusterGangArgs
	leader                profile.Leader
}

type gangEnv struct {
	*plugintest.Env
	pl *Plugin
	// pgs is the PodGroup clientset (nil unless the CRD is served).
	pgs *pgfake.Clientset
	// dyn is the dynamic client the plugin reads operators' objects with.
	dyn *dynamicfake.FakeDynamicClient
	// discovering: a watched source was not served at start-up, so the
	// discovery loop runs.
	discovering bool
}

// The discovery of operators' CRDs.
var (
	rayClusterCRD = &metav1.APIResourceList{GroupVersion: gang.ResourceRayCluster.GroupVersion().String(),
		APIResources: []metav1.APIResource{{Name: "rayclusters", Namespaced: true, Kind: "RayCluster"}}}
	jobSetCRD = &metav1.APIResourceList{GroupVersion: gang.ResourceJobSet.GroupVersion().String(),
		APIResources: []metav1.APIResource{{Name: "jobsets", Namespaced: true, Kind: "JobSet"}}}
	podGroupCRD = &metav1.APIResourceList{GroupVersion: schedv1alpha1.SchemeGroupVersion.String(),
		APIResources: []metav1.APIResource{{Name: "podgroups", Namespaced: true, Kind: "PodGroup"}}}
)

// newDynamicClient is a fake dynamic client holding operators' objects.
func newDynamicClient(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		gang.ResourceRayCluster: "RayClusterList",
		gang.ResourceJobSet:     "JobSetList",
	}, objs...)
}

func newGangEnv(t *testing.T, s setup) *gangEnv {
	t.Helper()
	var opts []Option
	var discovery []*metav1.APIResourceList
	var pgs *pgfake.Clientset
	servePodGroups := s.servePodGroups || len(s.podGroups) > 0
	if servePodGroups {
		pgs = podGroupClient(t, s.podGroups)
		discovery = append(discovery, podGroupCRD)
	} else if s.podGroupsLater != nil {
		pgs = podGroupClient(t, s.podGroupsLater)
	}
	if pgs != nil {
		opts = append(opts, WithPodGroupClient(pgs))
	}
	dyn := newDynamicClient(s.custom...)
	opts = append(opts, WithDynamicClient(dyn))
	if s.serveRay {
		discovery = append(discovery, rayClusterCRD)
	}
	if s.serveJobSet {
		discovery = append(discovery, jobSetCRD)
	}
	if s.workloads {
		discovery = append(discovery, &metav1.APIResourceList{GroupVersion: schedv1beta1.SchemeGroupVersion.String(),
			APIResources: []metav1.APIResource{{Name: "podgroups", Namespaced: true, Kind: "PodGroup"}}})
	}
	var args runtime.Object
	if s.args != nil {
		args = s.args
	}
	env := plugintest.New(t, plugintest.Options{
		Plugins:   []plugintest.Plugin{{Name: Name, Factory: NewFactory(opts...), Args: args}},
		Objects:   s.objects,
		Queues:    s.queues,
		Discovery: discovery,
		Leader:    s.leader,
	})
	return &gangEnv{Env: env, pl: env.Plugin(t, Name).(*Plugin), pgs: pgs, dyn: dyn,
		discovering: !servePodGroups || !s.serveRay || !s.serveJobSet}
}

// podGroupClient is a fake PodGroup clientset holding the PodGroups.
func podGroupClient(t *testing.T, groups []*schedv1alpha1.PodGroup) *pgfake.Clientset {
	t.Helper()
	// scheduler-plugins' generated informers do not pass on that the fake
	// clientset cannot stream lists (the WatchList client feature).
	featurestesting.SetFeatureDuringTest(t, features.WatchListClient, false)
	objs := make([]runtime.Object, len(groups))
	for i, pg := range groups {
		objs[i] = pg
	}
	return pgfake.NewSimpleClientset(objs...)
}

// cpu is a request of that many cores.
func cpu(n string) map[v1.ResourceName]string { return map[v1.ResourceName]string{v1.ResourceCPU: n} }

// member is a pod of annotation gang g with quorum min, requesting cores.
func member(g, name string, min int, cores string) *st.PodWrapper {
	return plugintest.MakePod(name).Label(gang.LabelGang, g).Annotation(gang.AnnotationMinMember, strconv.Itoa(min)).Req(cpu(cores))
}

// members are count pods g-0, g-1... of annotation gang g with quorum min.
func members(g string, count, min int, cores string) []*v1.Pod {
	out := make([]*v1.Pod, count)
	for i := range out {
		out[i] = member(g, g+"-"+strconv.Itoa(i), min, cores).Obj()
	}
	return out
}

func annotationGang(g string) gang.Ref {
	return gang.Ref{Kind: gang.KindAnnotation, Namespace: plugintest.Namespace, Name: g}
}

// nodes are count nodes n0, n1... with cores each.
func nodes(count int, cores string) []runtime.Object {
	out := make([]runtime.Object, count)
	for i := range out {
		out[i] = plugintest.MakeNode("n"+strconv.Itoa(i), cores, "64Gi").Obj()
	}
	return out
}

func objects(groups ...any) []runtime.Object {
	var out []runtime.Object
	for _, g := range groups {
		switch g := g.(type) {
		case []runtime.Object:
			out = append(out, g...)
		case []*v1.Pod:
			out = append(out, plugintest.Pods(g...)...)
		case *v1.Pod:
			out = append(out, g)
		case runtime.Object:
			out = append(out, g)
		default:
			panic("objects: unexpected type")
		}
	}
	return out
}

// info is the gang's record; the test fails if there is none.
func (e *gangEnv) info(t *testing.T, ref gang.Ref) gang.Info {
	t.Helper()
	info, ok := e.Runtime.Gangs.Get(ref)
	require.True(t, ok, "gang %s is known", ref)
	return info
}

// waitMembers waits until the plugin has seen n members of the gang.
func (e *gangEnv) waitMembers(t *testing.T, ref gang.Ref, n int) {
	t.Helper()
	e.WaitFor(t, strconv.Itoa(n)+" members of "+ref.String(), func() bool {
		info, ok := e.Runtime.Gangs.Get(ref)
		return ok && info.Members == n
	})
}

// preFilter runs PreFilter on a fresh snapshot (with the assumed pods).
func (e *gangEnv) preFilter(p *v1.Pod, assumed ...*v1.Pod) (*framework.CycleState, *fwk.PreFilterResult, *fwk.Status) {
	state := framework.NewCycleState()
	res, s := e.pl.PreFilter(e.Ctx, state, p, e.Snapshot(assumed...))
	return state, res, s
}

// schedule runs a scheduling cycle for a member up to Permit: PreFilter,
// Filter on its candidate nodes (in name order), Reserve on the first that
// passes, Permit. It returns the cycle's state, the node and Permit's
// status; it fails the test if the pod gets no node.
func (e *gangEnv) schedule(t *testing.T, p *v1.Pod, assumed ...*v1.Pod) (*framework.CycleState, string, *fwk.Status) {
	t.Helper()
	state, res, s := e.preFilter(p, assumed...)
	require.True(t, s.IsSuccess(), "PreFilter %s: %s", p.Name, plugintest.String(s))
	require.NotNil(t, res, "a member is narrowed to its slots")
	for _, n := range sortedNames(res) {
		if f := e.pl.Filter(e.Ctx, state, p, e.NodeInfo(t, n)); !f.IsSuccess() {
			continue
		}
		require.Nil(t, e.pl.Reserve(e.Ctx, state, p, n), "Reserve %s on %s", p.Name, n)
		return state, n, e.Permit(state, p, n)
	}
	t.Fatalf("no node for %s", p.Name)
	return nil, "", nil
}

func sortedNames(res *fwk.PreFilterResult) []string {
	return sets.List(res.NodeNames)
}
