package serving

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/gen/inference"
	"github.com/bullseye-ml/bullseye/services/serving/internal/testenv"
)

// binaries gives the feature service binary the environments run.
var binaries embeddedtest.Binaries

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.env != nil {
		shared.env.Close()
	}
	binaries.Remove()
	if code == 0 {
		if err := goleak.Find(embeddedtest.GoleakOptions()...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// bankSet is the feature set of the seeded Bank customers.
const bankSet = "bank"

// The Bank customers who objected to marketing and who were erased.
var (
	objected = []int{3, 17, 100}
	erased   = []int{5, 41000}
)

// bank is the shared environment: etcd, NATS, the feature service with every Bank customer
// seeded (some objected, some erased), the training set, and two logistic regressions fitted
// on its TRAIN rows.
type bank struct {
	env   *testenv.Env
	table *testenv.Table
	set   *featurev1.FeatureSet
	data  *testenv.Dataset
	// v1 (C = 1) and v2 (C = 0.01) artifacts, and their scorers.
	v1, v2 *modelv1.ModelArtifact
	s1, s2 artifact.Scorer
	// byID maps a customer id to its row in data.
	byID map[string]int
}

var shared struct {
	once sync.Once
	env  *testenv.Env
	bank *bank
	err  error
}

// sharedBank returns the shared environment, building it on first use; the test is skipped
// only when the Bank data set is absent.
func sharedBank(t *testing.T) *bank {
	t.Helper()
	path := testenv.DataFile(t, "bank-additional-full.csv")
	shared.once.Do(func() {
		start := time.Now()
		env := testenv.New(t, &binaries)
		shared.env = env
		b, err := seedBank(env, testenv.ReadTable(t, path))
		shared.bank, shared.err = b, err
		t.Logf("shared environment: %d Bank customers seeded, models fitted in %v", len(b.table.Rows), time.Since(start).Round(time.Millisecond))
	})
	if shared.err != nil {
		t.Fatalf("shared environment: %v", shared.err)
	}
	return shared.bank
}

func seedBank(env *testenv.Env, table *testenv.Table) (*bank, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := &bank{env: env, table: table, byID: map[string]int{}}
	set, err := env.SeedTable(ctx, table, bankSet, "y", testenv.BankID)
	if err != nil {
		return nil, err
	}
	b.set = set
	p := env.Publisher()
	for _, i := range objected {
		if err := p.Publish(testenv.Consent(testenv.BankID(i), fmt.Sprintf("objects-%d", i), commonv1.ConsentState_CONSENT_STATE_OBJECTED)); err != nil {
			return nil, err
		}
	}
	if _, err := p.Flush(ctx); err != nil {
		return nil, err
	}
	for _, i := range erased {
		if err := env.Forget(ctx, testenv.BankID(i), fmt.Sprintf("erasure-%d", i)); err != nil {
			return nil, err
		}
	}
	for _, i := range objected {
		if err := env.WaitConsent(ctx, bankSet, testenv.BankID(i), commonv1.ConsentState_CONSENT_STATE_OBJECTED); err != nil {
			return nil, err
		}
	}
	for _, i := range erased {
		if err := env.WaitConsent(ctx, bankSet, testenv.BankID(i), commonv1.ConsentState_CONSENT_STATE_ERASED); err != nil {
			return nil, err
		}
	}
	d, err := env.TrainingSet(ctx, bankSet, "y", "yes")
	if err != nil {
		return nil, err
	}
	b.data = d
	for i, r := range d.Rows {
		b.byID[r.GetEntity().GetId()] = i
	}
	train := d.Table.Subset(d.Train)
	y := make([]float64, len(d.Train))
	for k, i := range d.Train {
		y[k] = d.Y[i]
	}
	if b.v1, err = testenv.FitLogistic(ctx, train, y, d.Inputs, 1, bankSet, set.GetVersion()); err != nil {
		return nil, err
	}
	if b.v2, err = testenv.FitLogistic(ctx, train, y, d.Inputs, 0.01, bankSet, set.GetVersion()); err != nil {
		return nil, err
	}
	if b.s1, err = artifact.NewScorer(b.v1); err != nil {
		return nil, err
	}
	if b.s2, err = artifact.NewScorer(b.v2); err != nil {
		return nil, err
	}
	return b, nil
}

// expected holds the training side's scores of every row of the data set, by a scorer.
type expected struct {
	score, prob []float64
}

// trainingScores scores every row of the data set as training does: columnar, one batch.
func (b *bank) trainingScores(t *testing.T, s artifact.Scorer) expected {
	t.Helper()
	var res artifact.Result
	if err := s.Score(context.Background(), &artifact.Batch{Table: b.data.Table}, &res); err != nil {
		t.Fatal(err)
	}
	return expected{score: append([]float64(nil), res.Scores...), prob: append([]float64(nil), res.Probabilities...)}
}

// register registers the artifacts as versions 1, 2, ... of a new model name and promotes
// routing r.
func (b *bank) register(t *testing.T, name string, r testenv.Routing, arts ...*modelv1.ModelArtifact) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	for i, a := range arts {
		v, err := b.env.Register(ctx, name, a, 0.9+float64(i)/100)
		if err != nil {
			t.Fatal(err)
		}
		if v.GetVersion() != int64(i+1) {
			t.Fatalf("registered version %d, want %d", v.GetVersion(), i+1)
		}
	}
	if _, err := b.env.Promote(ctx, name, r); err != nil {
		t.Fatal(err)
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// lookupHook counts (and can hold) the feature lookups serving makes.
type lookupHook struct {
	calls   atomic.Int64
	mu      sync.Mutex
	ids     map[string]bool
	hold    chan struct{} // while not nil, lookups wait for it to close
	started chan struct{} // receives one value per held lookup that started
}

type hookedClient struct {
	featurev1.FeatureServiceClient
	h *lookupHook
}

func (c hookedClient) GetOnlineFeatures(ctx context.Context, in *featurev1.GetOnlineFeaturesRequest, opts ...grpc.CallOption) (*featurev1.GetOnlineFeaturesResponse, error) {
	c.h.calls.Add(1)
	c.h.mu.Lock()
	if c.h.ids == nil {
		c.h.ids = map[string]bool{}
	}
	for _, e := range in.GetEntities() {
		c.h.ids[e.GetId()] = true
	}
	hold, started := c.h.hold, c.h.started
	c.h.mu.Unlock()
	if hold != nil {
		started <- struct{}{}
		<-hold
	}
	return c.FeatureServiceClient.GetOnlineFeatures(ctx, in, opts...)
}

// holdLookups makes lookups wait until the returned release is called.
func (h *lookupHook) holdLookups() (started <-chan struct{}, release func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hold = make(chan struct{})
	h.started = make(chan struct{}, 100)
	hold := h.hold
	var once sync.Once
	return h.started, func() {
		once.Do(func() {
			h.mu.Lock()
			h.hold = nil
			h.mu.Unlock()
			close(hold)
		})
	}
}

func (h *lookupHook) looked(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ids[id]
}

// instance is a serving service running in this process.
type instance struct {
	addr    string
	conn    *grpc.ClientConn
	client  servingv1.PredictionServiceClient
	infer   inference.GRPCInferenceServiceClient
	metrics *prometheus.Registry
	hook    *lookupHook
}

// startServing runs the serving service against env with cfg changed by mod, and waits
// until it is SERVING.
func startServing(t *testing.T, env *testenv.Env, mod func(*Config)) *instance {
	t.Helper()
	cfg := NewConfig()
	cfg.EtcdEndpoints = env.Endpoints()
	cfg.NATSURL = env.NATS.URL()
	cfg.Server.TLS.Insecure = true
	cfg.Server.ListenAddr = "127.0.0.1:0"
	cfg.Server.ShutdownTimeout = 5 * time.Second
	cfg.Server.Logger = testenv.Logger()
	cfg.LeaseTTL = 2 * time.Second
	cfg.ReadinessInterval = 50 * time.Millisecond
	cfg.DataDir = t.TempDir()
	in := &instance{metrics: prometheus.NewRegistry(), hook: &lookupHook{}}
	cfg.Server.Registry = in.metrics
	cfg.wrapFeatures = func(c featurev1.FeatureServiceClient) featurev1.FeatureServiceClient { return hookedClient{c, in.hook} }
	if mod != nil {
		mod(&cfg)
	}
	addrs := make(chan string, 1)
	cfg.Started = func(_, addr, _ string) { addrs <- addr }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serving stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("serving did not stop")
		}
	})
	select {
	case in.addr = <-addrs:
	case err := <-done:
		t.Fatalf("serving stopped at start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serving did not start")
	}
	conn, err := grpc.NewClient(in.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	in.conn = conn
	in.client = servingv1.NewPredictionServiceClient(conn)
	in.infer = inference.NewGRPCInferenceServiceClient(conn)
	if err := embeddedtest.WaitServing(ctxT(t, 60*time.Second), in.addr); err != nil {
		t.Fatal(err)
	}
	return in
}

// metric sums a metric's series whose labels include want.
func (in *instance) metric(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	return testenv.Counter(t, in.metrics, name, want)
}

// histogramSum returns the sum of a histogram's observations over its series matching want.
func (in *instance) histogramSum(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := in.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := want[lp.GetName()]; ok && v != lp.GetValue() {
					continue series
				}
			}
			sum += m.GetHistogram().GetSampleSum()
		}
	}
	return sum
}

// histogramBucket returns a histogram's observation count and the count at or below le, over
// its series matching want.
func (in *instance) histogramBucket(t *testing.T, name string, want map[string]string, le float64) (count, below float64) {
	t.Helper()
	mfs, err := in.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := want[lp.GetName()]; ok && v != lp.GetValue() {
					continue series
				}
			}
			count += float64(m.GetHistogram().GetSampleCount())
			for _, b := range m.GetHistogram().GetBucket() {
				if b.GetUpperBound() == le {
					below += float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return count, below
}

// waitStatus waits until the model's status satisfies ok.
func (in *instance) waitStatus(t *testing.T, name string, ok func(*servingv1.ServedModel) bool) *servingv1.ServedModel {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := in.client.GetModelStatus(ctxT(t, 5*time.Second), &servingv1.GetModelStatusRequest{Model: &commonv1.ModelRef{Name: name}})
		if err == nil && ok(resp.GetModel()) {
			return resp.GetModel()
		}
		if time.Now().After(deadline) {
			t.Fatalf("model %s status never as wanted; last %v, %v", name, resp.GetModel(), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ref(name string) *commonv1.ModelRef { return &commonv1.ModelRef{Name: name} }

func byUser(ids ...string) []*servingv1.Instance {
	out := make([]*servingv1.Instance, len(ids))
	for i, id := range ids {
		out[i] = &servingv1.Instance{UserId: id}
	}
	return out
}

// inline returns data row i's raw values as inline features.
func (b *bank) inline(i int) map[string]*commonv1.Value {
	m := map[string]*commonv1.Value{}
	for k, in := range b.data.Inputs {
		if v := b.data.Rows[i].GetFeatures()[k]; v.GetKind() != nil {
			m[in.GetName()] = v
		}
	}
	return m
}

// containsField reports whether err carries a BadRequest naming field.
func containsField(err error, field string) bool {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == field {
					return true
				}
			}
		}
	}
	return false
}

// concurrently makes n calls at once, each call(i), with the first feature lookup held until
// the other calls wait in the model's queue, and returns the lookups they made.
func (in *instance) concurrently(t *testing.T, model string, n int, call func(i int) error) int64 {
	t.Helper()
	before := in.hook.calls.Load()
	started, release := in.hook.holdLookups()
	defer release()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := call(i); err != nil {
				errs <- err
			}
		}()
	}
	select {
	case <-started:
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("no lookup started")
	}
	deadline := time.Now().Add(10 * time.Second)
	for in.metric(t, "bullseye_serving_queued_tasks", map[string]string{"model": model}) < float64(n-1) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return in.hook.calls.Load() - before
}

// checkOutputs fails the test unless a scored row's named outputs are those named, with the
// values of the row's own fields.
func checkOutputs(t *testing.T, p *servingv1.Prediction, names ...string) {
	t.Helper()
	out := p.GetOutputs()
	if got := slices.Sorted(maps.Keys(out)); !slices.Equal(got, slices.Sorted(slices.Values(names))) {
		t.Errorf("outputs %v, want %v", got, names)
	}
	for name, v := range out {
		var ok bool
		switch name {
		case "score":
			ok = v.GetNumber() == p.GetScore()
		case "probability":
			ok = p.Probability != nil && v.GetNumber() == p.GetProbability()
		case "value":
			ok = p.Value != nil && v.GetNumber() == p.GetValue()
		case "label":
			ok = proto.Equal(v.GetLabel(), p.GetLabel())
		}
		if !ok {
			t.Errorf("output %s = %v, the row says %v", name, v, p)
		}
	}
}
