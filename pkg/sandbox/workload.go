package sandbox

import (
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/scheduler"
)

// Spark's own pod labels (set by spark-submit on Kubernetes).
const (
	labelSparkApp  = "spark-app-selector"
	labelSparkRole = "spark-role"
)

// arrival is a batch of pods submitted at an offset from the start, in
// declared (unscaled) time.
type arrival struct {
	at   time.Duration
	what string
	pods []cluster.Pod
}

// tenants are the demo's namespaces.
var tenants = []string{"spark-etl", "ml-research", "batch"}

// demoWorkload is the built-in workload: plain batch pods, a Spark
// application (driver and executors) and an ML training job of several
// workers, from three tenants. short shrinks it for tests.
func demoWorkload(short bool) []arrival {
	batchPods, executors, workers := 12, 6, 4
	if short {
		batchPods, executors, workers = 4, 2, 2
	}
	req := func(cpu, mem string) map[v1.ResourceName]string {
		return map[v1.ResourceName]string{v1.ResourceCPU: cpu, v1.ResourceMemory: mem}
	}
	var out []arrival

	var batch []cluster.Pod
	for i := 0; i < batchPods; i++ {
		batch = append(batch, cluster.Pod{
			Namespace: "batch", Name: fmt.Sprintf("report-%02d", i), SchedulerName: scheduler.SchedulerName,
			Requests: req("1", "2Gi"), Duration: time.Duration(20+5*(i%4)) * time.Second,
		})
	}
	out = append(out, arrival{0, fmt.Sprintf("%d batch pods", batchPods), batch})

	const app = "spark-etl-daily-0001"
	spark := []cluster.Pod{{
		Namespace: "spark-etl", Name: "etl-daily-driver", SchedulerName: scheduler.SchedulerName,
		Requests: req("1", "4Gi"), Duration: 60 * time.Second,
		Labels: map[string]string{labelSparkApp: app, labelSparkRole: "driver"},
	}}
	for i := 1; i <= executors; i++ {
		spark = append(spark, cluster.Pod{
			Namespace: "spark-etl", Name: fmt.Sprintf("etl-daily-exec-%d", i), SchedulerName: scheduler.SchedulerName,
			Requests: req("4", "16Gi"), Duration: 45 * time.Second,
			Labels: map[string]string{labelSparkApp: app, labelSparkRole: "executor"},
		})
	}
	out = append(out, arrival{5 * time.Second, fmt.Sprintf("Spark app %s (driver + %d executors)", app, executors), spark})

	var training []cluster.Pod
	for i := 0; i < workers; i++ {
		training = append(training, cluster.Pod{
			Namespace: "ml-research", Name: fmt.Sprintf("resnet-worker-%d", i), SchedulerName: scheduler.SchedulerName,
			Requests: req("8", "24Gi"), Duration: 50 * time.Second,
			Labels: map[string]string{"training.muster.dev/job": "resnet"},
		})
	}
	out = append(out, arrival{10 * time.Second, fmt.Sprintf("ML training job resnet (%d workers)", workers), training})
	return out
}
