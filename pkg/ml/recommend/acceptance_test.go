package recommend_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/pkg/ml/selection"
	"github.com/bullseye-ml/bullseye/pkg/ml/synth"
)

// holdout is a splitter with one fold: the first of a shuffled k-fold split.
type holdout struct {
	k    int
	seed uint64
}

func (h holdout) Split(n int) ([]selection.Fold, error) {
	folds, err := selection.KFold{K: h.k, Shuffle: true, Seed: h.seed}.Split(n)
	if err != nil {
		return nil, err
	}
	return folds[:1], nil
}

func rmse(y, pred []float64) float64 {
	var s float64
	for r := range y {
		s += (y[r] - pred[r]) * (y[r] - pred[r])
	}
	return math.Sqrt(s / float64(len(y)))
}

func logLeaderboard(t *testing.T, res *recommend.SearchResult) {
	t.Helper()
	for _, row := range res.Leaderboard {
		t.Logf("  %s (converged %v, fit %v)", row, row.Converged, row.FitTime.Round(time.Millisecond))
	}
}

// TestExplicitAcceptance is issue 6's first acceptance criterion: on the 1M-shaped generated
// ratings (planted rank 10, noise σ = 0.85, unrounded), biased MF at rank 10 reaches a test
// RMSE within 5 % of the oracle's, the planted model's own predictions of the same test rows.
// λ is chosen on a validation split of the training rows, never on the test rows.
func TestExplicitAcceptance(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	d, err := synth.Generate(synth.MovieLens1M())
	if err != nil {
		t.Fatal(err)
	}
	train, test, raw, oracle, err := d.Split(0.1, 7)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("generated %d ratings (%d train, %d test) in %v", d.Interactions.Len(), train.Len(), test.Len(), time.Since(start).Round(time.Millisecond))

	start = time.Now()
	search := recommend.Search{
		Candidates: recommend.Grid(recommend.Families(1)["mf_als"], map[string][]float64{
			"rank": {10}, "lambda": {0.04, 0.08, 0.12}, "iterations": {25}}),
		Splitter: holdout{k: 10, seed: 7},
		Metric:   "rmse",
		NoRefit:  true,
	}
	res, err := search.Run(ctx, train)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("λ chosen on a 10 %% validation split of the training rows in %v:", time.Since(start).Round(time.Millisecond))
	logLeaderboard(t, res)

	start = time.Now()
	f, err := recommend.ALS{Rank: 10, Lambda: res.Best.Params["lambda"], Iterations: 25, Seed: 1}.Fit(ctx, train)
	if err != nil {
		t.Fatal(err)
	}
	fit := time.Since(start)
	s, err := recommend.NewScorer(f)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := recommend.Evaluate(s, test, recommend.EvalOptions{Ratings: true})
	if err != nil {
		t.Fatal(err)
	}
	want := rmse(raw, oracle)
	t.Logf("ALS rank 10 λ=%g: test RMSE %.4f, oracle %.4f (planted noise σ = %.2f): ratio %.4f; %d iterations (converged %v) in %v",
		res.Best.Params["lambda"], ev.RMSE, want, d.Config.Noise, ev.RMSE/want, f.Iterations, f.Converged, fit.Round(time.Millisecond))
	if ev.Known != ev.Rows {
		t.Logf("%d of %d test rows have a user or item unknown to the model", ev.Rows-ev.Known, ev.Rows)
	}
	if ev.RMSE > 1.05*want {
		t.Errorf("test RMSE %.4f is more than 5 %% above the oracle's %.4f", ev.RMSE, want)
	}

	// The SGD model with Surprise's defaults, for the record.
	start = time.Now()
	g, err := recommend.SGD{Rank: 10, Seed: 1}.Fit(ctx, train)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := recommend.NewScorer(g)
	if err != nil {
		t.Fatal(err)
	}
	gev, err := recommend.Evaluate(gs, test, recommend.EvalOptions{Ratings: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SGD rank 10 (η 0.005, λ 0.02, 20 epochs): test RMSE %.4f, ratio %.4f, in %v", gev.RMSE, gev.RMSE/want, time.Since(start).Round(time.Millisecond))
	if gev.RMSE > 1.10*want {
		t.Errorf("SGD test RMSE %.4f is more than 10 %% above the oracle's %.4f", gev.RMSE, want)
	}
}

// TestImplicitAcceptance is issue 6's second acceptance criterion: on the 1M-shaped generated
// implicit feedback, implicit ALS beats the popularity baseline on NDCG@10 by a wide margin
// (here: by at least half again). α and λ are chosen on a validation split of the training
// rows.
func TestImplicitAcceptance(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	d, err := synth.Implicit(synth.MovieLens1M())
	if err != nil {
		t.Fatal(err)
	}
	train, test, err := d.Interactions.SplitRandom(0.2, 7)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("generated %d interactions (%d train, %d test) in %v", d.Interactions.Len(), train.Len(), test.Len(), time.Since(start).Round(time.Millisecond))

	start = time.Now()
	search := recommend.Search{
		Candidates: recommend.Grid(recommend.Families(1)["implicit_als"], map[string][]float64{
			"rank": {10}, "alpha": {1, 5, 40}, "lambda": {1, 100}}),
		Splitter: holdout{k: 10, seed: 7},
		Metric:   "ndcg_at_10",
		NoRefit:  true,
	}
	res, err := search.Run(ctx, train)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("α and λ chosen on a 10 %% validation split of the training rows in %v:", time.Since(start).Round(time.Millisecond))
	logLeaderboard(t, res)

	eval := func(name string, f *recommend.Factors) float64 {
		t.Helper()
		s, err := recommend.NewScorer(f)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := recommend.Evaluate(s, test, recommend.EvalOptions{K: []int{10}})
		if err != nil {
			t.Fatal(err)
		}
		m := ev.Ranking[0]
		t.Logf("%-38s NDCG@10 %.4f  P@10 %.4f  R@10 %.4f  MAP@10 %.4f  MRR@10 %.4f  coverage %.3f  (%d users)",
			name, m.NDCG, m.Precision, m.Recall, m.MAP, m.MRR, m.Coverage, m.Lists)
		return m.NDCG
	}
	best := res.Best.Params
	start = time.Now()
	als, err := recommend.ImplicitALS{Rank: 10, Alpha: best["alpha"], Lambda: best["lambda"], Seed: 1}.Fit(ctx, train)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("implicit ALS fitted in %v, %d iterations (converged %v)", time.Since(start).Round(time.Millisecond), als.Iterations, als.Converged)
	pop, err := recommend.Popular{}.Fit(ctx, train)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	bpr, err := recommend.BPR{Rank: 10, Seed: 1}.Fit(ctx, train)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("BPR fitted in %v", time.Since(start).Round(time.Millisecond))

	alsNDCG := eval("implicit ALS "+best.String(), als)
	popNDCG := eval("popularity", pop)
	eval("BPR rank 10 (defaults)", bpr)
	eval("oracle (the planted model)", d.Recommender(train))
	t.Logf("implicit ALS / popularity NDCG@10 = %.2f", alsNDCG/popNDCG)
	if alsNDCG < 1.5*popNDCG {
		t.Errorf("implicit ALS NDCG@10 %.4f is not 1.5 × popularity's %.4f", alsNDCG, popNDCG)
	}
}
