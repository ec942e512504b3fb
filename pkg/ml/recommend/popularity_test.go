package recommend_test

import (
	"context"
	"math"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/pkg/ml/selection"
	"github.com/bullseye-ml/bullseye/pkg/ml/synth"
)

// TestPopularityHasNoRatingMetrics checks that a popularity ranking, which predicts no
// rating, gets no RMSE or MAE on explicit feedback (it used to be scored as if it predicted
// 0, an RMSE near the mean rating) but keeps its ranking metrics, and ranks after the rating
// models under rmse.
func TestPopularityHasNoRatingMetrics(t *testing.T) {
	d, err := synth.Generate(synth.Config{Users: 120, Items: 90, Ratings: 4000, Round: true, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	train, test, err := d.Interactions.SplitRandom(0.2, 1)
	if err != nil {
		t.Fatal(err)
	}
	pop, err := recommend.Popular{}.Fit(context.Background(), train)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := recommend.NewScorer(pop)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := recommend.Evaluate(sc, test, recommend.EvalOptions{K: []int{10}, Ratings: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ev.Metrics["rmse"]; ok || !math.IsNaN(ev.RMSE) || !math.IsNaN(ev.MAE) {
		t.Errorf("popularity: metrics %v, RMSE %v, MAE %v; want no rating metrics", ev.Metrics, ev.RMSE, ev.MAE)
	}
	if ev.Metrics["ndcg_at_10"] <= 0 {
		t.Errorf("popularity: ndcg@10 %v, want its ranking metrics", ev.Metrics["ndcg_at_10"])
	}

	fams := recommend.Families(1)
	s := recommend.Search{
		Candidates: []recommend.Candidate{{Family: fams["popularity"], Params: selection.Params{}}, {Family: fams["mf_als"], Params: selection.Params{"rank": 3}}},
		Splitter:   selection.KFold{K: 3, Shuffle: true, Seed: 2}, Metric: "rmse", Eval: recommend.EvalOptions{K: []int{10}},
		Progress: func(p selection.Progress) {
			_, rmse := p.Metrics["rmse"]
			if p.Candidate == 0 && (rmse || !math.IsNaN(p.Score) || p.Metrics["ndcg_at_10"] <= 0) {
				t.Errorf("popularity fold %d: score %v, metrics %v", p.Fold, p.Score, p.Metrics)
			}
		},
	}
	res, err := s.Run(context.Background(), d.Interactions)
	if err != nil {
		t.Fatal(err)
	}
	if lb := res.Leaderboard; lb[0].Family != "mf_als" || lb[1].Family != "popularity" || !math.IsNaN(lb[1].Mean) || lb[1].Err != "" {
		t.Errorf("leaderboard %v, want mf_als first, then popularity without an RMSE and without an error", lb)
	}
}
