package selection_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/ml/internal/bankdata"
	"github.com/bullseye-ml/bullseye/pkg/ml/logistic"
	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
	"github.com/bullseye-ml/bullseye/pkg/ml/selection"
)

// TestBankSelection checks issue 5's acceptance for model selection: over the families on
// the Bank training rows (with duration), 3-fold stratified cross-validation picks a model
// whose test AUC is at least our own logistic regression's minus 0.002, and the leaderboard
// is the same when the search runs again with the same seed (here one fit at a time).
func TestBankSelection(t *testing.T) {
	bank := bankdata.Require(t)
	tb := bank.Table
	train, test := bankdata.Split(tb.Rows(), false)
	trainT, testT := tb.Subset(train), tb.Subset(test)
	yTrain, yTest := make([]float64, len(train)), make([]float64, len(test))
	for k, i := range train {
		yTrain[k] = bank.Y[i]
	}
	for k, i := range test {
		yTest[k] = bank.Y[i]
	}

	d, err := bank.Prepare(true, false)
	if err != nil {
		t.Fatal(err)
	}
	lr, err := logistic.Regression{C: 1}.FitLogistic(context.Background(), d.XTrain, d.YTrain)
	if err != nil {
		t.Fatal(err)
	}
	lrAUC, _ := metrics.ROCAUC(d.YTest, lr.Predict(d.XTest).RawVector().Data)

	search := func(parallelism int) *selection.Result {
		fams := selection.Families(selection.FamilyOptions{Seed: 5, MaxKernelRows: 3000})
		var cs []selection.Candidate
		cs = append(cs, selection.Grid(fams["logistic_l2"], map[string][]float64{"C": {0.01, 1}})...)
		cs = append(cs, selection.Grid(fams["logistic_l1"], map[string][]float64{"C": {0.1}})...)
		cs = append(cs, selection.Grid(fams["linear_svm"], map[string][]float64{"C": {0.1}})...)
		cs = append(cs, selection.Grid(fams["nystroem_logistic"], map[string][]float64{"C": {1}, "components": {150}})...)
		cs = append(cs, selection.Grid(fams["kernel_svm_rbf"], map[string][]float64{"C": {1}})...)
		s := &selection.Search{
			Candidates:  cs,
			Preprocess:  bankdata.Spec(),
			Splitter:    selection.StratifiedKFold{K: 3, Labels: yTrain, Seed: 5},
			Metric:      "roc_auc",
			Parallelism: parallelism,
		}
		start := time.Now()
		res, err := s.Run(context.Background(), trainT, yTrain)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("search with parallelism %d: %v", parallelism, time.Since(start))
		return res
	}
	res := search(0)
	for _, r := range res.Leaderboard {
		t.Logf("%v converged=%v fit=%v %v", r, r.Converged, r.FitTime.Round(time.Millisecond), r.Notes)
	}
	p, err := res.Model.Predict(testT)
	if err != nil {
		t.Fatal(err)
	}
	auc, _ := metrics.ROCAUC(yTest, p.RawVector().Data)
	t.Logf("winner %s %v: test AUC %.4f; logistic regression C=1: %.4f", res.Best.Family, res.Best.Params, auc, lrAUC)
	if auc < lrAUC-0.002 {
		t.Errorf("winner's test AUC %.4f < logistic regression's %.4f − 0.002", auc, lrAUC)
	}

	again := search(1)
	for i := range res.Leaderboard {
		a, b := res.Leaderboard[i], again.Leaderboard[i]
		if a.Candidate != b.Candidate || !reflect.DeepEqual(a.Scores, b.Scores) {
			t.Errorf("leaderboard row %d differs: %v vs %v", i, a, b)
		}
	}
}

// TestBankSelectionPicksBoostedTrees: beside logistic regression, cross-validation picks
// the boosted trees (a native family, preprocessed natively), and their test ROC-AUC beats
// logistic regression's by at least 0.010 (with duration).
func TestBankSelectionPicksBoostedTrees(t *testing.T) {
	bank := bankdata.Require(t)
	train, test := bankdata.Split(bank.Table.Rows(), false)
	yTrain, yTest := make([]float64, len(train)), make([]float64, len(test))
	for k, i := range train {
		yTrain[k] = bank.Y[i]
	}
	for k, i := range test {
		yTest[k] = bank.Y[i]
	}
	fams := selection.Families(selection.FamilyOptions{Seed: 1})
	cs := append(selection.Grid(fams["logistic_l2"], map[string][]float64{"C": {1}}),
		selection.Grid(fams["boosted_trees"], nil)...)
	res, err := (&selection.Search{
		Candidates: cs,
		Preprocess: bankdata.Spec(),
		Splitter:   selection.StratifiedKFold{K: 3, Labels: yTrain, Seed: 1},
		Metric:     "roc_auc",
	}).Run(context.Background(), bank.Table.Subset(train), yTrain)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Leaderboard {
		t.Logf("%v %v", r, r.Notes)
	}
	if res.Best.Family != "boosted_trees" {
		t.Fatalf("the winner is %s", res.Best.Family)
	}
	p, err := res.Model.Predict(bank.Table.Subset(test))
	if err != nil {
		t.Fatal(err)
	}
	auc, _ := metrics.ROCAUC(yTest, p.RawVector().Data)
	d, err := bank.Prepare(true, false)
	if err != nil {
		t.Fatal(err)
	}
	lr, err := logistic.Regression{C: 1}.FitLogistic(context.Background(), d.XTrain, d.YTrain)
	if err != nil {
		t.Fatal(err)
	}
	lrAUC, _ := metrics.ROCAUC(d.YTest, lr.Predict(d.XTest).RawVector().Data)
	t.Logf("boosted trees test AUC %.4f, logistic regression %.4f", auc, lrAUC)
	if auc < lrAUC+0.010 {
		t.Errorf("boosted trees' test AUC %.4f is not 0.010 above logistic regression's %.4f", auc, lrAUC)
	}
}
