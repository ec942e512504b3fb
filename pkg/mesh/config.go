package mesh

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of NewServerConfig.
const (
	// DefaultListenAddr is where a server listens unless told otherwise: a free port of the
	// loopback interface, which is right for tests and `bullseye dev`.
	DefaultListenAddr = "127.0.0.1:0"
	// DefaultMaxMsgSize is the default limit, in bytes, of one received or sent message.
	DefaultMaxMsgSize = 4 << 20
	// DefaultShutdownTimeout bounds the graceful part of a shutdown.
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultSlowCall is the duration from which a successful call is logged at info.
	DefaultSlowCall = 250 * time.Millisecond
)

// ServerConfig configures a Server. Build it with NewServerConfig, which fills in the
// defaults, and adjust it by hand or with RegisterFlags.
type ServerConfig struct {
	// Service is the name the server registers under in discovery, such as "ingest". It is
	// also a health service name: NOT_SERVING until the server is ready.
	Service string
	// InstanceID names this instance in discovery. Empty picks a random one.
	InstanceID string
	// ListenAddr is the host:port the gRPC server listens on. Port 0 picks a free port.
	ListenAddr string
	// AdvertiseAddr is the address other services dial, registered in discovery. It must name
	// a specific host, never a wildcard such as 0.0.0.0. A host without a port, or port 0,
	// takes the listener's port. Empty advertises the listener's address when it is bound to a
	// specific IP, and is an error otherwise.
	AdvertiseAddr string
	// MetricsAddr is the host:port of the HTTP server that serves Prometheus metrics on
	// /metrics. Empty, the default, serves no metrics over HTTP (they are still collected in
	// Registry); port 0 picks a free port.
	MetricsAddr string
	// Profiling also serves Go's runtime profiles (net/http/pprof) under /debug/pprof/ on
	// MetricsAddr, for looking into a live process (go tool pprof
	// http://host:port/debug/pprof/profile). It needs MetricsAddr.
	Profiling bool
	// MaxRecvMsgSize and MaxSendMsgSize limit, in bytes, the size of one message.
	MaxRecvMsgSize int
	MaxSendMsgSize int
	// ShutdownTimeout bounds how long a graceful shutdown waits for in-flight calls before
	// closing the remaining connections.
	ShutdownTimeout time.Duration
	// TLS secures the server's connections. Its ServerName and client fields are used when the
	// server's process checks its own health (CheckHealth).
	TLS TLSConfig
	// Logger receives request logs and lifecycle events. Nil means slog.Default().
	Logger *slog.Logger
	// SlowCall is the duration from which a successful call is logged at info, marked slow;
	// quicker successes are logged at debug, failures always. 0 logs no success above debug.
	SlowCall time.Duration
	// TracerProvider records the server's spans. Nil means the global provider.
	TracerProvider trace.TracerProvider
	// MeterProvider records OpenTelemetry RPC metrics. Nil means the global provider.
	MeterProvider metric.MeterProvider
	// Registry collects the server's Prometheus metrics. Nil means a new registry for this
	// server. Several servers may share one: a collector already in it is reused.
	Registry *prometheus.Registry
}

// NewServerConfig returns the configuration of a server for service with the defaults: listen
// on DefaultListenAddr, advertise the listener's address, no metrics endpoint, messages up to
// DefaultMaxMsgSize, graceful shutdown bounded by DefaultShutdownTimeout, TLS required.
func NewServerConfig(service string) ServerConfig {
	return ServerConfig{
		Service:         service,
		ListenAddr:      DefaultListenAddr,
		MaxRecvMsgSize:  DefaultMaxMsgSize,
		MaxSendMsgSize:  DefaultMaxMsgSize,
		ShutdownTimeout: DefaultShutdownTimeout,
		SlowCall:        DefaultSlowCall,
	}
}

// RegisterFlags registers the server's command-line flags on fs, with the current values of c
// as defaults: --listen, --advertise, --metrics-listen, --pprof, --tls-cert, --tls-key, --tls-ca,
// --tls-server-name, --tls-client-auth, --insecure, --max-recv-bytes, --max-send-bytes and
// --shutdown-timeout and --slow-call.
func (c *ServerConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ListenAddr, "listen", c.ListenAddr, "host:port the gRPC server listens on (port 0 picks a free port)")
	fs.StringVar(&c.AdvertiseAddr, "advertise", c.AdvertiseAddr,
		"address other services dial, registered in etcd (host or host:port; never a wildcard such as 0.0.0.0); empty uses the listen address when it is a specific IP")
	fs.StringVar(&c.MetricsAddr, "metrics-listen", c.MetricsAddr, "host:port of the Prometheus /metrics HTTP endpoint; empty turns it off")
	fs.BoolVar(&c.Profiling, "pprof", c.Profiling, "also serve Go runtime profiles under /debug/pprof/ on --metrics-listen")
	fs.StringVar(&c.TLS.CertFile, "tls-cert", c.TLS.CertFile, "PEM certificate file of this server, also presented as client certificate")
	fs.StringVar(&c.TLS.KeyFile, "tls-key", c.TLS.KeyFile, "PEM private key file of --tls-cert")
	fs.StringVar(&c.TLS.CAFile, "tls-ca", c.TLS.CAFile, "PEM CA bundle that verifies peers' certificates")
	fs.StringVar(&c.TLS.ServerName, "tls-server-name", c.TLS.ServerName, "name expected in servers' certificates; empty verifies each dialed service as <service>"+ServerNameSuffix)
	fs.BoolVar(&c.TLS.RequireClientCert, "tls-client-auth", c.TLS.RequireClientCert, "require client certificates signed by --tls-ca (mutual TLS)")
	fs.BoolVar(&c.TLS.Insecure, "insecure", c.TLS.Insecure, "serve and dial plaintext without TLS (development only)")
	fs.IntVar(&c.MaxRecvMsgSize, "max-recv-bytes", c.MaxRecvMsgSize, "largest message the server accepts, in bytes")
	fs.IntVar(&c.MaxSendMsgSize, "max-send-bytes", c.MaxSendMsgSize, "largest message the server sends, in bytes")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long a graceful shutdown waits for in-flight calls")
	fs.DurationVar(&c.SlowCall, "slow-call", c.SlowCall, "a successful call this long or longer is logged at info; quicker ones at debug only (0: never above debug)")
}

// Validate reports what is wrong with c, if anything.
func (c *ServerConfig) Validate() error {
	var errs []error
	if c.Service == "" {
		errs = append(errs, errors.New("no service name"))
	} else if strings.ContainsAny(c.Service, "/ \t\n") {
		errs = append(errs, fmt.Errorf("service name %q contains a slash or a space", c.Service))
	}
	if strings.Contains(c.InstanceID, "/") {
		errs = append(errs, fmt.Errorf("instance id %q contains a slash", c.InstanceID))
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		errs = append(errs, fmt.Errorf("listen address %q: %w", c.ListenAddr, err))
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitAdvertise(c.AdvertiseAddr); err != nil {
			errs = append(errs, err)
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("metrics address %q: %w", c.MetricsAddr, err))
		}
	} else if c.Profiling {
		errs = append(errs, errors.New("profiling (--pprof) is served on the metrics address: set --metrics-listen too"))
	}
	if c.MaxRecvMsgSize <= 0 {
		errs = append(errs, fmt.Errorf("max receive message size %d is not positive", c.MaxRecvMsgSize))
	}
	if c.MaxSendMsgSize <= 0 {
		errs = append(errs, fmt.Errorf("max send message size %d is not positive", c.MaxSendMsgSize))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout %s is not positive", c.ShutdownTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid configuration of server %q: %w", c.Service, err)
	}
	return nil
}

// splitAdvertise splits an advertised address into host and port, accepting a bare host (port
// ""). It refuses wildcard and empty hosts.
func splitAdvertise(addr string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		// A bare host or IP, possibly an IPv6 literal in brackets.
		host, port = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"), ""
		if strings.Contains(host, "[") || strings.Contains(host, "]") {
			return "", "", fmt.Errorf("advertise address %q: %w", addr, err)
		}
	}
	if isWildcardHost(host) {
		return "", "", fmt.Errorf("advertise address %q is a wildcard: set --advertise to the address other services can dial", addr)
	}
	return host, port, nil
}

// isWildcardHost reports whether host names no specific interface: empty, 0.0.0.0 or ::.
func isWildcardHost(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// advertiseAddr returns the address to register for a server whose configured advertised
// address is configured and whose listener is bound to listenAddr.
func advertiseAddr(configured string, listenAddr net.Addr) (string, error) {
	tcp, ok := listenAddr.(*net.TCPAddr)
	if !ok {
		return "", fmt.Errorf("listener address %v is not TCP", listenAddr)
	}
	listenPort := fmt.Sprint(tcp.Port)
	if configured == "" {
		if tcp.IP == nil || tcp.IP.IsUnspecified() {
			return "", fmt.Errorf("listening on all interfaces (%s): set --advertise to the address other services can dial", listenAddr)
		}
		return net.JoinHostPort(tcp.IP.String(), listenPort), nil
	}
	host, port, err := splitAdvertise(configured)
	if err != nil {
		return "", err
	}
	if port == "" || port == "0" {
		port = listenPort
	}
	return net.JoinHostPort(host, port), nil
}

// ApplyEnv sets every flag of fs that was not given on the command line from the environment
// variable named after it: prefix, an underscore, and the flag's name in upper case with dashes
// and dots turned into underscores. With prefix "BULLSEYE", --etcd-endpoints is read from
// BULLSEYE_ETCD_ENDPOINTS. Call it after fs.Parse. It reports every variable whose value the
// flag rejects.
func ApplyEnv(fs *flag.FlagSet, prefix string) error {
	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name := EnvName(prefix, f.Name)
		value, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, value); err != nil {
			errs = append(errs, fmt.Errorf("environment variable %s=%q for --%s: %w", name, value, f.Name, err))
		}
	})
	return errors.Join(errs...)
}

// EnvName returns the environment variable ApplyEnv reads for the flag named flagName.
func EnvName(prefix, flagName string) string {
	name := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
	prefix = strings.TrimSuffix(strings.ToUpper(prefix), "_")
	if prefix == "" {
		return name
	}
	return prefix + "_" + name
}
