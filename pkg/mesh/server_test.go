package mesh_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// dial returns a plaintext connection to addr, closed when the test ends.
func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := mesh.DialAddr(context.Background(), addr, plaintext)
	if err != nil {
		t.Fatalf("DialAddr(%s): %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func healthOf(ctx context.Context, t *testing.T, conn *grpc.ClientConn, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("health Check(%q): %v", service, err)
	}
	return resp.GetStatus()
}

func TestHealthReadiness(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s := serve(t, testConfig("ingest"), nil, nil)
	conn := dial(t, s.Addr())

	names := []string{"", "ingest", testServiceName}
	tests := []struct {
		name  string
		ready *bool
		want  healthpb.HealthCheckResponse_ServingStatus
	}{
		{name: "before SetReady", want: healthpb.HealthCheckResponse_NOT_SERVING},
		{name: "after SetReady(true)", ready: new(true), want: healthpb.HealthCheckResponse_SERVING},
		{name: "after SetReady(false)", ready: new(false), want: healthpb.HealthCheckResponse_NOT_SERVING},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ready != nil {
				s.SetReady(*tt.ready)
			}
			for _, name := range names {
				if got := healthOf(ctx, t, conn, name); got != tt.want {
					t.Errorf("health of %q = %s, want %s", name, got, tt.want)
				}
			}
			if got := healthOf(ctx, t, conn, mesh.LivenessService); got != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("health of %q = %s, want SERVING", mesh.LivenessService, got)
			}
		})
	}

	if err := mesh.CheckHealth(ctx, s.Addr(), "", plaintext); !errors.Is(err, mesh.ErrNotServing) {
		t.Fatalf("CheckHealth before ready = %v, want ErrNotServing", err)
	}
	s.SetReady(true)
	if err := mesh.CheckHealth(ctx, s.Addr(), "", plaintext); err != nil {
		t.Fatalf("CheckHealth after SetReady(true) = %v, want nil", err)
	}
}

func TestReflectionListsServices(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s := serve(t, testConfig("ingest"), nil, nil)
	stream, err := reflectionpb.NewServerReflectionClient(dial(t, s.Addr())).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatalf("ServerReflectionInfo: %v", err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	stream.CloseSend()
	var got []string
	for _, svc := range resp.GetListServicesResponse().GetService() {
		got = append(got, svc.GetName())
	}
	for _, want := range []string{testServiceName, "grpc.health.v1.Health"} {
		if !strings.Contains(strings.Join(got, ","), want) {
			t.Errorf("reflection lists %v, want %s among them", got, want)
		}
	}
}

func TestPanicRecovery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var logs syncBuffer
	cfg := testConfig("ingest")
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	s := serve(t, cfg, nil, nil)
	conn := dial(t, s.Addr())

	tests := []struct {
		name string
		call func() error
	}{
		{name: "unary", call: func() error {
			return conn.Invoke(ctx, methodPanic, &emptypb.Empty{}, &emptypb.Empty{})
		}},
		{name: "stream", call: func() error {
			stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, methodPanicStream)
			if err != nil {
				return err
			}
			if err := stream.SendMsg(&emptypb.Empty{}); err != nil {
				return err
			}
			if err := stream.CloseSend(); err != nil {
				return err
			}
			return stream.RecvMsg(&emptypb.Empty{})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if st := status.Convert(err); st.Code() != codes.Internal || strings.Contains(st.Message(), "panic") {
				t.Fatalf("call that panics: %v, want Internal without the panic's text", err)
			}
		})
	}
	if _, err := sleepCall(ctx, conn, 0); err != nil {
		t.Fatalf("Sleep after the panics: %v", err)
	}
	out := logs.String()
	for _, want := range []string{`"msg":"panic in gRPC handler"`, "test panic", "test stream panic", `"stack":"goroutine`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}
}

func TestRequestLogsCarryTraceIDs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var logs syncBuffer
	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	defer tp.Shutdown(context.Background())

	cfg := testConfig("ingest")
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	cfg.TracerProvider = tp
	cfg.SlowCall = 20 * time.Millisecond
	s := serve(t, cfg, nil, nil)
	conn, err := grpc.NewClient(s.Addr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(mesh.Propagator()))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// A quick success is not logged at info; a slow one is, with its trace id.
	if _, err := sleepCall(ctx, conn, 0); err != nil {
		t.Fatalf("Sleep: %v", err)
	}
	ctx, root := tp.Tracer("test").Start(ctx, "root")
	_, err = sleepCall(ctx, conn, 30*time.Millisecond)
	root.End()
	if err != nil {
		t.Fatalf("Sleep: %v", err)
	}

	var records []map[string]any
	eventually(t, 2*time.Second, func() (bool, string) {
		records = records[:0]
		for line := range strings.SplitSeq(logs.String(), "\n") {
			var record map[string]any
			if strings.Contains(line, methodSleep) && json.Unmarshal([]byte(line), &record) == nil {
				records = append(records, record)
			}
		}
		return len(records) > 0, "no log line for " + methodSleep + " in:\n" + logs.String()
	})
	if len(records) != 1 {
		t.Fatalf("%d info lines for the quick and the slow call, want the slow one only: %v", len(records), records)
	}
	record := records[0]
	want := map[string]any{
		"msg":      "gRPC call",
		"level":    "INFO",
		"method":   methodSleep,
		"code":     "OK",
		"slow":     true,
		"service":  "ingest",
		"trace_id": root.SpanContext().TraceID().String(),
	}
	for k, v := range want {
		if record[k] != v {
			t.Errorf("log record %s = %v, want %v (record %v)", k, record[k], v, record)
		}
	}
	for _, k := range []string{"span_id", "duration"} {
		if _, ok := record[k]; !ok {
			t.Errorf("log record lacks %s: %v", k, record)
		}
	}
}

func TestMetricsEndpoint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cfg := testConfig("ingest")
	cfg.MetricsAddr = "127.0.0.1:0"
	s := serve(t, cfg, nil, nil)
	custom := prometheus.NewCounter(prometheus.CounterOpts{Name: "bullseye_test_events_total", Help: "Test events."})
	s.Registry().MustRegister(custom)
	custom.Inc()
	if _, err := sleepCall(ctx, dial(t, s.Addr()), 0); err != nil {
		t.Fatalf("Sleep: %v", err)
	}

	// A second server has a registry of its own: same metric names, no conflict.
	other := serve(t, testConfig("feature"), nil, nil)
	if other.Registry() == s.Registry() {
		t.Fatal("two servers share a registry without being given one")
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.MetricsAddr()+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Sleep",grpc_service="` + testServiceName + `",grpc_type="unary"} 1`,
		`grpc_server_handling_seconds_bucket{`,
		`go_goroutines `,
		`bullseye_test_events_total 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestServersShareRegistry(t *testing.T) {
	registry := prometheus.NewRegistry()
	for _, service := range []string{"ingest", "feature"} {
		cfg := testConfig(service)
		cfg.Registry = registry
		s, err := mesh.NewServer(cfg)
		if err != nil {
			t.Fatalf("NewServer(%s) with a shared registry: %v", service, err)
		}
		s.Stop()
	}
}

func TestGracefulShutdownLetsInFlightCallFinish(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	svc := &testService{started: make(chan struct{}, 1)}
	s := serve(t, testConfig("ingest"), nil, svc)
	conn := dial(t, s.Addr())

	const sleep = 300 * time.Millisecond
	result := make(chan error, 1)
	go func() {
		_, err := sleepCall(ctx, conn, sleep)
		result <- err
	}()
	select {
	case <-svc.started:
	case <-ctx.Done():
		t.Fatal("the call did not reach the server")
	}
	start := time.Now()
	if err := s.stop(t); err != nil {
		t.Fatalf("Serve after shutdown = %v, want nil", err)
	}
	if err := <-result; err != nil {
		t.Fatalf("in-flight call failed during graceful shutdown: %v", err)
	}
	if took := time.Since(start); took > sleep+2*time.Second {
		t.Fatalf("graceful shutdown took %s, want about %s", took, sleep)
	}
	if _, err := sleepCall(ctx, conn, 0); status.Code(err) != codes.Unavailable {
		t.Fatalf("call after shutdown: %v, want Unavailable", err)
	}
}

func TestGracefulShutdownIsBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	cfg := testConfig("ingest")
	cfg.ShutdownTimeout = 200 * time.Millisecond
	svc := &testService{started: make(chan struct{}, 1)}
	s := serve(t, cfg, nil, svc)
	conn := dial(t, s.Addr())

	result := make(chan error, 1)
	go func() {
		_, err := sleepCall(ctx, conn, time.Minute)
		result <- err
	}()
	select {
	case <-svc.started:
	case <-ctx.Done():
		t.Fatal("the call did not reach the server")
	}
	start := time.Now()
	if err := s.stop(t); err != nil {
		t.Fatalf("Serve after shutdown = %v, want nil", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("shutdown with a 200ms timeout took %s", took)
	}
	if err := <-result; status.Code(err) != codes.Unavailable {
		t.Fatalf("call cut by the shutdown timeout: %v, want Unavailable", err)
	}
}

func TestServeLifecycleErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	t.Run("serve after stop", func(t *testing.T) {
		s, err := mesh.NewServer(testConfig("ingest"))
		if err != nil {
			t.Fatal(err)
		}
		s.Stop()
		s.Stop() // a second stop is harmless
		if err := s.Serve(ctx, nil); !errors.Is(err, grpc.ErrServerStopped) {
			t.Fatalf("Serve after Stop = %v, want ErrServerStopped", err)
		}
	})
	t.Run("serve twice", func(t *testing.T) {
		r := serve(t, testConfig("ingest"), nil, nil)
		if err := mesh.CheckHealth(ctx, r.Addr(), mesh.LivenessService, plaintext); err != nil {
			t.Fatalf("CheckHealth: %v", err)
		}
		if err := r.Serve(ctx, nil); err == nil {
			t.Fatal("second Serve succeeded, want an error")
		}
	})
	t.Run("stop while serving", func(t *testing.T) {
		r := serve(t, testConfig("ingest"), nil, nil)
		if err := mesh.CheckHealth(ctx, r.Addr(), mesh.LivenessService, plaintext); err != nil {
			t.Fatalf("CheckHealth: %v", err)
		}
		r.Stop()
		if err := r.wait(t); err != nil {
			t.Fatalf("Serve after Stop = %v, want nil", err)
		}
	})
}

func TestDrainingClosesOnShutdown(t *testing.T) {
	s := serve(t, testConfig("ingest"), nil, nil)
	select {
	case <-s.Draining():
		t.Fatal("Draining closed before any shutdown")
	default:
	}
	if err := s.stop(t); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	select {
	case <-s.Draining():
	default:
		t.Fatal("Draining still open after the shutdown")
	}
}

// TestRecycledReplies checks replies built in reused storage over real gRPC:
// concurrent callers each get their own answer, never one scribbled over
// after encoding, and every reply is released once.
func TestRecycledReplies(t *testing.T) {
	r := serve(t, testConfig("recycle"), nil, nil)
	conn := dial(t, r.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const callers, calls = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				n := int64(g*calls + i)
				out := new(wrapperspb.StringValue)
				if err := conn.Invoke(ctx, methodRecycled, &durationpb.Duration{Seconds: n}, out); err != nil {
					errs <- err
					return
				}
				if want := strconv.FormatInt(n, 10); out.GetValue() != want {
					errs <- fmt.Errorf("call %d answered %q", n, out.GetValue())
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := r.svc.released.Load(); got != callers*calls {
		t.Errorf("%d replies released, want %d", got, callers*calls)
	}
}

// TestProfilingEndpoint checks that runtime profiles are served on the
// metrics address with --pprof only.
func TestProfilingEndpoint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	get := func(url string) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, on := range []bool{false, true} {
		cfg := testConfig("feature")
		cfg.MetricsAddr, cfg.Profiling = "127.0.0.1:0", on
		s := serve(t, cfg, nil, nil)
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
			if got := get("http://" + s.MetricsAddr() + path); got != want {
				t.Errorf("profiling %v: GET %s answered %d, want %d", on, path, got, want)
			}
		}
	}
}
