package manifests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedconfigv1 "k8s.io/kube-scheduler/config/v1"
	"sigs.k8s.io/yaml"

	"muster.dev/muster/pkg/queue"
)

// chartDir is the Helm chart, relative to manifests/.
const chartDir = "helm/muster"

// helmBinary returns the helm to test the chart with: $HELM_BIN, else the
// one `make bin/helm` builds. `make test` builds it and sets HELM_BIN.
func helmBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HELM_BIN"); p != "" {
		_, err := os.Stat(p)
		require.NoError(t, err, "HELM_BIN=%s", p)
		return p
	}
	p, err := filepath.Abs(filepath.Join("..", "bin", "helm"))
	require.NoError(t, err)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no helm to test the chart with: run `make bin/helm` (it builds helm from hack/tools) or set HELM_BIN")
	}
	return p
}

// runHelm runs helm and returns its standard output; the error carries its
// standard error.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), helmBinary(t), args...)
	// A scratch home: no repositories, plugins or caches of the machine.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// valuesFile writes values to a file for helm's -f.
func valuesFile(t *testing.T, values map[string]any) string {
	t.Helper()
	b, err := yaml.Marshal(values)
	require.NoError(t, err)
	// Not under t.TempDir(): helm's -f splits its argument at commas, which
	// subtest names put into t.TempDir()'s path.
	dir, err := os.MkdirTemp("", "muster-helm-values")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	f := filepath.Join(dir, "values.yaml")
	require.NoError(t, os.WriteFile(f, b, 0o644))
	return f
}

// renderChart runs helm template in namespace with values and decodes every
// object strictly, with the decoders the manifests use.
func renderChart(t *testing.T, namespace string, values map[string]any) ([]document, error) {
	t.Helper()
	out, err := runHelm(t, "template", "muster", chartDir, "--namespace", namespace, "--include-crds", "-f", valuesFile(t, values))
	if err != nil {
		return nil, err
	}
	var docs []document
	for i, raw := range splitDocuments([]byte(out)) {
		var tm metav1.TypeMeta
		require.NoError(t, yaml.Unmarshal(raw, &tm))
		newObj, ok := decoders[tm.APIVersion+"/"+tm.Kind]
		require.True(t, ok, "rendered document %d: no decoder for %s/%s", i+1, tm.APIVersion, tm.Kind)
		obj := newObj()
		require.NoError(t, yaml.UnmarshalStrict(raw, obj), "rendered document %d (%s):\n%s", i+1, tm.Kind, raw)
		docs = append(docs, document{file: "helm", kind: tm.Kind, obj: obj})
	}
	return docs, nil
}

func mustRender(t *testing.T, namespace string, values map[string]any) []document {
	t.Helper()
	docs, err := renderChart(t, namespace, values)
	require.NoError(t, err)
	return docs
}

// objectKey names an object: Kind namespace/name.
func objectKey(d document) (string, bool) {
	o, ok := d.obj.(metav1.Object)
	if !ok {
		return "", false
	}
	return d.kind + " " + o.GetNamespace() + "/" + o.GetName(), true
}

func keys(docs []document) []string {
	var out []string
	for _, d := range docs {
		if k, ok := objectKey(d); ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func byKey(docs []document) map[string]any {
	out := map[string]any{}
	for _, d := range docs {
		if k, ok := objectKey(d); ok {
			out[k] = d.obj
		}
	}
	return out
}

// exampleQueues is the queue tree of queues-example.yaml.
func exampleQueues(t *testing.T, docs []document) string {
	t.Helper()
	return one[*corev1.ConfigMap](t, docs, queuesConfigMap).Data[queue.ConfigKey]
}

// everythingOn are the values under which the chart renders what
// `kubectl apply -k manifests/` installs.
func everythingOn(t *testing.T, kustomized []document) map[string]any {
	return map[string]any{
		"namespace": map[string]any{"create": true},
		"queues":    exampleQueues(t, kustomized),
		"metrics": map[string]any{
			"serviceMonitor": map[string]any{"enabled": true},
			"prometheusRule": map[string]any{"enabled": true},
		},
	}
}

func TestHelmLint(t *testing.T) {
	helmBinary(t)
	out, err := runHelm(t, "lint", "--strict", chartDir)
	require.NoError(t, err, out)
	out, err = runHelm(t, "lint", "--strict", chartDir, "-f", valuesFile(t, everythingOn(t, loadAll(t))),
		"--set", "grafanaDashboard.enabled=true,metrics.reader.bindServiceAccount.name=prometheus-k8s,metrics.reader.bindServiceAccount.namespace=monitoring")
	require.NoError(t, err, out)
}

// TestHelmChartMatchesKustomize renders the chart with everything on and
// compares it with manifests/, object by object, so that the two ways of
// installing muster cannot drift apart.
func TestHelmChartMatchesKustomize(t *testing.T) {
	helmBinary(t)
	kustomized := loadAll(t)
	rendered := mustRender(t, musterNamespace, everythingOn(t, kustomized))

	// The same objects. kustomize generates the scheduler config's ConfigMap
	// from scheduler-config.yaml.
	want := append(keys(kustomized), "ConfigMap "+musterNamespace+"/"+schedulerConfigCM)
	sort.Strings(want)
	require.Equal(t, want, keys(rendered))

	helmObjs := byKey(rendered)
	for _, d := range kustomized {
		k, ok := objectKey(d)
		if !ok {
			continue
		}
		t.Run(k, func(t *testing.T) {
			got := helmObjs[k]
			switch w := d.obj.(type) {
			case *rbacv1.ClusterRole:
				assert.Equal(t, w.Rules, got.(*rbacv1.ClusterRole).Rules)
			case *rbacv1.Role:
				assert.Equal(t, w.Rules, got.(*rbacv1.Role).Rules)
			case *rbacv1.ClusterRoleBinding:
				g := got.(*rbacv1.ClusterRoleBinding)
				assert.Equal(t, w.RoleRef, g.RoleRef)
				assert.Equal(t, w.Subjects, g.Subjects)
			case *rbacv1.RoleBinding:
				g := got.(*rbacv1.RoleBinding)
				assert.Equal(t, w.RoleRef, g.RoleRef)
				assert.Equal(t, w.Subjects, g.Subjects)
			case *corev1.ServiceAccount:
			case *corev1.Namespace:
				assert.Subset(t, got.(*corev1.Namespace).Labels, w.Labels)
			case *corev1.ResourceQuota:
				assert.Equal(t, w.Spec, got.(*corev1.ResourceQuota).Spec)
			case *corev1.Service:
				assert.Equal(t, w.Spec, got.(*corev1.Service).Spec)
			case *policyv1.PodDisruptionBudget:
				assert.Equal(t, w.Spec, got.(*policyv1.PodDisruptionBudget).Spec)
			case *corev1.ConfigMap:
				assert.Equal(t, w.Data, got.(*corev1.ConfigMap).Data)
			case *appsv1.Deployment:
				compareDeployments(t, w, got.(*appsv1.Deployment))
			case *apiextensionsv1.CustomResourceDefinition:
				assert.Equal(t, w, got)
			case *serviceMonitor:
				assert.Equal(t, w.Spec, got.(*serviceMonitor).Spec)
			case *prometheusRule:
				assert.Equal(t, w.Spec, got.(*prometheusRule).Spec)
			default:
				t.Fatalf("no comparison for %T: add one", d.obj)
			}
			// Labels: those of manifests/ (kustomize adds part-of), and Helm's.
			o := got.(metav1.Object)
			if _, crd := got.(*apiextensionsv1.CustomResourceDefinition); !crd {
				assert.Subset(t, o.GetLabels(), d.obj.(metav1.Object).GetLabels())
				assert.Equal(t, "muster", o.GetLabels()["app.kubernetes.io/part-of"])
				assert.Equal(t, "Helm", o.GetLabels()["app.kubernetes.io/managed-by"])
			}
		})
	}

	// The scheduler configuration.
	cm := one[*corev1.ConfigMap](t, rendered, schedulerConfigCM)
	assert.Equal(t, normalized(t, schedulerConfig(t, kustomized)), normalized(t, renderedSchedulerConfig(t, rendered)))
	assert.Contains(t, cm.Data, "scheduler-config.yaml")
}

// compareDeployments compares what the pods run: everything but the image
// tag, Helm's labels and the config checksum annotation.
func compareDeployments(t *testing.T, want, got *appsv1.Deployment) {
	t.Helper()
	assert.Equal(t, want.Spec.Replicas, got.Spec.Replicas)
	assert.Equal(t, want.Spec.Selector, got.Spec.Selector)
	assert.Equal(t, want.Spec.Strategy, got.Spec.Strategy)
	assert.Subset(t, got.Spec.Template.Labels, want.Spec.Template.Labels)
	assert.Contains(t, got.Spec.Template.Annotations, "checksum/scheduler-config", "the pods roll when the scheduler config changes")

	w, g := want.Spec.Template.Spec.DeepCopy(), got.Spec.Template.Spec.DeepCopy()
	require.Len(t, g.Containers, 1)
	assert.Equal(t, imageName(w.Containers[0].Image), imageName(g.Containers[0].Image))
	w.Containers[0].Image, g.Containers[0].Image = "", ""
	assert.Equal(t, w, g)
}

func renderedSchedulerConfig(t *testing.T, docs []document) *schedconfigv1.KubeSchedulerConfiguration {
	t.Helper()
	cm := one[*corev1.ConfigMap](t, docs, schedulerConfigCM)
	var cfg schedconfigv1.KubeSchedulerConfiguration
	require.NoError(t, yaml.UnmarshalStrict([]byte(cm.Data["scheduler-config.yaml"]), &cfg), cm.Data["scheduler-config.yaml"])
	return &cfg
}

// normalized returns the config with the plugins' args decoded: their raw
// bytes depend on formatting.
func normalized(t *testing.T, cfg *schedconfigv1.KubeSchedulerConfiguration) map[string]any {
	t.Helper()
	c := cfg.DeepCopy()
	args := map[string]any{}
	for i := range c.Profiles {
		for j := range c.Profiles[i].PluginConfig {
			pc := &c.Profiles[i].PluginConfig[j]
			var m map[string]any
			require.NoError(t, yaml.Unmarshal(pc.Args.Raw, &m))
			args[fmt.Sprintf("%d/%s", i, pc.Name)] = m
			pc.Args.Raw = nil
		}
	}
	return map[string]any{"config": c, "args": args}
}

// TestHelmChartCopies checks the chart's copies of files Helm cannot read
// from outside the chart.
func TestHelmChartCopies(t *testing.T) {
	for src, dst := range map[string]string{
		"crds/scheduling.x-k8s.io_podgroups.yaml": chartDir + "/crds/scheduling.x-k8s.io_podgroups.yaml",
		"prometheus-rule.yaml":                    chartDir + "/files/prometheus-rule.yaml",
		"dashboards/muster.json":                  chartDir + "/files/muster-dashboard.json",
	} {
		a, err := os.ReadFile(src)
		require.NoError(t, err)
		b, err := os.ReadFile(dst)
		require.NoError(t, err)
		assert.Equal(t, string(a), string(b), "the chart's copy is stale: cp manifests/%s manifests/%s", src, dst)
	}
}

func TestHelmValues(t *testing.T) {
	helmBinary(t)
	kustomized := loadAll(t)
	for _, tc := range []struct {
		name      string
		namespace string
		values    map[string]any
		check     func(t *testing.T, docs []document)
	}{{
		name: "defaults: no queue ConfigMap, no Prometheus Operator objects, no namespace",
		check: func(t *testing.T, docs []document) {
			assert.Empty(t, only[*prometheusRule](docs, ""))
			assert.Empty(t, only[*serviceMonitor](docs, ""))
			assert.Empty(t, only[*corev1.Namespace](docs, ""))
			for _, cm := range only[*corev1.ConfigMap](docs, "") {
				assert.NotEqual(t, queuesConfigMap, cm.Name, "with queues empty the chart must not own muster-queues")
			}
			d := one[*appsv1.Deployment](t, docs, "muster-scheduler")
			assert.EqualValues(t, 2, *d.Spec.Replicas)
			assert.Equal(t, "ghcr.io/muster-dev/muster-scheduler:latest", d.Spec.Template.Spec.Containers[0].Image)
			one[*policyv1.PodDisruptionBudget](t, docs, "muster-scheduler")
			one[*corev1.Service](t, docs, "muster-scheduler-metrics")
		},
	}, {
		name:   "replicas",
		values: map[string]any{"replicaCount": 3},
		check: func(t *testing.T, docs []document) {
			assert.EqualValues(t, 3, *one[*appsv1.Deployment](t, docs, "muster-scheduler").Spec.Replicas)
		},
	}, {
		name:   "one replica without leader election has no PDB",
		values: map[string]any{"replicaCount": 1, "leaderElection": map[string]any{"leaderElect": false}},
		check: func(t *testing.T, docs []document) {
			assert.Empty(t, only[*policyv1.PodDisruptionBudget](docs, ""), "a PDB with minAvailable 1 over one replica blocks every drain")
			cfg := renderedSchedulerConfig(t, docs)
			require.NotNil(t, cfg.LeaderElection.LeaderElect)
			assert.False(t, *cfg.LeaderElection.LeaderElect)
		},
	}, {
		name: "client QPS, burst and the lease timings",
		values: map[string]any{
			"clientConnection": map[string]any{"qps": 1000, "burst": 2000},
			"leaderElection":   map[string]any{"leaseDuration": "30s", "renewDeadline": "20s", "retryPeriod": "4s"},
		},
		check: func(t *testing.T, docs []document) {
			cfg := renderedSchedulerConfig(t, docs)
			assert.InDelta(t, 1000, cfg.ClientConnection.QPS, 0)
			assert.EqualValues(t, 2000, cfg.ClientConnection.Burst)
			assert.Equal(t, "30s", cfg.LeaderElection.LeaseDuration.Duration.String())
			assert.Equal(t, "20s", cfg.LeaderElection.RenewDeadline.Duration.String())
			assert.Equal(t, "4s", cfg.LeaderElection.RetryPeriod.Duration.String())
		},
	}, {
		name: "queues as an object",
		values: map[string]any{"queues": map[string]any{
			"queues": []any{
				map[string]any{"name": "spark", "guaranteed": map[string]any{"cpu": "16"}, "queues": []any{
					map[string]any{"name": "etl"}, map[string]any{"name": "adhoc", "max": map[string]any{"cpu": "4"}},
				}},
				map[string]any{"name": "default"},
			},
			"namespaceQueues": map[string]any{"*": "root.default"},
		}},
		check: func(t *testing.T, docs []document) {
			cm := one[*corev1.ConfigMap](t, docs, queuesConfigMap)
			tree, err := queue.Parse([]byte(cm.Data[queue.ConfigKey]))
			require.NoError(t, err, cm.Data[queue.ConfigKey])
			var leaves []string
			for _, l := range tree.Leaves() {
				leaves = append(leaves, l.Path)
			}
			assert.ElementsMatch(t, []string{"root.spark.etl", "root.spark.adhoc", "root.default"}, leaves)
		},
	}, {
		name:   "queues as a string, kept as written",
		values: map[string]any{"queues": exampleQueues(t, kustomized)},
		check: func(t *testing.T, docs []document) {
			got := one[*corev1.ConfigMap](t, docs, queuesConfigMap).Data[queue.ConfigKey]
			assert.Equal(t, strings.TrimSpace(exampleQueues(t, kustomized)), strings.TrimSpace(got))
			_, err := queue.Parse([]byte(got))
			require.NoError(t, err)
		},
	}, {
		name: "image, resources, scheduler name, extra args",
		values: map[string]any{
			"image":          map[string]any{"repository": "registry.example/muster", "tag": "v1.2.3", "pullPolicy": "Always"},
			"resources":      map[string]any{"requests": map[string]any{"cpu": "2", "memory": "4Gi"}, "limits": map[string]any{"memory": "8Gi"}},
			"schedulerName":  "batch",
			"extraArgs":      []any{"--v=4"},
			"plugins":        map[string]any{"gang": map[string]any{"defaultTimeoutSeconds": 600}},
			"nodeSelector":   map[string]any{"node-role.kubernetes.io/control-plane": ""},
			"podAnnotations": map[string]any{"example.com/a": "b"},
		},
		check: func(t *testing.T, docs []document) {
			d := one[*appsv1.Deployment](t, docs, "muster-scheduler")
			c := d.Spec.Template.Spec.Containers[0]
			assert.Equal(t, "registry.example/muster:v1.2.3", c.Image)
			assert.Equal(t, corev1.PullAlways, c.ImagePullPolicy)
			assert.True(t, c.Resources.Requests.Cpu().Equal(resource.MustParse("2")))
			assert.True(t, c.Resources.Limits.Memory().Equal(resource.MustParse("8Gi")))
			assert.Equal(t, []string{"/muster-scheduler", "--config=/etc/muster/scheduler-config.yaml", "--v=4"}, c.Command)
			assert.Equal(t, map[string]string{"node-role.kubernetes.io/control-plane": ""}, d.Spec.Template.Spec.NodeSelector)
			assert.Equal(t, "b", d.Spec.Template.Annotations["example.com/a"])
			cfg := renderedSchedulerConfig(t, docs)
			require.Len(t, cfg.Profiles, 1)
			assert.Equal(t, "batch", *cfg.Profiles[0].SchedulerName)
			assert.Contains(t, string(cfg.Profiles[0].PluginConfig[1].Args.Raw), "600")
		},
	}, {
		name:      "another namespace and lease name",
		namespace: "batch-system",
		values:    map[string]any{"leaderElection": map[string]any{"resourceName": "batch-scheduler"}, "metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}}},
		check: func(t *testing.T, docs []document) {
			for _, d := range docs {
				o, ok := d.obj.(metav1.Object)
				if !ok || clusterScoped[d.kind] {
					continue
				}
				want := "batch-system"
				if rb, ok := d.obj.(*rbacv1.RoleBinding); ok && rb.RoleRef.Name == authReaderRole {
					want = metav1.NamespaceSystem
				}
				assert.Equal(t, want, o.GetNamespace(), "%s %s", d.kind, o.GetName())
			}
			cfg := renderedSchedulerConfig(t, docs)
			assert.Equal(t, "batch-system", cfg.LeaderElection.ResourceNamespace)
			assert.Equal(t, "batch-scheduler", cfg.LeaderElection.ResourceName)
			assert.Contains(t, string(cfg.Profiles[0].PluginConfig[0].Args.Raw), "batch-system")
			role := one[*rbacv1.Role](t, docs, "muster-scheduler")
			gs := []grant{{namespace: role.Namespace, rules: role.Rules}}
			assert.True(t, allowed(gs, "batch-system", "update", "coordination.k8s.io", "leases", "batch-scheduler"), "the Role must allow the lease named in the config")
			assert.False(t, allowed(gs, "batch-system", "update", "coordination.k8s.io", "leases", leaseName))
			assert.True(t, allowed(gs, "batch-system", "update", "", "configmaps", statusConfigMap))
			for _, b := range only[*rbacv1.RoleBinding](docs, "") {
				assert.Equal(t, "batch-system", b.Subjects[0].Namespace)
			}
			sm := only[*serviceMonitor](docs, "")
			require.Len(t, sm, 1)
			assert.Equal(t, []string{"batch-system"}, sm[0].Spec.NamespaceSelector.MatchNames)
		},
	}, {
		name: "metrics: no Service; a reader binding; monitoring labels; the dashboard",
		values: map[string]any{
			"metrics": map[string]any{
				"service":        map[string]any{"enabled": false},
				"reader":         map[string]any{"bindServiceAccount": map[string]any{"name": "prometheus-k8s", "namespace": "monitoring"}},
				"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "kps"}},
				"prometheusRule": map[string]any{"enabled": true, "labels": map[string]any{"release": "kps"}},
			},
			"grafanaDashboard": map[string]any{"enabled": true},
		},
		check: func(t *testing.T, docs []document) {
			assert.Empty(t, only[*corev1.Service](docs, ""))
			b := one[*rbacv1.ClusterRoleBinding](t, docs, "muster-metrics-reader")
			assert.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "prometheus-k8s", Namespace: "monitoring"}}, b.Subjects)
			assert.Equal(t, "kps", only[*serviceMonitor](docs, "")[0].Labels["release"])
			assert.Equal(t, "kps", only[*prometheusRule](docs, "")[0].Labels["release"])
			dash, err := os.ReadFile("dashboards/muster.json")
			require.NoError(t, err)
			cm := one[*corev1.ConfigMap](t, docs, "muster-grafana-dashboard")
			assert.Equal(t, "1", cm.Labels["grafana_dashboard"])
			assert.JSONEq(t, string(dash), cm.Data["muster.json"])
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := tc.namespace
			if ns == "" {
				ns = musterNamespace
			}
			tc.check(t, mustRender(t, ns, tc.values))
		})
	}
}

func TestHelmRefusesBadValues(t *testing.T) {
	helmBinary(t)
	for _, tc := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"two schedulers without leader election", map[string]any{"leaderElection": map[string]any{"leaderElect": false}}, "needs leaderElection.leaderElect"},
		{"no replica", map[string]any{"replicaCount": 0}, "replicaCount"},
		{"misspelled value", map[string]any{"clientConnection": map[string]any{"qbs": 10}}, "qbs"},
		{"qps not a number", map[string]any{"clientConnection": map[string]any{"qps": "fast"}}, "qps"},
		{"bad lease duration", map[string]any{"leaderElection": map[string]any{"leaseDuration": "15 seconds"}}, "leaseDuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderChart(t, musterNamespace, tc.values)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
