// Package framework is the shared harness of muster's integration tests: one
// real control plane (etcd + kube-apiserver) per test package, the simulated
// kubelet, and helpers for namespaces, nodes, schedulers and waiting on
// state by polling with a deadline (never by sleeping).
package framework

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"

	"muster.dev/muster/manifests"
	"muster.dev/muster/pkg/cluster"
	"muster.dev/muster/pkg/controlplane"
	"muster.dev/muster/pkg/scheduler"
	"muster.dev/muster/pkg/simkubelet"
)

// MusterNamespace is where muster's lease and ConfigMaps live.
const MusterNamespace = "muster-system"

// CP is the package's control plane, set by Main.
var CP *controlplane.ControlPlane

// Main starts the control plane (with opts), muster's namespace and the
// simulated kubelet, runs the tests, and tears everything down. Use it from
// TestMain: os.Exit(framework.Main(m, opts)).
func Main(m interface{ Run() int }, opts controlplane.Options) int {
	return MainWith(m, opts, &simkubelet.Options{})
}

// Kubelet is the package's simulated kubelet, when MainWith started one.
var Kubelet *simkubelet.Kubelet

// MainWith is Main with the simulated kubelet's options; nil leaves it out
// (scheduling benchmarks do not want pod status updates loading the
// apiserver they measure).
func MainWith(m interface{ Run() int }, opts controlplane.Options, kubelet *simkubelet.Options) int {
	klog.InitFlags(nil)
	flag.Parse()
	// The apiserver and etcd log through the global klog; keep that out of
	// the test output (schedulers started by tests log through the test's
	// own logger) unless -v asks for it.
	if !testing.Verbose() {
		logFile := filepath.Join(os.TempDir(), fmt.Sprintf("muster-integration-%d.log", os.Getpid()))
		if f, err := os.Create(logFile); err == nil {
			klog.LogToStderr(false)
			klog.SetOutput(f)
			defer func() {
				klog.Flush()
				_ = f.Close()
			}()
			fmt.Fprintf(os.Stderr, "control plane log: %s\n", logFile)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cp, err := controlplane.Start(ctx, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting control plane: %v\n", err)
		return 1
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping control plane: %v\n", err)
		}
	}()
	CP = cp
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: MusterNamespace}}, metav1.CreateOptions{}); err != nil {
		fmt.Fprintf(os.Stderr, "creating %s: %v\n", MusterNamespace, err)
		return 1
	}
	if kubelet != nil {
		// Where pods run, DRA claims are created from templates and given
		// back when their pods are done, as kube-controller-manager would.
		if err := controlplane.RunResourceClaimController(ctx, cp.Client); err != nil {
			fmt.Fprintf(os.Stderr, "%v\n", err)
			return 1
		}
		Kubelet = simkubelet.New(cp.Client, *kubelet)
		kubeletDone := make(chan error, 1)
		go func() { kubeletDone <- Kubelet.Run(ctx) }()
		defer func() {
			cancel()
			<-kubeletDone
		}()
	}
	return m.Run()
}

var (
	nsCounter        atomic.Int64
	invalidNameChars = regexp.MustCompile(`[^a-z0-9-]+`)
)

// TestContext returns a context with a test logger (verbosity 2; set
// MUSTER_TEST_V for more), cancelled when the test ends. Benchmarks log
// through the global klog instead, which Main sends to a file.
func TestContext(t testing.TB) context.Context {
	ctx := context.Background()
	if _, bench := t.(*testing.B); bench {
		ctx = klog.NewContext(ctx, klog.Background())
	} else {
		v := 2
		if s := os.Getenv("MUSTER_TEST_V"); s != "" {
			if n, err := strconv.Atoi(s); err == nil {
				v = n
			}
		}
		ctx = klog.NewContext(ctx, ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(v))))
	}
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	return ctx
}

// NewNamespace creates a namespace for the test and, when the test ends,
// deletes its pods (there is no namespace controller to do it) and itself.
func NewNamespace(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", invalidNameChars.ReplaceAllString(strings.ToLower(t.Name()), "-"), nsCounter.Add(1))
	if len(name) > 63 {
		name = strings.TrimLeft(name[len(name)-63:], "-")
	}
	ctx := context.Background()
	_, err := CP.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		zero := int64(0)
		_ = CP.Client.CoreV1().Pods(name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		_ = CP.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return name
}

// CreateNodes creates nodes for the test and deletes them when it ends.
func CreateNodes(t testing.TB, nodes ...cluster.Node) {
	t.Helper()
	require.NoError(t, cluster.CreateNodes(context.Background(), CP.Client, nodes))
	t.Cleanup(func() {
		for _, n := range nodes {
			_ = CP.Client.CoreV1().Nodes().Delete(context.Background(), n.Name, metav1.DeleteOptions{})
		}
	})
}

// Node is a plain simulated node with the given CPU and memory.
func Node(name, cpu, memory string, labels map[string]string) cluster.Node {
	return cluster.Node{Name: name, Capacity: map[v1.ResourceName]string{v1.ResourceCPU: cpu, v1.ResourceMemory: memory}, Labels: labels}
}

// StartMuster runs muster-scheduler in-process with the shipped
// configuration (manifests/scheduler-config.yaml) until the test ends.
func StartMuster(t testing.TB, flags ...string) *scheduler.InProcess {
	t.Helper()
	return StartScheduler(t, manifests.SchedulerConfig, flags...)
}

// StartScheduler runs a scheduler in-process with the given configuration
// until the test ends.
func StartScheduler(t testing.TB, config []byte, flags ...string) *scheduler.InProcess {
	t.Helper()
	s, err := scheduler.StartInProcess(TestContext(t), scheduler.InProcessOptions{
		Config: config, Kubeconfig: CP.Kubeconfig, Dir: t.TempDir(), Flags: flags,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Stop()) })
	return s
}

// WaitFor polls cond every 50ms until it holds or the timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, cond)
	require.NoError(t, err, "waiting for %s", what)
}

// WaitBound waits until the pod is bound and returns it.
func WaitBound(t testing.TB, ns, name string, timeout time.Duration) *v1.Pod {
	t.Helper()
	var pod *v1.Pod
	WaitFor(t, timeout, fmt.Sprintf("pod %s/%s to be bound", ns, name), func(ctx context.Context) (bool, error) {
		p, err := CP.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		pod = p
		return p.Spec.NodeName != "", nil
	})
	return pod
}

// WaitUnschedulable waits until the pod's PodScheduled condition is False
// with a message containing every one of want, and returns the message.
func WaitUnschedulable(t testing.TB, ns, name string, timeout time.Duration, want ...string) string {
	t.Helper()
	var msg string
	WaitFor(t, timeout, fmt.Sprintf("pod %s/%s to be unschedulable with %q", ns, name, want), func(ctx context.Context) (bool, error) {
		p, err := CP.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range p.Status.Conditions {
			if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse {
				msg = c.Message
				for _, w := range want {
					if !strings.Contains(c.Message, w) {
						return false, nil
					}
				}
				return true, nil
			}
		}
		return false, nil
	})
	return msg
}

// CountBound returns how many pods of ns are bound and not finished.
func CountBound(t testing.TB, ns string) int {
	t.Helper()
	list, err := CP.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	n := 0
	for _, p := range list.Items {
		if p.Spec.NodeName != "" && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
			n++
		}
	}
	return n
}
