package trainer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/registry"
	"github.com/bullseye-ml/bullseye/services/training/internal/featuretest"
)

// reporter records what a job reports; onMessage, when set, sees each message as it comes.
type reporter struct {
	mu        sync.Mutex
	stages    []trainingv1.JobStage
	progress  trainingv1.JobProgress
	percents  []float64
	messages  []*trainingv1.JobMessage
	onMessage func(*trainingv1.JobMessage)
}

func (r *reporter) Stage(s trainingv1.JobStage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.stages) == 0 || r.stages[len(r.stages)-1] != s {
		r.stages = append(r.stages, s)
	}
}

func (r *reporter) Update(f func(p *trainingv1.JobProgress)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.progress)
	r.percents = append(r.percents, r.progress.GetPercent())
}

func (r *reporter) Message(m *trainingv1.JobMessage) {
	r.mu.Lock()
	r.messages = append(r.messages, m)
	on := r.onMessage
	r.mu.Unlock()
	if on != nil {
		on(m)
	}
}

func (r *reporter) codes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.messages {
		out = append(out, m.GetCode())
	}
	return out
}

// synthetic is a table of n customers: x (a number), g (a category) and y, "yes" for most
// customers with x above 0.5 and "no" for most below; label(i) may replace y.
func synthetic(n int, label func(i int, x float64) *commonv1.Value) *featuretest.Table {
	rng := rand.New(rand.NewPCG(7, 7))
	t := &featuretest.Table{Columns: []*featurev1.FeatureColumn{
		{Name: "x", Type: commonv1.ValueType_VALUE_TYPE_NUMBER},
		{Name: "g", Type: commonv1.ValueType_VALUE_TYPE_STRING},
		{Name: "y", Type: commonv1.ValueType_VALUE_TYPE_STRING},
	}}
	for i := range n {
		x := rng.Float64()
		y := "no"
		if (x > 0.5) != (rng.Float64() < 0.1) {
			y = "yes"
		}
		v := str(y)
		if label != nil {
			v = label(i, x)
		}
		t.Rows = append(t.Rows, []*commonv1.Value{num(x), str([]string{"a", "b", "c"}[i%3]), v})
	}
	return t
}

func str(s string) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
}
func num(x float64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: x}}
}

// stand is a trainer over the feature service stand-in serving a table as feature set
// "synth", registering in a registry on embedded etcd and NATS.
type stand struct {
	trainer  *Trainer
	registry *registry.Registry
	features *featuretest.Server
}

func newStand(t *testing.T, table *featuretest.Table) *stand {
	t.Helper()
	cli := embeddedtest.Etcd(t)
	js, _ := embeddedtest.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg, err := registry.Open(ctx, cli, js)
	if err != nil {
		t.Fatal(err)
	}
	s := &stand{registry: reg, features: featuretest.New("synth", "c", table)}
	s.trainer = New(featureClient(t, s.features), s.registry, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithCodeVersion("test"))
	return s
}

// featureClient serves fs on 127.0.0.1 and returns a client of it; nil fs leaves the address
// unserved.
func featureClient(t *testing.T, fs featurev1.FeatureServiceServer) featurev1.FeatureServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if fs == nil {
		lis.Close()
	} else {
		gs := grpc.NewServer()
		featurev1.RegisterFeatureServiceServer(gs, fs)
		go func() { _ = gs.Serve(lis) }()
		t.Cleanup(gs.Stop)
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return featurev1.NewFeatureServiceClient(conn)
}

// classification is a job on the synthetic table: label y ("yes" positive), row i in TEST
// when i % 5 == 4, two logistic candidates.
func classification(model string) *trainingv1.TrainingSpec {
	return &trainingv1.TrainingSpec{
		ModelName: model,
		Task:      modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION,
		Data: &trainingv1.DataSpec{Source: &trainingv1.DataSpec_TrainingSet{TrainingSet: &featurev1.TrainingSetSpec{
			FeatureSet: &featurev1.FeatureSetRef{Name: "synth"},
			Label: &featurev1.LabelSpec{Name: "y", Source: &featurev1.LabelSpec_Trait{Trait: &featurev1.TraitLabel{
				Trait: "y", PositiveValues: []*commonv1.Value{str("yes")}}}},
			Cutoff: &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_FixedTime{FixedTime: timestamppb.New(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))}},
			Split: &featurev1.SplitSpec{Method: &featurev1.SplitSpec_RowNumber{RowNumber: &featurev1.RowNumberSplit{
				Modulus: 5, TestRemainders: []int64{4}}}},
		}}},
		Candidates: []*trainingv1.CandidateSpec{{Family: modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION,
			Hyperparameters: map[string]*trainingv1.HyperparameterDomain{"c": {Domain: &trainingv1.HyperparameterDomain_Values{
				Values: &trainingv1.HyperparameterValues{Values: []*commonv1.Value{num(0.01), num(1)}}}}}}},
	}
}

func (s *stand) run(t *testing.T, id string, sp *trainingv1.TrainingSpec) (*Outcome, *reporter, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep := &reporter{}
	out, err := s.trainer.Run(ctx, &trainingv1.Job{JobId: id, Spec: sp}, rep)
	return out, rep, err
}

// reason returns the stable reason a job failed with.
func reason(err error) string { return ErrorProblem(err).GetReason() }

// TestRunRefusesAnInvalidSpec: a job whose spec is invalid fails with INVALID_SPEC before
// any stage.
func TestRunRefusesAnInvalidSpec(t *testing.T) {
	s := newStand(t, synthetic(50, nil))
	sp := classification("")
	_, rep, err := s.run(t, "job-1", sp)
	if reason(err) != ReasonInvalidSpec || len(rep.stages) != 0 {
		t.Errorf("a spec without a model name: %v after stages %v, want %s before any", err, rep.stages, ReasonInvalidSpec)
	}
}

// TestRunTrainsEvaluatesAndRegisters: a job goes through its stages in order with its
// percent never going back, ends at 100, and registers the winner with its test metrics, its
// ranked leaderboard and its lineage. The same job run again finds its version instead of
// adding one; another job adds the next version; a job of another task under the same name
// fails.
func TestRunTrainsEvaluatesAndRegisters(t *testing.T) {
	s := newStand(t, synthetic(200, nil))
	out, rep, err := s.run(t, "job-1", classification("buyers"))
	if err != nil {
		t.Fatal(err)
	}
	want := []trainingv1.JobStage{trainingv1.JobStage_JOB_STAGE_LOADING_DATA, trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING,
		trainingv1.JobStage_JOB_STAGE_REFITTING, trainingv1.JobStage_JOB_STAGE_EVALUATING, trainingv1.JobStage_JOB_STAGE_REGISTERING}
	if !slices.Equal(rep.stages, want) {
		t.Errorf("stages %v, want %v", rep.stages, want)
	}
	if !slices.IsSorted(rep.percents) || rep.percents[len(rep.percents)-1] != 100 {
		t.Errorf("percents %v, want them never to go back and to end at 100", rep.percents)
	}
	v := out.Version
	if v.GetModelName() != "buyers" || v.GetVersion() != 1 || v.GetFamily() != modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION {
		t.Errorf("registered %s version %d of %v, want buyers version 1, logistic", v.GetModelName(), v.GetVersion(), v.GetFamily())
	}
	lb := v.GetLeaderboard()
	if len(lb) != 2 || lb[0].GetRank() != 1 || lb[1].GetRank() != 2 {
		t.Errorf("leaderboard %v, want two candidates ranked 1 and 2", lb)
	}
	if len(out.Metrics) == 0 || !slices.ContainsFunc(out.Metrics, func(m *commonv1.Metric) bool { return m.GetName() == "roc_auc" }) {
		t.Errorf("outcome metrics %v, want the test metrics with roc_auc", out.Metrics)
	}
	l := v.GetLineage()
	if l.GetJobId() != "job-1" || l.GetFeatureSet() != "synth" || l.GetTrainRows() != 160 || l.GetTestRows() != 40 || l.GetCodeVersion() != "test" || l.GetTrainingSetId() == "" {
		t.Errorf("lineage %v, want job-1 on synth with 160 train and 40 test rows", l)
	}
	if !slices.Contains(rep.codes(), "MODEL_REGISTERED") || slices.Contains(rep.codes(), "POSITIVE_CLASS_GUESSED") {
		t.Errorf("messages %v, want MODEL_REGISTERED and no guessed class", rep.codes())
	}
	if stored, err := s.registry.Version(context.Background(), "buyers", 1); err != nil || stored.GetLineage().GetJobId() != "job-1" {
		t.Errorf("the registry holds %v, %v", stored, err)
	}

	again, _, err := s.run(t, "job-1", classification("buyers"))
	if err != nil || versionOf(again) != 1 {
		t.Errorf("the same job again: version %d, %v; want version 1 found", versionOf(again), err)
	}
	next, _, err := s.run(t, "job-2", classification("buyers"))
	if err != nil || versionOf(next) != 2 {
		t.Errorf("another job: version %d, %v; want version 2", versionOf(next), err)
	}
	regression := classification("buyers")
	regression.Task = modelv1.TaskKind_TASK_KIND_REGRESSION
	regression.GetData().GetTrainingSet().GetLabel().GetTrait().Trait = "x"
	regression.GetData().GetTrainingSet().GetLabel().GetTrait().PositiveValues = nil
	regression.Candidates = []*trainingv1.CandidateSpec{{Family: modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION}}
	if _, _, err := s.run(t, "job-3", regression); reason(err) != "TASK_MISMATCH" {
		t.Errorf("a regression under a classifier's name: %v, want TASK_MISMATCH", err)
	}
}

// versionOf is an outcome's version number, 0 without an outcome.
func versionOf(o *Outcome) int64 {
	if o == nil {
		return 0
	}
	return o.Version.GetVersion()
}

// TestRunWithoutATestSplit: without test rows the version's metrics are the winner's
// cross-validation metrics.
func TestRunWithoutATestSplit(t *testing.T) {
	s := newStand(t, synthetic(100, nil))
	sp := classification("no-test")
	sp.GetData().GetTrainingSet().Split = nil
	out, _, err := s.run(t, "job-1", sp)
	if err != nil {
		t.Fatal(err)
	}
	cv := out.Version.GetLeaderboard()[0].GetMetrics()
	if len(out.Metrics) == 0 || len(out.Metrics) != len(cv) || out.Version.GetLineage().GetTestRows() != 0 {
		t.Fatalf("metrics %v, want the winner's cross-validation metrics %v", out.Metrics, cv)
	}
	for i, m := range out.Metrics {
		if m.GetName() != cv[i].GetName() || m.GetValue() != cv[i].GetValue() {
			t.Errorf("metric %d: %v, want %v", i, m, cv[i])
		}
	}
}

// TestRunRefusesUnusableData: a training set of one class, too few rows for the folds, or no
// column left after the exclusions fails with INVALID_DATA; rows without a label are left out
// and said so, as is a positive class that had to be guessed and an excluded column that does
// not exist.
func TestRunRefusesUnusableData(t *testing.T) {
	allNo := func(int, float64) *commonv1.Value { return str("no") }
	for _, c := range []struct {
		name  string
		table *featuretest.Table
		edit  func(*trainingv1.TrainingSpec)
	}{
		{"one class", synthetic(100, allNo), nil},
		{"too few rows", synthetic(10, nil), nil},
		{"no column left", synthetic(100, nil), func(sp *trainingv1.TrainingSpec) {
			sp.Preprocessing = &trainingv1.PreprocessingSpec{ExcludedColumns: []string{"x", "g"}}
		}},
	} {
		s := newStand(t, c.table)
		sp := classification("unusable")
		if c.edit != nil {
			c.edit(sp)
		}
		if _, _, err := s.run(t, "job-1", sp); reason(err) != ReasonInvalidData {
			t.Errorf("%s: %v, want %s", c.name, err, ReasonInvalidData)
		}
	}

	unlabelled := synthetic(200, func(i int, x float64) *commonv1.Value {
		switch {
		case i%10 == 0:
			return &commonv1.Value{}
		case x > 0.5:
			return str("buy")
		}
		return str("skip")
	})
	s := newStand(t, unlabelled)
	sp := classification("warned")
	sp.GetData().GetTrainingSet().GetLabel().GetTrait().PositiveValues = nil
	sp.Preprocessing = &trainingv1.PreprocessingSpec{ExcludedColumns: []string{"nope"}}
	out, rep, err := s.run(t, "job-1", sp)
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"ROWS_WITHOUT_LABEL", "POSITIVE_CLASS_GUESSED", "EXCLUDED_COLUMN_UNKNOWN"} {
		if !slices.Contains(rep.codes(), code) {
			t.Errorf("messages %v, want %s", rep.codes(), code)
		}
	}
	if l := out.Version.GetLineage(); l.GetTrainRows()+l.GetTestRows() != 180 {
		t.Errorf("%d train and %d test rows, want the 180 labelled ones", l.GetTrainRows(), l.GetTestRows())
	}
}

// TestRunWaitsForTheFeatureService: while the feature service is unavailable the job says
// so and waits to try again, and it ends with its context's error when cancelled meanwhile.
func TestRunWaitsForTheFeatureService(t *testing.T) {
	s := newStand(t, synthetic(50, nil))
	s.trainer.features = featureClient(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep := &reporter{onMessage: func(m *trainingv1.JobMessage) {
		if m.GetCode() == "FEATURE_SERVICE_UNAVAILABLE" {
			cancel()
		}
	}}
	_, err := s.trainer.Run(ctx, &trainingv1.Job{JobId: "job-1", Spec: classification("waits")}, rep)
	if !errors.Is(err, context.Canceled) || !slices.Contains(rep.codes(), "FEATURE_SERVICE_UNAVAILABLE") {
		t.Errorf("%v after messages %v, want context.Canceled after FEATURE_SERVICE_UNAVAILABLE", err, rep.codes())
	}
}

// TestRunRecommender: a recommendation job trains on the exported interactions and registers
// its winner with test metrics.
func TestRunRecommender(t *testing.T) {
	s := newStand(t, synthetic(10, nil))
	rng := rand.New(rand.NewPCG(3, 3))
	var rows []*featurev1.Interaction
	for u := range 30 {
		for it := range 20 {
			if rng.Float64() < 0.4 {
				rows = append(rows, &featurev1.Interaction{UserId: "u" + strconv.Itoa(u), ItemId: "i" + strconv.Itoa(it),
					Value: float64(1 + (u+it)%5), Time: timestamppb.New(time.Unix(int64(1e9+u*100+it), 0)), EventCount: 1})
			}
		}
	}
	s.features.SetInteractions("Rated", rows)
	sp := &trainingv1.TrainingSpec{
		ModelName: "recs",
		Task:      modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT,
		Data: &trainingv1.DataSpec{Source: &trainingv1.DataSpec_Interactions{Interactions: &trainingv1.InteractionsSpec{
			Export: &featurev1.ExportInteractionsRequest{Mode: &featurev1.ExportInteractionsRequest_Explicit{Explicit: &featurev1.ExplicitFeedback{
				EventNames: []string{"Rated"}, RatingProperty: "rating"}}},
			Split: &trainingv1.InteractionSplit{Method: &trainingv1.InteractionSplit_Random{Random: &trainingv1.RandomSplit{TestFraction: 0.2, Seed: 3}}},
		}}},
		Candidates: []*trainingv1.CandidateSpec{{Family: modelv1.ModelFamily_MODEL_FAMILY_MF_ALS,
			Hyperparameters: map[string]*trainingv1.HyperparameterDomain{"rank": {Domain: &trainingv1.HyperparameterDomain_Values{
				Values: &trainingv1.HyperparameterValues{Values: []*commonv1.Value{num(2), num(4)}}}}}}},
	}
	out, rep, err := s.run(t, "job-1", sp)
	if err != nil {
		t.Fatalf("%v (messages %v)", err, rep.codes())
	}
	if v := out.Version; v.GetTask() != modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT || len(v.GetLeaderboard()) != 2 ||
		!slices.ContainsFunc(out.Metrics, func(m *commonv1.Metric) bool { return m.GetName() == "rmse" }) {
		t.Errorf("registered %v with metrics %v, want an explicit recommender of two candidates tested by rmse", v, out.Metrics)
	}
	if rep.percents[len(rep.percents)-1] != 100 {
		t.Errorf("the job ended at %v%%", rep.percents[len(rep.percents)-1])
	}
}
