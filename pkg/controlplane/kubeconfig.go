package controlplane

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// writeKubeconfig writes cfg as a kubeconfig that kubectl understands: the
// loopback CA, the server name the loopback certificate was issued for, and
// the admin bearer token.
func writeKubeconfig(path string, cfg *rest.Config) error {
	const name = "muster"
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.TLSClientConfig.CAData,
		TLSServerName:            cfg.TLSClientConfig.ServerName,
	}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: "default"}
	kc.CurrentContext = name
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// tokenFile is the static token file of a restartable control plane.
const tokenFile = "admin-token.csv"

// writeTokenFile writes a --token-auth-file with one fresh admin token
// (group system:masters) and returns the token.
func writeTokenFile(dir string) (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating admin token: %w", err)
	}
	token := hex.EncodeToString(b)
	line := fmt.Sprintf("%s,muster-admin,muster-admin,\"system:masters\"\n", token)
	if err := os.WriteFile(filepath.Join(dir, tokenFile), []byte(line), 0o600); err != nil {
		return "", fmt.Errorf("writing token file: %w", err)
	}
	return token, nil
}

// stableConfig is loopback with credentials that outlive apiserver
// restarts: the static token, and the serving certificate kube-apiserver
// generated under dir (it reuses it when it starts again).
func stableConfig(dir string, loopback *rest.Config, token string) (*rest.Config, error) {
	ca, err := os.ReadFile(filepath.Join(dir, "apiserver-certs", "apiserver.crt"))
	if err != nil {
		return nil, fmt.Errorf("reading the apiserver's serving certificate: %w", err)
	}
	cfg := rest.CopyConfig(loopback)
	cfg.BearerToken, cfg.BearerTokenFile = token, ""
	cfg.TLSClientConfig = rest.TLSClientConfig{CAData: ca}
	return cfg, nil
}
