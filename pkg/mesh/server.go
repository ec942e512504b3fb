package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	// The health package also links in client-side health checking, which Discovery.Dial's
	// service config relies on.
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
)

// LivenessService is the health service name that is SERVING for as long as the process runs
// and serves, whatever its readiness: for liveness probes.
const LivenessService = "liveness"

// Keepalive settings of every server. Clients may ping at most every keepaliveMinTime, also
// without active calls; the server pings idle connections every keepaliveTime and drops those
// that do not answer within keepaliveTimeout.
const (
	keepaliveMinTime = 10 * time.Second
	keepaliveTime    = 30 * time.Second
	keepaliveTimeout = 10 * time.Second
)

// metricsShutdownTimeout bounds the graceful stop of the metrics HTTP server.
const metricsShutdownTimeout = 2 * time.Second

// Server is a gRPC server with the mesh's plumbing: health (NOT_SERVING until SetReady, plus
// LivenessService), reflection, OpenTelemetry tracing, panic recovery, request logs, Prometheus
// metrics, keepalive enforcement and message size limits; registration in discovery while it
// serves; and the graceful shutdown sequence.
type Server struct {
	cfg        ServerConfig
	logger     *slog.Logger
	grpc       *grpc.Server
	health     *health.Server
	registry   *prometheus.Registry
	metrics    *grpcprom.ServerMetrics
	lis        net.Listener
	addr       string
	instanceID string
	metricsLis net.Listener // nil when metrics are not served over HTTP
	metricsSrv *http.Server

	mu          sync.Mutex
	ready       bool
	served      bool          // Serve has been called
	stopping    bool          // a shutdown, Stop or Kill has begun
	killed      bool          // the stop under way is a Kill
	reg         *Registration // the current registration, if any
	metricsDone chan struct{} // closed when the metrics HTTP server returns; nil if never started
	draining    chan struct{} // closed when a shutdown, Stop or Kill begins
	finished    chan struct{} // closed when the shutdown, Stop or Kill under way is complete
}

// NewServer validates cfg, listens on cfg.ListenAddr (so Addr is known at once) and builds the
// gRPC server. opts are added after the server's own options. Register services on GRPC, then
// call Serve. A Server that is never served is released with Stop.
func NewServer(cfg ServerConfig, opts ...grpc.ServerOption) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	creds, err := cfg.TLS.ServerCredentials()
	if err != nil {
		return nil, fmt.Errorf("configuring TLS of server %q: %w", cfg.Service, err)
	}
	base := cfg.Logger
	if base == nil {
		base = slog.Default()
	}
	logger := slog.New(NewTraceHandler(base.Handler())).With(slog.String("service", cfg.Service))

	registry := cfg.Registry
	if registry == nil {
		registry = prometheus.NewRegistry()
	}
	metrics, err := registerMetrics(registry)
	if err != nil {
		return nil, fmt.Errorf("registering metrics of server %q: %w", cfg.Service, err)
	}

	instanceID := cfg.InstanceID
	if instanceID == "" {
		instanceID = newInstanceID()
	}

	lis, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("listening for %s: %w", cfg.Service, err)
	}
	addr, err := advertiseAddr(cfg.AdvertiseAddr, lis.Addr())
	if err != nil {
		lis.Close()
		return nil, fmt.Errorf("choosing the advertised address of %s: %w", cfg.Service, err)
	}
	var metricsLis net.Listener
	var metricsSrv *http.Server
	if cfg.MetricsAddr != "" {
		metricsLis, err = net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			lis.Close()
			return nil, fmt.Errorf("listening for the metrics of %s: %w", cfg.Service, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{EnableOpenMetrics: true}))
		if cfg.Profiling {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		metricsSrv = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
	}

	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus(cfg.Service, healthpb.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus(LivenessService, healthpb.HealthCheckResponse_SERVING)

	otelOpts := []otelgrpc.Option{
		otelgrpc.WithPropagators(Propagator()),
		otelgrpc.WithFilter(filters.Not(filters.ServicePrefix("grpc.reflection."))),
	}
	if cfg.TracerProvider != nil {
		otelOpts = append(otelOpts, otelgrpc.WithTracerProvider(cfg.TracerProvider))
	}
	if cfg.MeterProvider != nil {
		otelOpts = append(otelOpts, otelgrpc.WithMeterProvider(cfg.MeterProvider))
	}
	exemplar := grpcprom.WithExemplarFromContext(traceExemplar)
	serverOpts := []grpc.ServerOption{
		grpc.Creds(creds),
		grpc.ForceServerCodecV2(newServerCodec()),
		grpc.StatsHandler(healthTraceFilter{inner: otelgrpc.NewServerHandler(otelOpts...), server: true}),
		// Outermost first: metrics count what the caller sees, the log records it with the
		// trace ids, and recovery turns a panic into codes.Internal before either.
		grpc.ChainUnaryInterceptor(metrics.UnaryServerInterceptor(exemplar), logUnary(logger), rejectUndecodable, recoverUnary(logger)),
		grpc.ChainStreamInterceptor(metrics.StreamServerInterceptor(exemplar), logStream(logger), rejectUndecodableStream, recoverStream(logger)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgSize),
		grpc.MaxSendMsgSize(cfg.MaxSendMsgSize),
	}
	gs := grpc.NewServer(append(serverOpts, opts...)...)
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)

	return &Server{
		cfg:        cfg,
		logger:     logger,
		grpc:       gs,
		health:     hs,
		registry:   registry,
		metrics:    metrics,
		lis:        lis,
		addr:       addr,
		instanceID: instanceID,
		metricsLis: metricsLis,
		metricsSrv: metricsSrv,
		draining:   make(chan struct{}),
		finished:   make(chan struct{}),
	}, nil
}

// registerMetrics registers the gRPC server metrics and the Go and process collectors in
// registry, reusing those already there (servers sharing a registry).
func registerMetrics(registry *prometheus.Registry) (*grpcprom.ServerMetrics, error) {
	metrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	metrics, err := registerOrReuse(registry, metrics)
	if err != nil {
		return nil, err
	}
	if _, err := registerOrReuse(registry, collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if _, err := registerOrReuse(registry, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	return metrics, nil
}

// registerOrReuse registers c in registry, or returns the equal collector already registered.
func registerOrReuse[C prometheus.Collector](registry *prometheus.Registry, c C) (C, error) {
	err := registry.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// traceExemplar labels latency observations with the trace id of the call, when it is sampled.
func traceExemplar(ctx context.Context) prometheus.Labels {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsSampled() {
		return nil
	}
	return prometheus.Labels{"trace_id": sc.TraceID().String()}
}

// GRPC returns the gRPC server, to register services on before Serve.
func (s *Server) GRPC() *grpc.Server {
	return s.grpc
}

// Addr returns the advertised address: the one registered in discovery.
func (s *Server) Addr() string {
	return s.addr
}

// ListenAddr returns the address the server listens on.
func (s *Server) ListenAddr() string {
	return s.lis.Addr().String()
}

// MetricsAddr returns the address of the Prometheus /metrics endpoint, or "" when metrics are
// not served over HTTP.
func (s *Server) MetricsAddr() string {
	if s.metricsLis == nil {
		return ""
	}
	return s.metricsLis.Addr().String()
}

// InstanceID returns the name of this instance in discovery.
func (s *Server) InstanceID() string {
	return s.instanceID
}

// Registry returns the Prometheus registry of the server, for services to add their metrics.
func (s *Server) Registry() *prometheus.Registry {
	return s.registry
}

// Health returns the health server, for services that report more health service names.
func (s *Server) Health() *health.Server {
	return s.health
}

// Logger returns the server's logger, which adds trace_id and span_id to records logged with a
// context that carries a span.
func (s *Server) Logger() *slog.Logger {
	return s.logger
}

// SetReady sets the readiness of the server: the overall health ("" service), the service's
// name and each registered gRPC service become SERVING or NOT_SERVING. Discovery.Dial only sends
// calls to ready instances. After a shutdown has begun, SetReady does nothing.
func (s *Server) SetReady(ready bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = ready
	s.applyReadinessLocked()
}

func (s *Server) applyReadinessLocked() {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if s.ready {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(s.cfg.Service, st)
	for name := range s.grpc.GetServiceInfo() {
		if name == healthpb.Health_ServiceDesc.ServiceName || isReflectionService(name) {
			continue
		}
		s.health.SetServingStatus(name, st)
	}
}

func isReflectionService(name string) bool {
	return name == "grpc.reflection.v1.ServerReflection" || name == "grpc.reflection.v1alpha.ServerReflection"
}

// Serve serves gRPC (and metrics over HTTP) until ctx is done, registered in d when d is not
// nil, then shuts down in order: health NOT_SERVING, registration removed, graceful stop
// bounded by ShutdownTimeout (then a hard stop), metrics server closed. In-flight calls finish.
// It returns nil after such a shutdown, or after Stop or Kill, and an error when registering or
// serving fails.
func (s *Server) Serve(ctx context.Context, d *Discovery) error {
	serveErr := make(chan error, 1)
	s.mu.Lock()
	switch {
	case s.served:
		s.mu.Unlock()
		return fmt.Errorf("serving %s: Serve was already called", s.cfg.Service)
	case s.stopping:
		s.mu.Unlock()
		return fmt.Errorf("serving %s: %w", s.cfg.Service, grpc.ErrServerStopped)
	}
	s.served = true
	s.metrics.InitializeMetrics(s.grpc)
	s.applyReadinessLocked()
	if s.metricsSrv != nil {
		s.metricsDone = make(chan struct{})
		go s.serveMetrics(s.metricsDone)
	}
	go func() { serveErr <- s.grpc.Serve(s.lis) }()
	s.mu.Unlock()

	s.logger.Info("serving",
		slog.String("addr", s.addr),
		slog.String("listen", s.ListenAddr()),
		slog.String("metrics", s.MetricsAddr()),
		slog.String("instance", s.instanceID))

	if d != nil {
		reg, err := d.Register(ctx, s.cfg.Service, s.addr, WithInstanceID(s.instanceID))
		if err != nil && ctx.Err() != nil {
			// Asked to stop while registering: an ordinary shutdown.
			s.shutdown()
			<-serveErr
			return nil
		}
		if err != nil {
			s.Stop()
			<-serveErr
			return fmt.Errorf("serving %s: %w", s.cfg.Service, err)
		}
		s.adoptRegistration(reg)
	}

	select {
	case <-ctx.Done():
		s.shutdown()
		<-serveErr
		return nil
	case err := <-serveErr:
		s.mu.Lock()
		deliberate := s.stopping
		s.mu.Unlock()
		if deliberate {
			<-s.finished
			return nil
		}
		s.shutdown()
		return fmt.Errorf("serving %s on %s: %w", s.cfg.Service, s.ListenAddr(), err)
	}
}

// adoptRegistration keeps reg for the shutdown, or ends it at once when a stop has begun while
// it was being made.
func (s *Server) adoptRegistration(reg *Registration) {
	s.mu.Lock()
	if !s.stopping {
		s.reg = reg
		s.mu.Unlock()
		return
	}
	killed := s.killed
	s.mu.Unlock()
	if killed {
		reg.Abandon()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := reg.Close(ctx); err != nil {
		s.logger.Warn("deregistering", slog.Any("error", err))
	}
}

func (s *Server) serveMetrics(done chan struct{}) {
	defer close(done)
	if err := s.metricsSrv.Serve(s.metricsLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.logger.Error("serving metrics", slog.String("addr", s.MetricsAddr()), slog.Any("error", err))
	}
}

// begin claims the stop of the server for the caller, handing it the registration to end, or
// returns ok false when another stop has begun already.
func (s *Server) begin(kill bool) (reg *Registration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return nil, false
	}
	s.stopping, s.killed = true, kill
	close(s.draining)
	reg, s.reg = s.reg, nil
	return reg, true
}

// Draining returns a channel that is closed when the server begins to shut down (or Stop or
// Kill is called). Handlers of long-lived streams, such as watches, should end their stream when
// it closes: the graceful stop waits for every call, up to ShutdownTimeout, before cutting the
// remaining ones.
func (s *Server) Draining() <-chan struct{} {
	return s.draining
}

// shutdown runs the graceful shutdown sequence, or waits for a stop already under way.
func (s *Server) shutdown() {
	reg, ok := s.begin(false)
	if !ok {
		<-s.finished
		return
	}
	defer close(s.finished)
	deadline := time.Now().Add(s.cfg.ShutdownTimeout)
	s.logger.Info("shutting down", slog.Duration("timeout", s.cfg.ShutdownTimeout))

	// Clients with health checking stop sending new calls here.
	s.health.Shutdown()
	if reg != nil {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		if err := reg.Close(ctx); err != nil {
			s.logger.Warn("deregistering", slog.Any("error", err))
		}
		cancel()
	}

	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		s.logger.Warn("graceful stop timed out; closing the remaining connections",
			slog.Duration("timeout", s.cfg.ShutdownTimeout))
		s.grpc.Stop()
		<-stopped
	}
	s.lis.Close()
	s.stopMetrics(true)
	s.logger.Info("stopped")
}

// Stop stops the server at once: calls in flight fail, connections close, and the
// registration is removed (bounded by ShutdownTimeout). Serve then returns nil. Stop also
// releases a Server that was never served. It returns once the server has stopped.
func (s *Server) Stop() {
	reg, ok := s.begin(false)
	if !ok {
		<-s.finished
		return
	}
	defer close(s.finished)
	s.health.Shutdown()
	s.grpc.Stop()
	s.lis.Close()
	if reg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		if err := reg.Close(ctx); err != nil {
			s.logger.Warn("deregistering", slog.Any("error", err))
		}
		cancel()
	}
	s.stopMetrics(false)
}

// Kill stops the server at once as a crash would, for tests: calls in flight fail and
// connections close, but the registration is abandoned, not removed, so it disappears from
// discovery only when its lease expires. Serve then returns nil.
func (s *Server) Kill() {
	reg, ok := s.begin(true)
	if !ok {
		<-s.finished
		return
	}
	defer close(s.finished)
	if reg != nil {
		reg.Abandon()
	}
	s.grpc.Stop()
	s.lis.Close()
	s.stopMetrics(false)
}

// stopMetrics stops the metrics HTTP server, gracefully or not, and waits for it.
func (s *Server) stopMetrics(graceful bool) {
	if s.metricsSrv == nil {
		return
	}
	if graceful {
		ctx, cancel := context.WithTimeout(context.Background(), metricsShutdownTimeout)
		if err := s.metricsSrv.Shutdown(ctx); err != nil {
			s.metricsSrv.Close()
		}
		cancel()
	} else {
		s.metricsSrv.Close()
	}
	s.metricsLis.Close()
	s.mu.Lock()
	done := s.metricsDone
	s.mu.Unlock()
	if done != nil {
		<-done
	}
}
