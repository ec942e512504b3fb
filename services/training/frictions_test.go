package training_test

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/pkg/ml/synth"
	"github.com/bullseye-ml/bullseye/services/training"
)

// ratings returns small MovieLens-shaped ratings (pkg/ml/synth) as exported interactions.
func ratings(t *testing.T, users, items, n int, seed uint64) []*featurev1.Interaction {
	t.Helper()
	data, err := synth.Generate(synth.Config{Users: users, Items: items, Ratings: n, Round: true, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return exported(data.Interactions)
}

// exported turns interactions into the feature service's export rows.
func exported(d *recommend.Interactions) []*featurev1.Interaction {
	out := make([]*featurev1.Interaction, d.Len())
	for r := range d.Len() {
		out[r] = &featurev1.Interaction{UserId: d.UserIDs[d.Users[r]], ItemId: d.ItemIDs[d.Items[r]], Value: d.Values[r],
			Time: timestamppb.New(time.Unix(d.Times[r], 0)), EventCount: 1}
	}
	return out
}

// ratingsExport is an explicit export of the "rating" property of events named names.
func ratingsExport(names ...string) *featurev1.ExportInteractionsRequest {
	return &featurev1.ExportInteractionsRequest{Mode: &featurev1.ExportInteractionsRequest_Explicit{Explicit: &featurev1.ExplicitFeedback{
		EventNames: names, RatingProperty: "rating"}}}
}

func randomSplit(fraction float64) *trainingv1.InteractionSplit {
	return &trainingv1.InteractionSplit{Method: &trainingv1.InteractionSplit_Random{Random: &trainingv1.RandomSplit{TestFraction: fraction, Seed: 3}}}
}

// recSpec is an explicit recommendation job on interactions is.
func recSpec(model string, is *trainingv1.InteractionsSpec, cands ...*trainingv1.CandidateSpec) *trainingv1.TrainingSpec {
	return &trainingv1.TrainingSpec{
		ModelName:  model,
		Task:       modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT,
		Data:       &trainingv1.DataSpec{Source: &trainingv1.DataSpec_Interactions{Interactions: is}},
		Candidates: cands,
	}
}

func als(ranks ...float64) *trainingv1.CandidateSpec {
	var vs []*commonv1.Value
	for _, r := range ranks {
		vs = append(vs, num(r))
	}
	return candidate(modelv1.ModelFamily_MODEL_FAMILY_MF_ALS, map[string]*trainingv1.HyperparameterDomain{"rank": values(vs...)})
}

func version(t *testing.T, c trainingv1.TrainingServiceClient, name string, v int64) *modelv1.ModelVersion {
	t.Helper()
	got, err := c.GetModel(context.Background(), &trainingv1.GetModelRequest{Model: &commonv1.ModelRef{Name: name,
		Selector: &commonv1.ModelRef_Version{Version: v}}})
	if err != nil {
		t.Fatal(err)
	}
	return got.GetModelVersion()
}

// TestFitAndTestWithoutCrossValidation trains with cross_validation.folds 0: each candidate is
// fitted once on the training rows and scored on the test rows, for a classifier on a
// training set and for recommenders on interactions. The leaderboard has one "fold" (the
// test rows), the job's test metrics are the winner's leaderboard metrics, and no
// cross-validation metrics are claimed.
func TestFitAndTestWithoutCrossValidation(t *testing.T) {
	e := newEnv(t, bankSmall)
	e.features.SetInteractions("Product Rated", ratings(t, 120, 200, 6000, 5))
	tr := e.startTraining("trainer-a")
	noCV := &trainingv1.CrossValidationSpec{Folds: proto.Int32(0)}

	t.Run("classifier", func(t *testing.T) {
		s := bankSpec("bank-fit-test", false, logisticC(1))
		s.CrossValidation = noCV
		job := finished(t, tr.client, start(t, tr.client, "fit-test", s).GetJobId(), time.Minute)
		succeeded(t, job)
		mv := version(t, tr.client, "bank-fit-test", job.GetModelVersion())
		lb := mv.GetLeaderboard()
		if len(lb) != 1 || len(lb[0].GetFolds()) != 1 {
			t.Fatalf("leaderboard %v, want one entry with one fit", lb)
		}
		f := lb[0].GetFolds()[0]
		if f.GetTrainRows() != mv.GetLineage().GetTrainRows() || f.GetValidationRows() != mv.GetLineage().GetTestRows() {
			t.Errorf("the fit: %d training and %d scored rows; lineage: %d training and %d test rows",
				f.GetTrainRows(), f.GetValidationRows(), mv.GetLineage().GetTrainRows(), mv.GetLineage().GetTestRows())
		}
		if auc := metric(mv.GetTestMetrics(), "roc_auc"); auc < 0.7 || auc != lb[0].GetScore() {
			t.Errorf("test ROC-AUC %v, leaderboard score %v: want the same, above 0.7", auc, lb[0].GetScore())
		}
		if len(mv.GetCvMetrics()) != 0 || !hasCode(job.GetMessages(), "NO_CROSS_VALIDATION") {
			t.Errorf("cross-validation metrics %v; messages:\n%s", mv.GetCvMetrics(), describe(job))
		}
	})

	t.Run("recommenders", func(t *testing.T) {
		s := recSpec("ratings-fit-test", &trainingv1.InteractionsSpec{Export: ratingsExport("Product Rated"), Split: randomSplit(0.2)}, als(2, 5))
		s.CrossValidation = noCV
		job := finished(t, tr.client, start(t, tr.client, "rec-fit-test", s).GetJobId(), time.Minute)
		succeeded(t, job)
		mv := version(t, tr.client, "ratings-fit-test", job.GetModelVersion())
		lb := mv.GetLeaderboard()
		if len(lb) != 2 {
			t.Fatalf("%d leaderboard entries, want 2", len(lb))
		}
		for _, en := range lb {
			if len(en.GetFolds()) != 1 || en.GetFolds()[0].GetValidationRows() != mv.GetLineage().GetTestRows() {
				t.Errorf("entry %d: folds %v, want one scored on the %d test pairs", en.GetCandidateIndex(), en.GetFolds(), mv.GetLineage().GetTestRows())
			}
		}
		if rmse := metric(mv.GetTestMetrics(), "rmse"); rmse <= 0 || rmse != lb[0].GetScore() {
			t.Errorf("test RMSE %v, the winner's leaderboard RMSE %v: want the same", rmse, lb[0].GetScore())
		}
		if len(mv.GetCvMetrics()) != 0 || !hasCode(job.GetMessages(), "TEST_ROWS_CHOSE_WINNER") {
			t.Errorf("cross-validation metrics %v; messages:\n%s", mv.GetCvMetrics(), describe(job))
		}
	})

	t.Run("needs test rows", func(t *testing.T) {
		s := bankSpec("bank-fit-test", false, logisticC(1))
		s.Data.GetTrainingSet().Split = nil
		s.CrossValidation = noCV
		_, err := tr.client.StartTraining(context.Background(), &trainingv1.StartTrainingRequest{RequestId: "no-split", Spec: s})
		if codeOf(err) != codes.InvalidArgument || !slices.Contains(violations(err), "spec.cross_validation.folds") {
			t.Errorf("folds 0 without a split: %v (%q), want INVALID_ARGUMENT naming spec.cross_validation.folds", err, violations(err))
		}
	})
}

// TestPopularityOnExplicitLeaderboard trains rating models and popularity on explicit
// feedback: popularity predicts no ratings, so its leaderboard entry has no rmse or mae (it
// showed an RMSE near the mean rating) but keeps its ranking metrics, and it ranks after the
// rating models under rmse. A search of popularity alone cannot be ranked by rmse.
func TestPopularityOnExplicitLeaderboard(t *testing.T) {
	e := newEnv(t, bankSmall)
	e.features.SetInteractions("Product Rated", ratings(t, 120, 200, 6000, 6))
	tr := e.startTraining("trainer-a")
	is := &trainingv1.InteractionsSpec{Export: ratingsExport("Product Rated"), Split: randomSplit(0.2)}
	s := recSpec("ratings-pop", is, &trainingv1.CandidateSpec{Family: modelv1.ModelFamily_MODEL_FAMILY_POPULARITY}, als(3))
	s.CrossValidation = &trainingv1.CrossValidationSpec{Folds: proto.Int32(3)}
	job := finished(t, tr.client, start(t, tr.client, "pop", s).GetJobId(), time.Minute)
	succeeded(t, job)
	lb := job.GetProgress().GetLeaderboard()
	if len(lb) != 2 || lb[0].GetFamily() != modelv1.ModelFamily_MODEL_FAMILY_MF_ALS || lb[1].GetFamily() != modelv1.ModelFamily_MODEL_FAMILY_POPULARITY {
		t.Fatalf("leaderboard %v, want MF_ALS then POPULARITY", lb)
	}
	pop := lb[1]
	if metric(pop.GetMetrics(), "rmse") != -1 || metric(pop.GetMetrics(), "mae") != -1 || metric(pop.GetMetrics(), "ndcg_at_10") <= 0 || pop.GetError() != nil {
		t.Errorf("popularity's metrics %v (error %v): want ranking metrics only", pop.GetMetrics(), pop.GetError())
	}
	for _, f := range pop.GetFolds() {
		if metric(f.GetMetrics(), "rmse") != -1 {
			t.Errorf("popularity's fold %d has an rmse: %v", f.GetFold(), f.GetMetrics())
		}
	}
	if !hasCode(job.GetMessages(), "NO_RATING_METRICS") {
		t.Errorf("messages:\n%s", describe(job))
	}
	// ALS at its default iterations has no tolerance to miss: it is not flagged.
	if !lb[0].GetConverged() || hasCode(job.GetMessages(), "SOLVER_NOT_CONVERGED") {
		t.Errorf("ALS at its defaults: converged %v; messages:\n%s", lb[0].GetConverged(), describe(job))
	}

	only := recSpec("ratings-pop-only", is, &trainingv1.CandidateSpec{Family: modelv1.ModelFamily_MODEL_FAMILY_POPULARITY})
	_, err := tr.client.StartTraining(context.Background(), &trainingv1.StartTrainingRequest{RequestId: "pop-only", Spec: only})
	if codeOf(err) != codes.InvalidArgument || !slices.Contains(violations(err), "spec.selection.metric") {
		t.Errorf("popularity alone ranked by rmse: %v (%q), want INVALID_ARGUMENT naming spec.selection.metric", err, violations(err))
	}
}

// TestEvaluatePredictsColdPairsFromBiases evaluates a biased explicit model on pairs whose
// user or item it has no factors for: they are predicted from the biases (the global mean
// plus the known user's or item's bias) and counted, not dropped as INVALID. A model without
// biases still refuses them.
func TestEvaluatePredictsColdPairsFromBiases(t *testing.T) {
	e := newEnv(t, bankSmall)
	rs := ratings(t, 120, 200, 6000, 9)
	e.features.SetInteractions("Product Rated", rs)
	tr := e.startTraining("trainer-a")
	is := &trainingv1.InteractionsSpec{Export: ratingsExport("Product Rated")}
	s := recSpec("ratings-cold", is, als(3))
	s.CrossValidation = &trainingv1.CrossValidationSpec{Folds: proto.Int32(2)}
	unbiased := recSpec("ratings-unbiased", is, candidate(modelv1.ModelFamily_MODEL_FAMILY_MF_ALS, map[string]*trainingv1.HyperparameterDomain{
		"rank": values(num(3)), "biased": values(&commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: false}})}))
	unbiased.CrossValidation = s.CrossValidation
	succeeded(t, finished(t, tr.client, start(t, tr.client, "cold", s).GetJobId(), time.Minute))
	succeeded(t, finished(t, tr.client, start(t, tr.client, "unbiased", unbiased).GetJobId(), time.Minute))

	u1, u2, item := rs[0].GetUserId(), rs[len(rs)-1].GetUserId(), rs[0].GetItemId()
	rows := []*trainingv1.EvaluationRow{
		{EntityId: u1, ItemId: item, Label: num(4)},             // known
		{EntityId: "nobody", ItemId: item, Label: num(4)},       // cold user: mean + item bias
		{EntityId: u1, ItemId: "new-item", Label: num(3)},       // cold item: mean + u1's bias
		{EntityId: u2, ItemId: "new-item", Label: num(3)},       // cold item: mean + u2's bias
		{EntityId: "nobody", ItemId: "new-item", Label: num(2)}, // both: the global mean
		{EntityId: "nobody-else", ItemId: "other-item", Label: num(2)},
	}
	ctx := context.Background()
	ev, err := tr.client.Evaluate(ctx, &trainingv1.EvaluateRequest{Model: &commonv1.ModelRef{Name: "ratings-cold", Selector: &commonv1.ModelRef_Version{Version: 1}}, Rows: rows})
	if err != nil {
		t.Fatal(err)
	}
	if ev.GetRowsScored() != 6 || ev.GetRowsInvalid() != 0 || ev.GetRowsCold() != 5 || ev.GetRowsLabelled() != 6 || metric(ev.GetMetrics(), "rmse") <= 0 {
		t.Fatalf("Evaluate: %d scored, %d invalid, %d cold, %d labelled, metrics %v; want 6 scored of which 5 cold, all labelled",
			ev.GetRowsScored(), ev.GetRowsInvalid(), ev.GetRowsCold(), ev.GetRowsLabelled(), ev.GetMetrics())
	}
	sc := ev.GetScores()
	for i, r := range sc {
		if r.GetStatus() != trainingv1.ScoredRowStatus_SCORED_ROW_STATUS_OK || r.GetFromBiases() != (i > 0) || r.GetScore() < 1 || r.GetScore() > 5 {
			t.Errorf("row %d (%s, %s): %v, from biases %v, score %v", i, r.GetEntityId(), r.GetItemId(), r.GetStatus(), r.GetFromBiases(), r.GetScore())
		}
	}
	if sc[4].GetScore() != sc[5].GetScore() || sc[2].GetScore() == sc[3].GetScore() || sc[1].GetScore() == sc[4].GetScore() {
		t.Errorf("cold scores %v, %v, %v, %v, %v: want the global mean for unknown pairs, and the known user's or item's bias added otherwise",
			sc[1].GetScore(), sc[2].GetScore(), sc[3].GetScore(), sc[4].GetScore(), sc[5].GetScore())
	}

	ev, err = tr.client.Evaluate(ctx, &trainingv1.EvaluateRequest{Model: &commonv1.ModelRef{Name: "ratings-unbiased", Selector: &commonv1.ModelRef_Version{Version: 1}}, Rows: rows})
	if err != nil {
		t.Fatal(err)
	}
	if ev.GetRowsScored() != 1 || ev.GetRowsInvalid() != 5 || ev.GetRowsCold() != 0 {
		t.Errorf("without biases: %d scored, %d invalid, %d cold; want 1 scored and 5 invalid", ev.GetRowsScored(), ev.GetRowsInvalid(), ev.GetRowsCold())
	}
}

// TestShortJobBesideALongOne runs a replica with room for two jobs: a short job submitted
// while a long one runs starts at once and finishes first, instead of waiting behind it.
func TestShortJobBesideALongOne(t *testing.T) {
	e := newEnv(t, bankSmall)
	e.features.SetInteractions("Product Rated", ratings(t, 120, 200, 6000, 10))
	e.features.SetMessageDelay(time.Second) // a few seconds over the training set's messages
	tr := e.startTraining("trainer-a", func(c *training.Config) { c.MaxConcurrentJobs = 2 })
	long := start(t, tr.client, "long", bankSpec("bank-long", false, logisticC(1)))
	waitRunning(t, tr.client, long.GetJobId())
	s := recSpec("ratings-short", &trainingv1.InteractionsSpec{Export: ratingsExport("Product Rated"), Split: randomSplit(0.2)}, als(3))
	s.CrossValidation = &trainingv1.CrossValidationSpec{Folds: proto.Int32(0)}
	short := finished(t, tr.client, start(t, tr.client, "short", s).GetJobId(), time.Minute)
	succeeded(t, short)
	l, err := tr.client.GetJob(context.Background(), &trainingv1.GetJobRequest{JobId: long.GetJobId()})
	if err != nil {
		t.Fatal(err)
	}
	if l.GetJob().GetState() != trainingv1.JobState_JOB_STATE_RUNNING {
		t.Errorf("the long job is %v when the short one ended, want RUNNING", l.GetJob().GetState())
	}
	succeeded(t, finished(t, tr.client, long.GetJobId(), time.Minute))
}

// waitRunning waits until a job is RUNNING.
func waitRunning(t *testing.T, c trainingv1.TrainingServiceClient, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.GetJob(context.Background(), &trainingv1.GetJobRequest{JobId: id})
		if err == nil && resp.GetJob().GetState() == trainingv1.JobState_JOB_STATE_RUNNING {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("job %s did not start within 30s", id)
}

// TestMaxConcurrentJobsDefault checks the default of --max-concurrent-jobs: half the cores,
// at least 1.
func TestMaxConcurrentJobsDefault(t *testing.T) {
	if got, want := training.NewConfig().MaxConcurrentJobs, max(1, runtime.NumCPU()/2); got != want || training.DefaultMaxConcurrentJobs() != want {
		t.Errorf("MaxConcurrentJobs %d by default on %d cores, want %d", got, runtime.NumCPU(), want)
	}
}

// TestPredefinedSplitByEventName trains on MovieLens-style predefined folds imported under
// one event name per file: the interactions of "u1.base" train and those of "u1.test" test,
// in a job and in Evaluate.
func TestPredefinedSplitByEventName(t *testing.T) {
	e := newEnv(t, bankSmall)
	data, err := synth.Generate(synth.Config{Users: 120, Items: 200, Ratings: 6000, Round: true, Seed: 12})
	if err != nil {
		t.Fatal(err)
	}
	base, test, err := data.Interactions.SplitRandom(0.2, 5)
	if err != nil {
		t.Fatal(err)
	}
	e.features.SetInteractions("u1.base", exported(base))
	e.features.SetInteractions("u1.test", exported(test))
	tr := e.startTraining("trainer-a")
	is := &trainingv1.InteractionsSpec{Export: ratingsExport("u1.base"), Split: &trainingv1.InteractionSplit{
		Method: &trainingv1.InteractionSplit_EventNames{EventNames: &trainingv1.EventNameSplit{TestEventNames: []string{"u1.test"}}}}}
	s := recSpec("u1", is, als(3))
	s.CrossValidation = &trainingv1.CrossValidationSpec{Folds: proto.Int32(0)}
	job := finished(t, tr.client, start(t, tr.client, "u1", s).GetJobId(), time.Minute)
	succeeded(t, job)
	mv := version(t, tr.client, "u1", job.GetModelVersion())
	if l := mv.GetLineage(); l.GetTrainRows() != int64(base.Len()) || l.GetTestRows() != int64(test.Len()) || metric(mv.GetTestMetrics(), "rmse") <= 0 {
		t.Errorf("lineage: %d training and %d test rows, test metrics %v; want %d u1.base and %d u1.test rows",
			l.GetTrainRows(), l.GetTestRows(), mv.GetTestMetrics(), base.Len(), test.Len())
	}
	ev, err := tr.client.Evaluate(context.Background(), &trainingv1.EvaluateRequest{Model: &commonv1.ModelRef{Name: "u1",
		Selector: &commonv1.ModelRef_Version{Version: 1}}, Data: &trainingv1.DataSpec{Source: &trainingv1.DataSpec_Interactions{Interactions: is}}, OmitScores: true})
	if err != nil {
		t.Fatal(err)
	}
	if ev.GetRowsScored() != int64(test.Len()) || ev.GetRowsInvalid() != 0 || metric(ev.GetMetrics(), "rmse") != metric(mv.GetTestMetrics(), "rmse") {
		t.Errorf("Evaluate on u1.test: %d scored, %d invalid, rmse %v; want the %d test pairs and the job's rmse %v",
			ev.GetRowsScored(), ev.GetRowsInvalid(), metric(ev.GetMetrics(), "rmse"), test.Len(), metric(mv.GetTestMetrics(), "rmse"))
	}

	bad := proto.Clone(s).(*trainingv1.TrainingSpec)
	bad.GetData().GetInteractions().GetSplit().GetEventNames().TestEventNames = []string{"u1.base"}
	_, err = tr.client.StartTraining(context.Background(), &trainingv1.StartTrainingRequest{RequestId: "u1-bad", Spec: bad})
	if f := "spec.data.interactions.split.event_names.test_event_names[0]"; codeOf(err) != codes.InvalidArgument || !slices.Contains(violations(err), f) {
		t.Errorf("the training events as test events: %v (%q), want INVALID_ARGUMENT naming %s", err, violations(err), f)
	}
}

// TestPredefinedSplitByImport trains on a training set whose test rows are those of one
// import, as a data set shipped as a training file and a test file: Bank's rows i % 5 == 4
// come from import "bank-test", the others from "bank-train".
func TestPredefinedSplitByImport(t *testing.T) {
	e := newEnv(t, bankSmall)
	e.features.SetImportOf(func(i int) string {
		if i%5 == 4 {
			return "bank-test"
		}
		return "bank-train"
	})
	tr := e.startTraining("trainer-a")
	s := bankSpec("bank-by-import", false, logisticC(1))
	s.Data.GetTrainingSet().Split = nil
	s.Data.ImportSplit = &trainingv1.ImportSplit{TestImportIds: []string{"bank-test"}}
	job := finished(t, tr.client, start(t, tr.client, "by-import", s).GetJobId(), time.Minute)
	succeeded(t, job)
	n := len(bankTable(t, bankSmall).Rows)
	mv := version(t, tr.client, "bank-by-import", job.GetModelVersion())
	if l := mv.GetLineage(); l.GetTestRows() != int64(n/5) || l.GetTrainRows() != int64(n-n/5) || metric(mv.GetTestMetrics(), "roc_auc") < 0.7 {
		t.Errorf("lineage: %d training and %d test rows, test metrics %v; want %d test rows of %d", l.GetTrainRows(), l.GetTestRows(), mv.GetTestMetrics(), n/5, n)
	}

	both := bankSpec("bank-by-import", false, logisticC(1))
	both.Data.ImportSplit = s.Data.ImportSplit
	_, err := tr.client.StartTraining(context.Background(), &trainingv1.StartTrainingRequest{RequestId: "both", Spec: both})
	if codeOf(err) != codes.InvalidArgument || !slices.Contains(violations(err), "spec.data.import_split") {
		t.Errorf("an import split and the training set's split: %v (%q), want INVALID_ARGUMENT naming spec.data.import_split", err, violations(err))
	}
	unknown := proto.Clone(s).(*trainingv1.TrainingSpec)
	unknown.Data.ImportSplit.TestImportIds = []string{"nope"}
	failed := finished(t, tr.client, start(t, tr.client, "unknown-import", unknown).GetJobId(), time.Minute)
	if failed.GetState() != trainingv1.JobState_JOB_STATE_FAILED || failed.GetError().GetReason() != "INVALID_DATA" ||
		!strings.Contains(failed.GetError().GetDescription(), "bank-train") {
		t.Errorf("an unknown test import: %v %v, want FAILED INVALID_DATA naming the imports there are", failed.GetState(), failed.GetError())
	}
}
