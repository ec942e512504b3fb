package selection_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
	"github.com/bullseye-ml/bullseye/pkg/ml/selection"
)

func TestGrid(t *testing.T) {
	f := selection.Families(selection.FamilyOptions{})["kernel_svm_rbf"]
	cs := selection.Grid(f, map[string][]float64{"gamma": {0.1, 1}, "C": {1, 10, 100}})
	if len(cs) != 6 {
		t.Fatalf("%d candidates, want 6", len(cs))
	}
	// Axes in name order: C varies slowest.
	if got := []string{cs[0].Params.String(), cs[1].Params.String(), cs[5].Params.String()}; !reflect.DeepEqual(got,
		[]string{"C=1 gamma=0.1", "C=1 gamma=1", "C=100 gamma=1"}) {
		t.Errorf("order = %v", got)
	}
	r1 := selection.Random(f, map[string]selection.Distribution{"C": selection.LogUniform{Lo: 0.01, Hi: 100}, "gamma": selection.Choice{0.1, 1}}, 20, 3)
	r2 := selection.Random(f, map[string]selection.Distribution{"C": selection.LogUniform{Lo: 0.01, Hi: 100}, "gamma": selection.Choice{0.1, 1}}, 20, 3)
	for i := range r1 {
		if !reflect.DeepEqual(r1[i].Params, r2[i].Params) {
			t.Fatal("random candidates differ for the same seed")
		}
		if c := r1[i].Params["C"]; c < 0.01 || c >= 100 {
			t.Errorf("C = %v outside [0.01, 100)", c)
		}
	}
	if _, err := f.New(selection.Params{"alpha": 1}); err == nil {
		t.Error("unknown hyperparameter: no error")
	}
}

// ringsTable is a table where the label depends on the distance from the origin (only a
// kernel model ranks it well) and a categorical column adds a shift.
func ringsTable(n int, seed uint64) (*ml.Table, []float64) {
	rng := rand.New(rand.NewPCG(seed, 11))
	a, b := make([]float64, n), make([]float64, n)
	c := make([]string, n)
	y := make([]float64, n)
	for i := range n {
		r := 1.0
		if i%2 == 1 {
			r, y[i] = 2, 1
		}
		th := rng.Float64() * 2 * math.Pi
		a[i] = r*math.Cos(th) + 0.3*rng.NormFloat64()
		b[i] = r*math.Sin(th) + 0.3*rng.NormFloat64()
		c[i] = []string{"x", "y", "z"}[rng.IntN(3)]
		if rng.Float64() < 0.05 {
			a[i] = math.NaN()
		}
	}
	return &ml.Table{Columns: []ml.Column{ml.NumericColumn("a", a), ml.NumericColumn("b", b), ml.CategoricalColumn("c", c)}}, y
}

func searchFor(y []float64, parallelism int) *selection.Search {
	fams := selection.Families(selection.FamilyOptions{Seed: 1})
	var cs []selection.Candidate
	cs = append(cs, selection.Grid(fams["logistic_l2"], map[string][]float64{"C": {0.1, 1}})...)
	cs = append(cs, selection.Grid(fams["kernel_svm_rbf"], map[string][]float64{"C": {1}, "gamma": {0, 1}})...)
	cs = append(cs, selection.Grid(fams["nystroem_logistic"], map[string][]float64{"C": {1}, "components": {30}})...)
	cs = append(cs, selection.Candidate{Family: fams["ridge"], Params: selection.Params{"bogus": 1}})
	return &selection.Search{
		Candidates:  cs,
		Splitter:    selection.StratifiedKFold{K: 4, Labels: y, Seed: 7},
		Metric:      "roc_auc",
		Parallelism: parallelism,
	}
}

func TestSearch(t *testing.T) {
	tb, y := ringsTable(400, 1)
	s := searchFor(y, 0)
	var calls int
	s.Progress = func(p selection.Progress) {
		calls++
		if p.Total != 24 || p.Done != calls {
			t.Errorf("progress %+v after %d calls", p, calls)
		}
	}
	res, err := s.Run(context.Background(), tb, y)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 24 {
		t.Errorf("%d progress calls, want 6 candidates × 4 folds", calls)
	}
	for i, r := range res.Leaderboard {
		t.Logf("%v", r)
		if r.Rank != i+1 || len(r.Scores) != 4 {
			t.Errorf("row %d: %+v", i, r)
		}
		if i > 0 && r.Err == "" && r.Mean > res.Leaderboard[i-1].Mean {
			t.Errorf("leaderboard not sorted at %d", i)
		}
	}
	if !strings.HasPrefix(res.Best.Family, "kernel_svm_rbf") && !strings.HasPrefix(res.Best.Family, "nystroem") {
		t.Errorf("best = %v, want a kernel model on rings", res.Best)
	}
	last := res.Leaderboard[len(res.Leaderboard)-1]
	if last.Family != "ridge" || !strings.Contains(last.Err, "bogus") {
		t.Errorf("failed candidate = %+v, want it last with its error", last)
	}
	// The mean and std are those of the fold scores.
	var sum, ss float64
	for _, v := range res.Best.Scores {
		sum += v
	}
	mu := sum / 4
	for _, v := range res.Best.Scores {
		ss += (v - mu) * (v - mu)
	}
	if math.Abs(res.Best.Mean-mu) > 1e-12 || math.Abs(res.Best.Std-math.Sqrt(ss/4)) > 1e-12 {
		t.Errorf("best mean ± std = %v ± %v, want %v ± %v", res.Best.Mean, res.Best.Std, mu, math.Sqrt(ss/4))
	}
	// The refitted winner scores raw rows.
	if res.Model == nil || res.Model.Family != res.Best.Family {
		t.Fatalf("refit model = %+v", res.Model)
	}
	p, err := res.Model.Predict(tb)
	if err != nil {
		t.Fatal(err)
	}
	if auc, _ := metrics.ROCAUC(y, p.RawVector().Data); auc < 0.9 {
		t.Errorf("refit model's training AUC = %v", auc)
	}
}

// TestSearchDeterministic runs the same search one fit at a time and in parallel: the
// leaderboards agree exactly.
func TestSearchDeterministic(t *testing.T) {
	tb, y := ringsTable(300, 2)
	a, err := searchFor(y, 1).Run(context.Background(), tb, y)
	if err != nil {
		t.Fatal(err)
	}
	b, err := searchFor(y, 4).Run(context.Background(), tb, y)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Leaderboard {
		ra, rb := a.Leaderboard[i], b.Leaderboard[i]
		if ra.Candidate != rb.Candidate || !reflect.DeepEqual(ra.Scores, rb.Scores) && ra.Err == "" {
			t.Errorf("row %d: %v vs %v", i, ra, rb)
		}
	}
}

func TestSearchErrors(t *testing.T) {
	tb, y := ringsTable(100, 3)
	fams := selection.Families(selection.FamilyOptions{})
	// An SVM gives no probabilities, so log loss fails for it, and the search says so.
	s := &selection.Search{
		Candidates: selection.Grid(fams["linear_svm"], nil),
		Splitter:   selection.KFold{K: 2},
		Metric:     "log_loss",
	}
	if _, err := s.Run(context.Background(), tb, y); err == nil || !strings.Contains(err.Error(), "probabilities") {
		t.Errorf("log loss on an SVM: err = %v", err)
	}
	s.Metric = "nope"
	if _, err := s.Run(context.Background(), tb, y); err == nil {
		t.Error("unknown metric: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Metric = "roc_auc"
	if _, err := s.Run(ctx, tb, y); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
}

// TestProgressDetails checks what Progress reports per fold: sizes, convergence and the
// extra metrics, with probability metrics left out for models that give no probabilities.
func TestProgressDetails(t *testing.T) {
	tb, y := ringsTable(200, 3)
	fams := selection.Families(selection.FamilyOptions{Seed: 1})
	s := &selection.Search{
		Candidates: []selection.Candidate{
			{Family: fams["logistic_l2"], Params: selection.Params{"C": 1}},
			{Family: fams["linear_svm"], Params: selection.Params{"C": 1}},
		},
		Splitter: selection.StratifiedKFold{K: 4, Labels: y, Seed: 7},
		Metric:   "roc_auc",
		Extra:    []string{"log_loss", "accuracy"},
		NoRefit:  true,
	}
	var got []selection.Progress
	s.Progress = func(p selection.Progress) { got = append(got, p) }
	if _, err := s.Run(context.Background(), tb, y); err != nil {
		t.Fatal(err)
	}
	if len(got) != 8 {
		t.Fatalf("%d progress calls, want 8", len(got))
	}
	for _, p := range got {
		if p.TrainRows != 150 || p.TestRows != 50 || p.Err != nil || p.Metrics["roc_auc"] != p.Score {
			t.Errorf("progress %+v: want 150/50 rows, no error, roc_auc = score", p)
		}
		_, hasLogLoss := p.Metrics["log_loss"]
		if want := p.Candidate == 0; hasLogLoss != want {
			t.Errorf("candidate %d: log_loss present = %v, want %v", p.Candidate, hasLogLoss, want)
		}
		if _, ok := p.Metrics["accuracy"]; !ok {
			t.Errorf("candidate %d: no accuracy", p.Candidate)
		}
	}
}
