package serve_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cdnpurge serve test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(k)
	require.NoError(t, err)
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	return cert, key
}

// With --tls-cert and --tls-key serve speaks HTTPS only; purge --via
// https://... reaches every instance through it.
func TestTLS(t *testing.T) {
	f := startOwnFleet(t, 2, "", "")
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	p := startServe(t, filepath.Join(dir, "journal.db"), nil, append(f.Args(), "--tls-cert", cert, "--tls-key", key)...)
	require.Contains(t, p.out.String(), "tls=true")
	cmd := exec.Command(cli(t), "purge", "--via", "https://"+p.addr, "--url", "http://example.com/tls")
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+cert)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "purged 1 URL on 2/2 instances")
	require.Empty(t, f.missing(0, []string{"http://example.com/tls"}))

	// Plain HTTP to it, or a certificate the client does not trust: nothing sent.
	cmd = exec.Command(cli(t), "purge", "--via", "http://"+p.addr, "--url", "http://example.com/plain")
	out, _ = cmd.CombinedOutput()
	require.Equal(t, 2, cmd.ProcessState.ExitCode(), string(out))
	cmd = exec.Command(cli(t), "purge", "--via", "https://"+p.addr, "--url", "http://example.com/untrusted")
	out, _ = cmd.CombinedOutput()
	require.Equal(t, 2, cmd.ProcessState.ExitCode(), string(out))
	require.Contains(t, string(out), "certificate")
	require.Len(t, f.missing(0, []string{"http://example.com/plain", "http://example.com/untrusted"}), 2)
	require.Equal(t, 0, p.stop(t))
}
