package controlplane

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2/ktesting"
)

// TestControlPlaneRestartAPIServer: a restartable control plane's apiserver
// stops (etcd keeps the data) and starts again on the same address, and the
// clients made before the outage, and its kubeconfig, work again.
func TestControlPlaneRestartAPIServer(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	cp, err := Start(ctx, Options{Restartable: true, SkipCRDs: true})
	require.NoError(t, err)
	defer func() { assert.NoError(t, cp.Stop()) }()

	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kept"}, Data: map[string]string{"k": "v"}}
	_, err = cp.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
	require.NoError(t, err)

	require.NoError(t, cp.StopAPIServer())
	require.Error(t, cp.StopAPIServer(), "stopping twice")
	addr := strings.TrimPrefix(cp.Config.Host, "https://")
	_, err = net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err, "the apiserver no longer listens")

	require.NoError(t, cp.StartAPIServer())
	require.Error(t, cp.StartAPIServer(), "starting twice")
	assert.Equal(t, "https://"+addr, cp.Config.Host, "same address")

	got, err := cp.Client.CoreV1().ConfigMaps("default").Get(ctx, "kept", metav1.GetOptions{})
	require.NoError(t, err, "the client made before the outage works again")
	assert.Equal(t, "v", got.Data["k"], "etcd kept the data")

	cfg, err := clientcmd.BuildConfigFromFlags("", cp.Kubeconfig)
	require.NoError(t, err)
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	_, err = client.CoreV1().ConfigMaps("default").Get(ctx, "kept", metav1.GetOptions{})
	require.NoError(t, err, "the kubeconfig works again")
}
