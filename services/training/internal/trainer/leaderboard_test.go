package trainer

import (
	"errors"
	"math"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
	"github.com/bullseye-ml/bullseye/pkg/ml/selection"
	"github.com/bullseye-ml/bullseye/services/training/internal/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, embeddedtest.GoleakOptions()...) }

// regressionBoard returns a board of regression candidates ranked by rmse, with each
// candidate's folds recorded: fold f of candidate i has folds[i][f] as its metrics.
func regressionBoard(t *testing.T, folds [][]map[string]float64) *board {
	t.Helper()
	def, err := metrics.Lookup("rmse")
	if err != nil {
		t.Fatal(err)
	}
	var cands []spec.Candidate
	var built []spec.Built
	for i := range folds {
		cands = append(cands, spec.Candidate{Index: i + 1, Family: modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION})
		built = append(built, spec.Built{Family: modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION})
	}
	b := newBoard(cands, built, len(folds[0]), "rmse", def, modelv1.TaskKind_TASK_KIND_REGRESSION)
	for i, fs := range folds {
		for f, m := range fs {
			b.add(selection.Progress{Candidate: i, Fold: f, Converged: true, Metrics: m})
		}
	}
	return b
}

func metricOf(e *modelv1.LeaderboardEntry, name string) (float64, bool) {
	for _, m := range e.GetMetrics() {
		if m.GetName() == name {
			return m.GetValue(), true
		}
	}
	return 0, false
}

// TestNaNFoldMetricFailsTheCandidate checks the one rule for NaN fold metrics: a NaN of the
// selection metric fails its candidate, which ranks last and cannot win (as a NaN score it
// tied with every candidate and, first by index, won); a NaN of another metric is left out
// of its fold and of the means, and the candidate stays ranked by its score.
func TestNaNFoldMetricFailsTheCandidate(t *testing.T) {
	nan := math.NaN()
	b := regressionBoard(t, [][]map[string]float64{
		{{"rmse": 1, "mae": 1, "r2": 0.5}, {"rmse": nan, "mae": 1, "r2": 0.5}}, // candidate 1: rmse NaN on fold 2
		{{"rmse": 2, "mae": 2, "r2": 0.4}, {"rmse": 2, "mae": nan, "r2": 0.4}}, // candidate 2: mae NaN on fold 2
		{{"rmse": 3, "mae": 3, "r2": 0.3}, {"rmse": 3, "mae": 3, "r2": 0.3}},   // candidate 3: no NaN
	})
	lb := b.final(nil)
	var order []int32
	for _, e := range lb {
		order = append(order, e.GetCandidateIndex())
	}
	if want := []int32{2, 3, 1}; len(order) != 3 || order[0] != want[0] || order[1] != want[1] || order[2] != want[2] {
		t.Fatalf("leaderboard order %v, want %v", order, want)
	}
	failed := lb[2]
	if failed.GetError() == nil || !strings.Contains(failed.GetError().GetDescription(), "fold 2: the selection metric rmse is not a number") || failed.GetRank() != 3 {
		t.Errorf("candidate 1: rank %d, error %v; want rank 3, failed for the NaN rmse of fold 2", failed.GetRank(), failed.GetError())
	}
	if _, ok := metricOf(failed, "rmse"); ok {
		t.Errorf("candidate 1 has an rmse mean: %v", failed.GetMetrics())
	}
	for _, m := range failed.GetFolds()[1].GetMetrics() {
		if m.GetName() == "rmse" {
			t.Errorf("candidate 1's fold 2 keeps its NaN rmse: %v", failed.GetFolds()[1].GetMetrics())
		}
	}
	second := lb[0]
	if second.GetError() != nil || second.GetScore() != 2 || second.GetRank() != 1 {
		t.Errorf("candidate 2: rank %d, score %v, error %v; want rank 1, score 2, not failed", second.GetRank(), second.GetScore(), second.GetError())
	}
	if _, ok := metricOf(second, "mae"); ok {
		t.Errorf("candidate 2 has a mae mean over a NaN fold: %v", second.GetMetrics())
	}
	if r2, ok := metricOf(second, "r2"); !ok || r2 != 0.4 {
		t.Errorf("candidate 2's r2 %v (%v), want 0.4", r2, ok)
	}
	if n := len(second.GetFolds()[1].GetMetrics()); n != 2 {
		t.Errorf("candidate 2's fold 2 has %d metrics, want rmse and r2 only", n)
	}
	if w, err := leader(lb, "rmse"); err != nil || w != 1 {
		t.Errorf("leader = %d, %v; want candidate 2 (index 1)", w, err)
	}

	// Every candidate NaN: the job fails rather than registering one of them.
	all := regressionBoard(t, [][]map[string]float64{{{"rmse": nan}}, {{"rmse": nan}}}).final(nil)
	var coded *fault.Coded
	if _, err := leader(all, "rmse"); !errors.As(err, &coded) || coded.Reason != ReasonAllFailed {
		t.Errorf("leader of NaN candidates: %v, want %s", err, ReasonAllFailed)
	}
}

// TestMissingSelectionMetricRanksAfterScored checks the rest of the rule, which recommenders
// meet: a candidate whose family never gives the selection metric (popularity has no rmse)
// keeps its other metrics, is not failed and ranks after the candidates with a score, before
// the failed; one that lacks it on some folds only is failed.
func TestMissingSelectionMetricRanksAfterScored(t *testing.T) {
	def := metrics.Metric{Name: "rmse"}
	reported := []string{"rmse", "ndcg_at_10"}
	entry := func(index int, folds ...map[string]float64) *modelv1.LeaderboardEntry {
		var ps []*selection.Progress
		for _, m := range folds {
			ps = append(ps, &selection.Progress{Converged: true, Metrics: m})
		}
		return foldsEntry(&modelv1.LeaderboardEntry{CandidateIndex: int32(index)}, ps, reported, "rmse")
	}
	popularity := entry(1, map[string]float64{"ndcg_at_10": 0.3}, map[string]float64{"ndcg_at_10": 0.5})
	patchy := entry(2, map[string]float64{"rmse": 0.5, "ndcg_at_10": 0.1}, map[string]float64{"ndcg_at_10": 0.1})
	als := entry(3, map[string]float64{"rmse": 0.9, "ndcg_at_10": 0.2}, map[string]float64{"rmse": 1.1, "ndcg_at_10": 0.2})
	lb := []*modelv1.LeaderboardEntry{popularity, patchy, als}
	rankEntries(lb, "rmse", def)

	if lb[0] != als || lb[1] != popularity || lb[2] != patchy {
		t.Fatalf("order %d, %d, %d; want 3 (scored), 1 (no rmse), 2 (failed)", lb[0].GetCandidateIndex(), lb[1].GetCandidateIndex(), lb[2].GetCandidateIndex())
	}
	if popularity.GetError() != nil || hasScore(popularity, "rmse") {
		t.Errorf("popularity: error %v, metrics %v; want no error and no rmse", popularity.GetError(), popularity.GetMetrics())
	}
	if v, ok := metricOf(popularity, "ndcg_at_10"); !ok || math.Abs(v-0.4) > 1e-12 {
		t.Errorf("popularity's ndcg_at_10 %v (%v), want 0.4", v, ok)
	}
	if patchy.GetError() == nil || !strings.Contains(patchy.GetError().GetDescription(), "could not be computed on every fold") {
		t.Errorf("rmse on one fold of two: error %v, want the candidate failed", patchy.GetError())
	}
	if als.GetScore() != 1 || als.GetRank() != 1 {
		t.Errorf("als: score %v, rank %d; want 1, 1", als.GetScore(), als.GetRank())
	}
	if _, err := leader([]*modelv1.LeaderboardEntry{popularity}, "rmse"); err == nil {
		t.Error("a leaderboard led by a candidate without a score has a winner")
	}
}
