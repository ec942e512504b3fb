// Package testenv runs what serving stands on, for its tests and benchmark: real embedded etcd
// and NATS, the real feature service in-process, the model registry, and helpers to seed
// customers the way ingest does (StoredEvent records on the events stream), to fit models
// with pkg/ml, encode them with pkg/artifact, register and promote them.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/embedded"
	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/eventlog/eventlogtest"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/mesh"
	"github.com/bullseye-ml/bullseye/pkg/registry"
	"github.com/bullseye-ml/bullseye/services/feature"
)

// HMACKey is the key the environment pseudonymises with.
const HMACKey = "bullseye-serving-test-hmac-key-0123456789"

// TB is what the helpers need of a test (testing.TB has it); the benchmark brings its own.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	TempDir() string
}

// Env is etcd, NATS, the feature service and the registry, running in this process.
type Env struct {
	// Etcd and NATS are the embedded servers; NC, JS and Cli clients of them.
	Etcd *embedded.Etcd
	NATS *embedded.NATS
	NC   *nats.Conn
	JS   jetstream.JetStream
	Cli  *clientv3.Client
	// KeyFile holds HMACKey, which Pseudonymiser uses (erasures).
	KeyFile       string
	Pseudonymiser *eventlog.Pseudonymiser
	// Registry is the model registry, as training writes it.
	Registry *registry.Registry
	// Feature is a client of the feature service; FeatureAddr its address; FeatureMetrics
	// its Prometheus registry (gRPC server metrics: calls by method).
	Feature        featurev1.FeatureServiceClient
	FeatureAddr    string
	FeatureMetrics *prometheus.Registry

	dir     string
	mu      sync.Mutex
	closers []func()
}

// Logger returns a logger for services in tests: quiet unless BULLSEYE_TEST_LOGS is set.
func Logger() *slog.Logger {
	if os.Getenv("BULLSEYE_TEST_LOGS") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError + 4}))
}

// New starts etcd, NATS, the event log layout, the feature service and the registry. Close
// releases them.
func New(t TB) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "bullseye-serving-env-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	e := &Env{dir: dir}
	e.defer_(func() { os.RemoveAll(dir) })
	fail := func(what string, err error) {
		e.Close()
		t.Fatalf("%s: %v", what, err)
	}
	if e.Etcd, err = embedded.StartEtcd(ctx, filepath.Join(dir, "etcd")); err != nil {
		fail("starting etcd", err)
	}
	e.defer_(e.Etcd.Close)
	if e.NATS, err = embedded.StartNATS(filepath.Join(dir, "nats")); err != nil {
		fail("starting NATS", err)
	}
	e.defer_(e.NATS.Shutdown)
	if e.NC, err = nats.Connect(e.NATS.URL()); err != nil {
		fail("connecting to NATS", err)
	}
	e.defer_(e.NC.Close)
	if e.JS, err = jetstream.New(e.NC, jetstream.WithPublishAsyncMaxPending(8192)); err != nil {
		fail("JetStream", err)
	}
	if err := eventlog.Ensure(ctx, e.JS); err != nil {
		fail("event log layout", err)
	}
	if e.Cli, err = clientv3.New(clientv3.Config{Endpoints: e.Etcd.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()}); err != nil {
		fail("etcd client", err)
	}
	e.defer_(func() { e.Cli.Close() })
	e.KeyFile = filepath.Join(dir, "hmac.key")
	if err := os.WriteFile(e.KeyFile, []byte(HMACKey+"\n"), 0o600); err != nil {
		fail("key file", err)
	}
	if e.Pseudonymiser, err = eventlog.NewPseudonymiser([]byte(HMACKey), ""); err != nil {
		fail("pseudonymiser", err)
	}
	if e.Registry, err = registry.Open(ctx, e.Cli, e.JS); err != nil {
		fail("registry", err)
	}
	if err := e.startFeature(ctx); err != nil {
		fail("feature service", err)
	}
	return e
}

func (e *Env) defer_(f func()) {
	e.mu.Lock()
	e.closers = append(e.closers, f)
	e.mu.Unlock()
}

// Close stops everything, last started first.
func (e *Env) Close() {
	e.mu.Lock()
	cs := e.closers
	e.closers = nil
	e.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// Endpoints returns the etcd client URLs.
func (e *Env) Endpoints() []string { return e.Etcd.Endpoints() }

// Dir returns a fresh directory under the environment's.
func (e *Env) Dir(name string) string {
	d, err := os.MkdirTemp(e.dir, name+"-")
	if err != nil {
		panic(err)
	}
	return d
}

func (e *Env) startFeature(ctx context.Context) error {
	cfg := feature.NewConfig()
	cfg.EtcdEndpoints = e.Etcd.Endpoints()
	cfg.NATSURL = e.NATS.URL()
	cfg.Server.TLS.Insecure = true
	cfg.Server.ListenAddr = "127.0.0.1:0"
	cfg.Server.ShutdownTimeout = 2 * time.Second
	cfg.LeaseTTL = 2 * time.Second
	cfg.DataDir = e.Dir("feature")
	cfg.HMACKeyFile = e.KeyFile
	cfg.Server.Logger = Logger()
	e.FeatureMetrics = prometheus.NewRegistry()
	cfg.Server.Registry = e.FeatureMetrics
	addrs := make(chan string, 1)
	cfg.Started = func(_, addr, _ string) { addrs <- addr }
	fctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- feature.Run(fctx, cfg) }()
	e.defer_(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
	})
	select {
	case e.FeatureAddr = <-addrs:
	case err := <-done:
		return fmt.Errorf("stopped at start: %w", err)
	case <-ctx.Done():
		return errors.New("did not start")
	}
	conn, err := grpc.NewClient(e.FeatureAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return err
	}
	e.defer_(func() { conn.Close() })
	e.Feature = featurev1.NewFeatureServiceClient(conn)
	return WaitServing(ctx, e.FeatureAddr)
}

// WaitServing waits until the server at addr reports SERVING.
func WaitServing(ctx context.Context, addr string) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := mesh.CheckHealth(cctx, addr, "", mesh.TLSConfig{Insecure: true})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not SERVING: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// FeatureCalls returns how many calls of a method (e.g. "GetOnlineFeatures") the feature
// service has handled, from its own gRPC server metrics.
func (e *Env) FeatureCalls(t TB, method string) float64 {
	t.Helper()
	return Counter(t, e.FeatureMetrics, "grpc_server_handled_total", map[string]string{"grpc_method": method})
}

// Counter sums a counter's series in reg whose labels include want.
func Counter(t TB, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, want) {
				switch {
				case m.GetCounter() != nil:
					sum += m.GetCounter().GetValue()
				case m.GetHistogram() != nil:
					sum += float64(m.GetHistogram().GetSampleCount())
				case m.GetGauge() != nil:
					sum += m.GetGauge().GetValue()
				}
			}
		}
	}
	return sum
}

func matches(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// Publisher returns a publisher on the environment's JetStream.
func (e *Env) Publisher() *eventlogtest.Publisher { return eventlogtest.NewPublisher(e.JS) }

// Identify returns a trait update of a customer, as an import row makes it.
func Identify(user, msgID string, at time.Time, traits map[string]*commonv1.Value, importID string, row int64) *ingestv1.StoredEvent {
	src := ingestv1.EventSource_EVENT_SOURCE_IDENTIFY
	if importID != "" {
		src = ingestv1.EventSource_EVENT_SOURCE_IMPORT
	}
	return &ingestv1.StoredEvent{
		Type: ingestv1.EventType_EVENT_TYPE_IDENTIFY, MessageId: msgID, UserId: user, Traits: traits,
		EventTime: timestamppb.New(at), ReceivedAt: timestamppb.Now(), Source: src, ImportId: importID, RowNumber: row,
	}
}

// Track returns a behavioural event of a customer.
func Track(user, msgID, name, item string, at time.Time) *ingestv1.StoredEvent {
	return &ingestv1.StoredEvent{
		Type: ingestv1.EventType_EVENT_TYPE_TRACK, MessageId: msgID, UserId: user, Name: name, ItemId: item,
		EventTime: timestamppb.New(at), ReceivedAt: timestamppb.New(at), Source: ingestv1.EventSource_EVENT_SOURCE_TRACK,
	}
}

// Consent returns a consent change of a customer.
func Consent(user, msgID string, st commonv1.ConsentState) *ingestv1.StoredEvent {
	return &ingestv1.StoredEvent{
		Type: ingestv1.EventType_EVENT_TYPE_CONSENT, MessageId: msgID, UserId: user, ConsentState: st,
		EventTime: timestamppb.Now(), ReceivedAt: timestamppb.Now(), Source: ingestv1.EventSource_EVENT_SOURCE_SET_CONSENT,
	}
}

// Forget erases a customer as ingest's ForgetUser does: list them as erased, purge their
// records, publish an erasure record.
func (e *Env) Forget(ctx context.Context, user, erasureID string) error {
	hash := e.Pseudonymiser.SubjectHash(user)
	list, err := eventlog.WatchErasures(ctx, e.JS)
	if err != nil {
		return err
	}
	defer list.Stop()
	if _, _, err := list.Create(ctx, eventlog.ErasureRecord{ErasureID: erasureID, EraseTime: time.Now().UTC(), SubjectHash: hash, KeyID: e.Pseudonymiser.KeyID()}); err != nil {
		return err
	}
	for _, typ := range eventlog.DataTypes {
		subj, err := eventlog.EventSubject(eventlog.UserKey(user), typ)
		if err != nil {
			return err
		}
		if _, err := eventlog.Purge(ctx, e.JS, eventlog.EventsStream, subj); err != nil {
			return err
		}
	}
	p := e.Publisher()
	if err := p.Publish(&ingestv1.StoredEvent{
		Type: ingestv1.EventType_EVENT_TYPE_ERASURE, MessageId: erasureID + "-record", UserId: user,
		ErasureId: erasureID, SubjectHash: hash, ReceivedAt: timestamppb.Now(), EventTime: timestamppb.Now(),
		Source: ingestv1.EventSource_EVENT_SOURCE_FORGET_USER,
	}); err != nil {
		return err
	}
	_, err = p.Flush(ctx)
	return err
}

// ApplyReady applies a feature set and waits until its version is READY.
func (e *Env) ApplyReady(ctx context.Context, fs *featurev1.FeatureSet) (*featurev1.FeatureSet, error) {
	resp, err := e.Feature.ApplyFeatureSet(ctx, &featurev1.ApplyFeatureSetRequest{FeatureSet: fs})
	if err != nil {
		return nil, fmt.Errorf("ApplyFeatureSet: %w", err)
	}
	ref := &featurev1.FeatureSetRef{Name: fs.GetName(), Version: resp.GetFeatureSet().GetVersion()}
	for {
		got, err := e.Feature.GetFeatureSet(ctx, &featurev1.GetFeatureSetRequest{FeatureSet: ref})
		if err != nil {
			return nil, fmt.Errorf("GetFeatureSet: %w", err)
		}
		if got.GetFeatureSet().GetBackfill().GetState() == featurev1.BackfillState_BACKFILL_STATE_READY {
			return got.GetFeatureSet(), nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("feature set %s version %d not READY: %v", ref.GetName(), ref.GetVersion(), got.GetFeatureSet().GetBackfill())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitConsent waits until the feature service reports a customer's consent state.
func (e *Env) WaitConsent(ctx context.Context, set, user string, want commonv1.ConsentState) error {
	for {
		resp, err := e.Feature.GetOnlineFeatures(ctx, &featurev1.GetOnlineFeaturesRequest{
			FeatureSet: &featurev1.FeatureSetRef{Name: set}, Entities: []*commonv1.EntityKey{{Id: user}},
		})
		if err == nil && resp.GetResults()[0].GetConsent() == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("customer %s consent not %v: %v", user, want, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Register stores a's model as the next version of name, with a test AUC for the quality
// gate, and returns the version.
func (e *Env) Register(ctx context.Context, name string, a *modelv1.ModelArtifact, auc float64) (*modelv1.ModelVersion, error) {
	mv := &modelv1.ModelVersion{
		ModelName:          name,
		Family:             a.GetFamily(),
		Task:               a.GetTask(),
		SelectionMetric:    "roc_auc",
		SelectionDirection: modelv1.MetricDirection_METRIC_DIRECTION_MAXIMIZE,
		TestMetrics:        []*commonv1.Metric{{Name: "roc_auc", Value: auc}},
		Inputs:             a.GetInputs(),
		Lineage:            a.GetLineage(),
	}
	v, _, err := e.Registry.Register(ctx, mv, proto.Clone(a).(*modelv1.ModelArtifact))
	return v, err
}

// Routing is a model's routing state to promote.
type Routing struct {
	// Live maps live versions to weights; nil leaves the split as it is.
	Live map[int64]uint32
	// Shadow lists the shadow versions; nil leaves them as they are.
	Shadow []int64
	// Aliases to set.
	Aliases map[string]int64
}

// Promote sets a model's routing state (forced past the quality gate) at its current revision.
func (e *Env) Promote(ctx context.Context, name string, r Routing) (*modelv1.RegisteredModel, error) {
	m, err := e.Registry.Model(ctx, name)
	if err != nil {
		return nil, err
	}
	p := registry.Promotion{ModelName: name, ExpectedRevision: m.GetRevision(), SetAliases: r.Aliases, Force: true}
	if r.Live != nil {
		p.Live = &modelv1.TrafficSplit{}
		for v, w := range r.Live {
			p.Live.Versions = append(p.Live.Versions, &modelv1.VersionWeight{Version: v, Weight: w})
		}
	}
	if r.Shadow != nil {
		p.Shadow = &modelv1.ShadowVersions{Versions: r.Shadow}
	}
	promoted, err := e.Registry.Promote(ctx, p)
	if err != nil {
		return nil, err
	}
	return promoted.Model, nil
}
