// Package testenv runs what serving stands on, for its tests and benchmark: real embedded etcd
// and NATS, the real feature service (its binary), the model registry, and helpers to seed
// customers the way ingest does (StoredEvent records on the events stream), to fit models
// with pkg/ml, encode them with pkg/artifact, register and promote them.
package testenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/eventlog/eventlogtest"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/registry"
)

// TB is what the helpers need of a test (testing.TB has it); the benchmark brings its own.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	TempDir() string
}

// Env is etcd, NATS and the registry in this process, and the feature service's binary
// beside it.
type Env struct {
	// Env is etcd, NATS, their clients, the HMAC key file and its pseudonymiser (erasures).
	*embeddedtest.Env
	// Registry is the model registry, as training writes it.
	Registry *registry.Registry
	// Feature is a client of the feature service; FeatureAddr its address; FeatureMetrics
	// its metrics (gRPC server metrics: calls by method).
	Feature        featurev1.FeatureServiceClient
	FeatureAddr    string
	FeatureMetrics prometheus.Gatherer

	dir string
}

// Logger returns a logger for services in tests: quiet unless BULLSEYE_TEST_LOGS is set.
func Logger() *slog.Logger {
	if os.Getenv("BULLSEYE_TEST_LOGS") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError + 4}))
}

// New starts etcd, NATS, the event log layout, the registry and the feature service, the
// binary bins gives. Close releases them.
func New(t TB, bins *embeddedtest.Binaries) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := start(ctx, bins)
	if err != nil {
		t.Fatalf("test environment: %v", err)
	}
	return e
}

func start(ctx context.Context, bins *embeddedtest.Binaries) (_ *Env, err error) {
	bin, err := bins.Path("bullseye-feature")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bullseye-serving-env-")
	if err != nil {
		return nil, err
	}
	e := &Env{dir: dir}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.Env, err = embeddedtest.Start(ctx, dir); err != nil {
		return nil, err
	}
	if e.Registry, err = registry.Open(ctx, e.Cli, e.JS); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	feature, err := e.StartProcess(ctx, bin, nil, "--hmac-key-file", e.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("feature service: %w", err)
	}
	e.OnClose(feature.Kill)
	e.FeatureAddr, e.FeatureMetrics = feature.Addr, feature
	conn, err := grpc.NewClient(e.FeatureAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, err
	}
	e.OnClose(func() { conn.Close() })
	e.Feature = featurev1.NewFeatureServiceClient(conn)
	return e, nil
}

// Close stops everything, last started first, and removes the environment's files.
func (e *Env) Close() {
	if e.Env != nil {
		e.Env.Close()
	}
	os.RemoveAll(e.dir)
}

// Endpoints returns the etcd client URLs.
func (e *Env) Endpoints() []string { return e.Etcd.Endpoints() }

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
		Outputs:            a.GetOutputs(),
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
