// Package controlplane runs a real Kubernetes control plane inside the
// current process: embedded etcd plus kube-apiserver, on free loopback ports,
// with muster's CRDs installed and a kubeconfig written. Integration tests,
// benchmarks and `muster sandbox` all use this one implementation.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

// Options configures a control plane.
type Options struct {
	// Dir is where etcd's data, certificates and the kubeconfig go. Empty
	// means a fresh temporary directory, removed again by Stop.
	Dir string
	// APIServerFlags are extra kube-apiserver flags, such as
	// --feature-gates=GenericWorkload=true or --authorization-mode=RBAC.
	APIServerFlags []string
	// SkipCRDs leaves out the CRDs muster reads (scheduler-plugins PodGroup).
	SkipCRDs bool
	// Restartable makes Config and Kubeconfig survive StopAPIServer and
	// StartAPIServer: they carry a static admin token (--token-auth-file,
	// group system:masters) and the serving certificate's CA, kept in Dir,
	// instead of the loopback credentials, which kube-apiserver makes anew
	// at every start.
	Restartable bool
}

// ControlPlane is a running etcd + kube-apiserver.
type ControlPlane struct {
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// Client is a clientset built from Config.
	Client kubernetes.Interface
	// Kubeconfig is the path of a kubeconfig file for Config, for kubectl
	// and for schedulers started against this control plane.
	Kubeconfig string
	// Dir holds everything the control plane wrote.
	Dir string

	removeDir bool
	etcd      *embed.Etcd
	etcdURL   string
	// addr and flags start the apiserver again on the same address.
	addr     string
	flags    []string
	logger   klog.Logger
	stopOnce sync.Once
	stopErr  error

	mu      sync.Mutex // guards cancel and apiDone
	cancel  context.CancelFunc
	apiDone <-chan error
}

// Start brings up etcd and kube-apiserver and waits until the apiserver is
// healthy and the CRDs are established.
func Start(ctx context.Context, opts Options) (_ *ControlPlane, err error) {
	logger := klog.FromContext(ctx)
	cp := &ControlPlane{Dir: opts.Dir}
	if cp.Dir == "" {
		if cp.Dir, err = os.MkdirTemp("", "muster-controlplane-"); err != nil {
			return nil, fmt.Errorf("creating control plane directory: %w", err)
		}
		cp.removeDir = true
	} else if err := os.MkdirAll(cp.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating control plane directory: %w", err)
	}
	defer func() {
		if err != nil {
			_ = cp.Stop()
		}
	}()

	if cp.etcd, cp.etcdURL, err = startEtcd(cp.Dir); err != nil {
		return nil, err
	}
	logger.V(2).Info("etcd started", "url", cp.etcdURL)

	cp.logger = logger
	cp.flags = append([]string{}, opts.APIServerFlags...)
	var token string
	if opts.Restartable {
		if token, err = writeTokenFile(cp.Dir); err != nil {
			return nil, err
		}
		cp.flags = append(cp.flags, "--token-auth-file="+filepath.Join(cp.Dir, tokenFile))
	}
	api, err := cp.runAPIServer()
	if err != nil {
		return nil, err
	}
	cp.addr = strings.TrimPrefix(api.config.Host, "https://")
	cp.Config = api.config
	if opts.Restartable {
		if cp.Config, err = stableConfig(cp.Dir, api.config, token); err != nil {
			return nil, err
		}
	}
	if cp.Client, err = kubernetes.NewForConfig(cp.Config); err != nil {
		return nil, fmt.Errorf("building client: %w", err)
	}
	cp.Kubeconfig = filepath.Join(cp.Dir, "kubeconfig")
	if err := writeKubeconfig(cp.Kubeconfig, cp.Config); err != nil {
		return nil, err
	}
	logger.V(2).Info("kube-apiserver started", "host", cp.Config.Host, "kubeconfig", cp.Kubeconfig)

	if !opts.SkipCRDs {
		if err := InstallCRDs(ctx, cp.Config); err != nil {
			return nil, err
		}
	}
	return cp, nil
}

// runAPIServer starts kube-apiserver on cp.addr (a free port the first
// time). It lives until StopAPIServer or Stop, not until the caller's ctx
// ends.
func (cp *ControlPlane) runAPIServer() (*apiServer, error) {
	runCtx, cancel := context.WithCancel(klog.NewContext(context.Background(), cp.logger))
	api, err := startAPIServer(runCtx, cp.Dir, cp.etcdURL, cp.addr, cp.flags)
	if err != nil {
		cancel()
		return nil, err
	}
	cp.mu.Lock()
	cp.cancel, cp.apiDone = cancel, api.done
	cp.mu.Unlock()
	return api, nil
}

// StopAPIServer stops kube-apiserver and waits until it has, leaving etcd
// running: an apiserver outage. StartAPIServer brings it back. Clients of
// Config keep working across the two only with Options.Restartable.
func (cp *ControlPlane) StopAPIServer() error {
	cp.mu.Lock()
	cancel, done := cp.cancel, cp.apiDone
	cp.cancel, cp.apiDone = nil, nil
	cp.mu.Unlock()
	if cancel == nil {
		return errors.New("the apiserver is not running")
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	return nil
}

// StartAPIServer starts kube-apiserver again after StopAPIServer, on the
// same address, certificates and etcd, and waits until it is healthy.
func (cp *ControlPlane) StartAPIServer() error {
	cp.mu.Lock()
	running := cp.cancel != nil
	cp.mu.Unlock()
	if running {
		return errors.New("the apiserver is already running")
	}
	if _, err := cp.runAPIServer(); err != nil {
		return fmt.Errorf("restarting kube-apiserver on %s: %w", cp.addr, err)
	}
	cp.logger.V(2).Info("kube-apiserver restarted", "address", cp.addr)
	return nil
}

// Stop shuts down the apiserver, then etcd, and removes the directory if
// Start created it. It is safe to call more than once.
func (cp *ControlPlane) Stop() error {
	cp.stopOnce.Do(func() {
		var errs []error
		cp.mu.Lock()
		cancel, done := cp.cancel, cp.apiDone
		cp.cancel, cp.apiDone = nil, nil
		cp.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		if done != nil {
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("kube-apiserver: %w", err))
			}
		}
		if cp.etcd != nil {
			cp.etcd.Close()
		}
		if cp.removeDir {
			if err := os.RemoveAll(cp.Dir); err != nil {
				errs = append(errs, fmt.Errorf("removing %s: %w", cp.Dir, err))
			}
		}
		cp.stopErr = errors.Join(errs...)
	})
	return cp.stopErr
}

// Compact compacts etcd's history up to now and defragments it, so that
// benchmarks run one after another start from the same kind of store.
func (cp *ControlPlane) Compact(ctx context.Context) error {
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{cp.etcdURL}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer client.Close()
	resp, err := client.Get(ctx, "compact-probe")
	if err != nil {
		return fmt.Errorf("reading etcd revision: %w", err)
	}
	if _, err := client.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		return fmt.Errorf("compacting etcd: %w", err)
	}
	if _, err := client.Defragment(ctx, cp.etcdURL); err != nil {
		return fmt.Errorf("defragmenting etcd: %w", err)
	}
	return nil
}
