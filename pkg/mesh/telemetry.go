package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Propagator returns the propagator used on every hop of the mesh: W3C trace context and W3C
// baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// TracingEnabled reports whether the standard OpenTelemetry environment asks for traces to be
// exported: an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), the SDK is not disabled (OTEL_SDK_DISABLED) and the trace
// exporter is not "none" (OTEL_TRACES_EXPORTER).
func TracingEnabled() bool {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")), "none") {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// TracerOption changes the provider NewTracerProvider returns.
type TracerOption func(*tracerOptions)

type tracerOptions struct {
	processor sdktrace.SpanProcessor
}

// WithSpanProcessor sends the provider's spans to sp instead of an OTLP exporter, whatever the
// environment says: for tests, which record spans in the process. The provider's shutdown shuts
// sp down.
func WithSpanProcessor(sp sdktrace.SpanProcessor) TracerOption {
	return func(o *tracerOptions) { o.processor = sp }
}

// NewTracerProvider returns a tracer provider configured from the standard OpenTelemetry
// environment, without touching the global one. When TracingEnabled, spans go through a batch
// span processor to an OTLP/gRPC exporter (which reads the other OTEL_EXPORTER_OTLP_* variables),
// with a resource naming the service (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override
// it) and the sampler of OTEL_TRACES_SAMPLER. Otherwise it returns a no-op provider. shutdown
// flushes the spans still buffered and stops the exporter.
//
// A process that runs several services (bullseye dev) calls it once per service, so that each
// service's spans name their own service.
func NewTracerProvider(ctx context.Context, service string, opts ...TracerOption) (tp trace.TracerProvider, shutdown func(context.Context) error, err error) {
	var o tracerOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.processor == nil && !TracingEnabled() {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	res, err := serviceResource(ctx, service)
	if err != nil {
		return nil, nil, err
	}
	if o.processor != nil {
		sdk := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.processor), sdktrace.WithResource(res))
		return sdk, sdk.Shutdown, nil
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := os.Getenv(name); p != "" {
			if p != "grpc" {
				return nil, nil, fmt.Errorf("setting up tracing: %s=%s is not supported, only grpc", name, p)
			}
			break
		}
	}
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the OTLP trace exporter: %w", err)
	}
	sdk := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
	)
	return sdk, sdk.Shutdown, nil
}

// serviceResource describes the process to a trace store: the service's name, the SDK and the
// host, then the resource of the environment.
func serviceResource(ctx context.Context, service string) (*resource.Resource, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		// Last, so that OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("describing the tracing resource of %s: %w", service, err)
	}
	return res, nil
}

// SetupTelemetry configures OpenTelemetry for a process from the standard environment and
// installs it globally: the global propagator is always set to Propagator, and when
// TracingEnabled the global tracer provider becomes the exporting one of NewTracerProvider (else
// it stays the no-op default). Call shutdown last on the way out, after the servers have stopped,
// to flush the remaining spans.
//
// A process that runs several services (bullseye dev) does not: it gives each service a provider
// of its own from NewTracerProvider through ServerConfig.TracerProvider.
func SetupTelemetry(ctx context.Context, service string) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(Propagator())
	tp, shutdown, err := NewTracerProvider(ctx, service)
	if err != nil {
		return nil, err
	}
	if TracingEnabled() {
		otel.SetTracerProvider(tp)
	}
	return shutdown, nil
}

// NewTraceHandler wraps h so that every record logged with a context carrying a valid span gets
// that span's trace_id and span_id attributes. Log with the *Context methods (InfoContext, or
// LogAttrs) to pass the context.
func NewTraceHandler(h slog.Handler) slog.Handler {
	if th, ok := h.(traceHandler); ok {
		return th
	}
	return traceHandler{Handler: h}
}

// LoggerWithTrace returns logger with the trace_id and span_id of the span in ctx attached, or
// logger itself when ctx carries no valid span.
func LoggerWithTrace(ctx context.Context, logger *slog.Logger) *slog.Logger {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return logger
	}
	return logger.With(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
}

type traceHandler struct {
	slog.Handler
}

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{Handler: h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{Handler: h.Handler.WithGroup(name)}
}
