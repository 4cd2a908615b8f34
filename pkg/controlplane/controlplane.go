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
	cancel    context.CancelFunc
	apiDone   <-chan error
	stopOnce  sync.Once
	stopErr   error
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

	// The apiserver lives until Stop, not until the caller's ctx ends: the
	// caller's ctx only bounds the start-up.
	runCtx, cancel := context.WithCancel(klog.NewContext(context.Background(), logger))
	cp.cancel = cancel
	api, err := startAPIServer(runCtx, cp.Dir, cp.etcdURL, opts.APIServerFlags)
	if err != nil {
		return nil, err
	}
	cp.apiDone = api.done
	cp.Config = api.config
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

// Stop shuts down the apiserver, then etcd, and removes the directory if
// Start created it. It is safe to call more than once.
func (cp *ControlPlane) Stop() error {
	cp.stopOnce.Do(func() {
		var errs []error
		if cp.cancel != nil {
			cp.cancel()
		}
		if cp.apiDone != nil {
			if err := <-cp.apiDone; err != nil && !errors.Is(err, context.Canceled) {
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
