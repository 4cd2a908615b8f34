package config

import (
	"k8s.io/apimachinery/pkg/runtime"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
)

// SchemeGroupVersion is the internal version of kube-scheduler's config group.
var SchemeGroupVersion = schedconfig.SchemeGroupVersion

// AddToScheme registers the internal args types into a scheme.
var AddToScheme = schedconfig.SchemeBuilder.AddToScheme

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(SchemeGroupVersion,
		&MusterQueueArgs{},
		&MusterGangArgs{},
		&MusterCapacityArgs{},
	)
	return nil
}

func init() {
	// Registering into kube-scheduler's builder (not a builder of our own)
	// matters: the scheduler converts plugin args with a private scheme that
	// it builds lazily from that builder.
	schedconfig.SchemeBuilder.Register(addKnownTypes)
}
