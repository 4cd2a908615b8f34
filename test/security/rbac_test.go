package security

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/configsource"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

// musterUser is how the apiserver sees muster-scheduler's token.
var musterUser = authorizationv1.SubjectAccessReviewSpec{
	User:   "system:serviceaccount:" + musterNamespace + ":" + serviceAccount,
	Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + musterNamespace, "system:authenticated"},
}

// can asks the apiserver (SubjectAccessReview, as the admin) whether
// muster-scheduler may do verb on the resource.
func can(t *testing.T, namespace, verb, group, resource, name string) (bool, string) {
	t.Helper()
	res, sub, _ := strings.Cut(resource, "/")
	spec := musterUser
	spec.ResourceAttributes = &authorizationv1.ResourceAttributes{
		Namespace: namespace, Verb: verb, Group: group, Resource: res, Subresource: sub, Name: name,
	}
	sar, err := framework.CP.Client.AuthorizationV1().SubjectAccessReviews().Create(context.Background(),
		&authorizationv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
	require.NoError(t, err)
	return sar.Status.Allowed, sar.Status.Reason
}

// TestSecurityLeastPrivilege: with exactly the RBAC of manifests/, the
// apiserver lets muster-scheduler do what scheduling needs, in the places it
// needs it, and nothing else: no Secrets, no creating or changing pods, no
// writing nodes, no writing any ConfigMap but its status, no other lease,
// no RBAC, no tokens, no exec.
func TestSecurityLeastPrivilege(t *testing.T) {
	framework.ApplyManifests(t)
	const (
		core = ""
		ns   = "team-a" // any tenant namespace
		sys  = metav1.NamespaceSystem
		pgs  = "scheduling.x-k8s.io"
		wl   = "scheduling.k8s.io"
	)
	for _, tc := range []struct {
		namespace, verb, group, resource, name string
		want                                   bool
	}{
		// What scheduling needs.
		{ns, "list", core, "pods", "", true},
		{ns, "watch", core, "pods", "", true},
		{ns, "create", core, "pods/binding", "p", true},
		{ns, "patch", core, "pods/status", "p", true},
		{ns, "delete", core, "pods", "p", true}, // preemption and reclaim
		{"", "list", core, "nodes", "", true},
		{ns, "create", "events.k8s.io", "events", "", true},
		{musterNamespace, "create", core, "events", "", true},
		{ns, "list", pgs, "podgroups", "", true},
		{ns, "update", pgs, "podgroups/status", "g", true},
		{ns, "list", wl, "podgroups", "", true}, // Workload API pod groups
		{ns, "watch", wl, "podgroups", "", true},
		{ns, "list", wl, "workloads", "", true},
		{ns, "patch", wl, "podgroups/status", "g", true}, // PodGroupInitiallyScheduled
		{ns, "update", wl, "podgroups/status", "g", true},
		{ns, "list", "ray.io", "rayclusters", "", true},
		{ns, "watch", "ray.io", "rayclusters", "", true},
		{ns, "list", "jobset.x-k8s.io", "jobsets", "", true},
		{ns, "watch", "jobset.x-k8s.io", "jobsets", "", true},
		{ns, "list", "sparkoperator.k8s.io", "sparkapplications", "", true},
		{ns, "watch", "sparkoperator.k8s.io", "sparkapplications", "", true},
		{ns, "list", "kubeflow.org", "mpijobs", "", true},
		{ns, "watch", "kubeflow.org", "mpijobs", "", true},
		{musterNamespace, "get", "coordination.k8s.io", "leases", leaseName, true},
		{musterNamespace, "update", "coordination.k8s.io", "leases", leaseName, true},
		{musterNamespace, "watch", core, "configmaps", "", true},
		{musterNamespace, "update", core, "configmaps", statusConfigMap, true},
		{sys, "get", core, "configmaps", "extension-apiserver-authentication", true},
		{"", "create", "authentication.k8s.io", "tokenreviews", "", true},
		{"", "create", "authorization.k8s.io", "subjectaccessreviews", "", true},

		// Secrets: never, anywhere.
		{ns, "get", core, "secrets", "s", false},
		{ns, "list", core, "secrets", "", false},
		{musterNamespace, "get", core, "secrets", "s", false},
		{musterNamespace, "watch", core, "secrets", "", false},
		{sys, "list", core, "secrets", "", false},
		{"", "list", core, "secrets", "", false},
		// Pods: bind and preempt, never create, change or enter.
		{ns, "create", core, "pods", "", false},
		{ns, "update", core, "pods", "p", false},
		{ns, "patch", core, "pods", "p", false},
		{ns, "deletecollection", core, "pods", "", false},
		{ns, "create", core, "pods/exec", "p", false},
		{ns, "create", core, "pods/attach", "p", false},
		{ns, "create", core, "pods/portforward", "p", false},
		{ns, "get", core, "pods/log", "p", false},
		{ns, "create", core, "pods/eviction", "p", false}, // reclaim deletes; eviction was granted and unused
		{ns, "create", core, "pods/ephemeralcontainers", "p", false},
		// Nodes: read only.
		{"", "create", core, "nodes", "", false},
		{"", "update", core, "nodes", "n", false},
		{"", "patch", core, "nodes", "n", false},
		{"", "delete", core, "nodes", "n", false},
		{"", "patch", core, "nodes/status", "n", false},
		{"", "get", core, "nodes/proxy", "n", false},
		// ConfigMaps: its status only; never its own queue tree (the ACLs),
		// never other namespaces'.
		{musterNamespace, "update", core, "configmaps", queuesConfigMap, false},
		{musterNamespace, "patch", core, "configmaps", queuesConfigMap, false},
		{musterNamespace, "delete", core, "configmaps", queuesConfigMap, false},
		{musterNamespace, "delete", core, "configmaps", statusConfigMap, false},
		{musterNamespace, "update", core, "configmaps", "other", false},
		{ns, "get", core, "configmaps", "c", false},
		{ns, "create", core, "configmaps", "", false},
		{sys, "update", core, "configmaps", "extension-apiserver-authentication", false},
		{sys, "update", core, "configmaps", statusConfigMap, false},
		// Leases: its own only.
		{sys, "update", "coordination.k8s.io", "leases", "kube-scheduler", false},
		{sys, "create", "coordination.k8s.io", "leases", "", false},
		{musterNamespace, "update", "coordination.k8s.io", "leases", "other", false},
		{musterNamespace, "delete", "coordination.k8s.io", "leases", leaseName, false},
		// Gangs: status only; tenants own the specs.
		{ns, "create", pgs, "podgroups", "", false},
		{ns, "update", pgs, "podgroups", "g", false},
		{ns, "delete", pgs, "podgroups", "g", false},
		{ns, "create", wl, "podgroups", "", false},
		{ns, "update", wl, "podgroups", "g", false},
		{ns, "patch", wl, "podgroups", "g", false},
		{ns, "delete", wl, "podgroups", "g", false},
		{ns, "create", wl, "workloads", "", false},
		{ns, "update", wl, "workloads", "w", false},
		{ns, "update", wl, "workloads/status", "w", false},
		// Operators' objects: read only.
		{ns, "update", "ray.io", "rayclusters", "r", false},
		{ns, "delete", "ray.io", "rayclusters", "r", false},
		{ns, "update", "ray.io", "rayclusters/status", "r", false},
		{ns, "create", "ray.io", "rayjobs", "", false},
		{ns, "update", "jobset.x-k8s.io", "jobsets", "j", false},
		{ns, "patch", "jobset.x-k8s.io", "jobsets/status", "j", false},
		{ns, "update", "sparkoperator.k8s.io", "sparkapplications", "s", false},
		{ns, "create", "kubeflow.org", "mpijobs", "", false},
		{ns, "create", "sparkoperator.k8s.io", "sparkapplications", "", false},
		// Identity and authority.
		{musterNamespace, "create", core, "serviceaccounts/token", serviceAccount, false},
		{ns, "create", core, "serviceaccounts/token", "default", false},
		{"", "impersonate", core, "users", "admin", false},
		{"", "impersonate", core, "serviceaccounts", "", false},
		{"", "create", "rbac.authorization.k8s.io", "clusterrolebindings", "", false},
		{"", "bind", "rbac.authorization.k8s.io", "clusterroles", "cluster-admin", false},
		{"", "escalate", "rbac.authorization.k8s.io", "clusterroles", "muster-scheduler", false},
		{"", "update", "rbac.authorization.k8s.io", "clusterroles", "muster-scheduler", false},
		{"", "create", "certificates.k8s.io", "certificatesigningrequests", "", false},
		// Workloads and cluster configuration.
		{ns, "create", "apps", "deployments", "", false},
		{ns, "update", "apps", "replicasets", "r", false},
		{"", "create", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", false},
		{"", "update", "apiextensions.k8s.io", "customresourcedefinitions", "podgroups.scheduling.x-k8s.io", false},
		{"", "create", core, "namespaces", "", false},
		{ns, "update", core, "namespaces", ns, false},
		{"", "create", "scheduling.k8s.io", "priorityclasses", "", false},
	} {
		name := fmt.Sprintf("%s %s.%s/%s in %q", tc.verb, tc.resource, tc.group, tc.name, tc.namespace)
		got, reason := can(t, tc.namespace, tc.verb, tc.group, tc.resource, tc.name)
		assert.Equal(t, tc.want, got, "%s (%s)", name, reason)
	}

	// Non-resource URLs: none beyond what every authenticated client has.
	for _, path := range []string{"/metrics", "/debug/pprof/", "/logs/"} {
		spec := musterUser
		spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Path: path, Verb: "get"}
		sar, err := framework.CP.Client.AuthorizationV1().SubjectAccessReviews().Create(context.Background(),
			&authorizationv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
		require.NoError(t, err)
		assert.False(t, sar.Status.Allowed, "get %s", path)
	}

	// And with its own token, as a compromised scheduler pod would try.
	ctx := context.Background()
	sa := clientFor(t, framework.TokenConfig(t, musterNamespace, serviceAccount))
	_, err := sa.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "listing Secrets: %v", err)
	_, err = sa.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "listing Secrets cluster-wide: %v", err)
	_, err = sa.CoreV1().Pods("default").Create(ctx, &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
	}, metav1.CreateOptions{})
	assert.True(t, apierrors.IsForbidden(err), "creating a pod: %v", err)
	_, err = sa.CoreV1().ConfigMaps(musterNamespace).Update(ctx, &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: queuesConfigMap, Namespace: musterNamespace},
		Data:       map[string]string{queue.ConfigKey: "queues: []\n"},
	}, metav1.UpdateOptions{})
	assert.True(t, apierrors.IsForbidden(err), "rewriting the queue tree: %v", err)
	_, err = sa.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "muster-escalates"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: serviceAccount, Namespace: musterNamespace}},
	}, metav1.CreateOptions{})
	assert.True(t, apierrors.IsForbidden(err), "binding cluster-admin: %v", err)
}

// forbidden matches the apiserver's refusals as client-go and klog print
// them.
var forbidden = regexp.MustCompile(`(?i)forbidden|is not allowed|cannot (get|list|watch|create|update|patch|delete) resource`)

// TestSecurityRestrictedScheduler runs the muster-scheduler binary as its
// ServiceAccount (a token, RBAC from manifests/, authorization Node,RBAC)
// and checks that everything muster does works: leader election on its
// lease, the queue ConfigMap read and the Event on it, pods bound, the
// reasons of unschedulable pods written with Events, PodGroup status,
// reclaim by preemption, the status ConfigMap, and its own endpoint
// authenticating and authorizing callers through the apiserver. Its log
// holds no Forbidden.
func TestSecurityRestrictedScheduler(t *testing.T) {
	ctx := framework.TestContext(t)
	ns := framework.NewNamespace(t)
	c := framework.CP.Client
	setQueues(t, `
queues:
  - name: borrower
  - name: owner
    guaranteed: {cpu: "2"}
namespaceQueues:
  "*": root.borrower
`)
	framework.CreateNodes(t, framework.Node("rbac-0", "4", "16Gi", nil))
	s := startRestricted(t)

	// A plain pod is bound, with its Scheduled Event.
	require.NoError(t, cluster.CreatePods(ctx, c, []cluster.Pod{
		{Namespace: ns, Name: "plain", SchedulerName: scheduler.SchedulerName, Requests: map[v1.ResourceName]string{v1.ResourceCPU: "1"}, Labels: map[string]string{queue.LabelQueue: "borrower"}},
	}))
	framework.WaitBound(t, ns, "plain", 60*time.Second)
	// The queue tree was read (on first use) and its acceptance recorded
	// on the ConfigMap.
	framework.WaitFor(t, 30*time.Second, "the QueueConfigApplied Event", func(ctx context.Context) (bool, error) {
		return len(framework.EventsFor(t, musterNamespace, queuesConfigMap, configsource.ReasonApplied)) > 0, nil
	})
	framework.WaitFor(t, 30*time.Second, "the Scheduled Event", func(context.Context) (bool, error) {
		return len(framework.EventsFor(t, ns, "plain", "Scheduled")) > 0, nil
	})

	// A pod that can never fit: its PodScheduled condition and a
	// FailedScheduling Event say why.
	require.NoError(t, cluster.CreatePods(ctx, c, []cluster.Pod{
		{Namespace: ns, Name: "huge", SchedulerName: scheduler.SchedulerName, Requests: map[v1.ResourceName]string{v1.ResourceCPU: "64"}},
	}))
	framework.WaitUnschedulable(t, ns, "huge", 60*time.Second)
	framework.WaitFor(t, 30*time.Second, "the FailedScheduling Event", func(context.Context) (bool, error) {
		return len(framework.EventsFor(t, ns, "huge", "FailedScheduling")) > 0, nil
	})
	require.NoError(t, c.CoreV1().Pods(ns).Delete(ctx, "huge", metav1.DeleteOptions{}))

	// A PodGroup gang is bound whole and muster writes its status.
	pgc := framework.PodGroupClient(t)
	_, err := pgc.SchedulingV1alpha1().PodGroups(ns).Create(ctx, &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "train", Labels: map[string]string{queue.LabelQueue: "borrower"}},
		Spec:       schedv1alpha1.PodGroupSpec{MinMember: 2},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	var members []cluster.Pod
	for i := range 2 {
		members = append(members, cluster.Pod{Namespace: ns, Name: fmt.Sprintf("train-%d", i), SchedulerName: scheduler.SchedulerName,
			Requests: map[v1.ResourceName]string{v1.ResourceCPU: "500m"}, Labels: map[string]string{gang.LabelPodGroup: "train"}})
	}
	require.NoError(t, cluster.CreatePods(ctx, c, members))
	framework.WaitBound(t, ns, "train-0", 60*time.Second)
	framework.WaitBound(t, ns, "train-1", 60*time.Second)
	framework.WaitFor(t, 30*time.Second, "the PodGroup status", func(ctx context.Context) (bool, error) {
		pg, err := pgc.SchedulingV1alpha1().PodGroups(ns).Get(ctx, "train", metav1.GetOptions{})
		return err == nil && pg.Status.Phase != "" && pg.Status.ScheduleStartTime.Time.Unix() > 0, err
	})

	// Reclaim: the borrower has the whole node; the owner's guarantee comes
	// back by preemption (muster deletes the victims).
	var borrow []cluster.Pod
	for i := range 2 {
		borrow = append(borrow, cluster.Pod{Namespace: ns, Name: fmt.Sprintf("borrow-%d", i), SchedulerName: scheduler.SchedulerName,
			Requests: map[v1.ResourceName]string{v1.ResourceCPU: "1"}, Labels: map[string]string{queue.LabelQueue: "borrower"}})
	}
	require.NoError(t, cluster.CreatePods(ctx, c, borrow))
	framework.WaitFor(t, 60*time.Second, "the borrower to fill the node", func(context.Context) (bool, error) {
		return framework.CountBound(t, ns) == 5, nil
	})
	require.NoError(t, cluster.CreatePods(ctx, c, []cluster.Pod{
		{Namespace: ns, Name: "own", SchedulerName: scheduler.SchedulerName, Requests: map[v1.ResourceName]string{v1.ResourceCPU: "2"}, Labels: map[string]string{queue.LabelQueue: "owner"}},
	}))
	framework.WaitBound(t, ns, "own", 60*time.Second)
	framework.WaitFor(t, 30*time.Second, "a Preempted Event", func(context.Context) (bool, error) {
		list, err := c.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=Preempted"})
		return err == nil && len(list.Items) > 0, err
	})

	// The status ConfigMap is created and kept up to date.
	waitStatus(t, c, "the queue status with the owner's usage", func(r status.Report) (bool, error) {
		for _, q := range r.Queues {
			if q.Queue == "root.owner" && q.Allocated["cpu"] == "2" {
				return true, nil
			}
		}
		return false, nil
	})

	// The lease is renewed.
	leases := c.CoordinationV1().Leases(musterNamespace)
	l, err := leases.Get(ctx, leaseName, metav1.GetOptions{})
	require.NoError(t, err)
	framework.WaitFor(t, 30*time.Second, "the lease to be renewed", func(ctx context.Context) (bool, error) {
		again, err := leases.Get(ctx, leaseName, metav1.GetOptions{})
		return err == nil && again.Spec.RenewTime.After(l.Spec.RenewTime.Time), err
	})

	// Its endpoint asks the apiserver who calls (TokenReview) and whether
	// they may (SubjectAccessReview): a reader with get on /metrics is let
	// in, a ServiceAccount without it is not, and no token is refused.
	reader, nobody := metricsReaders(t, ns)
	framework.WaitFor(t, 30*time.Second, "/metrics for its reader", func(context.Context) (bool, error) {
		return s.get(t, "/metrics", reader) == 200, nil
	})
	assert.Equal(t, 403, s.get(t, "/metrics", nobody), "a ServiceAccount without get /metrics")
	assert.Equal(t, 401, s.get(t, "/metrics", "not-a-token"), "a token the apiserver does not know")
	assert.Equal(t, 403, s.get(t, "/metrics", ""), "no token")

	out := s.Out.String()
	for _, line := range strings.Split(out, "\n") {
		if forbidden.MatchString(line) {
			t.Errorf("muster-scheduler was refused something:\n%s", line)
		}
	}
	assert.Contains(t, out, "Successfully acquired lease", "the log shows leader election")
}

// metricsReaders creates two ServiceAccounts in ns, one bound to a role
// that may get /metrics, and returns a token of each.
func metricsReaders(t *testing.T, ns string) (reader, nobody string) {
	t.Helper()
	ctx := context.Background()
	c := framework.CP.Client
	for _, name := range []string{"reader", "nobody"} {
		_, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	role := "muster-security-metrics-" + ns
	_, err := c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: role},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reader", Namespace: ns}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = c.RbacV1().ClusterRoleBindings().Delete(context.Background(), role, metav1.DeleteOptions{})
		_ = c.RbacV1().ClusterRoles().Delete(context.Background(), role, metav1.DeleteOptions{})
	})
	return framework.TokenConfig(t, ns, "reader").BearerToken, framework.TokenConfig(t, ns, "nobody").BearerToken
}
