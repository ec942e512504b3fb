package scoring

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/linear"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
	mlrec "github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/services/serving/internal/batch"
	"github.com/bullseye-ml/bullseye/services/serving/internal/features"
)

// customer is what the fake feature service knows of one customer.
type customer struct {
	consent commonv1.ConsentState
	values  map[string]*commonv1.Value
}

// featureService is a feature service that knows a few feature sets and customers and
// answers online lookups in the columns layout, as the real one does.
type featureService struct {
	featurev1.UnimplementedFeatureServiceServer

	mu        sync.Mutex
	sets      []*featurev1.FeatureSet // by name; version 1 each
	customers map[string]customer
	fail      error                                 // what GetOnlineFeatures fails with, when set
	lookups   []*featurev1.GetOnlineFeaturesRequest // every request, in order
}

func (f *featureService) set(name string) *featurev1.FeatureSet {
	for _, s := range f.sets {
		if s.GetName() == name {
			return s
		}
	}
	return nil
}

func (f *featureService) GetFeatureSet(_ context.Context, req *featurev1.GetFeatureSetRequest) (*featurev1.GetFeatureSetResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.set(req.GetFeatureSet().GetName())
	if s == nil {
		return nil, status.Error(codes.NotFound, "no such feature set")
	}
	return &featurev1.GetFeatureSetResponse{FeatureSet: s}, nil
}

func (f *featureService) ListFeatureSets(context.Context, *featurev1.ListFeatureSetsRequest) (*featurev1.ListFeatureSetsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &featurev1.ListFeatureSetsResponse{FeatureSets: f.sets}, nil
}

func (f *featureService) GetOnlineFeatures(_ context.Context, req *featurev1.GetOnlineFeaturesRequest) (*featurev1.GetOnlineFeaturesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups = append(f.lookups, req)
	if f.fail != nil {
		return nil, f.fail
	}
	s := f.set(req.GetFeatureSet().GetName())
	if s == nil {
		return nil, status.Error(codes.NotFound, "no such feature set")
	}
	types := map[string]commonv1.ValueType{}
	for _, c := range s.GetColumns() {
		types[c.GetName()] = c.GetType()
	}
	oc := &featurev1.OnlineColumns{}
	for _, e := range req.GetEntities() {
		c, found := f.customers[e.GetId()]
		oc.Found = append(oc.Found, found)
		oc.Consent = append(oc.Consent, c.consent)
	}
	for _, name := range req.GetFeatureNames() {
		typ, ok := types[name]
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "no column %q", name)
		}
		col := &featurev1.FeatureValueColumn{Type: typ}
		for _, e := range req.GetEntities() {
			c, found := f.customers[e.GetId()]
			v := c.values[name]
			st := featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_PRESENT
			switch {
			case !found:
				st = featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_NOT_FOUND
			case v == nil:
				st = featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_NULL
			}
			col.Status = append(col.Status, st)
			col.IsNull = append(col.IsNull, v == nil)
			switch typ {
			case commonv1.ValueType_VALUE_TYPE_NUMBER:
				col.NumberValues = append(col.NumberValues, v.GetNumberValue())
			case commonv1.ValueType_VALUE_TYPE_STRING:
				col.StringValues = append(col.StringValues, v.GetStringValue())
			default:
				col.IntValues = append(col.IntValues, v.GetIntValue())
			}
		}
		oc.Features = append(oc.Features, col)
	}
	return &featurev1.GetOnlineFeaturesResponse{FeatureNames: req.GetFeatureNames(), Columns: oc}, nil
}

// requests returns the lookups so far.
func (f *featureService) requests() []*featurev1.GetOnlineFeaturesRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*featurev1.GetOnlineFeaturesRequest(nil), f.lookups...)
}

// serve serves fs on 127.0.0.1 and returns a client of it.
func serve(t *testing.T, fs *featureService) *features.Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	featurev1.RegisterFeatureServiceServer(srv, fs)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return features.New(featurev1.NewFeatureServiceClient(conn), features.Options{Timeout: 30 * time.Second})
}

func num(f float64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: f}}
}
func integer(i int64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: i}}
}
func str(s string) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
}

// people is the feature set of the linear model: age, spend and tier.
var people = &featurev1.FeatureSet{Name: "people", Version: 1, Columns: []*featurev1.FeatureColumn{
	{Name: "age", Type: commonv1.ValueType_VALUE_TYPE_INT},
	{Name: "spend", Type: commonv1.ValueType_VALUE_TYPE_NUMBER},
	{Name: "tier", Type: commonv1.ValueType_VALUE_TYPE_STRING},
}}

// linearArtifact is a linear regression of version 1 on age (never missing in training, so
// required), spend (imputed by its training mean, 2) and bonus, an input of no feature set
// (imputed by 0), all unscaled: score = 1 + age + 10·spend + 100·bonus.
func linearArtifact(t *testing.T) *modelv1.ModelArtifact {
	t.Helper()
	nan := math.NaN()
	table := &ml.Table{Columns: []ml.Column{
		ml.NumericColumn("age", []float64{20, 40, 30}),
		ml.NumericColumn("spend", []float64{1, 3, nan}),
		ml.NumericColumn("bonus", []float64{nan, 0, 0}),
	}}
	pipe, err := preprocess.Fit(table, preprocess.Spec{
		Defaults: preprocess.Options{NoStandardize: true, Impute: preprocess.ImputeMean, Indicator: preprocess.IndicatorNever},
		Columns:  map[string]preprocess.Options{"age": {NoStandardize: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := pipe.NumFeatures(); got != 3 {
		t.Fatalf("the pipeline makes %d features, want 3", got)
	}
	a, err := artifact.Encode(&artifact.Fitted{
		Family: modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION, Task: modelv1.TaskKind_TASK_KIND_REGRESSION,
		Inputs: []*modelv1.InputColumn{
			{Name: "age", Type: commonv1.ValueType_VALUE_TYPE_INT},
			{Name: "spend", Type: commonv1.ValueType_VALUE_TYPE_NUMBER},
			{Name: "bonus", Type: commonv1.ValueType_VALUE_TYPE_NUMBER},
		},
		Pipeline: pipe, Model: &linear.Model{Weights: []float64{1, 10, 100}, Intercept: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	a.ModelName, a.ModelVersion = "spend", 1
	a.Lineage = &modelv1.Lineage{FeatureSet: "people", FeatureSetVersion: 1}
	return a
}

// recommenderArtifact is an implicit ALS recommender of rank 1 that knows user u1 and items
// i0 and i1 (u1 saw neither), with a popularity ranking of both.
func recommenderArtifact(t *testing.T) *modelv1.ModelArtifact {
	t.Helper()
	f := &mlrec.Factors{
		Rank:        1,
		UserIDs:     []string{"u1"},
		ItemIDs:     []string{"i0", "i1"},
		UserFactors: []float32{1},
		ItemFactors: []float32{1, 2},
		SeenOffsets: []uint32{0, 0},
		Popularity:  mlrec.Popularity{ItemIDs: []string{"i0", "i1"}, Scores: []float64{5, 1}},
	}
	a, err := artifact.EncodeFactors(modelv1.ModelFamily_MODEL_FAMILY_IMPLICIT_ALS, modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT, f)
	if err != nil {
		t.Fatal(err)
	}
	a.ModelName, a.ModelVersion = "recs", 1
	return a
}

// load loads a into a model with a queue of batches of up to size rows, closed and waited
// for at the end of the test.
func load(t *testing.T, fc *features.Client, a *modelv1.ModelArtifact, size int) *Model {
	t.Helper()
	opts := batch.DefaultOptions()
	opts.MaxBatchSize = size
	m, err := Load(Deps{Features: fc, Pool: batch.NewPool(2), Options: func(string) batch.Options { return opts },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		m.Wait()
	})
	return m
}

// run submits tasks of rows (one task each) together and waits for them; it returns each
// task's outcomes and the group's error.
func run(t *testing.T, m *Model, edit func(*Task), rows ...[]Row) ([][]Outcome, []*Task, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g := NewGroup(len(rows))
	outs := make([][]Outcome, len(rows))
	tasks := make([]*Task, len(rows))
	for i, r := range rows {
		outs[i] = make([]Outcome, len(r))
		tasks[i] = NewTask(ctx, g, r, outs[i])
		if edit != nil {
			edit(tasks[i])
		}
	}
	if err := m.Submit(tasks...); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Done():
	case <-ctx.Done():
		t.Fatal("the tasks did not end within a minute")
	}
	return outs, tasks, g.Err()
}

// values returns a row of inline values by input name.
func values(t *testing.T, m *Model, byName map[string]*commonv1.Value) []*commonv1.Value {
	t.Helper()
	out := make([]*commonv1.Value, len(m.Inputs))
	for name, v := range byName {
		k, ok := m.InputIndex(name)
		if !ok {
			t.Fatalf("no input %q", name)
		}
		out[k] = v
	}
	return out
}
