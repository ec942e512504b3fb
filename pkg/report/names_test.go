package report

import (
	"testing"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
)

func TestCandidateNames(t *testing.T) {
	s := func(v string) *commonv1.Value {
		return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: v}}
	}
	n := func(v float64) *commonv1.Value {
		return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: v}}
	}
	logistic := modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION
	entry := func(i int32, label string, f modelv1.ModelFamily, hp map[string]*commonv1.Value) *modelv1.LeaderboardEntry {
		return &modelv1.LeaderboardEntry{CandidateIndex: i, Label: label, Family: f, Hyperparameters: hp}
	}
	// Every default filled in, as the spec's expansion does: the names must not hide the one
	// hyperparameter that differs, wherever it sorts.
	full := func(penalty string) map[string]*commonv1.Value {
		return map[string]*commonv1.Value{"c": n(1), "class_weight": s("balanced"), "fit_intercept": s("true"),
			"max_iter_hint": n(100), "penalty": s(penalty), "tolerance_hint": n(0.0001)}
	}
	entries := []*modelv1.LeaderboardEntry{
		entry(1, "logreg", logistic, full("l1")),
		entry(2, "logreg", logistic, full("l2")),
		entry(3, "", logistic, full("l1")),
		entry(4, "", logistic, full("l2")),
		entry(5, "", modelv1.ModelFamily_MODEL_FAMILY_LINEAR_SVM, map[string]*commonv1.Value{"c": n(1)}),
		entry(6, "svm", modelv1.ModelFamily_MODEL_FAMILY_LINEAR_SVM, map[string]*commonv1.Value{"c": n(1)}),
		entry(7, "svm", modelv1.ModelFamily_MODEL_FAMILY_KERNEL_SVM, map[string]*commonv1.Value{"c": n(1)}),
		entry(8, "twice", logistic, full("l2")),
		entry(9, "twice", logistic, full("l2")),
		entry(10, "sparse", logistic, map[string]*commonv1.Value{"c": n(1)}),
		entry(11, "sparse", logistic, map[string]*commonv1.Value{"c": n(1), "penalty": s("l1")}),
	}
	want := map[int32]string{
		1:  "logreg penalty=l1",
		2:  "logreg penalty=l2",
		3:  "logistic_regression penalty=l1",
		4:  "logistic_regression penalty=l2",
		5:  "linear_svm",
		6:  "svm linear_svm",
		7:  "svm kernel_svm",
		8:  "twice #8",
		9:  "twice #9",
		10: "sparse penalty=unset",
		11: "sparse penalty=l1",
	}
	got := CandidateNames(entries)
	for i, w := range want {
		if got[i] != w {
			t.Errorf("candidate %d: %q, want %q", i, got[i], w)
		}
	}
	seen := map[string]int32{}
	for i, name := range got {
		if j, dup := seen[name]; dup {
			t.Errorf("candidates %d and %d share the name %q", i, j, name)
		}
		seen[name] = i
	}
}

// TestLeaderboardLabelsSharedByCandidates checks the HTML leaderboard and its per-fold table
// tell apart two candidates of one CandidateSpec (one label, an L1 and an L2 penalty).
func TestLeaderboardLabelsSharedByCandidates(t *testing.T) {
	s := func(v string) *commonv1.Value {
		return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: v}}
	}
	mv := &modelv1.ModelVersion{SelectionMetric: "roc_auc"}
	for i, p := range []string{"l1", "l2"} {
		mv.Leaderboard = append(mv.Leaderboard, &modelv1.LeaderboardEntry{Rank: int32(i + 1), CandidateIndex: int32(i + 1), Label: "logreg",
			Family: modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION, Hyperparameters: map[string]*commonv1.Value{"penalty": s(p)},
			Folds: []*modelv1.FoldResult{{Fold: 1}}})
	}
	b := leaderboard(mv)
	if b.Rows[0].Candidate == b.Rows[1].Candidate || b.Folds[0].Candidate == b.Folds[1].Candidate {
		t.Errorf("rows %q and %q, fold rows %q and %q: want different names", b.Rows[0].Candidate, b.Rows[1].Candidate, b.Folds[0].Candidate, b.Folds[1].Candidate)
	}
}
