// Package service holds what every Bullseye service binary shares: the
// common configuration (etcd, NATS, addresses, TLS, data directory), the
// plumbing a running service stands on (an etcd client, discovery and a
// mesh server) and the command-line entry point with its `health` subcommand.
package service

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// Config is the configuration every service shares. Services embed it in
// their own Config.
type Config struct {
	// Server configures the service's gRPC server: listen and advertised
	// addresses, metrics address, TLS, message size limits.
	Server mesh.ServerConfig
	// EtcdEndpoints are the etcd client URLs used for discovery and metadata.
	EtcdEndpoints []string
	// EtcdDialTimeout bounds the first connection to etcd.
	EtcdDialTimeout time.Duration
	// LeaseTTL is the lifetime of the service's discovery registration: a
	// service that dies without deregistering disappears after at most this.
	LeaseTTL time.Duration
	// NATSURL is the NATS server URL (JetStream enabled) holding events,
	// feature state and model artifacts.
	NATSURL string
	// DataDir is where the service may keep local files.
	DataDir string
	// StreamReplicas is the number of replicas of the JetStream streams,
	// key-value buckets and object stores the service creates when they are
	// missing: 1 on a single server, 3 on a NATS cluster.
	StreamReplicas int
	// Started, when set, is called once the service listens, with its name,
	// advertised address and metrics address (as bound: a port 0 is the
	// port chosen; "" when metrics are not served). `bullseye dev` uses it to
	// print the mesh.
	Started func(service, addr, metricsAddr string)
	// LogLevel is the least level logged (JSON on standard error) when
	// Server.Logger is nil: at info every gRPC call is logged, at warn only
	// calls that failed on the server's side and trouble.
	LogLevel slog.Level
}

// NewConfig returns the defaults for the named service: etcd and NATS on
// their usual local ports, a 10 s lease, plaintext only if the caller
// chooses it later.
func NewConfig(name string) Config {
	return Config{
		Server:          mesh.NewServerConfig(name),
		EtcdEndpoints:   []string{"http://127.0.0.1:2379"},
		EtcdDialTimeout: 5 * time.Second,
		LeaseTTL:        10 * time.Second,
		NATSURL:         "nats://127.0.0.1:4222",
		DataDir:         "data/" + name,
		StreamReplicas:  1,
	}
}

// RegisterFlags registers the shared flags on fs. Every flag can also be set
// from the environment as BULLSEYE_<FLAG> (see mesh.ApplyEnv).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Server.RegisterFlags(fs)
	fs.Func("etcd-endpoints", "comma-separated etcd client URLs (default "+strings.Join(c.EtcdEndpoints, ",")+")", func(s string) error {
		c.EtcdEndpoints = splitList(s)
		return nil
	})
	fs.DurationVar(&c.EtcdDialTimeout, "etcd-dial-timeout", c.EtcdDialTimeout, "how long to wait for the first etcd connection")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", c.LeaseTTL, "lifetime of the discovery registration lease")
	fs.StringVar(&c.NATSURL, "nats-url", c.NATSURL, "NATS server URL (JetStream enabled)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the service's local files")
	fs.TextVar(&c.LogLevel, "log-level", c.LogLevel, "least level logged: debug, info (every gRPC call), warn or error")
	fs.IntVar(&c.StreamReplicas, "stream-replicas", c.StreamReplicas, "replicas of the JetStream streams, buckets and object stores the service creates (3 on a NATS cluster)")
}

// Validate reports the first configuration mistake, naming the flag.
func (c *Config) Validate() error {
	var errs []error
	if len(c.EtcdEndpoints) == 0 {
		errs = append(errs, errors.New("--etcd-endpoints: at least one etcd URL is required"))
	}
	if c.LeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("--lease-ttl: %v is too short, use at least 1s", c.LeaseTTL))
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 {
		errs = append(errs, fmt.Errorf("--stream-replicas: %d, want 1 to 5", c.StreamReplicas))
	}
	if c.NATSURL == "" {
		errs = append(errs, errors.New("--nats-url: a NATS URL is required"))
	}
	return errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
