package training_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
)

// TestStartTrainingIdempotent checks that StartTraining is idempotent by request id (the same
// spec returns the same job, created false; a different spec under the same id is
// ALREADY_EXISTS with reason REQUEST_ID_REUSED), and follows the job with WatchJob through its
// stages to SUCCEEDED, then reads it back with GetJob, ListJobs, GetModel and ListModels.
func TestStartTrainingIdempotent(t *testing.T) {
	e := newEnv(t, bankSmall)
	tr := e.startTraining("trainer-a")
	ctx := context.Background()
	spec := bankSpec("bank-small", true, logisticC(0.1, 1))
	first, err := tr.client.StartTraining(ctx, &trainingv1.StartTrainingRequest{RequestId: "req-1", Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	if !first.GetCreated() || first.GetJob().GetState() != trainingv1.JobState_JOB_STATE_PENDING {
		t.Fatalf("first StartTraining: created %v, state %v", first.GetCreated(), first.GetJob().GetState())
	}
	again, err := tr.client.StartTraining(ctx, &trainingv1.StartTrainingRequest{RequestId: "req-1", Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	if again.GetCreated() || again.GetJob().GetJobId() != first.GetJob().GetJobId() {
		t.Fatalf("repeated StartTraining: created %v, job %s; want job %s, not created", again.GetCreated(),
			again.GetJob().GetJobId(), first.GetJob().GetJobId())
	}
	other := proto.Clone(spec).(*trainingv1.TrainingSpec)
	other.Description = "something else"
	_, err = tr.client.StartTraining(ctx, &trainingv1.StartTrainingRequest{RequestId: "req-1", Spec: other})
	if code, reason, md := codeAndReason(err); code != codes.AlreadyExists || reason != "REQUEST_ID_REUSED" || md["job_id"] != first.GetJob().GetJobId() {
		t.Fatalf("same request id, other spec: %v (%s, %v); want ALREADY_EXISTS REQUEST_ID_REUSED naming the job", err, reason, md)
	}

	id := first.GetJob().GetJobId()
	var stages []trainingv1.JobStage
	var lastSeq int64
	updates := watch(t, tr.client, id, 60*time.Second, func(p *trainingv1.JobProgress) {
		if s := p.GetStage(); len(stages) == 0 || stages[len(stages)-1] != s {
			stages = append(stages, s)
		}
		if p.GetSequence() < lastSeq {
			t.Errorf("sequence went back from %d to %d", lastSeq, p.GetSequence())
		}
		lastSeq = p.GetSequence()
	})
	last := updates[len(updates)-1]
	if last.GetState() != trainingv1.JobState_JOB_STATE_SUCCEEDED || last.GetPercent() != 100 {
		t.Fatalf("last update: %v", last)
	}
	want := []trainingv1.JobStage{
		trainingv1.JobStage_JOB_STAGE_LOADING_DATA, trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING,
		trainingv1.JobStage_JOB_STAGE_REFITTING, trainingv1.JobStage_JOB_STAGE_EVALUATING,
		trainingv1.JobStage_JOB_STAGE_REGISTERING,
	}
	var seen []trainingv1.JobStage
	for _, s := range stages {
		if s != trainingv1.JobStage_JOB_STAGE_UNSPECIFIED {
			seen = append(seen, s)
		}
	}
	if !isSubsequence(seen, want) && !slices.Equal(seen, want) {
		t.Errorf("stages %v, want them in the order %v", seen, want)
	}
	var msgs []*trainingv1.JobMessage
	for _, u := range updates {
		msgs = append(msgs, u.GetMessages()...)
	}
	if !hasCode(msgs, "MODEL_REGISTERED") {
		t.Errorf("watch messages %v lack MODEL_REGISTERED", msgs)
	}

	job := finished(t, tr.client, id, time.Second)
	succeeded(t, job)
	if job.GetModelVersion() != 1 || job.GetAttempt() != 1 || job.GetWorker() != "trainer-a" || job.GetStartTime() == nil ||
		job.GetEndTime() == nil || len(job.GetProgress().GetLeaderboard()) != 2 || metric(job.GetMetrics(), "roc_auc") < 0.85 {
		t.Errorf("job = version %d, attempt %d, worker %q, leaderboard %d entries, metrics %v",
			job.GetModelVersion(), job.GetAttempt(), job.GetWorker(), len(job.GetProgress().GetLeaderboard()), job.GetMetrics())
	}
	list, err := tr.client.ListJobs(ctx, &trainingv1.ListJobsRequest{States: []trainingv1.JobState{trainingv1.JobState_JOB_STATE_SUCCEEDED}})
	if err != nil || len(list.GetJobs()) != 1 || list.GetJobs()[0].GetSpec() != nil || list.GetJobs()[0].GetProgress().GetLeaderboard() != nil {
		t.Errorf("ListJobs = %v, %v; want the one job in the basic view", list, err)
	}
	got, err := tr.client.GetModel(ctx, &trainingv1.GetModelRequest{Model: &commonv1.ModelRef{Name: "bank-small",
		Selector: &commonv1.ModelRef_Version{Version: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	mv := got.GetModelVersion()
	if mv.GetLineage().GetJobId() != id || mv.GetLineage().GetFeatureSet() != "bank-marketing" || mv.GetLineage().GetFeatureSetVersion() != 1 ||
		mv.GetLineage().GetTrainRows() != 3296 || mv.GetLineage().GetTestRows() != 823 || mv.GetLineage().GetCodeVersion() == "" ||
		mv.GetLineage().GetSeed() != 42 || mv.GetArtifact().GetSha256() == "" || len(mv.GetInputs()) != 20 ||
		mv.GetTestCurves() == nil || len(mv.GetLeaderboard()) != 2 || mv.GetSelectionMetric() != "roc_auc" {
		t.Errorf("model version = %v", mv)
	}
	var data trainingv1.DataSpec
	if err := mv.GetLineage().GetData().UnmarshalTo(&data); err != nil || data.GetTrainingSet().GetFeatureSet().GetName() != "bank-marketing" {
		t.Errorf("lineage data %v (%v), want the job's data spec", mv.GetLineage().GetData(), err)
	}
	var outputs []string
	for _, o := range mv.GetOutputs().GetOutputs() {
		outputs = append(outputs, o.GetName())
	}
	if !slices.Equal(outputs, []string{"score", "probability", "label"}) {
		t.Errorf("outputs %v, want a classifier's score, probability and label", outputs)
	}
	models, err := tr.client.ListModels(ctx, &trainingv1.ListModelsRequest{})
	if err != nil || len(models.GetModels()) != 1 || models.GetModels()[0].GetVersions()[0].GetLeaderboard() != nil {
		t.Errorf("ListModels = %v, %v", models, err)
	}
}

func isSubsequence(got, want []trainingv1.JobStage) bool {
	i := 0
	for _, s := range got {
		for i < len(want) && want[i] != s {
			i++
		}
		if i == len(want) {
			return false
		}
	}
	return true
}

// TestInvalidRequests checks INVALID_ARGUMENT with a BadRequest naming the fields at fault,
// and NOT_FOUND for unknown jobs and models.
func TestInvalidRequests(t *testing.T) {
	e := newEnv(t, bankSmall)
	tr := e.startTraining("trainer-a")
	ctx := context.Background()
	good := func() *trainingv1.TrainingSpec { return bankSpec("bank", true, logisticC(1)) }
	tests := []struct {
		name  string
		id    string
		spec  func() *trainingv1.TrainingSpec
		field string
	}{
		{"no request id", "", good, "request_id"},
		{"bad model name", "r", func() *trainingv1.TrainingSpec { s := good(); s.ModelName = "Bank!"; return s }, "spec.model_name"},
		{"no data", "r", func() *trainingv1.TrainingSpec { s := good(); s.Data = nil; return s }, "spec.data"},
		{"no candidates", "r", func() *trainingv1.TrainingSpec { s := good(); s.Candidates = nil; return s }, "spec.candidates"},
		{"family of another task", "r", func() *trainingv1.TrainingSpec {
			s := good()
			s.Candidates = []*trainingv1.CandidateSpec{{Family: modelv1.ModelFamily_MODEL_FAMILY_LASSO}}
			return s
		}, "spec.candidates[0].family"},
		{"unknown hyperparameter", "r", func() *trainingv1.TrainingSpec {
			s := good()
			s.Candidates[0].Hyperparameters["gamma"] = values(num(1))
			return s
		}, `spec.candidates[0].hyperparameters["gamma"]`},
		{"negative c", "r", func() *trainingv1.TrainingSpec {
			s := good()
			s.Candidates[0].Hyperparameters["c"] = values(num(-1))
			return s
		}, `spec.candidates[0].hyperparameters["c"].values.values[0]`},
		{"metric of another task", "r", func() *trainingv1.TrainingSpec {
			s := good()
			s.Selection = &trainingv1.SelectionSpec{Metric: "rmse"}
			return s
		}, "spec.selection.metric"},
		{"too many candidates", "r", func() *trainingv1.TrainingSpec {
			s := good()
			s.Candidates[0].Hyperparameters["c"] = &trainingv1.HyperparameterDomain{Domain: &trainingv1.HyperparameterDomain_Range{
				Range: &trainingv1.HyperparameterRange{Min: 0.01, Max: 10, Scale: trainingv1.RangeScale_RANGE_SCALE_LOG, GridPoints: 20}}}
			s.Search = &trainingv1.SearchSpec{MaxCandidates: 10}
			return s
		}, "spec.search.max_candidates"},
		{"one fold", "r", func() *trainingv1.TrainingSpec {
			s := good()
			s.CrossValidation = &trainingv1.CrossValidationSpec{Folds: proto.Int32(1)}
			return s
		}, "spec.cross_validation.folds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tr.client.StartTraining(ctx, &trainingv1.StartTrainingRequest{RequestId: tc.id, Spec: tc.spec()})
			if code, _, _ := codeAndReason(err); code != codes.InvalidArgument || !slices.Contains(violations(err), tc.field) {
				t.Errorf("error %v with violations %q; want INVALID_ARGUMENT naming %s", err, violations(err), tc.field)
			}
		})
	}
	if _, err := tr.client.GetJob(ctx, &trainingv1.GetJobRequest{JobId: "20250101-000000.000-00000000"}); codeOf(err) != codes.NotFound {
		t.Errorf("GetJob of an unknown job: %v, want NOT_FOUND", err)
	}
	_, err := tr.client.GetModel(ctx, &trainingv1.GetModelRequest{Model: &commonv1.ModelRef{Name: "nope"}})
	if code, reason, _ := codeAndReason(err); code != codes.NotFound || reason != "MODEL_NOT_FOUND" {
		t.Errorf("GetModel of an unknown model: %v (%s), want NOT_FOUND MODEL_NOT_FOUND", err, reason)
	}
}

func codeOf(err error) codes.Code { c, _, _ := codeAndReason(err); return c }

// TestRegressionWithFeatureSelection trains a regression (Bank's age from the other columns)
// on a training set without a test split, after feature selection through the feature
// service: the model keeps the selected features only, its metrics come from
// cross-validation, and Evaluate scores inline rows with labels.
func TestRegressionWithFeatureSelection(t *testing.T) {
	e := newEnv(t, bankSmall)
	tr := e.startTraining("trainer-a")
	ts := bankTrainingSet()
	ts.Split = nil
	ts.Label = &featurev1.LabelSpec{Source: &featurev1.LabelSpec_Trait{Trait: &featurev1.TraitLabel{Trait: "age"}}}
	spec := &trainingv1.TrainingSpec{
		ModelName: "bank-age",
		Task:      modelv1.TaskKind_TASK_KIND_REGRESSION,
		Data:      &trainingv1.DataSpec{Source: &trainingv1.DataSpec_TrainingSet{TrainingSet: ts}},
		Candidates: []*trainingv1.CandidateSpec{
			candidate(modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION, map[string]*trainingv1.HyperparameterDomain{"alpha": values(num(0), num(10))}),
			candidate(modelv1.ModelFamily_MODEL_FAMILY_LASSO, map[string]*trainingv1.HyperparameterDomain{"alpha": values(num(0.1))}),
		},
		FeatureSelection: &trainingv1.FeatureSelectionSpec{Enabled: true, MaxFeatures: 4, AlwaysKeep: []string{"day_of_week"}},
		CrossValidation:  &trainingv1.CrossValidationSpec{Folds: proto.Int32(4)},
	}
	job := finished(t, tr.client, start(t, tr.client, "age", spec).GetJobId(), time.Minute)
	succeeded(t, job)
	if !hasCode(job.GetMessages(), "FEATURES_SELECTED") || !hasCode(job.GetMessages(), "NO_TEST_SPLIT") {
		t.Errorf("messages:\n%s", describe(job))
	}
	rmse := metric(job.GetMetrics(), "rmse")
	t.Logf("cross-validated RMSE of age %.2f years, R² %.3f", rmse, metric(job.GetMetrics(), "r2"))
	if rmse <= 0 || rmse > 10.4 || metric(job.GetMetrics(), "r2") <= 0 { // age has a standard deviation of 10.3
		t.Errorf("metrics %v", job.GetMetrics())
	}
	got, err := tr.client.GetModel(context.Background(), &trainingv1.GetModelRequest{Model: &commonv1.ModelRef{Name: "bank-age",
		Selector: &commonv1.ModelRef_Version{Version: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	mv := got.GetModelVersion()
	if sel := mv.GetLineage().GetSelectedFeatures(); len(sel) < 4 || len(sel) > 5 || !slices.Contains(sel, "day_of_week") || len(mv.GetInputs()) != len(sel) ||
		mv.GetTestMetrics() != nil || len(mv.GetCvMetrics()) != 3 || mv.GetSelectionMetric() != "rmse" ||
		mv.GetSelectionDirection() != modelv1.MetricDirection_METRIC_DIRECTION_MINIMIZE {
		t.Errorf("version: selected %v, inputs %v, test %v, cv %v", sel, mv.GetInputs(), mv.GetTestMetrics(), mv.GetCvMetrics())
	}
	tb := bankTable(t, bankSmall)
	var rows []*trainingv1.EvaluationRow
	for i := range 50 {
		r := &trainingv1.EvaluationRow{Features: map[string]*commonv1.Value{}}
		for j, c := range tb.Columns {
			if c.GetName() == "age" {
				r.Label = tb.Rows[i][j]
			} else {
				r.Features[c.GetName()] = tb.Rows[i][j]
			}
		}
		rows = append(rows, r)
	}
	rows[7].Features[mv.GetInputs()[0].GetName()] = &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: true}}
	ev, err := tr.client.Evaluate(context.Background(), &trainingv1.EvaluateRequest{Model: &commonv1.ModelRef{Name: "bank-age",
		Selector: &commonv1.ModelRef_Version{Version: 1}}, Rows: rows})
	if err != nil {
		t.Fatal(err)
	}
	if ev.GetRowsScored() != 49 || ev.GetRowsInvalid() != 1 || ev.GetRowsLabelled() != 49 || metric(ev.GetMetrics(), "rmse") <= 0 ||
		ev.GetScores()[7].GetStatus() != trainingv1.ScoredRowStatus_SCORED_ROW_STATUS_INVALID || ev.GetScores()[7].GetProblem().GetReason() != "WRONG_TYPE" {
		t.Errorf("Evaluate: scored %d, invalid %d, labelled %d, metrics %v, row 7 %v", ev.GetRowsScored(), ev.GetRowsInvalid(),
			ev.GetRowsLabelled(), ev.GetMetrics(), ev.GetScores()[7])
	}

	// The name now holds regression versions: a classification job under it is refused.
	_, err = tr.client.StartTraining(context.Background(), &trainingv1.StartTrainingRequest{RequestId: "cls",
		Spec: bankSpec("bank-age", true, logisticC(1))})
	if code, reason, _ := codeAndReason(err); code != codes.FailedPrecondition || reason != "TASK_MISMATCH" {
		t.Errorf("classification job under a regression model's name: %v (%s), want FAILED_PRECONDITION TASK_MISMATCH", err, reason)
	}
}
