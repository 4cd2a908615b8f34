package mustergang

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"muster.dev/muster/pkg/gang"
)

// startSparkConfigMaps reads Spark drivers' spark.properties ConfigMaps,
// where the admin allows it (MusterGangArgs.ReadSparkConfigMaps), for the
// executor reservation of drivers that carry no muster annotation. The
// informer watches every namespace's ConfigMaps (Spark labels the driver's
// none, and names it with a random id) but keeps only the spark.properties
// key of each, and of the others their name alone.
func (pl *Plugin) startSparkConfigMaps(ctx context.Context, _ sourceWatch) ([]cache.InformerSynced, func() error, error) {
	factory := informers.NewSharedInformerFactoryWithOptions(pl.handle.ClientSet(), 0, informers.WithTransform(sparkPropertiesOnly))
	cms := factory.Core().V1().ConfigMaps()
	inf := cms.Informer()
	factory.Start(ctx.Done())
	ready := func() error {
		lister := cms.Lister()
		pl.sources.serve(gang.ResourceConfigMap, func(ns, name string) (runtime.Object, error) {
			return lister.ConfigMaps(ns).Get(name)
		})
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: pl.onSparkConfigMapAdd}); err != nil {
			return fmt.Errorf("watching ConfigMaps: %w", err)
		}
		return nil
	}
	return []cache.InformerSynced{inf.HasSynced}, ready, nil
}

// sparkPropertiesOnly drops from a ConfigMap all but its spark.properties.
func sparkPropertiesOnly(obj any) (any, error) {
	cm, ok := obj.(*v1.ConfigMap)
	if !ok {
		return obj, nil
	}
	cm.ManagedFields, cm.Annotations, cm.BinaryData = nil, nil, nil
	text, ok := cm.Data[gang.SparkConfKey]
	cm.Data = nil
	if ok {
		cm.Data = map[string]string{gang.SparkConfKey: text}
	}
	return cm, nil
}

// onSparkConfigMapAdd observes the Spark drivers that mount a ConfigMap
// just created: Spark creates it just after the driver, which waits for it
// (gang.SparkConfigMapOf).
func (pl *Plugin) onSparkConfigMapAdd(obj any) {
	cm, ok := obj.(*v1.ConfigMap)
	if !ok {
		return
	}
	if _, spark := cm.Data[gang.SparkConfKey]; !spark {
		return
	}
	drivers, err := pl.sources.pods.Pods(cm.Namespace).List(labels.SelectorFromSet(labels.Set{gang.LabelSparkRole: string(gang.SparkDriver)}))
	if err != nil {
		return
	}
	for _, p := range drivers {
		if gang.SparkConfigMapOf(p) == cm.Name {
			pl.onPod(p)
		}
	}
}
