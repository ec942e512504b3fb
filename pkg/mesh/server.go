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

// Bounds of the wait between two failed attempts to register a SERVING server in discovery.
const (
	registerMinBackoff = 100 * time.Millisecond
	registerMaxBackoff = 2 * time.Second
)

// Server is a gRPC server with the mesh's plumbing: health (NOT_SERVING until SetReady and while
// a dependency is down, plus LivenessService), reflection, OpenTelemetry tracing, panic recovery,
// request logs, Prometheus metrics, keepalive enforcement and message size limits; registration
// in discovery while its health is SERVING; and the graceful shutdown sequence.
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
	depUp      *prometheus.GaugeVec   // bullseye_dependency_up
	depLost    *prometheus.CounterVec // bullseye_dependency_lost_total

	// healthChanged is nudged (never blocking) whenever the serving state may have changed, for
	// the goroutine that keeps the registration in step with it.
	healthChanged chan struct{}
	// failed is closed by the first Fail.
	failed chan struct{}

	mu           sync.Mutex
	ready        bool
	deps         map[string]bool // the state of each dependency given to SetDependency
	failure      error           // the error given to the first Fail
	served       bool            // Serve has been called
	stopping     bool            // a shutdown, Stop or Kill has begun
	reg          *Registration   // the current registration, if any
	follower     chan struct{}   // closed when followHealth returns; nil if never started
	stopFollower context.CancelFunc
	metricsDone  chan struct{} // closed when the metrics HTTP server returns; nil if never started
	draining     chan struct{} // closed when a shutdown, Stop or Kill begins
	finished     chan struct{} // closed when the shutdown, Stop or Kill under way is complete
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
	depUp, depLost, err := registerDependencyMetrics(registry)
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
	codec := newServerCodec()
	serverOpts := []grpc.ServerOption{
		grpc.Creds(creds),
		grpc.ForceServerCodecV2(codec),
		grpc.StatsHandler(healthTraceFilter{inner: otelgrpc.NewServerHandler(otelOpts...), server: true}),
		// Outermost first: metrics count what the caller sees, the log records it with the
		// trace ids, and recovery turns a panic into codes.Internal before either.
		grpc.ChainUnaryInterceptor(metrics.UnaryServerInterceptor(exemplar), logUnary(logger, cfg.SlowCall), codec.unaryInterceptor, recoverUnary(logger)),
		grpc.ChainStreamInterceptor(metrics.StreamServerInterceptor(exemplar), logStream(logger, cfg.SlowCall), codec.streamInterceptor, recoverStream(logger)),
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
		depUp:      depUp,
		depLost:    depLost,
		deps:       map[string]bool{},

		healthChanged: make(chan struct{}, 1),
		failed:        make(chan struct{}),
		draining:      make(chan struct{}),
		finished:      make(chan struct{}),
	}, nil
}

// registerDependencyMetrics registers the metrics of SetDependency in registry, reusing those
// already there (servers sharing a registry tell theirs apart by the service label).
func registerDependencyMetrics(registry *prometheus.Registry) (*prometheus.GaugeVec, *prometheus.CounterVec, error) {
	up, err := registerOrReuse(registry, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "bullseye_dependency_up",
		Help: "Whether a connection the service depends on (nats, etcd) is up (1) or lost (0); while one is lost the service is NOT_SERVING and out of discovery.",
	}, []string{"service", "dependency"}))
	if err != nil {
		return nil, nil, err
	}
	lost, err := registerOrReuse(registry, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bullseye_dependency_lost_total",
		Help: "Times a connection the service depends on (nats, etcd) was lost.",
	}, []string{"service", "dependency"}))
	if err != nil {
		return nil, nil, err
	}
	return up, lost, nil
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

// SetReady sets the readiness of the service itself. The overall health ("" service), the
// service's name and each registered gRPC service are SERVING when the service is ready and every
// dependency is up (SetDependency), and NOT_SERVING otherwise. Discovery.Dial only sends calls to
// SERVING instances, and a served instance is registered in discovery only while it is SERVING.
// After a shutdown has begun, SetReady does nothing.
func (s *Server) SetReady(ready bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = ready
	s.applyReadinessLocked()
}

// SetDependency records whether the connection the server depends on that is called name (such
// as "nats" or "etcd") is up. While any dependency is down, health is NOT_SERVING for the overall
// service, the service's name and every registered gRPC service, whatever SetReady says, and the
// instance leaves discovery; it is SERVING and registered again once every dependency is up and
// the service is ready. A dependency never given counts as up. The state is exported as the gauge
// bullseye_dependency_up{service,dependency}, and every loss counts in
// bullseye_dependency_lost_total.
func (s *Server) SetDependency(name string, up bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	was, known := s.deps[name]
	s.deps[name] = up
	v := 0.0
	if up {
		v = 1
	}
	s.depUp.WithLabelValues(s.cfg.Service, name).Set(v)
	lost := s.depLost.WithLabelValues(s.cfg.Service, name)
	if !up && (was || !known) {
		lost.Inc()
	}
	s.applyReadinessLocked()
}

// Fail marks the server as broken for good, for a dependency that cannot come back in this
// process (such as a NATS connection the client closed): health becomes NOT_SERVING, the
// instance leaves discovery, and Serve shuts down gracefully and returns an error wrapping err,
// so that the process exits and its supervisor starts a fresh one. Calling Fail before Serve
// makes Serve return at once; calls after the first, or after a shutdown has begun, only keep
// health NOT_SERVING.
func (s *Server) Fail(err error) {
	if err == nil {
		err = errors.New("failed")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failure != nil {
		return
	}
	s.failure = err
	close(s.failed)
	s.applyReadinessLocked()
}

// servingLocked reports whether health is SERVING: the service is ready, every dependency is up
// and Fail was not called.
func (s *Server) servingLocked() bool {
	if !s.ready || s.failure != nil {
		return false
	}
	for _, up := range s.deps {
		if !up {
			return false
		}
	}
	return true
}

func (s *Server) applyReadinessLocked() {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if s.servingLocked() {
		st = healthpb.HealthCheckResponse_SERVING
	}
	select {
	case s.healthChanged <- struct{}{}:
	default:
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(s.cfg.Service, st)
	if !s.served {
		// Services are registered until Serve, and reading them while one is being
		// registered races; Serve applies readiness to all of them.
		return
	}
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

// Serve serves gRPC (and metrics over HTTP) until ctx is done, then shuts down in order:
// health NOT_SERVING, registration removed, graceful stop bounded by ShutdownTimeout (then a
// hard stop), metrics server closed. In-flight calls finish. When d is not nil the instance is
// registered in it while its health is SERVING, and deregistered while it is not (registering
// is retried with a backoff while etcd cannot be reached). It returns nil after such a shutdown,
// or after Stop or Kill; an error when the registration is invalid or serving fails; and an
// error wrapping Fail's, after the same graceful shutdown, when Fail is called.
func (s *Server) Serve(ctx context.Context, d *Discovery) error {
	if d != nil {
		if err := validateRegistration(s.cfg.Service, s.addr, s.instanceID); err != nil {
			s.Stop()
			return fmt.Errorf("serving %s: %w", s.cfg.Service, err)
		}
	}
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
	if d != nil {
		fctx, cancel := context.WithCancel(context.Background())
		s.follower, s.stopFollower = make(chan struct{}), cancel
		go s.followHealth(fctx, d, s.follower)
	}
	s.mu.Unlock()

	s.logger.Info("serving",
		slog.String("addr", s.addr),
		slog.String("listen", s.ListenAddr()),
		slog.String("metrics", s.MetricsAddr()),
		slog.String("instance", s.instanceID))

	select {
	case <-ctx.Done():
		s.shutdown()
		<-serveErr
		return nil
	case <-s.failed:
		s.mu.Lock()
		failure := s.failure
		s.mu.Unlock()
		s.logger.Error("failed; shutting down", slog.Any("error", failure))
		s.shutdown()
		<-serveErr
		return fmt.Errorf("serving %s: %w", s.cfg.Service, failure)
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

// followHealth keeps the registration in d in step with health: registered while the server is
// SERVING, deregistered while it is not. It returns when ctx is canceled (a stop has begun),
// leaving the registration it holds, if any, in s.reg for the stop to end in its order.
func (s *Server) followHealth(ctx context.Context, d *Discovery, done chan struct{}) {
	defer close(done)
	backoff := registerMinBackoff
	var retry <-chan time.Time
	for {
		s.mu.Lock()
		want, have := s.servingLocked(), s.reg != nil
		s.mu.Unlock()
		switch {
		case want && !have:
			rctx, cancel := context.WithTimeout(ctx, d.ttl)
			reg, err := d.Register(rctx, s.cfg.Service, s.addr, WithInstanceID(s.instanceID))
			cancel()
			if ctx.Err() != nil {
				if err == nil {
					s.mu.Lock()
					s.reg = reg
					s.mu.Unlock()
				}
				return
			}
			if err != nil {
				s.logger.Warn("registering in discovery", slog.Any("error", err), slog.Duration("retry_in", backoff))
				retry = time.After(backoff)
				backoff = min(2*backoff, registerMaxBackoff)
				break
			}
			backoff, retry = registerMinBackoff, nil
			s.mu.Lock()
			s.reg = reg
			s.mu.Unlock()
			s.logger.Info("registered in discovery", slog.String("key", reg.Key()))
			continue // health may have changed meanwhile
		case !want && have:
			s.mu.Lock()
			reg := s.reg
			s.reg = nil
			s.mu.Unlock()
			// Not bounded by ctx: a stop that begins meanwhile waits for the key to go.
			cctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
			err := reg.Close(cctx)
			cancel()
			if err != nil {
				s.logger.Warn("leaving discovery while not serving; the key goes when its lease expires", slog.Any("error", err))
			} else {
				s.logger.Info("left discovery while not serving", slog.String("key", reg.Key()))
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-s.healthChanged:
		case <-retry:
			retry = nil
		}
	}
}

// takeRegistration stops the goroutine that follows health with the registration and returns
// the registration it left, if any. A stop calls it once it has begun.
func (s *Server) takeRegistration() *Registration {
	s.mu.Lock()
	done := s.follower
	s.mu.Unlock()
	if done != nil {
		<-done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	reg := s.reg
	s.reg = nil
	return reg
}

func (s *Server) serveMetrics(done chan struct{}) {
	defer close(done)
	if err := s.metricsSrv.Serve(s.metricsLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.logger.Error("serving metrics", slog.String("addr", s.MetricsAddr()), slog.Any("error", err))
	}
}

// begin claims the stop of the server for the caller, or returns false when another stop has
// begun already. The caller ends the registration it gets from takeRegistration.
func (s *Server) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.stopping = true
	close(s.draining)
	if s.stopFollower != nil {
		s.stopFollower()
	}
	return true
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
	if !s.begin() {
		<-s.finished
		return
	}
	defer close(s.finished)
	deadline := time.Now().Add(s.cfg.ShutdownTimeout)
	s.logger.Info("shutting down", slog.Duration("timeout", s.cfg.ShutdownTimeout))

	// Clients with health checking stop sending new calls here.
	s.health.Shutdown()
	if reg := s.takeRegistration(); reg != nil {
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
	if !s.begin() {
		<-s.finished
		return
	}
	defer close(s.finished)
	s.health.Shutdown()
	s.grpc.Stop()
	s.lis.Close()
	if reg := s.takeRegistration(); reg != nil {
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
	if !s.begin() {
		<-s.finished
		return
	}
	defer close(s.finished)
	if reg := s.takeRegistration(); reg != nil {
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
