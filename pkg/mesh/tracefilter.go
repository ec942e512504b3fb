package mesh

import (
	"context"

	"go.opentelemetry.io/otel/trace"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
)

var (
	healthCheckMethod = "/" + healthpb.Health_ServiceDesc.ServiceName + "/Check"
	healthWatchMethod = "/" + healthpb.Health_ServiceDesc.ServiceName + "/Watch"
)

// healthTraceFilter wraps a tracing stats handler so that health checks are
// traced only when they are part of a trace: a readiness check that one
// service makes of another inside a span is traced across both, while
// container probes and the long-lived Watch streams of client-side health
// checking, which belong to no trace, do not flood the trace store.
type healthTraceFilter struct {
	inner  stats.Handler
	server bool
}

type skipTraceKey struct{}

func (h healthTraceFilter) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	if h.skip(ctx, info.FullMethodName) {
		return context.WithValue(ctx, skipTraceKey{}, true)
	}
	return h.inner.TagRPC(ctx, info)
}

func (h healthTraceFilter) skip(ctx context.Context, method string) bool {
	switch method {
	case healthWatchMethod:
		return true
	case healthCheckMethod:
		if h.server {
			md, _ := metadata.FromIncomingContext(ctx)
			return len(md.Get("traceparent")) == 0
		}
		return !trace.SpanContextFromContext(ctx).IsValid()
	}
	return false
}

func (h healthTraceFilter) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if skipped, _ := ctx.Value(skipTraceKey{}).(bool); skipped {
		return
	}
	h.inner.HandleRPC(ctx, s)
}

func (h healthTraceFilter) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	return h.inner.TagConn(ctx, info)
}

func (h healthTraceFilter) HandleConn(ctx context.Context, s stats.ConnStats) {
	h.inner.HandleConn(ctx, s)
}
