package cluster

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// AnnotationDuration tells the simulated kubelet how long a pod runs before
// it succeeds (a Go duration, e.g. "90s"). Without it a pod runs until deleted.
const AnnotationDuration = "sandbox.muster.dev/duration"

// Pod describes a pod to create.
type Pod struct {
	Namespace, Name string
	// SchedulerName is the scheduler the pod asks for; empty means the
	// cluster's default scheduler.
	SchedulerName string
	// Requests of the pod's single container, e.g. {"cpu": "1"}.
	Requests    map[v1.ResourceName]string
	Labels      map[string]string
	Annotations map[string]string
	// Duration, when set, makes the simulated kubelet finish the pod after it.
	Duration time.Duration
	// PriorityClassName sets the pod's priority through the Priority admission plugin.
	PriorityClassName string
	// Tolerations of the pod.
	Tolerations []v1.Toleration
	// ClaimTemplates names ResourceClaimTemplates (Dynamic Resource
	// Allocation): the pod gets a claim from each, which its container uses.
	ClaimTemplates []string
}

// Object returns the Pod API object.
func (p Pod) Object() (*v1.Pod, error) {
	req := v1.ResourceList{}
	for name, q := range p.Requests {
		qty, err := resource.ParseQuantity(q)
		if err != nil {
			return nil, fmt.Errorf("pod %s/%s: %s=%q: %w", p.Namespace, p.Name, name, q, err)
		}
		req[name] = qty
	}
	ann := map[string]string{}
	for k, v := range p.Annotations {
		ann[k] = v
	}
	if p.Duration > 0 {
		ann[AnnotationDuration] = p.Duration.String()
	}
	var claims []v1.PodResourceClaim
	var uses []v1.ResourceClaim
	for i, t := range p.ClaimTemplates {
		name := fmt.Sprintf("claim-%d", i)
		claims = append(claims, v1.PodResourceClaim{Name: name, ResourceClaimTemplateName: &t})
		uses = append(uses, v1.ResourceClaim{Name: name})
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, Annotations: ann},
		Spec: v1.PodSpec{
			SchedulerName:                 p.SchedulerName,
			PriorityClassName:             p.PriorityClassName,
			Tolerations:                   p.Tolerations,
			TerminationGracePeriodSeconds: new(int64),
			ResourceClaims:                claims,
			Containers: []v1.Container{{
				Name: "main", Image: "registry.k8s.io/pause:3.10",
				Resources: v1.ResourceRequirements{Requests: req, Limits: req, Claims: uses},
			}},
		},
	}, nil
}

// CreatePods creates the pods with up to 16 requests in flight.
func CreatePods(ctx context.Context, client kubernetes.Interface, pods []Pod) error {
	objs := make([]*v1.Pod, 0, len(pods))
	for _, p := range pods {
		obj, err := p.Object()
		if err != nil {
			return err
		}
		objs = append(objs, obj)
	}
	return parallel(ctx, len(objs), 16, func(ctx context.Context, i int) error {
		if _, err := client.CoreV1().Pods(objs[i].Namespace).Create(ctx, objs[i], metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating pod %s/%s: %w", objs[i].Namespace, objs[i].Name, err)
		}
		return nil
	})
}
