package controlplane

import (
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// startEtcd runs a single-member etcd in dir on loopback ports chosen by the
// kernel (port 0), so parallel control planes never collide. It is a
// throwaway store: fsync is off, which makes writes an order of magnitude
// cheaper and loses nothing that outlives the process anyway.
func startEtcd(dir string) (*embed.Etcd, string, error) {
	cfg := embed.NewConfig()
	cfg.Name = "muster"
	cfg.Dir = filepath.Join(dir, "etcd")
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
	loopback := func() url.URL { return url.URL{Scheme: "http", Host: "127.0.0.1:0"} }
	cfg.ListenClientUrls = []url.URL{loopback()}
	cfg.AdvertiseClientUrls = []url.URL{loopback()}
	cfg.ListenPeerUrls = []url.URL{loopback()}
	cfg.AdvertisePeerUrls = []url.URL{loopback()}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("starting etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, "", fmt.Errorf("etcd failed while starting: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, "", fmt.Errorf("etcd did not become ready within 60s (log: %s)", cfg.LogOutputs[0])
	}
	if len(e.Clients) == 0 {
		e.Close()
		return nil, "", fmt.Errorf("etcd started without a client listener")
	}
	return e, "http://" + e.Clients[0].Addr().String(), nil
}
