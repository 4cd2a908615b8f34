package framework

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ServiceAccount is muster-scheduler's ServiceAccount in manifests/rbac.yaml.
const ServiceAccount = "muster-scheduler"

var (
	applyOnce sync.Once
	applyErr  error
)

// ApplyManifests creates, once per package, exactly the objects of
// manifests/namespace.yaml and manifests/rbac.yaml, decoded from the files.
// A kind this function does not know fails the test, so that a new object
// in those files cannot be left out silently.
func ApplyManifests(t testing.TB) {
	t.Helper()
	applyOnce.Do(func() {
		ctx := context.Background()
		for _, name := range []string{"namespace.yaml", "rbac.yaml"} {
			if applyErr = applyFile(ctx, filepath.Join(RepoRoot(t), "manifests", name)); applyErr != nil {
				return
			}
		}
	})
	require.NoError(t, applyErr, "applying manifests/")
}

func applyFile(ctx context.Context, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if err := create(ctx, obj); err != nil {
			return fmt.Errorf("%s: document %d: %w", path, i, err)
		}
	}
}

// create creates one object of manifests/ (the Namespace, which Main
// created bare, is updated with the manifest's labels).
func create(ctx context.Context, obj any) error {
	c := CP.Client
	var err error
	switch o := obj.(type) {
	case *v1.Namespace:
		_, err = c.CoreV1().Namespaces().Update(ctx, o, metav1.UpdateOptions{})
	case *v1.ResourceQuota:
		_, err = c.CoreV1().ResourceQuotas(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *v1.ServiceAccount:
		_, err = c.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.ClusterRole:
		_, err = c.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.ClusterRoleBinding:
		_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.Role:
		_, err = c.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.RoleBinding:
		_, err = c.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	default:
		return fmt.Errorf("%T is not handled here; add it", obj)
	}
	return err
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' && !bytes.Equal(t, []byte("---")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// TokenConfig returns a client configuration that authenticates with a
// fresh token of the ServiceAccount (TokenRequest API) and nothing else: no
// client certificate, no admin token.
func TokenConfig(t testing.TB, namespace, name string) *rest.Config {
	t.Helper()
	expiry := int64(2 * 3600)
	tr, err := CP.Client.CoreV1().ServiceAccounts(namespace).CreateToken(context.Background(), name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	require.NoError(t, err, "requesting a token for %s/%s", namespace, name)
	admin := CP.Config
	return &rest.Config{
		Host:        admin.Host,
		BearerToken: tr.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:     admin.TLSClientConfig.CAData,
			ServerName: admin.TLSClientConfig.ServerName,
		},
	}
}

// WriteKubeconfig writes cfg, a token identity, as a kubeconfig file under
// dir.
func WriteKubeconfig(t testing.TB, dir string, cfg *rest.Config) string {
	t.Helper()
	require.Empty(t, cfg.TLSClientConfig.CertData, "a token identity has no client certificate")
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.TLSClientConfig.CAData, TLSServerName: cfg.TLSClientConfig.ServerName}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "c"
	path := filepath.Join(dir, "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*kc, path))
	return path
}
