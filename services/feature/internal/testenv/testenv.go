// Package testenv runs the feature service against real embedded etcd and
// NATS for tests: it starts the servers, runs the service in-process or as
// its binary, publishes StoredEvent records the way ingest does, and offers
// client helpers.
package testenv

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	"github.com/bullseye-ml/bullseye/pkg/eventlog/eventlogtest"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/feature"
	"github.com/bullseye-ml/bullseye/services/feature/internal/materialize"
)

// Env is one test's etcd, NATS and JetStream handles, key file and pseudonymiser.
type Env struct {
	*embeddedtest.Env
	T testing.TB
}

// New starts etcd and NATS for t and creates the event log layout.
func New(t testing.TB) *Env {
	t.Helper()
	return &Env{Env: embeddedtest.New(t), T: t}
}

// Config returns a feature service configuration for this environment.
func (e *Env) Config() feature.Config {
	cfg := feature.NewConfig()
	cfg.EtcdEndpoints = e.Etcd.Endpoints()
	cfg.NATSURL = e.NATS.URL()
	cfg.Server.TLS.Insecure = true
	cfg.Server.ListenAddr = "127.0.0.1:0"
	cfg.Server.ShutdownTimeout = 2 * time.Second
	cfg.LeaseTTL = 2 * time.Second
	cfg.DataDir = e.T.TempDir()
	cfg.HMACKeyFile = e.KeyFile
	cfg.Server.Logger = quietLogger(e.T)
	return cfg
}

// Service is a feature service running in this process.
type Service struct {
	Addr   string
	Client featurev1.FeatureServiceClient
	Conn   *grpc.ClientConn
	cancel context.CancelFunc
	done   chan error
}

// Start runs the feature service in-process with cfg and waits until it
// is SERVING.
func (e *Env) Start(cfg feature.Config) *Service {
	e.T.Helper()
	addrs := make(chan string, 1)
	cfg.Started = func(_, addr, _ string) { addrs <- addr }
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- feature.Run(ctx, cfg) }()
	select {
	case s.Addr = <-addrs:
	case err := <-s.done:
		cancel()
		e.T.Fatalf("feature service stopped at start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		e.T.Fatal("feature service did not start within 30s")
	}
	e.T.Cleanup(s.Stop)
	s.dial(e.T)
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wcancel()
	if err := embeddedtest.WaitServing(wctx, s.Addr); err != nil {
		e.T.Fatal(err)
	}
	return s
}

func (s *Service) dial(t testing.TB) {
	conn, err := grpc.NewClient(s.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	s.Conn = conn
	s.Client = featurev1.NewFeatureServiceClient(conn)
}

// Stop stops the service gracefully and waits for it.
func (s *Service) Stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	if s.Conn != nil {
		s.Conn.Close()
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
	}
}

// Health returns the overall health status of addr.
func Health(addr string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return 0, err
	}
	return r.GetStatus(), nil
}

// Proc is the feature binary running as a subprocess.
type Proc struct {
	*embeddedtest.Process
	Client featurev1.FeatureServiceClient
	Conn   *grpc.ClientConn
}

// StartBinary runs the binary bin against the environment with extra
// flags, and waits until it is SERVING.
func (e *Env) StartBinary(bin string, extra ...string) *Proc {
	e.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := e.StartProcess(ctx, bin, nil, append([]string{"--hmac-key-file", e.KeyFile}, extra...)...)
	if err != nil {
		e.T.Fatal(err)
	}
	e.T.Cleanup(p.Kill)
	conn, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		e.T.Fatal(err)
	}
	e.T.Cleanup(func() { conn.Close() })
	return &Proc{Process: p, Conn: conn, Client: featurev1.NewFeatureServiceClient(conn)}
}

// Publisher returns a publisher on the environment's JetStream.
func (e *Env) Publisher() *eventlogtest.Publisher { return eventlogtest.NewPublisher(e.JS) }

// MustPublish publishes records and waits for their acks.
func (e *Env) MustPublish(evs ...*ingestv1.StoredEvent) uint64 {
	e.T.Helper()
	p := e.Publisher()
	for _, ev := range evs {
		if err := p.Publish(ev); err != nil {
			e.T.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seq, err := p.Flush(ctx)
	if err != nil {
		e.T.Fatal(err)
	}
	return seq
}

// WaitApplied waits until materialisation has applied the whole stream.
func (e *Env) WaitApplied(within time.Duration) {
	e.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	prog := materialize.NewProgress(e.JS)
	seq, err := prog.LastSeq(ctx)
	if err != nil {
		e.T.Fatal(err)
	}
	if err := prog.Wait(ctx, seq); err != nil {
		e.T.Fatal(err)
	}
}

// Track returns a TRACK record.
func Track(user, msgID, name string, at time.Time, value *float64, item string, props map[string]*commonv1.Value) *ingestv1.StoredEvent {
	return &ingestv1.StoredEvent{
		Type: ingestv1.EventType_EVENT_TYPE_TRACK, MessageId: msgID, UserId: user, Name: name, ItemId: item,
		Value: value, Properties: props, EventTime: timestamppb.New(at), ReceivedAt: timestamppb.New(at),
		Source: ingestv1.EventSource_EVENT_SOURCE_TRACK,
	}
}

// Identify returns an IDENTIFY record.
func Identify(user, msgID string, at time.Time, traits map[string]*commonv1.Value) *ingestv1.StoredEvent {
	return &ingestv1.StoredEvent{
		Type: ingestv1.EventType_EVENT_TYPE_IDENTIFY, MessageId: msgID, UserId: user, Traits: traits,
		EventTime: timestamppb.New(at), ReceivedAt: timestamppb.New(at), Source: ingestv1.EventSource_EVENT_SOURCE_IDENTIFY,
	}
}

// Consent returns a CONSENT record.
func Consent(user, msgID string, at time.Time, st commonv1.ConsentState) *ingestv1.StoredEvent {
	return &ingestv1.StoredEvent{
		Type: ingestv1.EventType_EVENT_TYPE_CONSENT, MessageId: msgID, UserId: user, ConsentState: st,
		EventTime: timestamppb.New(at), ReceivedAt: timestamppb.New(at), Source: ingestv1.EventSource_EVENT_SOURCE_SET_CONSENT,
	}
}

// F returns a pointer to f.
func F(f float64) *float64 { return &f }

// Num, Int and Str make Values.
func Num(f float64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: f}}
}

// Int makes an INT Value.
func Int(i int64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: i}}
}

// Str makes a STRING Value.
func Str(s string) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
}

// ApplyReady applies a feature set and waits until its version is READY.
func ApplyReady(t testing.TB, c featurev1.FeatureServiceClient, fs *featurev1.FeatureSet) *featurev1.FeatureSet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := c.ApplyFeatureSet(ctx, &featurev1.ApplyFeatureSetRequest{FeatureSet: fs})
	if err != nil {
		t.Fatalf("ApplyFeatureSet: %v", err)
	}
	ref := &featurev1.FeatureSetRef{Name: fs.GetName(), Version: resp.GetFeatureSet().GetVersion()}
	for {
		got, err := c.GetFeatureSet(ctx, &featurev1.GetFeatureSetRequest{FeatureSet: ref})
		if err != nil {
			t.Fatalf("GetFeatureSet: %v", err)
		}
		if got.GetFeatureSet().GetBackfill().GetState() == featurev1.BackfillState_BACKFILL_STATE_READY {
			return got.GetFeatureSet()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("feature set %s version %d not READY: %v", ref.GetName(), ref.GetVersion(), got.GetFeatureSet().GetBackfill())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TrainingSet is a whole BuildTrainingSet stream.
type TrainingSet struct {
	Header  *featurev1.TrainingSetHeader
	Rows    []*featurev1.TrainingRow
	Summary *featurev1.TrainingSetSummary
}

// Build runs BuildTrainingSet and collects the stream.
func Build(ctx context.Context, c featurev1.FeatureServiceClient, req *featurev1.BuildTrainingSetRequest) (*TrainingSet, error) {
	stream, err := c.BuildTrainingSet(ctx, req)
	if err != nil {
		return nil, err
	}
	ts := &TrainingSet{}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return ts, nil
		}
		if err != nil {
			return nil, err
		}
		switch {
		case m.GetHeader() != nil:
			ts.Header = m.GetHeader()
		case m.GetSummary() != nil:
			ts.Summary = m.GetSummary()
		default:
			ts.Rows = append(ts.Rows, m.GetRows()...)
		}
	}
}
