package mesh_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

// testTTL is the lease TTL of registrations in these tests.
const testTTL = 2 * time.Second

func newDiscovery(cli *clientv3.Client) *mesh.Discovery {
	return mesh.NewDiscovery(cli, mesh.WithLeaseTTL(testTTL), mesh.WithDiscoveryLogger(quietLogger()))
}

// dialService dials service through d in plaintext, closed when the test ends.
func dialService(t *testing.T, d *mesh.Discovery, service string, opts ...mesh.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := d.Dial(context.Background(), service, append([]mesh.DialOption{mesh.WithTLS(plaintext)}, opts...)...)
	if err != nil {
		t.Fatalf("Dial(%s): %v", service, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// endpointsAre returns a condition that holds when service's registered addresses are want.
func endpointsAre(d *mesh.Discovery, service string, want ...string) func() (bool, string) {
	slices.Sort(want)
	return func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		got, err := d.Endpoints(ctx, service)
		if err != nil {
			return false, err.Error()
		}
		if len(got) == 0 && len(want) == 0 || slices.Equal(got, want) {
			return true, ""
		}
		return false, fmt.Sprintf("Endpoints(%s) = %v, want %v", service, got, want)
	}
}

func TestDiscoveryDialReachesReadyInstance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	d := newDiscovery(embeddedtest.Etcd(t))
	s := serve(t, testConfig("ingest"), d, nil)
	conn := dialService(t, d, "ingest")

	// Not ready: the instance is not registered, and no call reaches it.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := sleepCall(short, conn, 0, grpc.WaitForReady(true))
	cancelShort()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("call before SetReady: %v, want DeadlineExceeded", err)
	}
	if ok, desc := endpointsAre(d, "ingest")(); !ok {
		t.Fatalf("before SetReady: %s", desc)
	}

	s.SetReady(true)
	eventually(t, 5*time.Second, endpointsAre(d, "ingest", s.Addr()))
	got, err := sleepCall(ctx, conn, 0, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("call after SetReady: %v", err)
	}
	if got != s.Addr() {
		t.Fatalf("answered by %s, want %s", got, s.Addr())
	}
	if err := mesh.CheckHealth(ctx, s.Addr(), "ingest", plaintext); err != nil {
		t.Fatalf("CheckHealth: %v", err)
	}

	// Not ready again: out of discovery until it is ready once more.
	s.SetReady(false)
	eventually(t, 5*time.Second, endpointsAre(d, "ingest"))
	s.SetReady(true)
	eventually(t, 5*time.Second, endpointsAre(d, "ingest", s.Addr()))

	if err := s.stop(t); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	eventually(t, time.Second, endpointsAre(d, "ingest"))
}

func TestDialNeedsExplicitTransportChoice(t *testing.T) {
	d := mesh.NewDiscovery(nil)
	_, err := d.Dial(context.Background(), "ingest")
	if !errors.Is(err, mesh.ErrNoCertificates) {
		t.Fatalf("Dial without WithTLS = %v, want ErrNoCertificates", err)
	}
}

func TestRegisterRefusesBadAddresses(t *testing.T) {
	d := newDiscovery(embeddedtest.Etcd(t))
	tests := []struct{ name, service, addr string }{
		{"wildcard IPv4", "ingest", "0.0.0.0:7000"},
		{"wildcard IPv6", "ingest", "[::]:7000"},
		{"empty host", "ingest", ":7000"},
		{"no port", "ingest", "10.0.0.1"},
		{"port zero", "ingest", "10.0.0.1:0"},
		{"slash in service", "in/gest", "10.0.0.1:7000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, err := d.Register(context.Background(), tt.service, tt.addr)
			if err == nil {
				reg.Close(context.Background())
				t.Fatalf("Register(%q, %q) succeeded, want an error", tt.service, tt.addr)
			}
		})
	}
}

func TestKilledInstanceExpiresAndReturns(t *testing.T) {
	d := newDiscovery(embeddedtest.Etcd(t))
	killed := serve(t, testConfig("ingest"), d, nil)
	killed.SetReady(true)
	eventually(t, 5*time.Second, endpointsAre(d, "ingest", killed.Addr()))

	start := time.Now()
	killed.Kill()
	if err := killed.wait(t); err != nil {
		t.Fatalf("Serve after Kill = %v, want nil", err)
	}
	// The key stays until the lease expires: at most the TTL after the last keepalive, plus
	// etcd's expiry check interval (500 ms) and some slack for a loaded machine.
	eventually(t, testTTL+2*time.Second, endpointsAre(d, "ingest"))
	t.Logf("killed instance left discovery %s after Kill (lease TTL %s)", time.Since(start).Round(time.Millisecond), testTTL)

	restarted := serve(t, testConfig("ingest"), d, nil)
	restarted.SetReady(true)
	eventually(t, 5*time.Second, endpointsAre(d, "ingest", restarted.Addr()))
}

func TestGracefulStopUnderLoadFailsNoCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Second)
	defer cancel()
	d := newDiscovery(embeddedtest.Etcd(t))
	first := serve(t, testConfig("echo"), d, nil)
	second := serve(t, testConfig("echo"), d, nil)
	first.SetReady(true)
	second.SetReady(true)
	conn := dialService(t, d, "echo")

	// Wait until calls reach both instances.
	seen := map[string]bool{}
	eventually(t, 5*time.Second, func() (bool, string) {
		addr, err := sleepCall(ctx, conn, 0)
		if err == nil {
			seen[addr] = true
		}
		return len(seen) == 2, fmt.Sprintf("calls reached %v (last error %v)", seen, err)
	})

	var (
		failures      errorsOf
		calls         atomic.Int64
		afterStop     atomic.Int64
		stopped       atomic.Bool
		stopLoad      = make(chan struct{})
		workers       sync.WaitGroup
		firstAfterEnd atomic.Int64
	)
	for range 4 {
		workers.Go(func() {
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				wasStopped := stopped.Load()
				callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
				addr, err := sleepCall(callCtx, conn, time.Millisecond)
				cancel()
				calls.Add(1)
				if err != nil {
					failures.add("call %d: %v", calls.Load(), err)
					continue
				}
				if wasStopped {
					afterStop.Add(1)
					if addr == first.Addr() {
						firstAfterEnd.Add(1)
					}
				}
			}
		})
	}

	eventually(t, 5*time.Second, func() (bool, string) { return calls.Load() >= 50, "fewer than 50 calls before the stop" })
	if err := first.stop(t); err != nil {
		t.Fatalf("Serve of the stopped instance = %v, want nil", err)
	}
	stopped.Store(true)
	eventually(t, 5*time.Second, func() (bool, string) {
		return afterStop.Load() >= 50, "fewer than 50 calls after the stop"
	})
	close(stopLoad)
	workers.Wait()

	if err := failures.err(); err != nil {
		t.Fatalf("calls failed while one instance stopped gracefully:\n%v", err)
	}
	if n := firstAfterEnd.Load(); n != 0 {
		t.Fatalf("%d calls reached the stopped instance after its Serve returned", n)
	}
	t.Logf("%d calls, %d after the stop, none failed", calls.Load(), afterStop.Load())
	eventually(t, time.Second, endpointsAre(d, "echo", second.Addr()))
}

func TestRegistrationSurvivesRevokedLease(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	cli := embeddedtest.Etcd(t)
	d := newDiscovery(cli)
	reg, err := d.Register(ctx, "ingest", "127.0.0.1:7000", mesh.WithInstanceID("ingest-0"))
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if want := "bullseye/services/ingest/ingest-0"; reg.Key() != want {
		t.Fatalf("Key() = %q, want %q", reg.Key(), want)
	}
	leaseOf := func() (clientv3.LeaseID, error) {
		resp, err := cli.Get(ctx, reg.Key())
		if err != nil {
			return 0, err
		}
		if len(resp.Kvs) == 0 {
			return 0, nil
		}
		return clientv3.LeaseID(resp.Kvs[0].Lease), nil
	}
	first, err := leaseOf()
	if err != nil || first == 0 {
		t.Fatalf("registered key %s: lease %d, err %v", reg.Key(), first, err)
	}

	if _, err := cli.Revoke(ctx, first); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		lease, err := leaseOf()
		return err == nil && lease != 0 && lease != first, fmt.Sprintf("key %s has lease %x (err %v), want a new one", reg.Key(), lease, err)
	})
	eventually(t, time.Second, endpointsAre(d, "ingest", "127.0.0.1:7000"))

	if err := reg.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if lease, err := leaseOf(); err != nil || lease != 0 {
		t.Fatalf("after Close the key has lease %x (err %v), want no key", lease, err)
	}
	if err := reg.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestTraceCrossesTwoServers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	defer tp.Shutdown(context.Background())
	d := newDiscovery(embeddedtest.Etcd(t))

	cfgB := testConfig("trace-b")
	cfgB.TracerProvider = tp
	b := serve(t, cfgB, d, nil)
	b.SetReady(true)

	cfgA := testConfig("trace-a")
	cfgA.TracerProvider = tp
	a := serve(t, cfgA, d, &testService{next: dialService(t, d, "trace-b", mesh.WithTracerProvider(tp))})
	a.SetReady(true)

	toA := dialService(t, d, "trace-a", mesh.WithTracerProvider(tp))
	ctx, root := tp.Tracer("test").Start(ctx, "root")
	got, err := relayCall(ctx, toA, grpc.WaitForReady(true))
	root.End()
	if err != nil {
		t.Fatalf("Relay through A to B: %v", err)
	}
	if got != b.Addr() {
		t.Fatalf("Relay answered by %s, want B at %s", got, b.Addr())
	}

	// Server spans end just after the reply is sent: wait for all five.
	var spans []sdktrace.ReadOnlySpan
	eventually(t, 2*time.Second, func() (bool, string) {
		spans = recorder.Ended()
		return len(spans) >= 5, fmt.Sprintf("%d spans ended, want 5: %v", len(spans), spanNames(spans))
	})
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
		if s.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Errorf("span %q has trace id %s, want %s", s.Name(), s.SpanContext().TraceID(), root.SpanContext().TraceID())
		}
	}
	find := func(name string, kind trace.SpanKind) sdktrace.ReadOnlySpan {
		for _, s := range spans {
			if s.Name() == name && s.SpanKind() == kind {
				return s
			}
		}
		t.Fatalf("no %s span %q among %v", kind, name, spanNames(spans))
		return nil
	}
	serverA := find(testServiceName+"/Relay", trace.SpanKindServer)
	serverB := find(testServiceName+"/Sleep", trace.SpanKindServer)

	// Walk up from B's server span: client span in A, then A's server span.
	var chain []string
	reachedA := false
	for s := serverB; s != nil; s = byID[s.Parent().SpanID()] {
		chain = append(chain, fmt.Sprintf("%s(%s)", s.Name(), s.SpanKind()))
		if s.SpanContext().SpanID() == serverA.SpanContext().SpanID() {
			reachedA = true
			break
		}
	}
	if !reachedA {
		t.Fatalf("parent chain of B's server span %s does not reach A's server span", strings.Join(chain, " <- "))
	}
	if want := 3; len(chain) != want {
		t.Fatalf("parent chain %s has %d spans, want %d (B server <- A client <- A server)", strings.Join(chain, " <- "), len(chain), want)
	}
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	var names []string
	for _, s := range spans {
		names = append(names, fmt.Sprintf("%s(%s)", s.Name(), s.SpanKind()))
	}
	return names
}
