package mesh_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// testPKI is a certificate authority with a server certificate for "ingest.bullseye" and a
// client certificate, written as PEM files in a temporary directory.
type testPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey, otherCAFile string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, caCert := newCA(t, "bullseye test CA")
	_, otherCA := newCA(t, "another CA")
	p := testPKI{
		caFile:      filepath.Join(dir, "ca.pem"),
		otherCAFile: filepath.Join(dir, "other-ca.pem"),
		serverCert:  filepath.Join(dir, "server.pem"),
		serverKey:   filepath.Join(dir, "server-key.pem"),
		clientCert:  filepath.Join(dir, "client.pem"),
		clientKey:   filepath.Join(dir, "client-key.pem"),
	}
	writePEM(t, p.caFile, "CERTIFICATE", caCert.Raw)
	writePEM(t, p.otherCAFile, "CERTIFICATE", otherCA.Raw)
	newLeaf(t, caKey, caCert, "ingest.bullseye", x509.ExtKeyUsageServerAuth, p.serverCert, p.serverKey)
	newLeaf(t, caKey, caCert, "feature.bullseye", x509.ExtKeyUsageClientAuth, p.clientCert, p.clientKey)
	return p
}

func newCA(t *testing.T, name string) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

func newLeaf(t *testing.T, caKey *ecdsa.PrivateKey, ca *x509.Certificate, dnsName string, usage x509.ExtKeyUsage, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: dnsName},
		DNSNames:     []string{dnsName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTLSServerAndClient(t *testing.T) {
	pki := newTestPKI(t)
	tests := []struct {
		name          string
		requireClient bool
		client        mesh.TLSConfig
		wantOK        bool
	}{
		{
			name:   "right server name",
			client: mesh.TLSConfig{CAFile: pki.caFile, ServerName: "ingest.bullseye"},
			wantOK: true,
		},
		{
			name:   "wrong server name",
			client: mesh.TLSConfig{CAFile: pki.caFile, ServerName: "feature.bullseye"},
		},
		{
			name:   "untrusted CA",
			client: mesh.TLSConfig{CAFile: pki.otherCAFile, ServerName: "ingest.bullseye"},
		},
		{
			name:   "plaintext client",
			client: mesh.TLSConfig{Insecure: true},
		},
		{
			name:          "mutual TLS with client certificate",
			requireClient: true,
			client: mesh.TLSConfig{CAFile: pki.caFile, ServerName: "ingest.bullseye",
				CertFile: pki.clientCert, KeyFile: pki.clientKey},
			wantOK: true,
		},
		{
			name:          "mutual TLS without client certificate",
			requireClient: true,
			client:        mesh.TLSConfig{CAFile: pki.caFile, ServerName: "ingest.bullseye"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig("ingest")
			cfg.TLS = mesh.TLSConfig{
				CertFile: pki.serverCert, KeyFile: pki.serverKey, CAFile: pki.caFile,
				RequireClientCert: tt.requireClient,
			}
			s := serve(t, cfg, nil, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := mesh.CheckHealth(ctx, s.Addr(), mesh.LivenessService, tt.client)
			if got := err == nil; got != tt.wantOK {
				t.Fatalf("CheckHealth over TLS: err = %v, want success %v", err, tt.wantOK)
			}
		})
	}
}

func TestTLSConfigErrors(t *testing.T) {
	pki := newTestPKI(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		name       string
		cfg        mesh.TLSConfig
		serverErr  bool
		clientErr  bool
		wantNoCert bool
	}{
		{name: "plaintext", cfg: mesh.TLSConfig{Insecure: true}},
		{name: "nothing given", cfg: mesh.TLSConfig{}, serverErr: true, clientErr: true, wantNoCert: true},
		{name: "server cert without key", cfg: mesh.TLSConfig{CertFile: pki.serverCert, CAFile: pki.caFile}, serverErr: true, clientErr: true},
		{name: "client auth without CA", cfg: mesh.TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey, RequireClientCert: true}, serverErr: true, clientErr: true},
		{name: "missing CA file", cfg: mesh.TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey, CAFile: missing}, serverErr: true, clientErr: true},
		{name: "key is not a CA", cfg: mesh.TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey, CAFile: pki.serverKey}, serverErr: true, clientErr: true},
		{name: "full", cfg: mesh.TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey, CAFile: pki.caFile, RequireClientCert: true}},
		{name: "client with CA only", cfg: mesh.TLSConfig{CAFile: pki.caFile}, serverErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.ServerCredentials()
			if (err != nil) != tt.serverErr {
				t.Errorf("ServerCredentials() err = %v, want error %v", err, tt.serverErr)
			}
			if tt.wantNoCert && !errors.Is(err, mesh.ErrNoCertificates) {
				t.Errorf("ServerCredentials() err = %v, want ErrNoCertificates", err)
			}
			_, err = tt.cfg.ClientCredentials()
			if (err != nil) != tt.clientErr {
				t.Errorf("ClientCredentials() err = %v, want error %v", err, tt.clientErr)
			}
			if tt.wantNoCert && !errors.Is(err, mesh.ErrNoCertificates) {
				t.Errorf("ClientCredentials() err = %v, want ErrNoCertificates", err)
			}
		})
	}
}

func TestNewServerRefusesMissingTLS(t *testing.T) {
	cfg := mesh.NewServerConfig("ingest")
	cfg.Logger = quietLogger()
	s, err := mesh.NewServer(cfg)
	if err == nil {
		s.Stop()
		t.Fatal("NewServer without TLS files or --insecure succeeded, want an error")
	}
	if !errors.Is(err, mesh.ErrNoCertificates) {
		t.Fatalf("NewServer err = %v, want ErrNoCertificates", err)
	}
}

func TestDiscoveryDialVerifiesServerName(t *testing.T) {
	pki := newTestPKI(t)
	d := newDiscovery(embeddedtest.Etcd(t))
	cfg := testConfig("ingest")
	cfg.TLS = mesh.TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey}
	s := serve(t, cfg, d, nil)
	s.SetReady(true)

	tests := []struct {
		name   string
		tls    mesh.TLSConfig
		wantOK bool
	}{
		{name: "default name of the service", tls: mesh.TLSConfig{CAFile: pki.caFile}, wantOK: true},
		{name: "explicit right name", tls: mesh.TLSConfig{CAFile: pki.caFile, ServerName: "ingest.bullseye"}, wantOK: true},
		{name: "wrong name", tls: mesh.TLSConfig{CAFile: pki.caFile, ServerName: "feature.bullseye"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := d.Dial(context.Background(), "ingest", mesh.WithTLS(tt.tls))
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer conn.Close()
			// The wrong name never gets a healthy connection: bound its wait.
			timeout := 5 * time.Second
			if !tt.wantOK {
				timeout = 500 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			_, err = sleepCall(ctx, conn, 0, grpc.WaitForReady(true))
			if got := err == nil; got != tt.wantOK {
				t.Fatalf("call over TLS: err = %v, want success %v", err, tt.wantOK)
			}
		})
	}
}

func TestTLSConfigForService(t *testing.T) {
	tests := []struct {
		cfg  mesh.TLSConfig
		want string
	}{
		{cfg: mesh.TLSConfig{}, want: "ingest.bullseye"},
		{cfg: mesh.TLSConfig{ServerName: "ingest.prod.example"}, want: "ingest.prod.example"},
	}
	for _, tt := range tests {
		if got := tt.cfg.ForService("ingest").ServerName; got != tt.want {
			t.Errorf("ForService(%q) of %+v: ServerName = %q, want %q", "ingest", tt.cfg, got, tt.want)
		}
	}
}
