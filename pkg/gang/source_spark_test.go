package gang

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/resources"
)

func sparkPod(name string, role Role, queueLabel string, annotations map[string]string) testPod {
	labels := map[string]string{LabelSparkApp: "app-1", LabelSparkRole: string(role)}
	if queueLabel != "" {
		labels[queue.LabelQueue] = queueLabel
	}
	return testPod{name: name, labels: labels, annotations: annotations}
}

func TestSparkSpec(t *testing.T) {
	reserve := map[string]string{AnnotationMinExecutors: "2", AnnotationExecutorResources: "cpu=4,memory=1Gi"}
	executor := resources.Vector{v1.ResourceCPU: 4000, v1.ResourceMemory: 1 << 30, v1.ResourcePods: 1}
	notRunning := &Wait{
		Reason: "the driver of Spark application app-1 is not running",
		Detail: "the driver of Spark application app-1 is not running, so its executors are not scheduled",
	}
	finished := sparkPod("driver", SparkDriver, "etl", reserve)
	finished.phase = v1.PodSucceeded
	deleting := sparkPod("driver", SparkDriver, "etl", reserve)
	deleting.deleting = true

	runSpecCases(t, KindSpark, map[string]specCase{
		"a driver with a reservation": {
			pods: []testPod{sparkPod("driver", SparkDriver, "etl", reserve)},
			want: Definition{Spec: Spec{MinMember: 1, Executors: 2, ExecutorRequest: executor}, QueueLabel: "etl"},
		},
		"a driver without one": {
			pods: []testPod{sparkPod("driver", SparkDriver, "", nil)},
			want: Definition{Spec: Spec{MinMember: 1}},
		},
		"min-executors 0 is no reservation": {
			pods: []testPod{sparkPod("driver", SparkDriver, "", map[string]string{AnnotationMinExecutors: "0"})},
			want: Definition{Spec: Spec{MinMember: 1}},
		},
		"an executor: the driver's reservation and queue": {
			pods: []testPod{sparkPod("exec-1", SparkExecutor, "", nil), sparkPod("driver", SparkDriver, "etl", reserve)},
			want: Definition{Spec: Spec{MinMember: 1, Executors: 2, ExecutorRequest: executor}, QueueLabel: "etl"},
		},
		"an executor's own queue label wins": {
			pods: []testPod{sparkPod("exec-1", SparkExecutor, "mine", nil), sparkPod("driver", SparkDriver, "etl", reserve)},
			want: Definition{Spec: Spec{MinMember: 1, Executors: 2, ExecutorRequest: executor}, QueueLabel: "mine"},
		},
		"a pod of no known role reads the driver too": {
			pods: []testPod{sparkPod("shuffle", "shuffle", "", nil), sparkPod("driver", SparkDriver, "etl", nil)},
			want: Definition{Spec: Spec{MinMember: 1}, QueueLabel: "etl"},
		},
		"an executor without a driver": {
			pods: []testPod{sparkPod("exec-1", SparkExecutor, "mine", nil)},
			want: Definition{Spec: Spec{MinMember: 1}, QueueLabel: "mine", Wait: notRunning},
		},
		"a finished driver is not running": {
			pods: []testPod{sparkPod("exec-1", SparkExecutor, "", nil), finished},
			want: Definition{Spec: Spec{MinMember: 1}, Wait: notRunning},
		},
		"a driver being deleted is not running": {
			pods: []testPod{sparkPod("exec-1", SparkExecutor, "", nil), deleting},
			want: Definition{Spec: Spec{MinMember: 1}, Wait: notRunning},
		},
		"a reservation without the executor's size": {
			pods:    []testPod{sparkPod("exec-1", SparkExecutor, "", nil), sparkPod("driver", SparkDriver, "", map[string]string{AnnotationMinExecutors: "2"})},
			want:    Definition{Spec: Spec{MinMember: 1}},
			wantErr: `annotation muster.dev/min-executors=2 needs muster.dev/executor-resources (the size of one executor, e.g. "cpu=4,memory=18Gi")`,
		},
		"a bad reservation on the driver": {
			pods:    []testPod{sparkPod("driver", SparkDriver, "", map[string]string{AnnotationMinExecutors: "many"})},
			want:    Definition{Spec: Spec{MinMember: 1}},
			wantErr: `muster.dev/min-executors: "many" is not a whole number`,
		},
		"the driver cannot be read": {
			pods:    []testPod{sparkPod("exec-1", SparkExecutor, "", nil)},
			readErr: errors.New("forbidden"),
			want:    Definition{Spec: Spec{MinMember: 1}},
			wantErr: "reading the driver of Spark application app-1: forbidden",
		},
	})
}

func TestSparkDriverOf(t *testing.T) {
	finished := sparkPod("old-driver", SparkDriver, "", nil)
	finished.phase = v1.PodFailed
	objs := &fakeObjects{}
	for _, m := range []testPod{finished, sparkPod("exec-1", SparkExecutor, "", nil), sparkPod("driver", SparkDriver, "", nil)} {
		objs.pods = append(objs.pods, m.pod())
	}
	d, err := SparkDriverOf(t.Context(), Ref{KindSpark, "ml", "app-1"}, objs)
	assert.NoError(t, err)
	if assert.NotNil(t, d) {
		assert.Equal(t, "driver", d.Name)
	}
	d, err = SparkDriverOf(t.Context(), Ref{KindSpark, "ml", "app-2"}, objs)
	assert.NoError(t, err)
	assert.Nil(t, d)
}

func TestSparkMembers(t *testing.T) {
	pods := []testPod{
		sparkPod("driver", SparkDriver, "", nil),
		sparkPod("exec-1", SparkExecutor, "", nil),
		{name: "other-app", labels: map[string]string{LabelSparkApp: "app-2", LabelSparkRole: "executor"}},
		{name: "role-alone", labels: map[string]string{LabelSparkRole: "executor"}},
	}
	assert.Equal(t, []string{"driver", "exec-1"}, gangPods(t, Ref{KindSpark, "ml", "app-1"}, pods))
}
