package server_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/bullseye-ml/bullseye/pkg/datasets"
	"github.com/bullseye-ml/bullseye/pkg/embedded"
	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/pkg/service"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/importer"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/record"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/server"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testKey is the HMAC key of the tests.
const testKey = "bullseye test key, at least 32 bytes long"

// syncBuffer is a bytes.Buffer safe for concurrent writes (log output).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is an ingest server on a real embedded NATS, reached over gRPC on
// loopback.
type env struct {
	t       testing.TB
	dir     string
	natsSrv *embedded.NATS
	port    int
	nc      *nats.Conn
	js      jetstream.JetStream
	store   *store.Store
	p       *eventlog.Pseudonymiser
	builder *record.Builder
	server  *server.Server
	grpc    *mesh.Server
	conn    *grpc.ClientConn
	client  ingestv1.IngestServiceClient
	logs    *syncBuffer
	spans   *tracetest.SpanRecorder
	proxy   *proxy
}

type envConfig struct {
	proxy          bool
	publishTimeout time.Duration
	maxEventBytes  int
	personal       []string
	erasureWait    time.Duration
	progress       time.Duration
	freeText       record.FreeText
}

type envOption func(*envConfig)

func withPublishTimeout(d time.Duration) envOption {
	return func(c *envConfig) { c.publishTimeout = d }
}

func withErasureWait(d time.Duration) envOption { return func(c *envConfig) { c.erasureWait = d } }

// withFreeText sets what the builder does with personal data inside text.
func withFreeText(m record.FreeText) envOption { return func(c *envConfig) { c.freeText = m } }

// withProxy puts a proxy that the test can pause between the server and
// NATS.
func withProxy() envOption { return func(c *envConfig) { c.proxy = true } }

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	c := envConfig{publishTimeout: 2 * time.Second, maxEventBytes: 32 << 10, personal: record.DefaultPersonalFields, erasureWait: 2 * time.Second, progress: 100 * time.Millisecond}
	for _, o := range opts {
		o(&c)
	}
	e := &env{t: t, dir: t.TempDir(), logs: &syncBuffer{}, spans: tracetest.NewSpanRecorder()}
	e.startNATS(0)
	t.Cleanup(func() {
		if e.natsSrv != nil {
			e.natsSrv.Shutdown()
		}
	})
	url := e.natsSrv.URL()
	if c.proxy {
		e.proxy = newProxy(t, strings.TrimPrefix(url, "nats://"))
		url = "nats://" + e.proxy.addr()
	}
	var err error
	var js jetstream.JetStream
	e.nc, js, err = service.ConnectJetStream(url, "ingest-test", nil, store.JetStreamOptions(c.publishTimeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.store, err = store.New(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.store.Close)
	// The test inspects the streams over a connection of its own.
	inspect, err := nats.Connect(e.natsSrv.URL(), nats.Name("ingest-test-inspect"), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inspect.Close)
	if e.js, err = jetstream.New(inspect); err != nil {
		t.Fatal(err)
	}
	e.p, err = eventlog.NewPseudonymiser([]byte(testKey), "")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	e.builder = record.New(e.p, record.WithMaxItemBytes(c.maxEventBytes), record.WithPersonalFields(c.personal), record.WithFreeText(c.freeText))
	e.server = server.New(e.store, e.builder,
		server.WithLogger(logger),
		server.WithTracerProvider(tp),
		server.WithErasureWait(c.erasureWait),
		server.WithImporter(importer.New(e.store, e.builder, importer.WithLogger(logger), importer.WithProgressInterval(c.progress))),
	)
	// The mesh's server, as in production: its codec decodes requests
	// without validating their strings, so that the handlers judge each
	// item, and answers INVALID_ARGUMENT for bytes that are no request.
	cfg := mesh.NewServerConfig("ingest")
	cfg.TLS, cfg.Logger, cfg.TracerProvider, cfg.MaxRecvMsgSize = mesh.TLSConfig{Insecure: true}, logger, tp, 32<<20
	e.grpc, err = mesh.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ingestv1.RegisterIngestServiceServer(e.grpc.GRPC(), e.server)
	e.grpc.SetReady(true)
	serveCtx, stopServing := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- e.grpc.Serve(serveCtx, nil) }()
	t.Cleanup(func() {
		stopServing()
		<-served
	})
	e.conn, err = grpc.NewClient(e.grpc.Addr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(32<<20)),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp))),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.conn.Close() })
	e.client = ingestv1.NewIngestServiceClient(e.conn)
	return e
}

// startNATS starts (or restarts, on the same port and directory) the NATS
// server.
func (e *env) startNATS(port int) {
	e.t.Helper()
	opts := []embedded.NATSOption{}
	if port != 0 {
		opts = append(opts, embedded.WithNATSPort(port))
	}
	srv, err := embedded.StartNATS(filepath.Join(e.dir, "nats"), opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.natsSrv, e.port = srv, srv.Port()
}

func (e *env) stopNATS() {
	e.natsSrv.Shutdown()
	e.natsSrv = nil
}

// ctx returns a context bounded for one test step.
func (e *env) ctx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	e.t.Cleanup(cancel)
	return ctx
}

// storedMsg is one message of a stream.
type storedMsg struct {
	stream, subject string
	seq             uint64
	header          nats.Header
	data            []byte
}

// messages returns every message of a stream, in order.
func (e *env) messages(stream string) []storedMsg {
	e.t.Helper()
	ctx := e.ctx(20 * time.Second)
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []storedMsg
	for uint64(len(out)) < info.State.Msgs {
		batch, err := c.FetchNoWait(1000)
		if err != nil {
			e.t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, _ := m.Metadata()
			out = append(out, storedMsg{stream: stream, subject: m.Subject(), seq: md.Sequence.Stream, header: m.Headers(), data: m.Data()})
			if md.NumPending == 0 {
				return out
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			e.t.Fatal(err)
		}
		if n == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return out
}

// count returns how many messages a stream holds.
func (e *env) count(stream string) uint64 {
	e.t.Helper()
	ctx := e.ctx(10 * time.Second)
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

// dataDir returns the folder of the shared data sets, failing the test when it is absent.
func dataDir(t testing.TB) string {
	t.Helper()
	return datasets.RequireDir(t)
}

func containsAny(s string, needles ...string) string {
	for _, n := range needles {
		if n != "" && strings.Contains(s, n) {
			return n
		}
	}
	return ""
}

// proxy forwards TCP connections to a target and can stop forwarding
// without closing them: a network that stops answering.
type proxy struct {
	t      testing.TB
	lis    net.Listener
	target string
	mu     sync.Mutex
	cond   *sync.Cond
	paused bool
	conns  []net.Conn
}

func newProxy(t testing.TB, target string) *proxy {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, lis: lis, target: target}
	p.cond = sync.NewCond(&p.mu)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); p.pipe(u, c) }()
			go func() { defer wg.Done(); p.pipe(c, u) }()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		p.mu.Lock()
		p.paused = false
		for _, c := range p.conns {
			c.Close()
		}
		p.cond.Broadcast()
		p.mu.Unlock()
		wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.lis.Addr().String() }

func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for p.paused {
			p.cond.Wait()
		}
		p.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// pause stops forwarding (connections stay open); resume restarts it.
func (p *proxy) pause()  { p.setPaused(true) }
func (p *proxy) resume() { p.setPaused(false) }

func (p *proxy) setPaused(v bool) {
	p.mu.Lock()
	p.paused = v
	p.cond.Broadcast()
	p.mu.Unlock()
}
