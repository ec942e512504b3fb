package recommend_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/pkg/ml/selection"
	"github.com/bullseye-ml/bullseye/pkg/ml/synth"
)

func TestSearch(t *testing.T) {
	d, err := synth.Generate(synth.Config{Users: 150, Items: 100, Ratings: 5000, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	fams := recommend.Families(1)
	var cands []recommend.Candidate
	cands = append(cands, recommend.Grid(fams["mf_als"], map[string][]float64{"rank": {2, 5}, "lambda": {0.05, 0.5}})...)
	cands = append(cands, recommend.Grid(fams["mf_sgd"], map[string][]float64{"epochs": {10}})...)
	cands = append(cands, recommend.Candidate{Family: fams["mf_als"], Params: selection.Params{"ranks": 3}}) // fails
	run := func(parallelism int) (*recommend.SearchResult, int) {
		var mu sync.Mutex
		calls := 0
		s := recommend.Search{
			Candidates: cands, Splitter: selection.KFold{K: 3, Shuffle: true, Seed: 2}, Metric: "rmse",
			Eval: recommend.EvalOptions{K: []int{5}}, Parallelism: parallelism,
			Progress: func(p selection.Progress) {
				mu.Lock()
				calls++
				mu.Unlock()
				if p.Err == nil && (p.Metrics["rmse"] != p.Score || p.Metrics["ndcg_at_5"] == 0) {
					t.Errorf("progress metrics %v, score %v", p.Metrics, p.Score)
				}
			},
		}
		res, err := s.Run(context.Background(), d.Interactions)
		if err != nil {
			t.Fatal(err)
		}
		return res, calls
	}
	res, calls := run(1)
	if calls != len(cands)*3 {
		t.Errorf("%d progress calls, want %d", calls, len(cands)*3)
	}
	for _, row := range res.Leaderboard {
		t.Log(row)
	}
	lb := res.Leaderboard
	for r := 1; r < len(lb); r++ {
		if lb[r].Rank != r+1 || (lb[r].Err == "" && lb[r].Mean < lb[r-1].Mean) {
			t.Fatalf("leaderboard out of order at %d: %v after %v", r, lb[r], lb[r-1])
		}
	}
	if last := lb[len(lb)-1]; !strings.Contains(last.Err, "no hyperparameter") {
		t.Errorf("the failing candidate is last with error %q", last.Err)
	}
	wantRank := 10
	if r, ok := res.Best.Params["rank"]; ok {
		wantRank = int(r)
	}
	if res.Best.Rank != 1 || res.Best.Candidate != lb[0].Candidate || res.Model == nil || res.Model.Rank != wantRank {
		t.Errorf("best %v; refitted model nil or not of rank %d", res.Best, wantRank)
	}
	again, _ := run(3)
	for r := range lb {
		a, b := lb[r], again.Leaderboard[r]
		if a.Candidate != b.Candidate || (a.Err == "" && !slices.Equal(a.Scores, b.Scores)) {
			t.Errorf("parallelism 3 changed row %d: %v, was %v", r, b, a)
		}
	}

	for _, bad := range []recommend.Search{
		{Candidates: cands, Splitter: selection.KFold{K: 3}, Metric: "auc"},
		{Candidates: cands, Splitter: selection.KFold{K: 3}, Metric: "ndcg_at_0"},
		{Candidates: cands, Metric: "rmse"},
		{Splitter: selection.KFold{K: 3}, Metric: "rmse"},
	} {
		if _, err := bad.Run(context.Background(), d.Interactions); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// TestSearchRanking ranks implicit candidates by NDCG@10, higher first.
func TestSearchRanking(t *testing.T) {
	d, err := synth.Implicit(synth.Config{Users: 200, Items: 300, Ratings: 8000, Seed: 12})
	if err != nil {
		t.Fatal(err)
	}
	fams := recommend.Families(1)
	cands := append(recommend.Grid(fams["implicit_als"], map[string][]float64{"alpha": {1, 40}, "iterations": {5}}),
		recommend.Candidate{Family: fams["popularity"], Params: selection.Params{}})
	res, err := (&recommend.Search{Candidates: cands, Splitter: holdout{k: 5, seed: 1}, Metric: "ndcg_at_10", NoRefit: true}).
		Run(context.Background(), d.Interactions)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range res.Leaderboard {
		t.Log(row)
	}
	for r := 1; r < len(res.Leaderboard); r++ {
		if res.Leaderboard[r].Mean > res.Leaderboard[r-1].Mean {
			t.Fatalf("leaderboard not by decreasing NDCG: %v", res.Leaderboard)
		}
	}
	if res.Model != nil || res.Metric != "ndcg_at_10" {
		t.Errorf("NoRefit: model %v; metric %q", res.Model, res.Metric)
	}
}

// TestScorerConcurrent runs batched and single queries from several goroutines (run with
// -race).
func TestScorerConcurrent(t *testing.T) {
	f := randomFactors(50, 700, 8, 3)
	s, err := recommend.NewScorer(f)
	if err != nil {
		t.Fatal(err)
	}
	qs := make([]recommend.Query, 50)
	for u := range qs {
		qs[u] = recommend.Query{User: f.UserIDs[u], K: 5}
	}
	want := s.Recommend(qs)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for range 20 {
				got := s.Recommend(qs)
				one := s.RecommendOne(qs[g])
				for u := range got {
					if !slices.Equal(got[u].Items, want[u].Items) {
						t.Errorf("goroutine %d: user %d: %v, want %v", g, u, got[u].Items, want[u].Items)
						return
					}
				}
				if !slices.Equal(one.Items, want[g].Items) {
					t.Errorf("goroutine %d: RecommendOne %v, want %v", g, one.Items, want[g].Items)
					return
				}
			}
		})
	}
	wg.Wait()
}
