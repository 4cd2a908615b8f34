package controlplane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/util/compatibility"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	basecompatibility "k8s.io/component-base/compatibility"
	"k8s.io/component-base/featuregate"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	"k8s.io/kubernetes/cmd/kube-apiserver/app/options"
)

// defaultAPIServerFlags are kube-apiserver flags every muster control plane
// gets. There is no controller-manager: nothing would create the
// per-namespace "default" ServiceAccount that the ServiceAccount admission
// plugin insists on, and nothing would lift the not-ready taint that
// TaintNodesByCondition puts on every new node.
var defaultAPIServerFlags = []string{
	"--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
}

type apiServer struct {
	config *rest.Config
	done   <-chan error
}

// startAPIServer runs kube-apiserver in this process against etcdURL until ctx
// ends. It is the same construction as kube-apiserver's own command (options
// -> Complete -> Validate -> CreateServerChain -> Run), with a loopback
// listener on a free port and certificates and keys written under dir.
//
// addr is the host:port to listen on; empty picks a free port.
func startAPIServer(ctx context.Context, dir, etcdURL, addr string, flags []string) (*apiServer, error) {
	s := options.NewServerRunOptions()

	// A registry of its own, so that several control planes (and the
	// in-process schedulers, which use the default registry) can share a
	// process. Feature gates set with --feature-gates are mirrored into the
	// process-wide gate below, because much of the apiserver reads that one.
	gate := utilfeature.DefaultMutableFeatureGate.DeepCopy()
	registry := basecompatibility.NewComponentGlobalsRegistry()
	if err := registry.Register(basecompatibility.DefaultKubeComponent, compatibility.DefaultBuildEffectiveVersion(), gate); err != nil {
		return nil, fmt.Errorf("registering apiserver component: %w", err)
	}
	s.GenericServerRunOptions.ComponentGlobalsRegistry = registry

	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	for _, f := range s.Flags().FlagSets {
		fs.AddFlagSet(f)
	}

	ln, err := listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	s.SecureServing.Listener = ln
	s.SecureServing.BindPort = ln.Addr().(*net.TCPAddr).Port
	s.SecureServing.ExternalAddress = net.ParseIP("127.0.0.1")
	s.SecureServing.ServerCert.CertDirectory = filepath.Join(dir, "apiserver-certs")
	s.ServiceClusterIPRanges = "10.0.0.0/16"
	s.Etcd.StorageConfig.Transport.ServerList = []string{etcdURL}

	saKey, err := writeServiceAccountKey(dir)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	s.ServiceAccountSigningKeyFile = saKey
	s.Authentication.ServiceAccounts.Issuers = []string{"https://kubernetes.default.svc"}
	s.Authentication.ServiceAccounts.KeyFiles = []string{saKey}

	if err := fs.Parse(append(append([]string{}, defaultAPIServerFlags...), flags...)); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("kube-apiserver flags: %w", err)
	}
	if !fs.Changed("endpoint-reconciler-type") {
		// The loopback address must not be written into the kubernetes Service.
		s.EndpointReconcilerType = "none"
	}
	if err := registry.Set(); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("kube-apiserver feature gates: %w", err)
	}
	if err := mirrorFeatureGates(gate); err != nil {
		_ = ln.Close()
		return nil, err
	}

	completed, err := s.Complete(ctx)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("completing apiserver options: %w", err)
	}
	if errs := completed.Validate(); len(errs) > 0 {
		_ = ln.Close()
		return nil, fmt.Errorf("invalid apiserver options: %w", errors.Join(errs...))
	}
	cfg, err := app.NewConfig(completed)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("building apiserver config: %w", err)
	}
	completedCfg, err := cfg.Complete()
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("completing apiserver config: %w", err)
	}
	server, err := app.CreateServerChain(completedCfg)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("creating apiserver: %w", err)
	}
	prepared, err := server.PrepareRun()
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("preparing apiserver: %w", err)
	}

	done := make(chan error, 1)
	go func() {
		done <- prepared.Run(ctx)
		close(done)
	}()

	loopback := rest.CopyConfig(server.GenericAPIServer.LoopbackClientConfig)
	if err := waitHealthy(ctx, loopback, done); err != nil {
		return nil, err
	}
	return &apiServer{config: loopback, done: done}, nil
}

// listen listens on addr (a free loopback port when empty). A port the
// previous apiserver just closed may take a moment to be free again.
func listen(ctx context.Context, addr string) (net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		ln, last = net.Listen("tcp", addr)
		return last == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("listening for the apiserver on %s: %w (last: %v)", addr, err, last)
	}
	return ln, nil
}

// mirrorFeatureGates copies gates that the apiserver's flags changed into the
// process-wide default gate, which most apiserver code consults.
func mirrorFeatureGates(gate featuregate.MutableVersionedFeatureGate) error {
	diff := map[string]bool{}
	for f := range utilfeature.DefaultMutableFeatureGate.GetAll() {
		if gate.Enabled(f) != utilfeature.DefaultFeatureGate.Enabled(f) {
			diff[string(f)] = gate.Enabled(f)
		}
	}
	if len(diff) == 0 {
		return nil
	}
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(diff); err != nil {
		return fmt.Errorf("applying feature gates %v process-wide: %w", diff, err)
	}
	return nil
}

// waitHealthy polls /healthz until it answers ok and the default namespace
// exists (the apiserver's bootstrap controllers have run).
func waitHealthy(ctx context.Context, cfg *rest.Config, done <-chan error) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("apiserver client: %w", err)
	}
	var last error
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-done:
			return false, fmt.Errorf("apiserver exited while starting: %w", err)
		default:
		}
		status := 0
		res := client.CoreV1().RESTClient().Get().AbsPath("/healthz").Do(ctx).StatusCode(&status)
		if status != http.StatusOK {
			last = fmt.Errorf("/healthz: status %d: %v", status, res.Error())
			return false, nil
		}
		if _, err := client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
			last = fmt.Errorf("default namespace: %w", err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("apiserver did not become healthy: %w (last: %v)", err, last)
	}
	return nil
}

// writeServiceAccountKey writes a fresh ECDSA key for signing service account
// tokens (the TokenRequest API needs one).
func writeServiceAccountKey(dir string) (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generating service account key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("encoding service account key: %w", err)
	}
	path := filepath.Join(dir, "sa.key")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", fmt.Errorf("writing service account key: %w", err)
	}
	return path, nil
}
