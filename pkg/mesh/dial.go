package mesh

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// DefaultHealthCheckTimeout bounds CheckHealth when its context has no deadline.
const DefaultHealthCheckTimeout = 5 * time.Second

// ErrNotServing is wrapped by the error CheckHealth returns when the server answers with a status
// other than SERVING.
var ErrNotServing = errors.New("not serving")

// DialOption configures Discovery.Dial.
type DialOption func(*dialOptions)

type dialOptions struct {
	tls            TLSConfig
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	maxRecv        int
	maxSend        int
	extra          []grpc.DialOption
}

// WithTLS sets how the connection is secured. Without it, Dial fails: TLS needs certificate
// files, and plaintext is an explicit TLSConfig{Insecure: true}.
func WithTLS(cfg TLSConfig) DialOption {
	return func(o *dialOptions) { o.tls = cfg }
}

// WithTracerProvider sets the tracer provider of the connection's client spans. The default is
// the global provider.
func WithTracerProvider(tp trace.TracerProvider) DialOption {
	return func(o *dialOptions) { o.tracerProvider = tp }
}

// WithMeterProvider sets the meter provider of the connection's OpenTelemetry RPC metrics. The
// default is the global provider.
func WithMeterProvider(mp metric.MeterProvider) DialOption {
	return func(o *dialOptions) { o.meterProvider = mp }
}

// WithMaxMsgSize sets the largest message, in bytes, that a call receives and sends. The
// default is DefaultMaxMsgSize both ways.
func WithMaxMsgSize(recv, send int) DialOption {
	return func(o *dialOptions) { o.maxRecv, o.maxSend = recv, send }
}

// WithGRPCOptions adds gRPC dial options after the ones Dial sets, so they take precedence.
func WithGRPCOptions(opts ...grpc.DialOption) DialOption {
	return func(o *dialOptions) { o.extra = append(o.extra, opts...) }
}

func newDialOptions(opts []DialOption) dialOptions {
	o := dialOptions{maxRecv: DefaultMaxMsgSize, maxSend: DefaultMaxMsgSize}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// grpcOptions returns the dial options every mesh client uses: the credentials, tracing with the
// mesh's propagator (health checks only inside a trace, see healthTraceFilter), message size limits and keepalive pings
// that the mesh's servers accept.
func (o dialOptions) grpcOptions(creds credentials.TransportCredentials) []grpc.DialOption {
	otelOpts := []otelgrpc.Option{
		otelgrpc.WithPropagators(Propagator()),
	}
	if o.tracerProvider != nil {
		otelOpts = append(otelOpts, otelgrpc.WithTracerProvider(o.tracerProvider))
	}
	if o.meterProvider != nil {
		otelOpts = append(otelOpts, otelgrpc.WithMeterProvider(o.meterProvider))
	}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithStatsHandler(healthTraceFilter{inner: otelgrpc.NewClientHandler(otelOpts...)}),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(newCodec())),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(o.maxRecv), grpc.MaxCallSendMsgSize(o.maxSend)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                30 * time.Second,
			Timeout:             10 * time.Second,
			PermitWithoutStream: true,
		}),
	}
}

// DialAddr returns a client connection to one address, secured by tlsCfg (whose ServerName,
// when empty, defaults to the address's host), traced through the global tracer provider with
// the mesh's propagator, with the default message size limits. opts come last and take
// precedence. The connection is lazy: ctx is only checked here.
func DialAddr(ctx context.Context, addr string, tlsCfg TLSConfig, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	creds, err := tlsCfg.ClientCredentials()
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	gopts := append(newDialOptions(nil).grpcOptions(creds), opts...)
	conn, err := grpc.NewClient(addr, gopts...)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	return conn, nil
}

// CheckHealth asks the server at addr for the health of service ("" for the server as a whole,
// "liveness" for the process) and returns nil only when it is SERVING; a status other than
// SERVING gives an error wrapping ErrNotServing. Without a deadline in ctx, the check is bounded
// by DefaultHealthCheckTimeout. It backs each binary's health subcommand.
func CheckHealth(ctx context.Context, addr, service string, tlsCfg TLSConfig) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultHealthCheckTimeout)
		defer cancel()
	}
	conn, err := DialAddr(ctx, addr, tlsCfg)
	if err != nil {
		return fmt.Errorf("checking health of %q at %s: %w", service, addr, err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return fmt.Errorf("checking health of %q at %s: %w", service, addr, err)
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health of %q at %s is %s: %w", service, addr, st, ErrNotServing)
	}
	return nil
}
