package mesh

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// ServerNameSuffix is appended to a service's name to form the name its certificate carries as a
// subject alternative name, such as "ingest.bullseye".
const ServerNameSuffix = ".bullseye"

// ServerNameFor returns the name that the certificate of the given service carries as a subject
// alternative name, such as "ingest.bullseye" for "ingest". Discovery.Dial verifies servers
// against it when the TLSConfig names no server.
func ServerNameFor(service string) string {
	return service + ServerNameSuffix
}

// TLSConfig says how a server or client secures its gRPC connections. The zero value is neither
// secure nor plaintext: it asks for certificate files, so that plaintext is always an explicit
// choice (Insecure).
type TLSConfig struct {
	// CertFile and KeyFile are the PEM certificate and private key this side presents: the
	// server's certificate, or the client's for mutual TLS.
	CertFile, KeyFile string
	// CAFile is the PEM bundle of certificate authorities this side trusts: a client verifies
	// servers against it, a server verifies client certificates against it.
	CAFile string
	// ServerName is the name a client expects in the server's certificate; servers found
	// through discovery are verified against it. Leave it empty when one TLSConfig dials
	// several services: Discovery.Dial then expects ServerNameFor(service) of each, and
	// DialAddr the address's host.
	ServerName string
	// RequireClientCert makes a server demand a client certificate signed by CAFile (mutual
	// TLS).
	RequireClientCert bool
	// Insecure selects plaintext, without any TLS. It is meant for development only.
	Insecure bool
}

// ErrNoCertificates is returned when TLS is on (Insecure is false) but no certificate files
// are given. Its text tells the operator what to pass.
var ErrNoCertificates = errors.New("TLS is on but no certificate files are given: " +
	"pass --tls-cert and --tls-key (and --tls-ca), or choose plaintext explicitly with --insecure")

// ServerCredentials returns the transport credentials a gRPC server uses: plaintext when
// Insecure is set, else TLS with CertFile and KeyFile, verifying client certificates against
// CAFile when RequireClientCert is set (or when a client offers one and CAFile is given).
func (c TLSConfig) ServerCredentials() (credentials.TransportCredentials, error) {
	if c.Insecure {
		return insecure.NewCredentials(), nil
	}
	if c.CertFile == "" && c.KeyFile == "" {
		return nil, ErrNoCertificates
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("TLS needs both a certificate (--tls-cert) and its key (--tls-key)")
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading server certificate %s and key %s: %w", c.CertFile, c.KeyFile, err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		ClientAuth:   tls.NoClientCert,
	}
	switch {
	case c.RequireClientCert && c.CAFile == "":
		return nil, errors.New("requiring client certificates (--tls-client-auth) needs the CA that signs them (--tls-ca)")
	case c.CAFile != "":
		pool, err := loadCertPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if c.RequireClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return credentials.NewTLS(cfg), nil
}

// ClientCredentials returns the transport credentials a gRPC client uses: plaintext when
// Insecure is set, else TLS that verifies the server against CAFile and ServerName, presenting
// CertFile and KeyFile as the client certificate when they are given (mutual TLS).
func (c TLSConfig) ClientCredentials() (credentials.TransportCredentials, error) {
	if c.Insecure {
		return insecure.NewCredentials(), nil
	}
	if c.CAFile == "" && c.CertFile == "" && c.KeyFile == "" {
		return nil, ErrNoCertificates
	}
	if c.CAFile == "" {
		return nil, errors.New("TLS needs the CA that signs the servers' certificates (--tls-ca)")
	}
	pool, err := loadCertPool(c.CAFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		RootCAs:    pool,
		ServerName: c.ServerName,
		MinVersion: tls.VersionTLS12,
	}
	switch {
	case c.CertFile != "" && c.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate %s and key %s: %w", c.CertFile, c.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case c.CertFile != "" || c.KeyFile != "":
		return nil, errors.New("a client certificate needs both --tls-cert and --tls-key")
	}
	return credentials.NewTLS(cfg), nil
}

// ForService returns a copy of c that verifies the server as service: its ServerName is
// ServerNameFor(service) unless c already names a server. A binary's health subcommand passes
// cfg.TLS.ForService(cfg.Service) to CheckHealth, since its certificate carries the service name
// rather than the address it is checked at.
func (c TLSConfig) ForService(service string) TLSConfig {
	if c.ServerName == "" {
		c.ServerName = ServerNameFor(service)
	}
	return c
}

func loadCertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("reading CA bundle %s: no PEM certificate found", file)
	}
	return pool, nil
}
