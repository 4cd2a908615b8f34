package ecosystem

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/test/framework"
)

// servingCert writes a self-signed serving certificate for 127.0.0.1 into
// dir as tls.crt and tls.key (the names controller-runtime's webhook
// server reads) and returns the certificate in PEM, the CA bundle a
// webhook configuration names. In a cluster cert-manager or the operator's
// own rotator makes it; here nobody else would.
func servingCert(t *testing.T, dir string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "muster-ecosystem-webhook"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certPEM
}

// fixedCertDir is where the training-operator (pkg/cert/cert.go) and
// Trainer (pkg/util/cert/cert.go) read their webhook server's certificate,
// fixed in their code: in a cluster, their Secret mounted by the kubelet.
// Their cert-controller starts the operator's controllers only once
// tls.crt is there.
const fixedCertDir = "/tmp/k8s-webhook-server/serving-certs"

// fixedCertDirMu is held by the test whose operator uses fixedCertDir,
// from before the operator starts until it has stopped.
var fixedCertDirMu sync.Mutex

// holdFixedCertDir gives the test fixedCertDir until it ends (call it
// before starting the operator: the release then runs after the operator
// has stopped). Within this test binary a mutex, across processes on this
// machine (another `go test` of this package) an flock on a file beside the
// directory: no two operators write or read their pairs there at once. A
// pair an earlier, stopped operator left stays (a run of an older copy of
// this package may be using it): the next operator may start on it before
// its own is mounted, which is harmless, since any valid pair serves (no
// apiserver calls these webhooks here), and shortens its time to ready.
func holdFixedCertDir(t *testing.T) {
	t.Helper()
	fixedCertDirMu.Lock()
	parent := filepath.Dir(fixedCertDir)
	require.NoError(t, os.MkdirAll(fixedCertDir, 0o755))
	f, err := os.OpenFile(filepath.Join(parent, ".muster-ecosystem.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX), "locking %s", f.Name())
	if waited := time.Since(start); waited > time.Second {
		t.Logf("waited %s for %s (another run held it)", waited.Round(time.Millisecond), fixedCertDir)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
		fixedCertDirMu.Unlock()
	})
}

// mountSecret waits until the operator has filled its Secret with a
// serving certificate and writes tls.crt and tls.key into dir, as the
// kubelet mounts a Secret. Each file is written whole and renamed into
// place: other runs on this machine may share the fixed directory, and any
// valid pair serves (no apiserver calls these webhooks here).
func mountSecret(t *testing.T, op *operator, ns, name, dir string) {
	t.Helper()
	var data map[string][]byte
	framework.WaitFor(t, time.Minute, "the operator to fill Secret "+ns+"/"+name, func(ctx context.Context) (bool, error) {
		op.requireRunning(t)
		s, err := framework.CP.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		data = s.Data
		return len(data[v1.TLSCertKey]) > 0 && len(data[v1.TLSPrivateKeyKey]) > 0, nil
	})
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, key := range []string{v1.TLSPrivateKeyKey, v1.TLSCertKey} { // the certificate last: its presence is what the operator waits for
		tmp, err := os.CreateTemp(dir, "."+key+"-*")
		require.NoError(t, err)
		_, err = tmp.Write(data[key])
		require.NoError(t, err)
		require.NoError(t, tmp.Close())
		require.NoError(t, os.Rename(tmp.Name(), filepath.Join(dir, key)))
	}
}
