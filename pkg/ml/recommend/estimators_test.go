package recommend_test

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"slices"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/pkg/ml/synth"
)

// lowRank is a half-dense rating matrix of planted rank 3 without noise, its entries drawn by
// exposure alone.
func lowRank(t *testing.T) (train, test *recommend.Interactions) {
	t.Helper()
	d, err := synth.Generate(synth.Config{Users: 120, Items: 90, Ratings: 5400, Rank: 3, Noise: -1, Signal: 1, Affinity: -1, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	train, test, err = d.Interactions.SplitRandom(0.2, 1)
	if err != nil {
		t.Fatal(err)
	}
	return train, test
}

func testRMSE(t *testing.T, f *recommend.Factors, test *recommend.Interactions) float64 {
	t.Helper()
	s, err := recommend.NewScorer(f)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := recommend.Evaluate(s, test, recommend.EvalOptions{Ratings: true})
	if err != nil {
		t.Fatal(err)
	}
	return ev.RMSE
}

// meanRMSE is the RMSE of predicting every test value by the training mean.
func meanRMSE(train, test *recommend.Interactions) float64 {
	var mu float64
	for _, v := range train.Values {
		mu += v
	}
	mu /= float64(train.Len())
	pred := make([]float64, test.Len())
	for r := range pred {
		pred[r] = mu
	}
	return rmse(test.Values, pred)
}

// TestExplicitRecovers checks that both explicit solvers recover a noiseless rank-3 matrix
// from 80 % of its entries: the test error falls far below the global mean's.
func TestExplicitRecovers(t *testing.T) {
	train, test := lowRank(t)
	base := meanRMSE(train, test)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		est  recommend.Estimator
		max  float64 // largest test RMSE as a share of the mean's
	}{
		{"als", recommend.ALS{Rank: 3, Lambda: 1e-4, Iterations: 100, Tol: 1e-9, Seed: 1}, 0.02},
		{"als unbiased rank 5", recommend.ALS{Rank: 5, Lambda: 1e-4, Iterations: 100, NoBias: true, Seed: 1}, 0.05},
		{"sgd", recommend.SGD{Rank: 3, LearningRate: 0.02, Lambda: 1e-3, Epochs: 300, Tol: 1e-7, Seed: 1}, 0.05},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := tc.est.Fit(ctx, train)
			if err != nil {
				t.Fatal(err)
			}
			got := testRMSE(t, f, test)
			t.Logf("test RMSE %.5f, the mean's %.4f; %d iterations, converged %v", got, base, f.Iterations, f.Converged)
			if got > tc.max*base {
				t.Errorf("test RMSE %.5f, want at most %.2f × the mean's %.4f", got, tc.max, base)
			}
		})
	}
}

// TestALSObjectiveDecreases checks the solver against its objective: every exact half-step
// minimises it over one side, so it never increases from one iteration to the next.
func TestALSObjectiveDecreases(t *testing.T) {
	d, err := synth.Generate(synth.Config{Users: 80, Items: 60, Ratings: 2000, Seed: 8})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		fit  func(it int) (*recommend.Factors, error)
	}{
		{"explicit", func(it int) (*recommend.Factors, error) {
			return recommend.ALS{Rank: 4, Lambda: 0.05, Iterations: it, Tol: -1, Seed: 2}.Fit(ctx, d.Interactions)
		}},
		// With as many CG steps as the rank, CG solves each system exactly.
		{"implicit", func(it int) (*recommend.Factors, error) {
			return recommend.ImplicitALS{Rank: 4, Lambda: 0.1, Alpha: 2, CGSteps: 4, Iterations: it, Tol: -1, Seed: 2}.Fit(ctx, d.Interactions)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prev := 0.0
			for it := 1; it <= 8; it++ {
				f, err := tc.fit(it)
				if err != nil {
					t.Fatal(err)
				}
				// Without a tolerance every iteration runs, and none is missed.
				if f.Iterations != it || !f.Converged {
					t.Fatalf("%d iterations asked, %d run, converged %v", it, f.Iterations, f.Converged)
				}
				if it > 1 && f.Objective > prev*(1+1e-12) {
					t.Fatalf("objective rose from %v to %v at iteration %d", prev, f.Objective, it)
				}
				prev = f.Objective
			}
		})
	}
}

// TestDeterministic checks that a seed gives the same model whatever GOMAXPROCS, and that a
// model survives a JSON round trip.
func TestDeterministic(t *testing.T) {
	d, err := synth.Generate(synth.Config{Users: 200, Items: 150, Ratings: 6000, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, est := range []recommend.Estimator{
		recommend.ALS{Seed: 3}, recommend.SGD{Epochs: 3, Seed: 3},
		recommend.ImplicitALS{Alpha: 1, Seed: 3}, recommend.BPR{Epochs: 3, Seed: 3}, recommend.Popular{},
	} {
		procs := runtime.GOMAXPROCS(1)
		a, err := est.Fit(ctx, d.Interactions)
		runtime.GOMAXPROCS(max(procs, 4))
		if err != nil {
			t.Fatal(err)
		}
		b, err := est.Fit(ctx, d.Interactions)
		runtime.GOMAXPROCS(procs)
		if err != nil {
			t.Fatal(err)
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Errorf("%T: GOMAXPROCS 1 and 4 gave different models", est)
		}
		var back recommend.Factors
		if err := json.Unmarshal(ja, &back); err != nil {
			t.Fatal(err)
		}
		if err := back.Validate(); err != nil {
			t.Errorf("%T: decoded model: %v", est, err)
		}
		if !slices.Equal(back.UserFactors, a.UserFactors) || back.Converged != a.Converged || back.Iterations != a.Iterations {
			t.Errorf("%T: JSON round trip changed the model", est)
		}
	}
}

// TestImplicitBeatsPopularity checks the implicit models on the 100K-shaped implicit set.
func TestImplicitBeatsPopularity(t *testing.T) {
	d, err := synth.Implicit(synth.MovieLens100K())
	if err != nil {
		t.Fatal(err)
	}
	train, test, err := d.Interactions.SplitRandom(0.25, 3)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ndcg := func(est recommend.Estimator) float64 {
		f, err := est.Fit(ctx, train)
		if err != nil {
			t.Fatal(err)
		}
		s, err := recommend.NewScorer(f)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := recommend.Evaluate(s, test, recommend.EvalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%T: NDCG@10 %.4f, P@10 %.4f (%d iterations, converged %v)", est, ev.Metrics["ndcg_at_10"], ev.Metrics["precision_at_10"], f.Iterations, f.Converged)
		return ev.Metrics["ndcg_at_10"]
	}
	pop := ndcg(recommend.Popular{})
	if got := ndcg(recommend.ImplicitALS{Alpha: 1, Lambda: 10, Seed: 1}); got < 1.5*pop {
		t.Errorf("implicit ALS NDCG@10 %.4f, want at least 1.5 × popularity's %.4f", got, pop)
	}
	if got := ndcg(recommend.BPR{Seed: 1}); got < 1.3*pop {
		t.Errorf("BPR NDCG@10 %.4f, want at least 1.3 × popularity's %.4f", got, pop)
	}
}

func TestPopular(t *testing.T) {
	d, err := recommend.NewInteractions([]recommend.Interaction{
		{User: "a", Item: "x", Value: 1}, {User: "a", Item: "y", Value: 9}, {User: "b", Item: "z", Value: 1},
		{User: "b", Item: "y", Value: 1}, {User: "c", Item: "z", Value: 1}, {User: "c", Item: "x", Value: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		w      recommend.Weighting
		items  []string
		scores []float64
	}{
		// Users: x 2, y 2, z 2, ties in order of first appearance.
		{recommend.ByUsers, []string{"x", "y", "z"}, []float64{2, 2, 2}},
		// Values: y 10, x 3, z 2.
		{recommend.ByValue, []string{"y", "x", "z"}, []float64{10, 3, 2}},
	} {
		f, err := recommend.Popular{Weighting: tc.w}.Fit(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(f.Popularity.ItemIDs, tc.items) || !slices.Equal(f.Popularity.Scores, tc.scores) {
			t.Errorf("weighting %d: %v %v, want %v %v", tc.w, f.Popularity.ItemIDs, f.Popularity.Scores, tc.items, tc.scores)
		}
		if f.Rank != 0 || len(f.UserIDs) != 0 || !f.Converged {
			t.Errorf("weighting %d: rank %d, %d users, converged %v", tc.w, f.Rank, len(f.UserIDs), f.Converged)
		}
	}
}

func TestFitErrors(t *testing.T) {
	d := grid(t, 3, 4)
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, est := range []recommend.Estimator{recommend.ALS{}, recommend.SGD{}, recommend.ImplicitALS{}, recommend.BPR{}, recommend.Popular{}} {
		if _, err := est.Fit(cancelled, d); !errors.Is(err, context.Canceled) {
			t.Errorf("%T: cancelled context: err = %v", est, err)
		}
		if _, err := est.Fit(ctx, &recommend.Interactions{}); err == nil {
			t.Errorf("%T: no interactions: no error", est)
		}
	}
	for _, est := range []recommend.Estimator{
		recommend.ALS{Rank: -1}, recommend.ALS{Lambda: -1}, recommend.SGD{Epochs: -2},
		recommend.ImplicitALS{CGSteps: -1}, recommend.BPR{Negatives: -1}, recommend.Popular{Weighting: 7},
	} {
		if _, err := est.Fit(ctx, d); err == nil {
			t.Errorf("%+v: no error", est)
		}
	}
}
