package mesh_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// otelEnv lists the variables the telemetry tests set; each test clears all of them first.
var otelEnv = []string{
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED",
	"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_SERVICE_NAME",
}

// collector is an OTLP/gRPC trace collector on 127.0.0.1 that keeps what it receives.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	endpoint string

	mu    sync.Mutex
	spans map[string]string // span name -> service.name of its resource
}

func startCollector(t *testing.T) *collector {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{endpoint: "http://" + lis.Addr().String(), spans: map[string]string{}}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, c)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return c
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		var service string
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, span := range ss.GetSpans() {
				c.spans[span.GetName()] = service
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// serviceOf returns the service.name of the span received under name, if any.
func (c *collector) serviceOf(name string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	service, ok := c.spans[name]
	return service, ok
}

func TestSetupTelemetry(t *testing.T) {
	tests := []struct {
		name string
		// env is set with "$COLLECTOR" replaced by the collector's endpoint.
		env         map[string]string
		wantEnabled bool
		wantService string
		wantErr     bool
	}{
		{name: "no endpoint"},
		{name: "endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "$COLLECTOR"},
			wantEnabled: true, wantService: "ingest"},
		{name: "traces endpoint and service name", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "$COLLECTOR", "OTEL_SERVICE_NAME": "ingest-canary"},
			wantEnabled: true, wantService: "ingest-canary"},
		{name: "SDK disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "$COLLECTOR", "OTEL_SDK_DISABLED": "true"}},
		{name: "exporter none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "$COLLECTOR", "OTEL_TRACES_EXPORTER": "none"}},
		{name: "HTTP protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "$COLLECTOR", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
			wantEnabled: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
			t.Cleanup(func() {
				if otel.GetTracerProvider() != prevTP {
					otel.SetTracerProvider(prevTP)
				}
				otel.SetTextMapPropagator(prevProp)
			})
			c := startCollector(t)
			for _, k := range otelEnv {
				t.Setenv(k, "")
			}
			for k, v := range tt.env {
				t.Setenv(k, strings.ReplaceAll(v, "$COLLECTOR", c.endpoint))
			}
			if got := mesh.TracingEnabled(); got != tt.wantEnabled {
				t.Fatalf("TracingEnabled() = %v, want %v", got, tt.wantEnabled)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			shutdown, err := mesh.SetupTelemetry(ctx, "ingest")
			if tt.wantErr {
				if err == nil {
					shutdown(ctx)
					t.Fatal("SetupTelemetry succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("SetupTelemetry: %v", err)
			}
			fields := strings.Join(otel.GetTextMapPropagator().Fields(), ",")
			if !strings.Contains(fields, "traceparent") || !strings.Contains(fields, "baggage") {
				t.Errorf("global propagator fields = %v, want traceparent and baggage", fields)
			}
			_, span := otel.Tracer("test").Start(ctx, "probe")
			if got := span.SpanContext().IsValid(); got != tt.wantEnabled {
				t.Errorf("global tracer makes valid spans: %v, want %v", got, tt.wantEnabled)
			}
			span.End()
			if err := shutdown(ctx); err != nil {
				t.Fatalf("telemetry shutdown: %v", err)
			}
			service, exported := c.serviceOf("probe")
			if exported != tt.wantEnabled || service != tt.wantService {
				t.Fatalf("collector got the span: %v with service.name %q, want %v with %q", exported, service, tt.wantEnabled, tt.wantService)
			}
		})
	}
}

// TestTracerProviderWithSpanProcessor checks that a provider built with
// WithSpanProcessor records spans, naming the service, even though the
// environment asks for no export, and that its shutdown reaches the
// processor.
func TestTracerProviderWithSpanProcessor(t *testing.T) {
	for _, k := range otelEnv {
		t.Setenv(k, "")
	}
	rec := tracetest.NewSpanRecorder()
	ctx := context.Background()
	tp, shutdown, err := mesh.NewTracerProvider(ctx, "bullseye-ingest", mesh.WithSpanProcessor(rec))
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(ctx, "probe")
	span.End()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	ended := rec.Ended()
	if len(ended) != 1 || ended[0].Name() != "probe" {
		t.Fatalf("recorded %v, want the probe span", ended)
	}
	if v, _ := ended[0].Resource().Set().Value("service.name"); v.AsString() != "bullseye-ingest" {
		t.Errorf("service.name = %q, want bullseye-ingest", v.AsString())
	}
	_, late := tp.Tracer("test").Start(ctx, "after shutdown")
	late.End()
	if n := len(rec.Ended()); n != 1 {
		t.Errorf("%d spans recorded after the shutdown, want none", n-1)
	}
}

func TestTraceHandlerAddsIDs(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	defer span.End()
	sc := span.SpanContext()

	tests := []struct {
		name string
		// wrap says whether the logger's handler is wrapped by NewTraceHandler.
		wrap      bool
		log       func(*slog.Logger)
		wantTrace string
	}{
		{name: "context with span", wrap: true, log: func(l *slog.Logger) { l.InfoContext(ctx, "hello") }, wantTrace: sc.TraceID().String()},
		{name: "context without span", wrap: true, log: func(l *slog.Logger) { l.InfoContext(context.Background(), "hello") }},
		{name: "LoggerWithTrace", log: func(l *slog.Logger) { mesh.LoggerWithTrace(ctx, l).Info("hello") }, wantTrace: sc.TraceID().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			var h slog.Handler = slog.NewJSONHandler(&buf, nil)
			if tt.wrap {
				h = mesh.NewTraceHandler(h)
			}
			logger := slog.New(h)
			tt.log(logger)
			var record map[string]any
			if err := json.Unmarshal(buf.Bytes(), &record); err != nil {
				t.Fatalf("parsing %q: %v", buf.String(), err)
			}
			gotTrace, _ := record["trace_id"].(string)
			if gotTrace != tt.wantTrace {
				t.Fatalf("trace_id = %q, want %q (record %v)", gotTrace, tt.wantTrace, record)
			}
			if tt.wantTrace != "" && record["span_id"] != sc.SpanID().String() {
				t.Fatalf("span_id = %v, want %s", record["span_id"], sc.SpanID())
			}
		})
	}
}

func TestLoggerWithTraceWithoutSpan(t *testing.T) {
	logger := quietLogger()
	if got := mesh.LoggerWithTrace(trace.ContextWithSpanContext(context.Background(), trace.SpanContext{}), logger); got != logger {
		t.Fatal("LoggerWithTrace without a span returned a new logger")
	}
}
