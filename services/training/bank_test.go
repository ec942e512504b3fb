package training_test

import (
	"context"
	"math"
	"reflect"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
)

// TestBankLogisticRegression is issue 5's acceptance through the mesh: logistic regression
// (C = 1) on Bank Marketing, split by import row number (row i is test when i % 5 == 4),
// reaches test ROC-AUC within 0.003 of scikit-learn's (0.9302 with duration, 0.7734 without,
// ../shared/data/README.md). The registered version then scores the same test rows through
// Evaluate, given as a training-set spec and as inline rows, with the same metrics and scores;
// and PromoteModel refuses the weaker model by the quality gate and a stale revision.
func TestBankLogisticRegression(t *testing.T) {
	e := newEnv(t, bankFull)
	tr := e.startTraining("trainer-a")
	ctx := context.Background()
	refs := []struct {
		withDuration bool
		want         float64
	}{{true, 0.9302}, {false, 0.7734}}
	var jobs []*trainingv1.Job
	for i, ref := range refs {
		began := time.Now()
		job := start(t, tr.client, "bank-lr-"+strconv.Itoa(i), bankSpec("bank-response", ref.withDuration, logisticC(1)))
		job = finished(t, tr.client, job.GetJobId(), 2*time.Minute)
		succeeded(t, job)
		auc := metric(job.GetMetrics(), "roc_auc")
		t.Logf("duration %v: test ROC-AUC %.4f (scikit-learn %.4f), log loss %.4f, job took %v; version %d",
			ref.withDuration, auc, ref.want, metric(job.GetMetrics(), "log_loss"), time.Since(began).Round(time.Millisecond), job.GetModelVersion())
		if math.Abs(auc-ref.want) > 0.003 {
			t.Errorf("duration %v: test ROC-AUC %.4f, want %.4f ± 0.003", ref.withDuration, auc, ref.want)
		}
		jobs = append(jobs, job)
	}

	// Evaluate version 1 on the training set's test rows: the job's metrics again.
	v1 := &commonv1.ModelRef{Name: "bank-response", Selector: &commonv1.ModelRef_Version{Version: 1}}
	data := &trainingv1.DataSpec{Source: &trainingv1.DataSpec_TrainingSet{TrainingSet: bankTrainingSet()}}
	ev, err := tr.client.Evaluate(ctx, &trainingv1.EvaluateRequest{Model: v1, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	if ev.GetRowsScored() != 8237 || ev.GetRowsLabelled() != 8237 || len(ev.GetScores()) != 8237 ||
		len(ev.GetCurves().GetLift()) != 10 || len(ev.GetCurves().GetCalibration()) != 10 || len(ev.GetCurves().GetRoc()) == 0 {
		t.Fatalf("Evaluate: %d rows scored, %d labelled, %d scores, curves %d/%d/%d", ev.GetRowsScored(), ev.GetRowsLabelled(),
			len(ev.GetScores()), len(ev.GetCurves().GetRoc()), len(ev.GetCurves().GetLift()), len(ev.GetCurves().GetCalibration()))
	}
	for _, name := range []string{"roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "f1"} {
		if got, want := metric(ev.GetMetrics(), name), metric(jobs[0].GetMetrics(), name); got != want {
			t.Errorf("Evaluate %s = %v, the job's %v", name, got, want)
		}
	}
	// The same rows given inline, as serving gets them (raw typed values by name), score the
	// same: no training/serving skew.
	tb := bankTable(t, bankFull)
	var rows []*trainingv1.EvaluationRow
	for i := 4; i < 400; i += 5 {
		r := &trainingv1.EvaluationRow{EntityId: "client-" + strconv.Itoa(i), Features: map[string]*commonv1.Value{}}
		for j, c := range tb.Columns {
			if c.GetName() != "y" {
				r.Features[c.GetName()] = tb.Rows[i][j]
			}
		}
		rows = append(rows, r)
	}
	inline, err := tr.client.Evaluate(ctx, &trainingv1.EvaluateRequest{Model: v1, Rows: rows})
	if err != nil {
		t.Fatal(err)
	}
	for k, s := range inline.GetScores() {
		want := ev.GetScores()[k]
		if s.GetStatus() != trainingv1.ScoredRowStatus_SCORED_ROW_STATUS_OK || s.GetScore() != want.GetScore() || s.GetProbability() != want.GetProbability() {
			t.Fatalf("inline row %d: %v, from the training set %v", k, s, want)
		}
	}

	// Promotion: version 1 (with duration) goes live; version 2 (without, far weaker) is
	// refused by the quality gate, then by a stale revision, and goes through forced.
	p1, err := tr.client.PromoteModel(ctx, &trainingv1.PromoteModelRequest{ModelName: "bank-response",
		Live: &modelv1.TrafficSplit{Versions: []*modelv1.VersionWeight{{Version: 1, Weight: 100}}}, SetAliases: map[string]int64{"champion": 1}})
	if err != nil {
		t.Fatal(err)
	}
	rev := p1.GetModel().GetRevision()
	canary := &modelv1.TrafficSplit{Versions: []*modelv1.VersionWeight{{Version: 1, Weight: 90}, {Version: 2, Weight: 10}}}
	_, err = tr.client.PromoteModel(ctx, &trainingv1.PromoteModelRequest{ModelName: "bank-response", ExpectedRevision: rev, Live: canary})
	if code, reason, _ := codeAndReason(err); code != codes.FailedPrecondition || reason != "QUALITY_GATE" {
		t.Errorf("promoting the weaker version: %v (%s), want FAILED_PRECONDITION QUALITY_GATE", err, reason)
	}
	_, err = tr.client.PromoteModel(ctx, &trainingv1.PromoteModelRequest{ModelName: "bank-response", ExpectedRevision: rev - 1, Live: canary, Force: true})
	if code, reason, md := codeAndReason(err); code != codes.Aborted || reason != "REVISION_MISMATCH" || md["current_revision"] != strconv.FormatInt(rev, 10) {
		t.Errorf("stale revision: %v (%s, %v), want ABORTED REVISION_MISMATCH with current_revision %d", err, reason, md, rev)
	}
	p3, err := tr.client.PromoteModel(ctx, &trainingv1.PromoteModelRequest{ModelName: "bank-response", ExpectedRevision: rev, Live: canary, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if c := p3.GetChecks(); len(c) != 1 || c[0].GetPassed() || !c[0].GetForced() || c[0].GetLiveVersion() != 1 {
		t.Errorf("forced promotion's checks = %v", c)
	}
	live, err := tr.client.GetModel(ctx, &trainingv1.GetModelRequest{Model: &commonv1.ModelRef{Name: "bank-response"}})
	if err != nil || live.GetModelVersion().GetVersion() != 1 || !reflect.DeepEqual(live.GetModel().GetAliases(), map[string]int64{"champion": 1}) {
		t.Errorf("GetModel(live) = version %d, aliases %v, %v", live.GetModelVersion().GetVersion(), live.GetModel().GetAliases(), err)
	}
}

// TestBankModelSelection is issue 5's model-selection acceptance through the mesh: a search
// over the families on Bank (with duration; 3 stratified folds) picks a model whose test AUC
// is at least our own logistic regression's minus 0.002, the kernel SVM, too large for the
// exact solver, falls back to Nyström and says so, and the leaderboard is the same when the
// job runs again with the same seed.
func TestBankModelSelection(t *testing.T) {
	e := newEnv(t, bankFull)
	tr := e.startTraining("trainer-a")
	lr := finished(t, tr.client, start(t, tr.client, "lr", bankSpec("bank-lr", true, logisticC(1))).GetJobId(), 2*time.Minute)
	succeeded(t, lr)
	lrAUC := metric(lr.GetMetrics(), "roc_auc")

	search := func(requestID string) *trainingv1.Job {
		s := bankSpec("bank-search", true,
			logisticC(0.01, 1),
			&trainingv1.CandidateSpec{Family: modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION, Label: "logreg-l1",
				Hyperparameters: map[string]*trainingv1.HyperparameterDomain{"c": values(num(0.1)), "penalty": values(str("l1"))}},
			candidate(modelv1.ModelFamily_MODEL_FAMILY_LINEAR_SVM, map[string]*trainingv1.HyperparameterDomain{"c": values(num(0.1))}),
			candidate(modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_LOGISTIC, map[string]*trainingv1.HyperparameterDomain{
				"c": values(num(1)), "components": values(num(150))}),
			candidate(modelv1.ModelFamily_MODEL_FAMILY_KERNEL_SVM, map[string]*trainingv1.HyperparameterDomain{"c": values(num(1))}),
		)
		s.CrossValidation = &trainingv1.CrossValidationSpec{Folds: proto.Int32(3)}
		s.Search = &trainingv1.SearchSpec{Seed: 7}
		s.KernelLimits = &trainingv1.KernelLimits{NystromComponents: 150}
		began := time.Now()
		job := finished(t, tr.client, start(t, tr.client, requestID, s).GetJobId(), 3*time.Minute)
		succeeded(t, job)
		t.Logf("search %s took %v", requestID, time.Since(began).Round(time.Millisecond))
		return job
	}
	first := search("search-1")
	for _, e := range first.GetProgress().GetLeaderboard() {
		t.Logf("%d. candidate %d %v %s %v: %.4f ± %.4f, fallback %v, fit %v", e.GetRank(), e.GetCandidateIndex(), e.GetFamily(), e.GetLabel(),
			e.GetHyperparameters()["c"].GetNumberValue(), e.GetScore(), e.GetScoreStdDev(), e.GetKernelFallback(), e.GetMeanFitTime().AsDuration().Round(time.Millisecond))
	}
	winner := first.GetProgress().GetLeaderboard()[0]
	auc := metric(first.GetMetrics(), "roc_auc")
	t.Logf("winner: candidate %d %v, test ROC-AUC %.4f; logistic regression C=1: %.4f", winner.GetCandidateIndex(), winner.GetFamily(), auc, lrAUC)
	if auc < lrAUC-0.002 {
		t.Errorf("the winner's test AUC %.4f < logistic regression's %.4f - 0.002", auc, lrAUC)
	}
	if !hasCode(first.GetMessages(), "KERNEL_SVM_NYSTROM_FALLBACK") {
		t.Errorf("no KERNEL_SVM_NYSTROM_FALLBACK message:\n%s", describe(first))
	}
	for _, e := range first.GetProgress().GetLeaderboard() {
		if e.GetCandidateIndex() == 6 && (e.GetFamily() != modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_SVM ||
			e.GetKernelFallback() != modelv1.KernelFallback_KERNEL_FALLBACK_NYSTROM) {
			t.Errorf("kernel SVM entry = %v, want NYSTROM_SVM with the NYSTROM fallback", e)
		}
		if len(e.GetFolds()) != 3 || len(e.GetMetrics()) < 6 || e.GetError() != nil {
			t.Errorf("entry %d: %d folds, %d metrics, error %v", e.GetCandidateIndex(), len(e.GetFolds()), len(e.GetMetrics()), e.GetError())
		}
	}

	second := search("search-2")
	a, b := first.GetProgress().GetLeaderboard(), second.GetProgress().GetLeaderboard()
	if len(a) != len(b) {
		t.Fatalf("leaderboards of %d and %d entries", len(a), len(b))
	}
	for i := range a {
		if a[i].GetCandidateIndex() != b[i].GetCandidateIndex() || a[i].GetScore() != b[i].GetScore() || a[i].GetScoreStdDev() != b[i].GetScoreStdDev() {
			t.Errorf("rank %d: candidate %d %.6f ± %.6f, then candidate %d %.6f ± %.6f", i+1, a[i].GetCandidateIndex(), a[i].GetScore(),
				a[i].GetScoreStdDev(), b[i].GetCandidateIndex(), b[i].GetScore(), b[i].GetScoreStdDev())
		}
	}
	if metric(second.GetMetrics(), "roc_auc") != auc {
		t.Errorf("the second search's winner scores %.6f, the first's %.6f", metric(second.GetMetrics(), "roc_auc"), auc)
	}
}

// TestBankKernelSVM trains the exact kernel SVM of issue 5's acceptance through the mesh: RBF,
// C = 1, gamma "scale", on the 8,237 Bank rows with i % 4 == 0 among the training rows (a
// training filter), preprocessing fitted on those rows; scikit-learn's SVC reaches test
// ROC-AUC 0.9053 with duration (../shared/data/README.md), we want it within 0.002 or better.
func TestBankKernelSVM(t *testing.T) {
	e := newEnv(t, bankFull)
	tr := e.startTraining("trainer-a")
	s := bankSpec("bank-svc", true, candidate(modelv1.ModelFamily_MODEL_FAMILY_KERNEL_SVM, map[string]*trainingv1.HyperparameterDomain{
		"c": values(num(1)), "gamma": values(str("scale"))}))
	s.Data.TrainFilter = &trainingv1.RowNumberFilter{Modulus: 4, Remainders: []int64{0}}
	s.CrossValidation = &trainingv1.CrossValidationSpec{Folds: proto.Int32(2)}
	began := time.Now()
	job := finished(t, tr.client, start(t, tr.client, "svc", s).GetJobId(), 3*time.Minute)
	succeeded(t, job)
	auc := metric(job.GetMetrics(), "roc_auc")
	t.Logf("kernel SVM on %d rows: test ROC-AUC %.4f (scikit-learn SVC 0.9053), log loss %.4f; job took %v",
		8237, auc, metric(job.GetMetrics(), "log_loss"), time.Since(began).Round(time.Millisecond))
	if auc < 0.9053-0.002 {
		t.Errorf("test ROC-AUC %.4f, want at least 0.9053 - 0.002", auc)
	}
	if hasCode(job.GetMessages(), "KERNEL_SVM_NYSTROM_FALLBACK") || hasCode(job.GetMessages(), "KERNEL_SVM_SUBSAMPLED") {
		t.Errorf("an exact kernel SVM fell back:\n%s", describe(job))
	}
	got, err := tr.client.GetModel(context.Background(), &trainingv1.GetModelRequest{Model: &commonv1.ModelRef{Name: "bank-svc",
		Selector: &commonv1.ModelRef_Version{Version: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if mv := got.GetModelVersion(); mv.GetFamily() != modelv1.ModelFamily_MODEL_FAMILY_KERNEL_SVM || mv.GetLineage().GetTrainRows() != 8237 ||
		mv.GetArtifact().GetSizeBytes() < 8*63*1000 {
		t.Errorf("version: %v, %d training rows, artifact %d bytes", mv.GetFamily(), mv.GetLineage().GetTrainRows(), mv.GetArtifact().GetSizeBytes())
	}
}
