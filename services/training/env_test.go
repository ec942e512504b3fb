package training_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/datasets"
	"github.com/bullseye-ml/bullseye/pkg/embedded"
	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/services/training"
	"github.com/bullseye-ml/bullseye/services/training/internal/featuretest"
)

// binaries gives the feature service binary the recommender tests run.
var binaries embeddedtest.Binaries

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(embeddedtest.GoleakOptions(), goleak.Cleanup(func(code int) {
		binaries.Remove()
		os.Exit(code)
	}))...)
}

// Bank Marketing files of the shared data folder.
const (
	bankFull  = "bank-additional-full.csv"
	bankSmall = "bank-additional.csv"
)

// tables caches the files read.
var tables sync.Map

// bankTable reads a Bank file of the shared data sets, failing the test when it is absent.
func bankTable(t testing.TB, file string) *featuretest.Table {
	t.Helper()
	path := datasets.Require(t, file)
	if tb, ok := tables.Load(file); ok {
		return tb.(*featuretest.Table)
	}
	tb, err := featuretest.ReadCSV(path, ';')
	if err != nil {
		t.Fatal(err)
	}
	tables.Store(file, tb)
	return tb
}

// env is a mesh for the training service: real embedded etcd and NATS, and a feature
// service. The feature service is the TEST STAND-IN of package featuretest serving a Bank
// Marketing file as feature set "bank-marketing"; when the real feature service is usable,
// startFeatures is the one place to change (import the file through ingest, apply the
// feature set, run services/feature): the training specs below are already real ones.
type env struct {
	t        *testing.T
	etcd     *embedded.Etcd
	nats     *embedded.NATS
	cli      *clientv3.Client
	features *featuretest.Server
}

func newEnv(t *testing.T, file string) *env {
	t.Helper()
	tb := bankTable(t, file)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e := &env{t: t}
	var err error
	if e.etcd, err = embedded.StartEtcd(ctx, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.etcd.Close)
	if e.nats, err = embedded.StartNATS(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.nats.Shutdown)
	if e.cli, err = e.etcd.Client(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.cli.Close() })
	e.startFeatures(tb)
	return e
}

// startFeatures starts the feature service the training service dials ("feature" in etcd).
func (e *env) startFeatures(tb *featuretest.Table) {
	e.features = featuretest.New("bank-marketing", "client", tb)
	_, stop, err := featuretest.Start(context.Background(), e.cli, e.features)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(stop)
}

// logBuffer collects a server's logs, shown when the test fails.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// trainer is one training service instance run in-process with training.Run.
type trainer struct {
	client trainingv1.TrainingServiceClient
	conn   *grpc.ClientConn
	stop   func()
	logs   *logBuffer
}

// config returns a training configuration for the env: plaintext, short leases.
func (e *env) config(worker string) training.Config {
	cfg := training.NewConfig()
	cfg.EtcdEndpoints = e.etcd.Endpoints()
	cfg.NATSURL = e.nats.URL()
	cfg.Server.TLS.Insecure = true
	cfg.Server.ShutdownTimeout = 3 * time.Second
	cfg.DataDir = e.t.TempDir()
	cfg.LeaseTTL = 2 * time.Second
	cfg.Worker = worker
	cfg.JobLeaseTTL = 2 * time.Second
	cfg.ProgressInterval = 50 * time.Millisecond
	cfg.ScanInterval = 300 * time.Millisecond
	return cfg
}

func (e *env) startTraining(worker string, opts ...func(*training.Config)) *trainer {
	e.t.Helper()
	cfg := e.config(worker)
	for _, o := range opts {
		o(&cfg)
	}
	tr := &trainer{logs: &logBuffer{}}
	cfg.Server.Logger = slog.New(slog.NewJSONHandler(tr.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	addrs := make(chan string, 1)
	cfg.Started = func(_, addr, _ string) { addrs <- addr }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- training.Run(ctx, cfg) }()
	var addr string
	select {
	case addr = <-addrs:
	case err := <-done:
		cancel()
		e.t.Fatalf("training.Run: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		e.t.Fatal("the training service did not start")
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	var once sync.Once
	tr.conn, tr.client = conn, trainingv1.NewTrainingServiceClient(conn)
	tr.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("training.Run of %s: %v", worker, err)
			}
			conn.Close()
		})
	}
	e.t.Cleanup(func() {
		tr.stop()
		if e.t.Failed() {
			e.t.Logf("logs of %s:\n%s", worker, tr.logs)
		}
	})
	return tr
}

func str(s string) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
}
func num(x float64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: x}}
}

// bankTrainingSet is the Bank Marketing training set as the feature service defines it: the
// file's columns as traits of feature set "bank-marketing", label y ("yes" positive), the
// reference split (row i is test when i % 5 == 4).
func bankTrainingSet() *featurev1.TrainingSetSpec {
	return &featurev1.TrainingSetSpec{
		FeatureSet: &featurev1.FeatureSetRef{Name: "bank-marketing"},
		Label: &featurev1.LabelSpec{Name: "y", Source: &featurev1.LabelSpec_Trait{Trait: &featurev1.TraitLabel{
			Trait: "y", PositiveValues: []*commonv1.Value{str("yes")}}}},
		Cutoff: &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_FixedTime{
			FixedTime: timestamppb.New(time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC))}},
		Split: &featurev1.SplitSpec{Method: &featurev1.SplitSpec_RowNumber{RowNumber: &featurev1.RowNumberSplit{
			Modulus: 5, TestRemainders: []int64{4}}}},
	}
}

// bankSpec is a job on Bank with the reference preprocessing (numbers standardised,
// categories one-hot, unseen ones ignored), without duration unless withDuration.
func bankSpec(model string, withDuration bool, cands ...*trainingv1.CandidateSpec) *trainingv1.TrainingSpec {
	s := &trainingv1.TrainingSpec{
		ModelName:     model,
		Task:          modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION,
		Data:          &trainingv1.DataSpec{Source: &trainingv1.DataSpec_TrainingSet{TrainingSet: bankTrainingSet()}},
		Preprocessing: &trainingv1.PreprocessingSpec{OneHot: &trainingv1.OneHotOptions{DropUnseenBucket: true}},
		Candidates:    cands,
	}
	if !withDuration {
		s.Preprocessing.ExcludedColumns = []string{"duration"}
	}
	return s
}

// values is a hyperparameter domain of listed values.
func values(vs ...*commonv1.Value) *trainingv1.HyperparameterDomain {
	return &trainingv1.HyperparameterDomain{Domain: &trainingv1.HyperparameterDomain_Values{Values: &trainingv1.HyperparameterValues{Values: vs}}}
}

func candidate(f modelv1.ModelFamily, hp map[string]*trainingv1.HyperparameterDomain) *trainingv1.CandidateSpec {
	return &trainingv1.CandidateSpec{Family: f, Hyperparameters: hp}
}

// logisticC is logistic regression with the given values of C.
func logisticC(cs ...float64) *trainingv1.CandidateSpec {
	var vs []*commonv1.Value
	for _, c := range cs {
		vs = append(vs, num(c))
	}
	return candidate(modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION, map[string]*trainingv1.HyperparameterDomain{"c": values(vs...)})
}

// start starts a job and returns it.
func start(t *testing.T, c trainingv1.TrainingServiceClient, requestID string, spec *trainingv1.TrainingSpec) *trainingv1.Job {
	t.Helper()
	resp, err := c.StartTraining(context.Background(), &trainingv1.StartTrainingRequest{RequestId: requestID, Spec: spec})
	if err != nil {
		t.Fatalf("StartTraining(%s): %v", requestID, err)
	}
	return resp.GetJob()
}

// watch follows a job to its end with WatchJob, calling each (if set) on every update, and
// returns the updates.
func watch(t *testing.T, c trainingv1.TrainingServiceClient, id string, timeout time.Duration, each func(*trainingv1.JobProgress)) []*trainingv1.JobProgress {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stream, err := c.WatchJob(ctx, &trainingv1.WatchJobRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	var out []*trainingv1.JobProgress
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("WatchJob(%s) after %d updates: %v", id, len(out), err)
		}
		out = append(out, resp.GetProgress())
		if each != nil {
			each(resp.GetProgress())
		}
	}
}

// finished waits for a job to end and returns it.
func finished(t *testing.T, c trainingv1.TrainingServiceClient, id string, timeout time.Duration) *trainingv1.Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.GetJob(context.Background(), &trainingv1.GetJobRequest{JobId: id})
		if err == nil {
			switch resp.GetJob().GetState() {
			case trainingv1.JobState_JOB_STATE_SUCCEEDED, trainingv1.JobState_JOB_STATE_FAILED, trainingv1.JobState_JOB_STATE_CANCELLED:
				return resp.GetJob()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s did not end within %v (last: %v, %v)", id, timeout, resp.GetJob().GetProgress(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func succeeded(t *testing.T, job *trainingv1.Job) {
	t.Helper()
	if job.GetState() != trainingv1.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job %s ended %v: %v; messages %v", job.GetJobId(), job.GetState(), job.GetError(), job.GetMessages())
	}
}

func metric(ms []*commonv1.Metric, name string) float64 {
	for _, m := range ms {
		if m.GetName() == name {
			return m.GetValue()
		}
	}
	return -1
}

// codeAndReason returns a status error's code, ErrorInfo reason and metadata.
func codeAndReason(err error) (codes.Code, string, map[string]string) {
	st := status.Convert(err)
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return st.Code(), ei.GetReason(), ei.GetMetadata()
		}
	}
	return st.Code(), "", nil
}

// violations returns the fields of a status error's BadRequest.
func violations(err error) []string {
	var out []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField())
			}
		}
	}
	return out
}

func hasCode(msgs []*trainingv1.JobMessage, code string) bool {
	for _, m := range msgs {
		if m.GetCode() == code {
			return true
		}
	}
	return false
}

func describe(job *trainingv1.Job) string {
	var b bytes.Buffer
	for _, m := range job.GetMessages() {
		fmt.Fprintf(&b, "  %s %s: %s\n", m.GetSeverity(), m.GetCode(), m.GetText())
	}
	return b.String()
}
