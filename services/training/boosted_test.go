package training_test

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
)

// bankSeeds is the number of seeds (1 to N) TestBankBoostedTrees trains the boosted trees
// with; scripts/bench-train.py --mesh-seeds passes 5 and reads the bank-gbt lines.
var bankSeeds = flag.Int("bank-seeds", 1, "TestBankBoostedTrees: train the boosted trees with search seeds 1 to N")

// TestBankBoostedTrees trains the boosted trees at their defaults through the mesh on Bank
// (test rows i % 5 == 4), with and without duration, once per seed of -bank-seeds: every
// run's test ROC-AUC has a floor and their median a higher one. A search beside logistic
// regression picks them, and the registered version scores the test rows through Evaluate
// with the job's metrics.
func TestBankBoostedTrees(t *testing.T) {
	if *bankSeeds < 1 {
		t.Fatalf("-bank-seeds %d: want at least 1", *bankSeeds)
	}
	e := newEnv(t, bankFull)
	tr := e.startTraining("trainer-a")
	gbt := candidate(modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES, nil)
	for _, c := range []struct {
		duration      bool
		least, median float64
	}{{true, 0.945, 0.9460}, {false, 0.780, 0.7830}} {
		with := map[bool]string{true: "with", false: "without"}[c.duration]
		var aucs []float64
		for seed := 1; seed <= *bankSeeds; seed++ {
			s := bankSpec("bank-gbt", c.duration, gbt)
			s.CrossValidation = &trainingv1.CrossValidationSpec{Folds: proto.Int32(0)}
			s.Search = &trainingv1.SearchSpec{Seed: uint64(seed)}
			began := time.Now()
			job := finished(t, tr.client, start(t, tr.client, fmt.Sprintf("gbt-%s-%d", with, seed), s).GetJobId(), 3*time.Minute)
			succeeded(t, job)
			auc := metric(job.GetMetrics(), "roc_auc")
			t.Logf("duration %v, seed %d: test ROC-AUC %.4f, job took %v", c.duration, seed, auc, time.Since(began).Round(time.Millisecond))
			if auc < c.least {
				t.Errorf("duration %v, seed %d: test ROC-AUC %.4f, want at least %.3f", c.duration, seed, auc, c.least)
			}
			aucs = append(aucs, auc)
		}
		med := median(aucs)
		t.Logf("bank-gbt duration=%s seeds=%d median=%.4f aucs=%s", with, len(aucs), med, fourPlaces(aucs))
		if med < c.median {
			t.Errorf("duration %v: median test ROC-AUC %.4f over %d seeds, want at least %.4f", c.duration, med, len(aucs), c.median)
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
	t.Logf("bank-select winner=%s gbt=%.4f lr=%.4f margin=%.4f", lb[0].GetFamily(), auc, lrAUC, auc-lrAUC)
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

// median is the median of xs (the mean of the middle two when their number is even).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// fourPlaces formats xs as [a,b,…] with four decimals each.
func fourPlaces(xs []float64) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf("%.4f", x)
	}
	return "[" + strings.Join(out, ",") + "]"
}
