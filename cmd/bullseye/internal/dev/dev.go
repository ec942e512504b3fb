// Package dev runs the whole Bullseye mesh in one process for development
// and tests: an embedded etcd, an embedded NATS server with JetStream and
// the four services, each a separate gRPC server on its own port that finds
// the others only through etcd.
package dev

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/zap"

	"github.com/bullseye-ml/bullseye/pkg/embedded"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/pkg/service"
	"github.com/bullseye-ml/bullseye/services/feature"
	"github.com/bullseye-ml/bullseye/services/ingest"
	"github.com/bullseye-ml/bullseye/services/serving"
	"github.com/bullseye-ml/bullseye/services/training"
)

// Services lists the mesh's services in start order.
var Services = []string{ingest.Name, feature.Name, training.Name, serving.Name}

// Options configures a development mesh.
type Options struct {
	// DataDir holds etcd's and NATS's data; it is kept across restarts.
	DataDir string
	// Host is the address every server listens on and advertises.
	Host string
	// PortBase fixes the ports: etcd on 2379, NATS on 4222, and service i
	// (in Services order) on PortBase+1+i with metrics on PortBase+1001+i.
	// Zero picks free ports for everything; Endpoints tells which.
	PortBase int
	// EtcdEndpoints, when set, are used instead of an embedded etcd.
	EtcdEndpoints []string
	// NATSURL, when set, is used instead of an embedded NATS server.
	NATSURL string
	// LeaseTTL is each service's discovery lease; zero keeps the default.
	LeaseTTL time.Duration
	// Logger receives the services' logs; nil discards them.
	Logger *slog.Logger
	// SpanProcessor, when set, receives every service's spans (tests).
	// Each service has a tracer provider of its own, whose resource names
	// it as its binary does (bullseye-ingest, ...); without SpanProcessor
	// the providers export by OTLP when the OpenTelemetry environment asks
	// for it (mesh.TracingEnabled) and trace nothing otherwise. Close shuts
	// the providers down, and the processor with them.
	SpanProcessor sdktrace.SpanProcessor
	// HMACKeyFile holds the key ingest pseudonymises personal fields with
	// and the feature service checks the erasure list with; empty means a
	// development key generated once into DataDir/hmac.key.
	HMACKeyFile string
}

// Endpoint is one service of a running mesh.
type Endpoint struct {
	// Service is the service's name.
	Service string
	// Addr is its advertised gRPC address.
	Addr string
	// MetricsAddr is the address of its HTTP endpoint of Prometheus
	// metrics (/metrics).
	MetricsAddr string
}

// Mesh is a running development mesh.
type Mesh struct {
	// EtcdEndpoints are the etcd client URLs of the mesh.
	EtcdEndpoints []string
	// NATSURL is the mesh's NATS URL.
	NATSURL string

	mu        sync.Mutex
	endpoints map[string]Endpoint
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	errs      []error
	logger    *slog.Logger
	// tracing flushes and stops the services' tracer providers.
	tracing []func(context.Context) error
	etcd    *embedded.Etcd
	nats    *embedded.NATS
}

// Start brings the mesh up and returns once every service listens; use
// WaitServing to wait until each is registered and ready. Stop it with Close.
func Start(ctx context.Context, opts Options) (*Mesh, error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.DataDir == "" {
		return nil, errors.New("dev: a data directory is required")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.HMACKeyFile == "" {
		opts.HMACKeyFile = filepath.Join(opts.DataDir, "hmac.key")
		if err := ensureDevKey(opts.HMACKeyFile); err != nil {
			return nil, err
		}
	}
	m := &Mesh{endpoints: map[string]Endpoint{}, logger: logger}
	if len(opts.EtcdEndpoints) > 0 {
		m.EtcdEndpoints = opts.EtcdEndpoints
	} else {
		var eo []embedded.EtcdOption
		if opts.PortBase != 0 {
			eo = append(eo, embedded.WithEtcdClientPort(2379))
		}
		e, err := embedded.StartEtcd(ctx, filepath.Join(opts.DataDir, "etcd"), eo...)
		if err != nil {
			return nil, fmt.Errorf("starting embedded etcd: %w", err)
		}
		m.etcd = e
		m.EtcdEndpoints = e.Endpoints()
	}
	if opts.NATSURL != "" {
		m.NATSURL = opts.NATSURL
	} else {
		var no []embedded.NATSOption
		if opts.PortBase != 0 {
			no = append(no, embedded.WithNATSPort(4222))
		}
		n, err := embedded.StartNATS(filepath.Join(opts.DataDir, "nats"), no...)
		if err != nil {
			m.closeInfra()
			return nil, fmt.Errorf("starting embedded NATS: %w", err)
		}
		m.nats = n
		m.NATSURL = n.URL()
	}

	var traceOpts []mesh.TracerOption
	if opts.SpanProcessor != nil {
		traceOpts = append(traceOpts, mesh.WithSpanProcessor(opts.SpanProcessor))
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	started := make(chan Endpoint, 2*len(Services))
	for i, name := range Services {
		tp, shutdown, err := mesh.NewTracerProvider(ctx, service.ProgramName(name), traceOpts...)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("tracing %s: %w", name, err)
		}
		m.tracing = append(m.tracing, shutdown)
		common := service.NewConfig(name)
		common.EtcdEndpoints = m.EtcdEndpoints
		common.NATSURL = m.NATSURL
		common.DataDir = filepath.Join(opts.DataDir, name)
		common.Server.Logger = logger.With("service", name)
		common.Server.TracerProvider = tp
		common.Server.TLS = mesh.TLSConfig{Insecure: true}
		common.Server.ListenAddr = net.JoinHostPort(opts.Host, port(opts.PortBase, 1+i))
		common.Server.MetricsAddr = net.JoinHostPort(opts.Host, port(opts.PortBase, 1001+i))
		if opts.LeaseTTL > 0 {
			common.LeaseTTL = opts.LeaseTTL
		}
		common.Started = func(service, addr, metricsAddr string) { started <- Endpoint{service, addr, metricsAddr} }
		run, err := runner(name, common, opts)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				m.mu.Lock()
				m.errs = append(m.errs, fmt.Errorf("%s: %w", name, err))
				m.mu.Unlock()
				started <- Endpoint{Service: name} // unblock Start with a failure
			}
		}()
	}
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for len(m.Endpoints()) < len(Services) {
		select {
		case ep := <-started:
			if ep.Addr == "" {
				err := m.Close()
				return nil, fmt.Errorf("starting %s: %w", ep.Service, err)
			}
			m.mu.Lock()
			m.endpoints[ep.Service] = ep
			m.mu.Unlock()
		case <-deadline.C:
			m.Close()
			return nil, errors.New("dev: the services did not start within 30s")
		case <-ctx.Done():
			m.Close()
			return nil, ctx.Err()
		}
	}
	return m, nil
}

func port(base, offset int) string {
	if base == 0 {
		return "0"
	}
	return strconv.Itoa(base + offset)
}

func runner(name string, common service.Config, opts Options) (func(context.Context) error, error) {
	switch name {
	case ingest.Name:
		c := ingest.NewConfig()
		c.Config = common
		c.HMACKeyFile = opts.HMACKeyFile
		return func(ctx context.Context) error { return ingest.Run(ctx, c) }, nil
	case feature.Name:
		c := feature.NewConfig()
		c.Config = common
		c.HMACKeyFile = opts.HMACKeyFile
		return func(ctx context.Context) error { return feature.Run(ctx, c) }, nil
	case training.Name:
		c := training.NewConfig()
		c.Config = common
		return func(ctx context.Context) error { return training.Run(ctx, c) }, nil
	case serving.Name:
		c := serving.NewConfig()
		c.Config = common
		return func(ctx context.Context) error { return serving.Run(ctx, c) }, nil
	}
	return nil, fmt.Errorf("dev: unknown service %q", name)
}

// ensureDevKey writes a random development HMAC key to path unless one is
// there already, so pseudonyms stay stable across restarts of the mesh.
func ensureDevKey(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("generating a development HMAC key: %w", err)
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing the development HMAC key: %w", err)
	}
	return nil
}

// Endpoints returns the services started so far, in Services order.
func (m *Mesh) Endpoints() []Endpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Endpoint
	for _, name := range Services {
		if ep, ok := m.endpoints[name]; ok {
			out = append(out, ep)
		}
	}
	return out
}

// Addr returns the advertised address of the named service.
func (m *Mesh) Addr(service string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.endpoints[service].Addr
}

// WaitServing waits until every service is listed in discovery and answers
// SERVING on its overall health name, or ctx ends.
func (m *Mesh) WaitServing(ctx context.Context) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: m.EtcdEndpoints, DialTimeout: 5 * time.Second, Context: ctx, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("connecting to etcd: %w", err)
	}
	defer cli.Close()
	d := mesh.NewDiscovery(cli)
	for _, ep := range m.Endpoints() {
		for {
			err := m.serving(ctx, d, ep)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s at %s: %w", ep.Service, ep.Addr, errors.Join(ctx.Err(), err))
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func (m *Mesh) serving(ctx context.Context, d *mesh.Discovery, ep Endpoint) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	eps, err := d.Endpoints(ctx, ep.Service)
	if err != nil {
		return err
	}
	if !slices.Contains(eps, ep.Addr) {
		return fmt.Errorf("not yet registered (discovery lists %v)", eps)
	}
	return mesh.CheckHealth(ctx, ep.Addr, "", mesh.TLSConfig{Insecure: true})
}

// Close stops the services gracefully (each leaves discovery and finishes
// its in-flight calls), flushes their spans, then stops the embedded NATS
// and etcd servers. It returns the services' own errors, if any.
func (m *Mesh) Close() error {
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	for i, shutdown := range m.tracing {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := shutdown(ctx); err != nil {
			m.logger.Warn("flushing spans", "service", Services[i], "error", err)
		}
		cancel()
	}
	m.tracing = nil
	m.closeInfra()
	m.mu.Lock()
	defer m.mu.Unlock()
	return errors.Join(m.errs...)
}

func (m *Mesh) closeInfra() {
	if m.nats != nil {
		m.nats.Shutdown()
	}
	if m.etcd != nil {
		m.etcd.Close()
	}
}

// Describe renders the mesh's endpoints for people: one service a line,
// its gRPC address and its metrics URL.
func (m *Mesh) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-9s %s\n", "etcd", strings.Join(m.EtcdEndpoints, ","))
	fmt.Fprintf(&b, "%-9s %s\n", "nats", m.NATSURL)
	for _, ep := range m.Endpoints() {
		fmt.Fprintf(&b, "%-9s %-21s metrics http://%s/metrics\n", ep.Service, ep.Addr, ep.MetricsAddr)
	}
	return b.String()
}
