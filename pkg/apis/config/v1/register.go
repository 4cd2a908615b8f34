package v1

import (
	"k8s.io/apimachinery/pkg/runtime"
	schedv1 "k8s.io/kube-scheduler/config/v1"
)

// SchemeGroupVersion is kubescheduler.config.k8s.io/v1.
var SchemeGroupVersion = schedv1.SchemeGroupVersion

// AddToScheme registers the v1 args types, their defaults and conversions.
var AddToScheme = schedv1.SchemeBuilder.AddToScheme

func init() {
	// Into kube-scheduler's own v1 builder, for the same reason as the
	// internal types: its plugin-args conversion scheme is built from it.
	schedv1.SchemeBuilder.Register(addKnownTypes, addDefaultingFuncs, addConversionFuncs)
}

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(SchemeGroupVersion,
		&MusterQueueArgs{},
		&MusterGangArgs{},
		&MusterCapacityArgs{},
	)
	return nil
}

func addDefaultingFuncs(scheme *runtime.Scheme) error {
	scheme.AddTypeDefaultingFunc(&MusterQueueArgs{}, func(o any) { SetDefaults_MusterQueueArgs(o.(*MusterQueueArgs)) })
	scheme.AddTypeDefaultingFunc(&MusterGangArgs{}, func(o any) { SetDefaults_MusterGangArgs(o.(*MusterGangArgs)) })
	scheme.AddTypeDefaultingFunc(&MusterCapacityArgs{}, func(o any) { SetDefaults_MusterCapacityArgs(o.(*MusterCapacityArgs)) })
	return nil
}
