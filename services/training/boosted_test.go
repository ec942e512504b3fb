package training_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
)

// TestBankBoostedTrees trains the boosted trees at their defaults through the mesh on Bank
// (test rows i % 5 == 4), with and without duration; a search beside logistic regression
// picks them, and the registered version scores the test rows through Evaluate with the
// job's metrics.
func TestBankBoostedTrees(t *testing.T) {
	e := newEnv(t, bankFull)
	tr := e.startTraining("trainer-a")
	gbt := candidate(modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES, nil)
	for _, c := range []struct {
		duration bool
		least    float64
	}{{true, 0.945}, {false, 0.780}} {
		s := bankSpec("bank-gbt", c.duration, gbt)
		s.CrossValidation = &trainingv1.CrossValidationSpec{Folds: proto.Int32(0)}
		began := time.Now()
		job := finished(t, tr.client, start(t, tr.client, "gbt-"+map[bool]string{true: "with", false: "without"}[c.duration], s).GetJobId(), 3*time.Minute)
		succeeded(t, job)
		auc := metric(job.GetMetrics(), "roc_auc")
		t.Logf("duration %v: test ROC-AUC %.4f, job took %v", c.duration, auc, time.Since(began).Round(time.Millisecond))
		if auc < c.least {
			t.Errorf("duration %v: test ROC-AUC %.4f, want at least %.3f", c.duration, auc, c.least)
		}
	}

	lr := finished(t, tr.client, start(t, tr.client, "lr", bankSpec("bank-lr", true, logisticC(1))).GetJobId(), 2*time.Minute)
	succeeded(t, lr)
	s := bankSpec("bank-select", true, logisticC(1), gbt)
	s.CrossValidation = &trainingv1.CrossValidationSpec{Folds: proto.Int32(3)}
	job := finished(t, tr.client, start(t, tr.client, "select", s).GetJobId(), 3*time.Minute)
	succeeded(t, job)
	lb := job.GetProgress().GetLeaderboard()
	if len(lb) != 2 || lb[0].GetFamily() != modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES {
		t.Fatalf("leaderboard %v: the boosted trees do not win", lb)
	}
	auc, lrAUC := metric(job.GetMetrics(), "roc_auc"), metric(lr.GetMetrics(), "roc_auc")
	t.Logf("selection: boosted trees test ROC-AUC %.4f, logistic regression %.4f", auc, lrAUC)
	if auc < lrAUC+0.010 {
		t.Errorf("boosted trees' test ROC-AUC %.4f is not 0.010 above logistic regression's %.4f", auc, lrAUC)
	}

	ref := &commonv1.ModelRef{Name: "bank-select", Selector: &commonv1.ModelRef_Version{Version: job.GetModelVersion()}}
	ev, err := tr.client.Evaluate(context.Background(), &trainingv1.EvaluateRequest{Model: ref,
		Data: &trainingv1.DataSpec{Source: &trainingv1.DataSpec_TrainingSet{TrainingSet: bankTrainingSet()}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := metric(ev.GetMetrics(), "roc_auc"); got != auc || ev.GetRowsScored() != 8237 {
		t.Errorf("Evaluate: ROC-AUC %v on %d rows, the job's %v", got, ev.GetRowsScored(), auc)
	}
}
