package mustergang

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/plugins/plugintest"
	"muster.dev/muster/pkg/queue"
)

// rayCluster is RayCluster ns/NAME with one worker group of minWorkers.
func rayCluster(name string, minWorkers int64, labels map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{"workerGroupSpecs": []any{
			map[string]any{"groupName": "workers", "minReplicas": minWorkers, "maxReplicas": int64(10)},
		}},
	}}
	u.SetAPIVersion("ray.io/v1")
	u.SetKind("RayCluster")
	u.SetNamespace(plugintest.Namespace)
	u.SetName(name)
	u.SetLabels(labels)
	return u
}

// rayPod is a pod of RayCluster cluster, of node type head or worker, of
// one core.
func rayPod(cluster, name, nodeType string) *v1.Pod {
	return plugintest.MakePod(name).Label(gang.LabelRayCluster, cluster).Label(gang.LabelRayNodeType, nodeType).Req(cpu("1")).Obj()
}

// rayPods are the head and workers of RayCluster cluster.
func rayPods(cluster string, workers int) []*v1.Pod {
	out := []*v1.Pod{rayPod(cluster, cluster+"-head", "head")}
	for i := range workers {
		out = append(out, rayPod(cluster, fmt.Sprintf("%s-worker-%d", cluster, i), "worker"))
	}
	return out
}

func rayRef(name string) gang.Ref {
	return gang.Ref{Kind: gang.KindRayCluster, Namespace: plugintest.Namespace, Name: name}
}

// jobSet is JobSet ns/NAME of one replicated job of replicas Jobs of
// parallelism pods.
func jobSet(name string, replicas, parallelism int64) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{"replicatedJobs": []any{
			map[string]any{"name": "workers", "replicas": replicas,
				"template": map[string]any{"spec": map[string]any{"parallelism": parallelism, "completions": parallelism}}},
		}},
	}}
	u.SetAPIVersion("jobset.x-k8s.io/v1alpha2")
	u.SetKind("JobSet")
	u.SetNamespace(plugintest.Namespace)
	u.SetName(name)
	return u
}

// jobSetPods are n pods of JobSet name, of one core each.
func jobSetPods(name string, n int) []*v1.Pod {
	out := make([]*v1.Pod, n)
	for i := range out {
		out[i] = plugintest.MakePod(fmt.Sprintf("%s-%d", name, i)).Label(gang.LabelJobSet, name).Req(cpu("1")).Obj()
	}
	return out
}

func jobSetRef(name string) gang.Ref {
	return gang.Ref{Kind: gang.KindJobSet, Namespace: plugintest.Namespace, Name: name}
}

// TestOperatorGangs: the pods of a RayCluster and of a JobSet are gangs as
// their objects size them, admitted whole, with Events on the object; a
// pod whose object does not exist yet waits for it; where the CRD is not
// served, the labels mean nothing.
func TestOperatorGangs(t *testing.T) {
	tests := map[string]struct {
		setup setup
		pod   *v1.Pod
		ref   gang.Ref
		seen  int
		want  fwk.Code
		// wantMsg is in the refusal's message.
		wantMsg   string
		wantPhase gang.Phase
		wantQueue string
	}{
		"a RayCluster: its head and minReplicas workers, admitted whole": {
			setup: setup{serveRay: true, custom: []runtime.Object{rayCluster("ray", 2, nil)},
				objects: objects(nodes(2, "4"), rayPods("ray", 2))},
			pod: rayPods("ray", 2)[0], ref: rayRef("ray"), seen: 3,
			want: fwk.Success, wantPhase: gang.PhaseAdmitted, wantQueue: "root.default",
		},
		"a RayCluster's queue label": {
			setup: setup{serveRay: true, queues: "queues: [{name: ray-queue}, {name: other}]\nnamespaceQueues: {ns: root.other}\n",
				custom:  []runtime.Object{rayCluster("ray", 1, map[string]string{queue.LabelQueue: "ray-queue"})},
				objects: objects(nodes(2, "4"), rayPods("ray", 1))},
			pod: rayPods("ray", 1)[0], ref: rayRef("ray"), seen: 2,
			want: fwk.Success, wantPhase: gang.PhaseAdmitted, wantQueue: "root.ray-queue",
		},
		"a RayCluster short of workers": {
			setup: setup{serveRay: true, custom: []runtime.Object{rayCluster("ray", 3, nil)},
				objects: objects(nodes(2, "4"), rayPods("ray", 2))},
			pod: rayPods("ray", 2)[1], ref: rayRef("ray"), seen: 3,
			want: fwk.UnschedulableAndUnresolvable, wantMsg: "RayCluster ns/ray: 3 of 4 members exist", wantPhase: gang.PhaseWaiting,
		},
		"its RayCluster does not exist yet": {
			setup: setup{serveRay: true, objects: objects(nodes(1, "4"), rayPods("ray", 1))},
			pod:   rayPods("ray", 1)[0],
			want:  fwk.UnschedulableAndUnresolvable, wantMsg: "RayCluster ns/ray: RayCluster ns/ray (label ray.io/cluster) does not exist yet",
		},
		"the RayCluster CRD is not served: a plain pod": {
			setup: setup{custom: []runtime.Object{rayCluster("ray", 1, nil)}, objects: objects(nodes(1, "4"), rayPods("ray", 0))},
			pod:   rayPods("ray", 0)[0], want: fwk.Skip,
		},
		"a JobSet: replicas times parallelism, admitted whole": {
			setup: setup{serveJobSet: true, custom: []runtime.Object{jobSet("train", 2, 2)},
				objects: objects(nodes(2, "4"), jobSetPods("train", 4))},
			pod: jobSetPods("train", 4)[0], ref: jobSetRef("train"), seen: 4,
			want: fwk.Success, wantPhase: gang.PhaseAdmitted, wantQueue: "root.default",
		},
		"a JobSet that does not fit": {
			setup: setup{serveJobSet: true, custom: []runtime.Object{jobSet("train", 3, 3)},
				objects: objects(nodes(2, "4"), jobSetPods("train", 9))},
			pod: jobSetPods("train", 9)[0], ref: jobSetRef("train"), seen: 9,
			want: fwk.UnschedulableAndUnresolvable, wantMsg: "does not fit on this cluster", wantPhase: gang.PhasePending,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newGangEnv(t, tc.setup)
			if tc.seen > 0 {
				e.waitMembers(t, tc.ref, tc.seen)
			}
			_, _, s := e.preFilter(tc.pod)
			require.Equal(t, tc.want, s.Code(), plugintest.String(s))
			assert.Contains(t, plugintest.String(s), tc.wantMsg)
			if tc.wantPhase == "" {
				return
			}
			info := e.info(t, tc.ref)
			assert.Equal(t, tc.wantPhase, info.Phase, info.Reason)
			if tc.wantQueue != "" {
				assert.Equal(t, tc.wantQueue, info.Queue)
			}
			if s.IsSuccess() {
				ev := e.Events.WithReason(ReasonAdmitted)
				require.Len(t, ev, 1)
				assert.Equal(t, string(tc.ref.Kind)+" ns/"+tc.ref.Name, ev[0].Regarding, "the Event is on the object")
				assert.Equal(t, "ns/"+tc.pod.Name, ev[0].Related)
			}
		})
	}
}

// TestOperatorObjectAfterItsPods: a RayCluster created after its pods
// makes them a gang at once: the members are observed and retried, no
// cluster event would reach them.
func TestOperatorObjectAfterItsPods(t *testing.T) {
	pods := rayPods("ray", 2)
	e := newGangEnv(t, setup{serveRay: true, objects: objects(nodes(2, "4"), pods)})
	_, _, s := e.preFilter(pods[0])
	require.Contains(t, plugintest.String(s), "does not exist yet")
	e.Activator.Take()

	_, err := e.dyn.Resource(gang.ResourceRayCluster).Namespace(plugintest.Namespace).Create(e.Ctx, rayCluster("ray", 2, nil), metav1.CreateOptions{})
	require.NoError(t, err)
	e.waitMembers(t, rayRef("ray"), 3)
	assert.Equal(t, gang.PhasePending, e.info(t, rayRef("ray")).Phase)
	e.WaitFor(t, "the members retried", func() bool { return len(e.Activator.Since(plugintest.Start)) >= 2 })
}

// TestGangSourceServedLater: a CRD installed after muster started is
// picked up without a restart, when discovery is asked again: every
// discoveryInterval, or at once when a pod names a gang of it. The gangs
// whose objects exist then observe their members, and the pods waiting as
// plain pods are retried as members.
func TestGangSourceServedLater(t *testing.T) {
	tests := map[string]struct {
		setup setup
		// serve serves the CRD and creates the object.
		serve func(t *testing.T, e *gangEnv)
		// pods are created after serve when byPod, else exist from the start.
		pods  []*v1.Pod
		byPod bool
		ref   gang.Ref
	}{
		"RayCluster, asked at once by its pods": {
			pods: rayPods("ray", 2), byPod: true, ref: rayRef("ray"),
			serve: func(t *testing.T, e *gangEnv) {
				e.Serve(rayClusterCRD)
				_, err := e.dyn.Resource(gang.ResourceRayCluster).Namespace(plugintest.Namespace).Create(e.Ctx, rayCluster("ray", 2, nil), metav1.CreateOptions{})
				require.NoError(t, err)
			},
		},
		"JobSet, asked on the next tick": {
			pods: jobSetPods("train", 3), ref: jobSetRef("train"),
			serve: func(t *testing.T, e *gangEnv) {
				e.Serve(jobSetCRD)
				_, err := e.dyn.Resource(gang.ResourceJobSet).Namespace(plugintest.Namespace).Create(e.Ctx, jobSet("train", 1, 3), metav1.CreateOptions{})
				require.NoError(t, err)
			},
		},
		"PodGroup, asked on the next tick": {
			setup: setup{podGroupsLater: []*schedv1alpha1.PodGroup{podGroup("pg", 3)}},
			pods: []*v1.Pod{
				plugintest.MakePod("p0").Label(gang.LabelPodGroup, "pg").Req(cpu("1")).Obj(),
				plugintest.MakePod("p1").Label(gang.LabelPodGroup, "pg").Req(cpu("1")).Obj(),
				plugintest.MakePod("p2").Label(gang.LabelPodGroup, "pg").Req(cpu("1")).Obj(),
			},
			ref:   gang.Ref{Kind: gang.KindPodGroup, Namespace: plugintest.Namespace, Name: "pg"},
			serve: func(t *testing.T, e *gangEnv) { e.Serve(podGroupCRD) },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := tc.setup
			s.objects = objects(nodes(1, "4"))
			if !tc.byPod {
				s.objects = objects(s.objects, tc.pods)
			}
			e := newGangEnv(t, s)
			if !tc.byPod {
				_, _, st := e.preFilter(tc.pods[0])
				require.Equal(t, fwk.Skip, st.Code(), "not served: a plain pod")
			}

			tc.serve(t, e)
			if tc.byPod {
				for _, p := range tc.pods {
					e.CreatePod(t, p)
				}
			} else {
				e.waitTickers(t)
				e.Clock.Step(discoveryInterval)
			}
			e.waitMembers(t, tc.ref, len(tc.pods))
			assert.Equal(t, gang.PhasePending, e.info(t, tc.ref).Phase)
			e.WaitFor(t, "the waiting pods retried", func() bool {
				return len(e.Activator.Since(plugintest.Start)) >= len(tc.pods)
			})
			_, _, st := e.preFilter(tc.pods[0])
			assert.True(t, st.IsSuccess(), "admitted as a gang: %s", plugintest.String(st))
		})
	}
}

// TestDiscoveryNudgesAreSpaced: however many pods name a gang of a source
// not served, discovery is asked at most once a discoveryMinGap.
func TestDiscoveryNudgesAreSpaced(t *testing.T) {
	e := newGangEnv(t, setup{objects: objects(nodes(1, "4"))})
	e.waitTickers(t)
	asked := func() int {
		n := 0
		for _, a := range e.Client.Actions() {
			if a.GetVerb() == "get" && a.GetResource().Resource == "resource" {
				n++
			}
		}
		return n
	}
	start := asked()
	pods := rayPods("ray", 4)
	e.CreatePod(t, pods[0])
	e.WaitFor(t, "discovery asked at once", func() bool { return asked() == start+5 }) // the five resources not served (PodGroup, RayCluster, JobSet, SparkApplication, MPIJob)
	for _, p := range pods[1:] {
		e.CreatePod(t, p)
	}
	e.WaitFor(t, "the next check waiting out the gap", func() bool { return e.Clock.Waiters() > 3 })
	assert.Equal(t, start+5, asked(), "not asked again before the gap")
	e.Clock.Step(discoveryMinGap)
	e.WaitFor(t, "asked again after the gap", func() bool { return asked() == start+10 })
}
