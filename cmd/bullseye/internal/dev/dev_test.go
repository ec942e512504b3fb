package dev

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/bullseye-ml/bullseye/pkg/embedded"
	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, embeddedtest.GoleakOptions()...)
}

func startMesh(t *testing.T, sp sdktrace.SpanProcessor) *Mesh {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := Start(ctx, Options{DataDir: t.TempDir(), SpanProcessor: sp})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := m.WaitServing(ctx); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestServicesResolvableAndServing checks that each of the four services is
// found through etcd (not through the address Start returned) and answers
// SERVING there.
func TestServicesResolvableAndServing(t *testing.T) {
	m := startMesh(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli, err := clientFor(m)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	d := mesh.NewDiscovery(cli)
	for _, name := range Services {
		eps, err := d.Endpoints(ctx, name)
		if err != nil {
			t.Fatalf("Endpoints(%s): %v", name, err)
		}
		if len(eps) != 1 || eps[0] != m.Addr(name) {
			t.Errorf("Endpoints(%s) = %v, want [%s]", name, eps, m.Addr(name))
		}
		conn, err := d.Dial(ctx, name, mesh.WithTLS(mesh.TLSConfig{Insecure: true}))
		if err != nil {
			t.Fatalf("Dial(%s): %v", name, err)
		}
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, waitForReady())
		conn.Close()
		if err != nil {
			t.Fatalf("%s health through etcd: %v", name, err)
		}
		if got := resp.GetStatus(); got != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%s health = %v, want SERVING", name, got)
		}
	}
}

// TestMetricsAddressesWithFreePorts checks that with free ports (PortBase
// 0) each service's metrics address is known, serves its metrics and is
// in Describe.
func TestMetricsAddressesWithFreePorts(t *testing.T) {
	m := startMesh(t, nil)
	described := m.Describe()
	eps := m.Endpoints()
	if len(eps) != len(Services) {
		t.Fatalf("Endpoints() = %v, want the four services", eps)
	}
	for _, ep := range eps {
		url := "http://" + ep.MetricsAddr + "/metrics"
		if !strings.Contains(described, url) {
			t.Errorf("Describe() = %q, want %s's metrics URL %s", described, ep.Service, url)
		}
		resp, err := http.Get(url)
		if err != nil {
			t.Errorf("%s metrics: %v", ep.Service, err)
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf(`bullseye_dependency_up{dependency="etcd",service=%q} 1`, ep.Service)
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("%s metrics at %s: %s (%v), want 200 and %s", ep.Service, url, resp.Status, err, want)
		}
	}
}

// TestTraceCrossesServices checks that a call into a service of the mesh,
// made inside a trace, is one trace with the service's side: the caller's
// span, its client span and the feature service's server span share a
// trace id and are linked parent to child. (Serving's own readiness checks
// are not traced: they would be most of every trace store's spans.) Every
// span names the service that made it as service.name: the feature
// service's bullseye-feature, ingest's (its server span of Track and its
// own span of the store) bullseye-ingest.
func TestTraceCrossesServices(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "dev-test"))))
	defer tp.Shutdown(context.Background())
	m := startMesh(t, rec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli, err := clientFor(m)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	conn, err := mesh.NewDiscovery(cli).Dial(ctx, "feature", mesh.WithTLS(mesh.TLSConfig{Insecure: true}), mesh.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ingestConn, err := mesh.NewDiscovery(cli).Dial(ctx, "ingest", mesh.WithTLS(mesh.TLSConfig{Insecure: true}), mesh.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	defer ingestConn.Close()
	sctx, span := tp.Tracer("dev_test").Start(ctx, "caller")
	if _, err := healthpb.NewHealthClient(conn).Check(sctx, &healthpb.HealthCheckRequest{}, waitForReady()); err != nil {
		t.Fatal(err)
	}
	track := &ingestv1.TrackRequest{Events: []*ingestv1.Event{{MessageId: "trace-1", UserId: "c-1", Name: "Signed Up"}}}
	if resp, err := ingestv1.NewIngestServiceClient(ingestConn).Track(sctx, track, waitForReady()); err != nil || resp.GetCounts().GetAccepted() != 1 {
		t.Fatalf("Track: %v, %v", resp, err)
	}
	span.End()

	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var root sdktrace.ReadOnlySpan
	deadline := time.Now().Add(10 * time.Second)
	for root == nil && time.Now().Before(deadline) {
		for _, s := range rec.Ended() {
			byID[s.SpanContext().SpanID()] = s
			if s.Name() == "caller" {
				root = s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if root == nil {
		t.Fatal("the caller's span was not recorded")
	}
	// Find the feature service's server span under the caller's span.
	var server sdktrace.ReadOnlySpan
	for time.Now().Before(deadline) && server == nil {
		for _, s := range rec.Ended() {
			byID[s.SpanContext().SpanID()] = s
		}
		for _, s := range byID {
			if s.SpanKind() != trace.SpanKindServer || s.Name() != "grpc.health.v1.Health/Check" {
				continue
			}
			if s.SpanContext().TraceID() == root.SpanContext().TraceID() {
				server = s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if server == nil {
		t.Fatalf("no server span shares the caller's trace id %s", root.SpanContext().TraceID())
	}
	client, ok := byID[server.Parent().SpanID()]
	if !ok {
		t.Fatalf("the server span's parent %s was not recorded", server.Parent().SpanID())
	}
	if !server.Parent().IsRemote() {
		t.Errorf("the server span's parent is not remote: the context did not cross the wire")
	}
	if client.SpanKind() != trace.SpanKindClient || client.Name() != "grpc.health.v1.Health/Check" {
		t.Errorf("server span's parent = %q (%v), want the client span grpc.health.v1.Health/Check", client.Name(), client.SpanKind())
	}
	if client.Parent().SpanID() != root.SpanContext().SpanID() {
		t.Errorf("client span's parent = %s, want the caller's span %s", client.Parent().SpanID(), root.SpanContext().SpanID())
	}

	// Each span names its own service.
	want := map[string]string{
		"server grpc.health.v1.Health/Check":            "bullseye-feature",
		"server bullseye.ingest.v1.IngestService/Track": "bullseye-ingest",
		"internal ingest.store":                         "bullseye-ingest",
		"client grpc.health.v1.Health/Check":            "dev-test",
		"client bullseye.ingest.v1.IngestService/Track": "dev-test",
		"internal caller":                               "dev-test",
	}
	got := map[string]string{}
	for time.Now().Before(deadline) && len(got) < len(want) {
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID() == root.SpanContext().TraceID() {
				got[s.SpanKind().String()+" "+s.Name()] = serviceName(s)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for span, service := range want {
		if got[span] != service {
			t.Errorf("span %q of the trace has service.name %q, want %q", span, got[span], service)
		}
	}
	// And no span of the mesh, in this trace or not, names another.
	for _, s := range rec.Ended() {
		name := serviceName(s)
		if name != "dev-test" && !slices.Contains(Services, strings.TrimPrefix(name, "bullseye-")) {
			t.Errorf("span %q (%v) has service.name %q, want bullseye-<its service>", s.Name(), s.SpanKind(), name)
		}
		for _, svc := range Services {
			if s.SpanKind() == trace.SpanKindServer && strings.HasPrefix(s.Name(), "bullseye."+svc+".") && name != "bullseye-"+svc {
				t.Errorf("server span %q has service.name %q, want bullseye-%s", s.Name(), name, svc)
			}
		}
	}
}

func serviceName(s sdktrace.ReadOnlySpan) string {
	v, _ := s.Resource().Set().Value(attribute.Key("service.name"))
	return v.AsString()
}

// TestExternalEtcdAndNATS checks that with --etcd and --nats the mesh uses
// the given servers instead of starting its own: the services register in
// the external etcd.
func TestExternalEtcdAndNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := embedded.StartEtcd(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	n, err := embedded.StartNATS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	m, err := Start(ctx, Options{DataDir: t.TempDir(), EtcdEndpoints: e.Endpoints(), NATSURL: n.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.WaitServing(ctx); err != nil {
		t.Fatal(err)
	}
	if m.etcd != nil || m.nats != nil {
		t.Error("the mesh started its own etcd or NATS although external ones were given")
	}
	cli, err := e.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	d := mesh.NewDiscovery(cli)
	for _, name := range Services {
		eps, err := d.Endpoints(ctx, name)
		if err != nil || len(eps) != 1 || eps[0] != m.Addr(name) {
			t.Errorf("external etcd lists %s at %v (err %v), want [%s]", name, eps, err, m.Addr(name))
		}
	}
}
