package mesh_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bullseye-ml/bullseye/pkg/mesh"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// plaintext is the explicit development choice of no TLS.
var plaintext = mesh.TLSConfig{Insecure: true}

// quietLogger returns a logger that discards everything.
func quietLogger() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}

// testConfig returns a plaintext server configuration on 127.0.0.1 with a quiet logger.
func testConfig(service string) mesh.ServerConfig {
	cfg := mesh.NewServerConfig(service)
	cfg.TLS = plaintext
	cfg.Logger = quietLogger()
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

// running is a Server being served by a goroutine of the test.
type running struct {
	*mesh.Server
	svc    *testService
	cancel context.CancelFunc
	done   chan error
}

// stop cancels the server's context and returns what Serve returned, failing the test if it
// does not return within 10 s.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t)
}

func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // later waits see the same result
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("Serve of %s did not return within 10s", r.Addr())
		return nil
	}
}

// serve creates a server from cfg with the test service and serves it until the test ends.
func serve(t *testing.T, cfg mesh.ServerConfig, d *mesh.Discovery, svc *testService) *running {
	t.Helper()
	s, err := mesh.NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if svc == nil {
		svc = &testService{}
	}
	svc.addr = s.Addr()
	s.GRPC().RegisterService(&testServiceDesc, svc)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Server: s, svc: svc, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Serve(ctx, d) }()
	t.Cleanup(func() {
		cancel()
		r.wait(t)
	})
	return r
}

// eventually polls cond every 20 ms until it returns true, failing the test after timeout with
// the last description cond gave.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, desc := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, desc)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The test service: a hand-written gRPC service over well-known protobuf types.

const testServiceName = "bullseye.meshtest.v1.TestService"

const (
	methodSleep       = "/" + testServiceName + "/Sleep"
	methodRelay       = "/" + testServiceName + "/Relay"
	methodPanic       = "/" + testServiceName + "/Panic"
	methodPanicStream = "/" + testServiceName + "/PanicStream"
	methodRecycled    = "/" + testServiceName + "/Recycled"
)

// testService answers Sleep by sleeping for the requested duration (or until the call is
// canceled) and returning its address; Relay calls Sleep on next with the same request.
type testService struct {
	addr string
	// started, when set, receives a value as each Sleep begins.
	started chan struct{}
	// next is the connection Relay calls through.
	next *grpc.ClientConn
	// released counts the replies of Recycled released after marshalling.
	released atomic.Int64
}

type testServiceServer interface {
	sleep(context.Context, *durationpb.Duration) (*wrapperspb.StringValue, error)
}

func (s *testService) sleep(ctx context.Context, d *durationpb.Duration) (*wrapperspb.StringValue, error) {
	if s.started != nil {
		s.started <- struct{}{}
	}
	t := time.NewTimer(d.AsDuration())
	defer t.Stop()
	select {
	case <-t.C:
		return wrapperspb.String(s.addr), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *testService) relay(ctx context.Context, d *durationpb.Duration) (*wrapperspb.StringValue, error) {
	out := new(wrapperspb.StringValue)
	if err := s.next.Invoke(ctx, methodSleep, d, out); err != nil {
		return nil, err
	}
	return out, nil
}

// recycled answers the request's seconds as text in a reply that it
// scribbles over once the codec has encoded it (mesh.RecycleAfterMarshal).
func (s *testService) recycled(ctx context.Context, d *durationpb.Duration) (*wrapperspb.StringValue, error) {
	reply := wrapperspb.String(strconv.FormatInt(d.GetSeconds(), 10))
	mesh.RecycleAfterMarshal(ctx, reply, func() {
		reply.Value = "scribbled"
		s.released.Add(1)
	})
	return reply, nil
}

func unaryMethod[Req proto.Message](name string, newReq func() Req, call func(*testService, context.Context, Req) (any, error)) grpc.MethodDesc {
	full := "/" + testServiceName + "/" + name
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			req := newReq()
			if err := dec(req); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, r any) (any, error) { return call(srv.(*testService), ctx, r.(Req)) }
			if interceptor == nil {
				return h(ctx, req)
			}
			return interceptor(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: full}, h)
		},
	}
}

var testServiceDesc = grpc.ServiceDesc{
	ServiceName: testServiceName,
	HandlerType: (*testServiceServer)(nil),
	Methods: []grpc.MethodDesc{
		unaryMethod("Sleep", func() *durationpb.Duration { return new(durationpb.Duration) },
			func(s *testService, ctx context.Context, d *durationpb.Duration) (any, error) { return s.sleep(ctx, d) }),
		unaryMethod("Relay", func() *durationpb.Duration { return new(durationpb.Duration) },
			func(s *testService, ctx context.Context, d *durationpb.Duration) (any, error) { return s.relay(ctx, d) }),
		unaryMethod("Recycled", func() *durationpb.Duration { return new(durationpb.Duration) },
			func(s *testService, ctx context.Context, d *durationpb.Duration) (any, error) {
				return s.recycled(ctx, d)
			}),
		unaryMethod("Panic", func() *emptypb.Empty { return new(emptypb.Empty) },
			func(*testService, context.Context, *emptypb.Empty) (any, error) { panic("test panic") }),
	},
	Streams: []grpc.StreamDesc{{
		StreamName:    "PanicStream",
		ServerStreams: true,
		Handler:       func(any, grpc.ServerStream) error { panic("test stream panic") },
	}},
	Metadata: "mesh_test.go",
}

// sleepCall calls Sleep through conn and returns the address of the instance that answered.
func sleepCall(ctx context.Context, conn *grpc.ClientConn, d time.Duration, opts ...grpc.CallOption) (string, error) {
	out := new(wrapperspb.StringValue)
	if err := conn.Invoke(ctx, methodSleep, durationpb.New(d), out, opts...); err != nil {
		return "", err
	}
	return out.GetValue(), nil
}

// relayCall calls Relay through conn and returns the address of the instance that answered the
// relayed Sleep.
func relayCall(ctx context.Context, conn *grpc.ClientConn, opts ...grpc.CallOption) (string, error) {
	out := new(wrapperspb.StringValue)
	if err := conn.Invoke(ctx, methodRelay, durationpb.New(0), out, opts...); err != nil {
		return "", err
	}
	return out.GetValue(), nil
}

// syncBuffer is a bytes.Buffer safe for concurrent writers, for log output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var _ io.Writer = (*syncBuffer)(nil)

// errorsOf collects errors from concurrent goroutines.
type errorsOf struct {
	mu   sync.Mutex
	errs []error
}

func (e *errorsOf) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, fmt.Errorf(format, args...))
}

func (e *errorsOf) err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return errors.Join(e.errs...)
}
