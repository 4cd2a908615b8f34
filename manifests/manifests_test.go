package manifests

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
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
	"k8s.io/apimachinery/pkg/labels"
	schedconfigv1 "k8s.io/kube-scheduler/config/v1"
	"sigs.k8s.io/yaml"

	"muster.dev/muster/pkg/queue"
)

// The names the manifests must agree on (docs/reference.md).
const (
	musterNamespace   = "muster-system"
	serviceAccount    = "muster-scheduler"
	leaseName         = "muster-scheduler"
	queuesConfigMap   = "muster-queues"
	statusConfigMap   = "muster-queue-status"
	schedulerConfigCM = "muster-scheduler-config"
	schedulerName     = "muster"
	configMountPath   = "/etc/muster"
	metricsPortName   = "https-metrics"
	metricsPort       = 10259
	appLabel          = "app.kubernetes.io/name"
	appLabelValue     = "muster-scheduler"
	authReaderRole    = "extension-apiserver-authentication-reader"
)

// kustomization is the part of kustomize's Kustomization that these manifests
// use. Decoding is strict: a field kustomize knows but this struct does not
// fails the test; add it here when you start using it.
type kustomization struct {
	APIVersion         string               `json:"apiVersion"`
	Kind               string               `json:"kind"`
	Namespace          string               `json:"namespace,omitempty"`
	Resources          []string             `json:"resources,omitempty"`
	ConfigMapGenerator []configMapGenerator `json:"configMapGenerator,omitempty"`
	GeneratorOptions   *generatorOptions    `json:"generatorOptions,omitempty"`
	Images             []kustomizeImage     `json:"images,omitempty"`
	Labels             []kustomizeLabels    `json:"labels,omitempty"`
}

type configMapGenerator struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace,omitempty"`
	Behavior  string            `json:"behavior,omitempty"`
	Files     []string          `json:"files,omitempty"`
	Literals  []string          `json:"literals,omitempty"`
	Options   *generatorOptions `json:"options,omitempty"`
}

type generatorOptions struct {
	Labels                map[string]string `json:"labels,omitempty"`
	Annotations           map[string]string `json:"annotations,omitempty"`
	DisableNameSuffixHash bool              `json:"disableNameSuffixHash,omitempty"`
	Immutable             bool              `json:"immutable,omitempty"`
}

type kustomizeImage struct {
	Name    string `json:"name"`
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

type kustomizeLabels struct {
	Pairs            map[string]string `json:"pairs"`
	IncludeSelectors bool              `json:"includeSelectors,omitempty"`
	IncludeTemplates bool              `json:"includeTemplates,omitempty"`
}

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor that
// manifests/monitoring uses (the operator's Go types are not a dependency).
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port            string `json:"port"`
			Path            string `json:"path,omitempty"`
			Scheme          string `json:"scheme,omitempty"`
			Interval        string `json:"interval,omitempty"`
			BearerTokenFile string `json:"bearerTokenFile,omitempty"`
			TLSConfig       *struct {
				InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
			} `json:"tlsConfig,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// decoders maps apiVersion/kind to the typed object a document decodes into.
// A kind that is not here fails TestManifestsDecodeStrictly: add it.
var decoders = map[string]func() any{
	"v1/Namespace":                                    func() any { return &corev1.Namespace{} },
	"v1/ResourceQuota":                                func() any { return &corev1.ResourceQuota{} },
	"v1/ServiceAccount":                               func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                                    func() any { return &corev1.ConfigMap{} },
	"v1/Service":                                      func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                              func() any { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget":                   func() any { return &policyv1.PodDisruptionBudget{} },
	"rbac.authorization.k8s.io/v1/ClusterRole":        func() any { return &rbacv1.ClusterRole{} },
	"rbac.authorization.k8s.io/v1/Role":               func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": func() any { return &rbacv1.ClusterRoleBinding{} },
	"rbac.authorization.k8s.io/v1/RoleBinding":        func() any { return &rbacv1.RoleBinding{} },
	"apiextensions.k8s.io/v1/CustomResourceDefinition": func() any {
		return &apiextensionsv1.CustomResourceDefinition{}
	},
	"kubescheduler.config.k8s.io/v1/KubeSchedulerConfiguration": func() any {
		return &schedconfigv1.KubeSchedulerConfiguration{}
	},
	"kustomize.config.k8s.io/v1beta1/Kustomization": func() any { return &kustomization{} },
	"monitoring.coreos.com/v1/ServiceMonitor":       func() any { return &serviceMonitor{} },
}

// clusterScoped are the kinds above that have no namespace.
var clusterScoped = map[string]bool{
	"Namespace":                true,
	"ClusterRole":              true,
	"ClusterRoleBinding":       true,
	"CustomResourceDefinition": true,
}

// document is one YAML document of a file under manifests/.
type document struct {
	file string // relative to manifests/, slash-separated
	kind string
	obj  any
}

func (d document) String() string { return d.file + ": " + d.kind }

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// splitDocuments splits a multi-document YAML file, dropping documents that
// hold only comments and blank lines.
func splitDocuments(b []byte) [][]byte {
	var out [][]byte
	for _, part := range docSeparator.Split(string(b), -1) {
		empty := true
		for _, line := range strings.Split(part, "\n") {
			line = strings.TrimSpace(line)
			if line != "" && !strings.HasPrefix(line, "#") {
				empty = false
				break
			}
		}
		if !empty {
			out = append(out, []byte(part))
		}
	}
	return out
}

// yamlFiles lists the YAML files under manifests/, slash-separated and
// relative to it.
func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && p == "helm" {
			return filepath.SkipDir // Helm templates, not manifests: helm_test.go
		}
		if err == nil && d.IsDir() && p == "testdata" {
			return filepath.SkipDir // promtool's tests of the alerts: alerts_test.go
		}
		if err != nil || d.IsDir() {
			return err
		}
		if ext := filepath.Ext(p); ext == ".yaml" || ext == ".yml" {
			files = append(files, filepath.ToSlash(p))
		}
		return nil
	})
	require.NoError(t, err)
	sort.Strings(files)
	return files
}

// decodeFile strictly decodes every document of a file into its typed object.
func decodeFile(file string) ([]document, error) {
	b, err := os.ReadFile(filepath.FromSlash(file))
	if err != nil {
		return nil, err
	}
	var docs []document
	for i, raw := range splitDocuments(b) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(raw, &tm); err != nil {
			return nil, fmt.Errorf("%s, document %d: %w", file, i+1, err)
		}
		key := tm.APIVersion + "/" + tm.Kind
		newObj, ok := decoders[key]
		if !ok {
			return nil, fmt.Errorf("%s, document %d: no decoder for %q; add one to decoders in manifests_test.go", file, i+1, key)
		}
		obj := newObj()
		if err := yaml.UnmarshalStrict(raw, obj); err != nil {
			return nil, fmt.Errorf("%s, document %d (%s): %w", file, i+1, key, err)
		}
		docs = append(docs, document{file: file, kind: tm.Kind, obj: obj})
	}
	return docs, nil
}

// loadAll decodes every YAML file under manifests/.
func loadAll(t *testing.T) []document {
	t.Helper()
	var all []document
	for _, f := range yamlFiles(t) {
		docs, err := decodeFile(f)
		require.NoError(t, err)
		all = append(all, docs...)
	}
	return all
}

// only returns the objects of type T, optionally only those of one file.
func only[T any](docs []document, file string) []T {
	var out []T
	for _, d := range docs {
		if o, ok := d.obj.(T); ok && (file == "" || d.file == file) {
			out = append(out, o)
		}
	}
	return out
}

// one returns the single object of type T named name (in any namespace).
func one[T metav1.Object](t *testing.T, docs []document, name string) T {
	t.Helper()
	var found []T
	for _, o := range only[T](docs, "") {
		if o.GetName() == name {
			found = append(found, o)
		}
	}
	require.Len(t, found, 1, "want exactly one %T named %q", *new(T), name)
	return found[0]
}

func TestManifestsDecodeStrictly(t *testing.T) {
	files := yamlFiles(t)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			docs, err := decodeFile(f)
			require.NoError(t, err)
			require.NotEmpty(t, docs, "no YAML document in %s", f)
			for _, d := range docs {
				o, ok := d.obj.(metav1.Object)
				if !ok {
					continue // Kustomization, KubeSchedulerConfiguration
				}
				assert.NotEmpty(t, o.GetName(), "%s has no name", d)
				if clusterScoped[d.kind] {
					assert.Empty(t, o.GetNamespace(), "%s %s is cluster-scoped", d, o.GetName())
					continue
				}
				// kustomization.yaml sets no namespace for all objects (it
				// would move the kube-system RoleBinding), so every namespaced
				// object must name its own.
				want := musterNamespace
				if rb, ok := d.obj.(*rbacv1.RoleBinding); ok && rb.RoleRef.Name == authReaderRole {
					want = metav1.NamespaceSystem
				}
				assert.Equal(t, want, o.GetNamespace(), "namespace of %s %s", d, o.GetName())
			}
		})
	}
}

func TestSplitDocuments(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want int
	}{
		{"single", "a: 1\n", 1},
		{"leading separator", "---\na: 1\n", 1},
		{"two", "a: 1\n---\nb: 2\n", 2},
		{"separator with comment", "a: 1\n--- # next\nb: 2\n", 2},
		{"comment-only document dropped", "# header\n---\na: 1\n---\n# trailer\n", 1},
		{"dashes inside a value are kept", "a: |\n  x\n  ----\nb: 2\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Len(t, splitDocuments([]byte(tc.in)), tc.want)
		})
	}
}

// rulesOf returns every RBAC rule in the manifests with where it comes from.
func rulesOf(docs []document) map[string][]rbacv1.PolicyRule {
	out := map[string][]rbacv1.PolicyRule{}
	for _, d := range docs {
		switch o := d.obj.(type) {
		case *rbacv1.ClusterRole:
			out["ClusterRole "+o.Name] = append(out["ClusterRole "+o.Name], o.Rules...)
		case *rbacv1.Role:
			key := "Role " + o.Namespace + "/" + o.Name
			out[key] = append(out[key], o.Rules...)
		}
	}
	return out
}

func TestRBACHasNoSecretsAndNoWildcards(t *testing.T) {
	docs := loadAll(t)
	rules := rulesOf(docs)
	require.NotEmpty(t, rules)
	for role, rs := range rules {
		for i, r := range rs {
			where := fmt.Sprintf("%s rule %d", role, i)
			for _, field := range []struct {
				name   string
				values []string
			}{
				{"verbs", r.Verbs},
				{"apiGroups", r.APIGroups},
				{"resources", r.Resources},
				{"resourceNames", r.ResourceNames},
				{"nonResourceURLs", r.NonResourceURLs},
			} {
				for _, v := range field.values {
					assert.NotContains(t, v, "*", "%s: %s contains a wildcard", where, field.name)
				}
			}
			for _, res := range r.Resources {
				assert.NotEqual(t, "secrets", strings.Split(res, "/")[0], "%s grants access to secrets", where)
			}
			assert.NotEmpty(t, r.Verbs, "%s has no verbs", where)
		}
	}
	// No Secret objects either.
	for _, f := range yamlFiles(t) {
		b, err := os.ReadFile(filepath.FromSlash(f))
		require.NoError(t, err)
		assert.NotRegexp(t, `(?m)^kind:\s*Secret\s*$`, string(b), f)
	}
}

// grant is a set of rules the service account holds, cluster-wide
// (namespace "") or in one namespace.
type grant struct {
	namespace string
	source    string
	rules     []rbacv1.PolicyRule
}

func isMusterSA(s rbacv1.Subject) bool {
	return s.Kind == rbacv1.ServiceAccountKind && s.Name == serviceAccount && s.Namespace == musterNamespace
}

// grants resolves the bindings in the manifests to what muster's service
// account may do. Roles that the manifests do not define (the built-in
// extension-apiserver-authentication-reader) are not included.
func grants(t *testing.T, docs []document) []grant {
	t.Helper()
	clusterRoles := map[string]*rbacv1.ClusterRole{}
	for _, cr := range only[*rbacv1.ClusterRole](docs, "") {
		clusterRoles[cr.Name] = cr
	}
	roles := map[string]*rbacv1.Role{}
	for _, r := range only[*rbacv1.Role](docs, "") {
		roles[r.Namespace+"/"+r.Name] = r
	}
	var out []grant
	for _, b := range only[*rbacv1.ClusterRoleBinding](docs, "") {
		if !slices.ContainsFunc(b.Subjects, isMusterSA) {
			continue
		}
		require.Equal(t, "ClusterRole", b.RoleRef.Kind, "ClusterRoleBinding %s", b.Name)
		cr, ok := clusterRoles[b.RoleRef.Name]
		require.True(t, ok, "ClusterRoleBinding %s refers to ClusterRole %s, which the manifests do not define", b.Name, b.RoleRef.Name)
		out = append(out, grant{source: "ClusterRole " + cr.Name, rules: cr.Rules})
	}
	for _, b := range only[*rbacv1.RoleBinding](docs, "") {
		if !slices.ContainsFunc(b.Subjects, isMusterSA) {
			continue
		}
		switch b.RoleRef.Kind {
		case "ClusterRole":
			cr, ok := clusterRoles[b.RoleRef.Name]
			require.True(t, ok, "RoleBinding %s/%s refers to unknown ClusterRole %s", b.Namespace, b.Name, b.RoleRef.Name)
			out = append(out, grant{namespace: b.Namespace, source: "ClusterRole " + cr.Name, rules: cr.Rules})
		case "Role":
			r, ok := roles[b.Namespace+"/"+b.RoleRef.Name]
			if !ok && b.RoleRef.Name == authReaderRole && b.Namespace == metav1.NamespaceSystem {
				continue // built in
			}
			require.True(t, ok, "RoleBinding %s/%s refers to Role %s, which the manifests do not define", b.Namespace, b.Name, b.RoleRef.Name)
			out = append(out, grant{namespace: b.Namespace, source: "Role " + b.Namespace + "/" + r.Name, rules: r.Rules})
		default:
			t.Fatalf("RoleBinding %s/%s: roleRef kind %q", b.Namespace, b.Name, b.RoleRef.Kind)
		}
	}
	return out
}

// ruleAllows is RBAC's rule matching for a resource request. name is empty
// for requests without an object name (create, list, watch of a collection);
// such requests never match a rule that lists resourceNames.
func ruleAllows(r rbacv1.PolicyRule, verb, group, res, name string) bool {
	if !slices.Contains(r.Verbs, verb) || !slices.Contains(r.APIGroups, group) || !slices.Contains(r.Resources, res) {
		return false
	}
	return len(r.ResourceNames) == 0 || (name != "" && slices.Contains(r.ResourceNames, name))
}

func allowed(gs []grant, namespace, verb, group, res, name string) bool {
	for _, g := range gs {
		if g.namespace != "" && g.namespace != namespace {
			continue
		}
		for _, r := range g.rules {
			if ruleAllows(r, verb, group, res, name) {
				return true
			}
		}
	}
	return false
}

func TestRBACGrantsWhatMusterNeedsAndNoMore(t *testing.T) {
	docs := loadAll(t)
	gs := grants(t, docs)
	require.NotEmpty(t, gs)

	const (
		core = ""
		ns   = "team-a" // some tenant namespace
	)
	for _, tc := range []struct {
		namespace, verb, group, resource, name string
		want                                   bool
	}{
		// Scheduling.
		{ns, "create", core, "pods/binding", "p", true},
		{ns, "list", core, "pods", "", true},
		{ns, "watch", core, "pods", "", true},
		{ns, "patch", core, "pods/status", "p", true},
		{"", "list", core, "nodes", "", true},
		{"", "watch", core, "nodes", "", true},
		{ns, "create", "events.k8s.io", "events", "", true},
		{ns, "create", core, "events", "", true},
		{"", "list", "storage.k8s.io", "csinodes", "", true},
		{"", "list", "storage.k8s.io", "storageclasses", "", true},
		{ns, "list", core, "persistentvolumeclaims", "", true},
		{"", "list", "resource.k8s.io", "resourceslices", "", true},
		{"", "list", "resource.k8s.io", "deviceclasses", "", true},
		{"", "list", "resource.k8s.io", "devicetaintrules", "", true},
		{ns, "list", "resource.k8s.io", "resourceclaimtemplates", "", true},
		{ns, "create", "resource.k8s.io", "resourceclaimtemplates", "", false},
		{ns, "update", "resource.k8s.io", "resourceclaims/status", "c", true},
		{ns, "list", "policy", "poddisruptionbudgets", "", true},
		{"", "create", "authentication.k8s.io", "tokenreviews", "", true},
		{"", "create", "authorization.k8s.io", "subjectaccessreviews", "", true},
		// Preemption and reclaim.
		{ns, "delete", core, "pods", "p", true},
		{ns, "create", core, "pods/eviction", "p", false}, // reclaim deletes; nothing evicts
		// Gangs.
		{ns, "get", "scheduling.x-k8s.io", "podgroups", "g", true},
		{ns, "list", "scheduling.x-k8s.io", "podgroups", "", true},
		{ns, "watch", "scheduling.x-k8s.io", "podgroups", "", true},
		{ns, "update", "scheduling.x-k8s.io", "podgroups/status", "g", true},
		{ns, "patch", "scheduling.x-k8s.io", "podgroups/status", "g", true},
		{ns, "update", "scheduling.x-k8s.io", "podgroups", "g", false},
		{ns, "list", "scheduling.k8s.io", "workloads", "", true},
		{ns, "watch", "scheduling.k8s.io", "podgroups", "", true},
		{ns, "update", "scheduling.k8s.io", "podgroups/status", "g", true}, // PodGroupInitiallyScheduled
		{ns, "patch", "scheduling.k8s.io", "podgroups/status", "g", true},
		{ns, "create", "scheduling.k8s.io", "podgroups", "", false},
		{ns, "update", "scheduling.k8s.io", "podgroups", "g", false},
		{ns, "delete", "scheduling.k8s.io", "podgroups", "g", false},
		{ns, "update", "scheduling.k8s.io", "workloads", "w", false},
		{ns, "update", "scheduling.k8s.io", "workloads/status", "w", false},
		{ns, "get", "ray.io", "rayclusters", "r", true},
		{ns, "list", "ray.io", "rayclusters", "", true},
		{ns, "watch", "ray.io", "rayclusters", "", true},
		{ns, "get", "jobset.x-k8s.io", "jobsets", "j", true},
		{ns, "list", "jobset.x-k8s.io", "jobsets", "", true},
		{ns, "watch", "jobset.x-k8s.io", "jobsets", "", true},
		{ns, "get", "sparkoperator.k8s.io", "sparkapplications", "s", true},
		{ns, "list", "sparkoperator.k8s.io", "sparkapplications", "", true},
		{ns, "watch", "sparkoperator.k8s.io", "sparkapplications", "", true},
		{ns, "get", "kubeflow.org", "mpijobs", "j", true},
		{ns, "list", "kubeflow.org", "mpijobs", "", true},
		{ns, "watch", "kubeflow.org", "mpijobs", "", true},
		// Operators' objects: read only; their status, and RayJobs (read
		// through their RayClusters), are not muster's.
		{ns, "update", "ray.io", "rayclusters", "r", false},
		{ns, "patch", "ray.io", "rayclusters/status", "r", false},
		{ns, "list", "ray.io", "rayjobs", "", false},
		{ns, "create", "jobset.x-k8s.io", "jobsets", "", false},
		{ns, "update", "jobset.x-k8s.io", "jobsets/status", "j", false},
		{ns, "update", "sparkoperator.k8s.io", "sparkapplications", "s", false},
		{ns, "update", "kubeflow.org", "mpijobs", "j", false},
		{ns, "patch", "sparkoperator.k8s.io", "sparkapplications/status", "s", false},
		// Tenants' ConfigMaps (Spark's spark.properties) only when the
		// admin turns readSparkConfigMaps on: not in these manifests.
		{ns, "get", core, "configmaps", "spark-drv-1-conf-map", false},
		{ns, "list", core, "configmaps", "", false},
		// Leader election: its own lease, in its own namespace, only.
		{musterNamespace, "create", "coordination.k8s.io", "leases", "", true},
		{musterNamespace, "get", "coordination.k8s.io", "leases", leaseName, true},
		{musterNamespace, "update", "coordination.k8s.io", "leases", leaseName, true},
		{musterNamespace, "update", "coordination.k8s.io", "leases", "kube-scheduler", false},
		{musterNamespace, "delete", "coordination.k8s.io", "leases", leaseName, false},
		{metav1.NamespaceSystem, "update", "coordination.k8s.io", "leases", leaseName, false},
		{metav1.NamespaceSystem, "create", "coordination.k8s.io", "leases", "", false},
		// Queue config (read) and status (write), in muster-system only.
		{musterNamespace, "get", core, "configmaps", queuesConfigMap, true},
		{musterNamespace, "list", core, "configmaps", "", true},
		{musterNamespace, "watch", core, "configmaps", "", true},
		{musterNamespace, "create", core, "configmaps", "", true},
		{musterNamespace, "update", core, "configmaps", statusConfigMap, true},
		{musterNamespace, "patch", core, "configmaps", statusConfigMap, true},
		{musterNamespace, "update", core, "configmaps", queuesConfigMap, false},
		{musterNamespace, "delete", core, "configmaps", statusConfigMap, false},
		{ns, "get", core, "configmaps", "c", false},
		{metav1.NamespaceSystem, "update", core, "configmaps", statusConfigMap, false},
		// Nothing a scheduler has no business doing.
		{ns, "get", core, "secrets", "s", false},
		{musterNamespace, "list", core, "secrets", "", false},
		{ns, "create", core, "pods", "", false},
		{ns, "update", core, "pods", "p", false},
		{"", "update", core, "nodes", "n", false},
		{"", "delete", core, "nodes", "n", false},
		{ns, "create", core, "pods/exec", "p", false},
		{ns, "update", "apps", "deployments", "d", false},
		{"", "create", "rbac.authorization.k8s.io", "clusterrolebindings", "", false},
		{ns, "create", "scheduling.x-k8s.io", "podgroups", "", false},
	} {
		name := fmt.Sprintf("%s %s.%s/%s in %q", tc.verb, tc.resource, tc.group, tc.name, tc.namespace)
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, allowed(gs, tc.namespace, tc.verb, tc.group, tc.resource, tc.name))
		})
	}
}

func TestRBACWritesToNamedObjectsOnly(t *testing.T) {
	docs := loadAll(t)
	// Every rule that lets muster update or patch a lease or a ConfigMap
	// names the objects, and the lease is namespaced.
	for role, rs := range rulesOf(docs) {
		for i, r := range rs {
			writes := slices.Contains(r.Verbs, "update") || slices.Contains(r.Verbs, "patch") || slices.Contains(r.Verbs, "delete")
			if !writes || !slices.Contains(r.APIGroups, "") && !slices.Contains(r.APIGroups, "coordination.k8s.io") {
				continue
			}
			if slices.Contains(r.Resources, "leases") {
				assert.Equal(t, []string{leaseName}, r.ResourceNames, "%s rule %d: lease writes", role, i)
				assert.True(t, strings.HasPrefix(role, "Role "+musterNamespace+"/"), "%s rule %d: lease rules belong in a Role in %s", role, i, musterNamespace)
			}
			if slices.Contains(r.Resources, "configmaps") {
				assert.Equal(t, []string{statusConfigMap}, r.ResourceNames, "%s rule %d: ConfigMap writes", role, i)
				assert.True(t, strings.HasPrefix(role, "Role "+musterNamespace+"/"), "%s rule %d: ConfigMap rules belong in a Role in %s", role, i, musterNamespace)
			}
		}
	}
}

func TestRBACBindings(t *testing.T) {
	docs := loadAll(t)
	sa := one[*corev1.ServiceAccount](t, docs, serviceAccount)
	assert.Equal(t, musterNamespace, sa.Namespace)

	// Every binding binds muster's service account and nothing else.
	for _, b := range only[*rbacv1.ClusterRoleBinding](docs, "") {
		assert.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: serviceAccount, Namespace: musterNamespace}}, b.Subjects, "ClusterRoleBinding %s", b.Name)
	}
	var authReader bool
	for _, b := range only[*rbacv1.RoleBinding](docs, "") {
		assert.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: serviceAccount, Namespace: musterNamespace}}, b.Subjects, "RoleBinding %s/%s", b.Namespace, b.Name)
		if b.RoleRef.Kind == "Role" && b.RoleRef.Name == authReaderRole && b.Namespace == metav1.NamespaceSystem {
			authReader = true
		}
	}
	assert.True(t, authReader, "delegated authentication needs a RoleBinding in kube-system to the Role %s", authReaderRole)

	// The ClusterRole scrapers bind to reads /metrics and nothing else.
	reader := one[*rbacv1.ClusterRole](t, docs, "muster-metrics-reader")
	assert.Equal(t, []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/metrics"}}}, reader.Rules)
}

// schedulerConfig decodes manifests/scheduler-config.yaml.
func schedulerConfig(t *testing.T, docs []document) *schedconfigv1.KubeSchedulerConfiguration {
	t.Helper()
	cfgs := only[*schedconfigv1.KubeSchedulerConfiguration](docs, "scheduler-config.yaml")
	require.Len(t, cfgs, 1)
	return cfgs[0]
}

func TestSchedulerConfigMatchesTheOtherManifests(t *testing.T) {
	docs := loadAll(t)
	cfg := schedulerConfig(t, docs)

	le := cfg.LeaderElection
	require.NotNil(t, le.LeaderElect)
	assert.True(t, *le.LeaderElect)
	assert.Equal(t, "leases", le.ResourceLock)
	assert.Equal(t, leaseName, le.ResourceName)
	assert.Equal(t, musterNamespace, le.ResourceNamespace)

	require.Len(t, cfg.Profiles, 1)
	prof := cfg.Profiles[0]
	require.NotNil(t, prof.SchedulerName)
	assert.Equal(t, schedulerName, *prof.SchedulerName)

	// MusterQueue's ConfigMaps are the ones the RBAC and the example name.
	var queueArgs map[string]any
	for _, pc := range prof.PluginConfig {
		if pc.Name == "MusterQueue" {
			require.NoError(t, yaml.Unmarshal(pc.Args.Raw, &queueArgs))
		}
	}
	require.NotNil(t, queueArgs, "no MusterQueue pluginConfig")
	assert.Equal(t, musterNamespace, queueArgs["namespace"])
	assert.Equal(t, queuesConfigMap, queueArgs["queuesConfigMap"])
	assert.Equal(t, statusConfigMap, queueArgs["statusConfigMap"])
	one[*corev1.ConfigMap](t, docs, queuesConfigMap)
}

func TestDeployment(t *testing.T) {
	docs := loadAll(t)
	d := one[*appsv1.Deployment](t, docs, "muster-scheduler")
	assert.Equal(t, musterNamespace, d.Namespace)
	require.NotNil(t, d.Spec.Replicas)
	assert.EqualValues(t, 2, *d.Spec.Replicas)

	pod := d.Spec.Template
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	require.NoError(t, err)
	assert.True(t, sel.Matches(labels.Set(pod.Labels)), "the selector must match the pod template")
	assert.Equal(t, appLabelValue, pod.Labels[appLabel])

	spec := pod.Spec
	// muster-scheduler is placed by the default scheduler, never by itself.
	assert.Empty(t, spec.SchedulerName)
	assert.Equal(t, serviceAccount, spec.ServiceAccountName)
	assert.Equal(t, "system-cluster-critical", spec.PriorityClassName)
	require.NotNil(t, spec.Affinity)
	require.NotNil(t, spec.Affinity.PodAntiAffinity)
	require.NotEmpty(t, spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
	assert.Equal(t, "kubernetes.io/hostname", spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey)

	psc := spec.SecurityContext
	require.NotNil(t, psc)
	require.NotNil(t, psc.RunAsNonRoot)
	assert.True(t, *psc.RunAsNonRoot)
	require.NotNil(t, psc.RunAsUser)
	assert.EqualValues(t, 65532, *psc.RunAsUser)
	require.NotNil(t, psc.SeccompProfile)
	assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type)

	require.Len(t, spec.Containers, 1)
	c := spec.Containers[0]
	sc := c.SecurityContext
	require.NotNil(t, sc)
	require.NotNil(t, sc.RunAsNonRoot)
	assert.True(t, *sc.RunAsNonRoot)
	require.NotNil(t, sc.ReadOnlyRootFilesystem)
	assert.True(t, *sc.ReadOnlyRootFilesystem)
	require.NotNil(t, sc.AllowPrivilegeEscalation)
	assert.False(t, *sc.AllowPrivilegeEscalation)
	require.NotNil(t, sc.Capabilities)
	assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
	assert.Empty(t, sc.Capabilities.Add)
	assert.Nil(t, sc.Privileged)

	// The command reads the mounted scheduler config.
	// No --feature-gates: muster needs none. With GenericWorkload on in
	// its own process, kube-scheduler's pod-group cycle would run beside
	// MusterGang and write its own PodGroup conditions (test/workload and
	// docs/reference.md, "Workload API").
	assert.Equal(t, []string{"/muster-scheduler", "--config=" + configMountPath + "/scheduler-config.yaml"}, c.Command)
	var mounted bool
	for _, m := range c.VolumeMounts {
		if m.MountPath != configMountPath {
			continue
		}
		mounted = true
		assert.True(t, m.ReadOnly)
		i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		require.GreaterOrEqual(t, i, 0, "volume %s is not defined", m.Name)
		require.NotNil(t, spec.Volumes[i].ConfigMap, "volume %s must be a ConfigMap", m.Name)
		assert.Equal(t, schedulerConfigCM, spec.Volumes[i].ConfigMap.Name)
	}
	assert.True(t, mounted, "nothing is mounted at %s", configMountPath)

	// Ports and probes: kube-scheduler's secure port.
	require.Len(t, c.Ports, 1)
	assert.Equal(t, metricsPortName, c.Ports[0].Name)
	assert.EqualValues(t, metricsPort, c.Ports[0].ContainerPort)
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"liveness", c.LivenessProbe, "/livez"},
		{"readiness", c.ReadinessProbe, "/readyz"},
	} {
		require.NotNil(t, p.probe, p.name)
		require.NotNil(t, p.probe.HTTPGet, p.name)
		assert.Equal(t, p.path, p.probe.HTTPGet.Path, p.name)
		assert.Equal(t, corev1.URISchemeHTTPS, p.probe.HTTPGet.Scheme, p.name)
		assert.Equal(t, metricsPortName, p.probe.HTTPGet.Port.String(), p.name)
	}

	// Resources.
	assert.True(t, c.Resources.Requests.Cpu().Equal(resource.MustParse("500m")))
	assert.True(t, c.Resources.Requests.Memory().Equal(resource.MustParse("512Mi")))
	assert.True(t, c.Resources.Limits.Memory().Equal(resource.MustParse("2Gi")))

	// The image is the one kustomization.yaml can override.
	k := kustomizationOf(t, docs, "kustomization.yaml")
	require.Len(t, k.Images, 1)
	assert.Equal(t, k.Images[0].Name, imageName(c.Image))

	// The priority class is admitted where a quota must allow it.
	rq := one[*corev1.ResourceQuota](t, docs, "muster-critical-pods")
	require.NotNil(t, rq.Spec.ScopeSelector)
	require.Len(t, rq.Spec.ScopeSelector.MatchExpressions, 1)
	assert.Contains(t, rq.Spec.ScopeSelector.MatchExpressions[0].Values, spec.PriorityClassName)
}

// imageName strips the tag or digest from an image reference.
func imageName(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

func TestServicePDBAndServiceMonitorSelectTheScheduler(t *testing.T) {
	docs := loadAll(t)
	d := one[*appsv1.Deployment](t, docs, "muster-scheduler")
	podLabels := labels.Set(d.Spec.Template.Labels)

	svc := one[*corev1.Service](t, docs, "muster-scheduler-metrics")
	assert.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels))
	assert.NotEmpty(t, svc.Spec.Selector)
	require.Len(t, svc.Spec.Ports, 1)
	assert.Equal(t, metricsPortName, svc.Spec.Ports[0].Name)
	assert.EqualValues(t, metricsPort, svc.Spec.Ports[0].Port)
	assert.Equal(t, metricsPortName, svc.Spec.Ports[0].TargetPort.String())

	pdb := one[*policyv1.PodDisruptionBudget](t, docs, "muster-scheduler")
	require.NotNil(t, pdb.Spec.MinAvailable)
	assert.Equal(t, 1, pdb.Spec.MinAvailable.IntValue())
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	require.NoError(t, err)
	assert.True(t, sel.Matches(podLabels))

	sms := only[*serviceMonitor](docs, "")
	require.Len(t, sms, 1)
	sm := sms[0]
	sel, err = metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	require.NoError(t, err)
	assert.True(t, sel.Matches(labels.Set(svc.Labels)), "the ServiceMonitor must select the metrics Service")
	assert.Contains(t, sm.Spec.NamespaceSelector.MatchNames, svc.Namespace)
	require.Len(t, sm.Spec.Endpoints, 1)
	ep := sm.Spec.Endpoints[0]
	assert.Equal(t, metricsPortName, ep.Port)
	assert.Equal(t, "https", ep.Scheme)
	assert.Equal(t, "/var/run/secrets/kubernetes.io/serviceaccount/token", ep.BearerTokenFile)
	require.NotNil(t, ep.TLSConfig)
	assert.True(t, ep.TLSConfig.InsecureSkipVerify)
}

func kustomizationOf(t *testing.T, docs []document, file string) *kustomization {
	t.Helper()
	ks := only[*kustomization](docs, file)
	require.Len(t, ks, 1, file)
	return ks[0]
}

// TestKustomizationsCoverEveryFile checks that every listed file exists and
// that every YAML file under manifests/ is used by a kustomization, so that
// `kubectl apply -k` installs exactly what is here.
func TestKustomizationsCoverEveryFile(t *testing.T) {
	docs := loadAll(t)
	files := yamlFiles(t)
	used := map[string]string{} // file -> the kustomization that uses it
	var kfiles []string
	for _, f := range files {
		if path.Base(f) == "kustomization.yaml" {
			kfiles = append(kfiles, f)
			used[f] = f
		}
	}
	require.Contains(t, kfiles, "kustomization.yaml")
	require.Contains(t, kfiles, "monitoring/kustomization.yaml")

	for _, kf := range kfiles {
		k := kustomizationOf(t, docs, kf)
		dir := path.Dir(kf)
		assert.Empty(t, k.Namespace, "%s: a kustomization-wide namespace would move the kube-system RoleBinding; set namespaces in the objects", kf)
		use := func(entry string) {
			p := path.Clean(path.Join(dir, entry))
			fi, err := os.Stat(filepath.FromSlash(p))
			if !assert.NoError(t, err, "%s lists %s, which does not exist", kf, entry) {
				return
			}
			if fi.IsDir() {
				p = path.Join(p, "kustomization.yaml")
				_, err := os.Stat(filepath.FromSlash(p))
				assert.NoError(t, err, "%s lists directory %s, which has no kustomization.yaml", kf, entry)
			}
			if prev, ok := used[p]; ok && prev != p {
				assert.Fail(t, "file used twice", "%s is used by both %s and %s", p, prev, kf)
			}
			used[p] = kf
		}
		for _, r := range k.Resources {
			use(r)
		}
		for _, g := range k.ConfigMapGenerator {
			for _, f := range g.Files {
				if _, src, ok := strings.Cut(f, "="); ok {
					f = src
				}
				use(f)
			}
		}
	}
	for _, f := range files {
		_, ok := used[f]
		assert.True(t, ok, "%s is in no kustomization", f)
	}

	// The default installation: everything the README's install lists, minus the
	// Prometheus Operator objects, which need their CRDs.
	k := kustomizationOf(t, docs, "kustomization.yaml")
	for _, r := range []string{
		"namespace.yaml", "crds/scheduling.x-k8s.io_podgroups.yaml", "rbac.yaml",
		"deployment.yaml", "pdb.yaml", "service.yaml", "queues-example.yaml",
	} {
		assert.Contains(t, k.Resources, r)
	}
	for _, r := range k.Resources {
		for _, d := range docs {
			if d.file == path.Clean(r) {
				assert.NotEqual(t, "ServiceMonitor", d.kind, "%s needs the Prometheus Operator; keep it in monitoring/", r)
			}
		}
	}

	// The scheduler config is generated, under the name the Deployment uses.
	require.Len(t, k.ConfigMapGenerator, 1)
	g := k.ConfigMapGenerator[0]
	assert.Equal(t, schedulerConfigCM, g.Name)
	assert.Equal(t, musterNamespace, g.Namespace)
	assert.Equal(t, []string{"scheduler-config.yaml"}, g.Files)
	if k.GeneratorOptions != nil {
		assert.False(t, k.GeneratorOptions.DisableNameSuffixHash, "the hash suffix rolls the Deployment on config changes")
	}
}

// TestQueuesExample checks the example ConfigMap with the parser
// muster-scheduler itself uses.
func TestQueuesExample(t *testing.T) {
	docs := loadAll(t)
	cm := one[*corev1.ConfigMap](t, docs, queuesConfigMap)
	assert.Equal(t, musterNamespace, cm.Namespace)
	raw, ok := cm.Data[queue.ConfigKey]
	require.True(t, ok, "ConfigMap %s has no key %s", queuesConfigMap, queue.ConfigKey)

	tree, err := queue.Parse([]byte(raw))
	require.NoError(t, err)
	var paths []string
	for _, l := range tree.Leaves() {
		paths = append(paths, l.Path)
	}
	assert.ElementsMatch(t, []string{"root.analytics.etl", "root.analytics.adhoc", "root.ml", "root.default"}, paths)
	assert.Equal(t, "root.default", tree.NamespaceQueues()["*"], "the fallback names a queue that exists")

	// The embedded copy is this file.
	b, err := os.ReadFile("queues-example.yaml")
	require.NoError(t, err)
	assert.Equal(t, b, QueuesExample)
}

func TestEmbeds(t *testing.T) {
	b, err := os.ReadFile("scheduler-config.yaml")
	require.NoError(t, err)
	assert.Equal(t, b, SchedulerConfig)

	crds, err := CRDs()
	require.NoError(t, err)
	onDisk, err := filepath.Glob(filepath.Join("crds", "*.yaml"))
	require.NoError(t, err)
	require.Len(t, crds, len(onDisk))
	for _, c := range crds {
		var crd apiextensionsv1.CustomResourceDefinition
		require.NoError(t, yaml.UnmarshalStrict(c, &crd))
		assert.Equal(t, "CustomResourceDefinition", crd.Kind)
	}
}

// TestKustomizeBuild renders manifests/ with kustomize, when a kustomize is
// installed (kubectl's built-in one, or kustomize itself): the Deployment must
// mount the generated, hash-suffixed scheduler config, and the kube-system
// RoleBinding must stay in kube-system.
func TestKustomizeBuild(t *testing.T) {
	var cmd *exec.Cmd
	if p, err := exec.LookPath("kustomize"); err == nil {
		cmd = exec.CommandContext(t.Context(), p, "build", ".")
	} else if p, err := exec.LookPath("kubectl"); err == nil {
		cmd = exec.CommandContext(t.Context(), p, "kustomize", ".")
	} else {
		t.Skip("neither kustomize nor kubectl is installed")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s: %s", cmd, stderr.String())

	var deploy *appsv1.Deployment
	configMaps := map[string]*corev1.ConfigMap{}
	var authReaderNS []string
	for _, raw := range splitDocuments(out) {
		var tm metav1.TypeMeta
		require.NoError(t, yaml.Unmarshal(raw, &tm))
		switch tm.Kind {
		case "Deployment":
			deploy = &appsv1.Deployment{}
			require.NoError(t, yaml.UnmarshalStrict(raw, deploy))
		case "ConfigMap":
			cm := &corev1.ConfigMap{}
			require.NoError(t, yaml.UnmarshalStrict(raw, cm))
			configMaps[cm.Name] = cm
		case "RoleBinding":
			rb := &rbacv1.RoleBinding{}
			require.NoError(t, yaml.UnmarshalStrict(raw, rb))
			if rb.RoleRef.Name == authReaderRole {
				authReaderNS = append(authReaderNS, rb.Namespace)
			}
		}
	}
	require.NotNil(t, deploy, "no Deployment in the kustomize output")
	assert.Equal(t, []string{metav1.NamespaceSystem}, authReaderNS)
	assert.Contains(t, configMaps, queuesConfigMap)

	var cmName string
	for _, v := range deploy.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil && strings.HasPrefix(v.ConfigMap.Name, schedulerConfigCM) {
			cmName = v.ConfigMap.Name
		}
	}
	require.NotEmpty(t, cmName, "the Deployment mounts no scheduler config")
	assert.Regexp(t, "^"+schedulerConfigCM+"-[a-z0-9]+$", cmName, "kustomize did not rewrite the reference to the generated ConfigMap")
	cm, ok := configMaps[cmName]
	require.True(t, ok, "the Deployment mounts %s, which kustomize did not generate", cmName)
	assert.Equal(t, deploy.Namespace, cm.Namespace)
	assert.Equal(t, string(SchedulerConfig), cm.Data["scheduler-config.yaml"])
}
