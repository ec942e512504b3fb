package recommend

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/ml/internal/parallel"
	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
	"github.com/bullseye-ml/bullseye/pkg/ml/selection"
)

// Family is a recommender family: a name and how to build its estimator from
// hyperparameters.
type Family struct {
	Name string
	New  func(selection.Params) (Estimator, error)
}

// Candidate is one family with one setting of its hyperparameters.
type Candidate struct {
	Family Family
	Params selection.Params
}

// Families returns the recommender families by their ModelFamily names, with the
// hyperparameters each accepts (all optional; booleans are 0 or 1):
//
//	mf_als        rank, lambda, iterations, biased, tol
//	mf_sgd        rank, learning_rate, lambda, epochs, biased, init_std, tol
//	implicit_als  rank, lambda, alpha, iterations, cg_steps, tol
//	bpr           rank, learning_rate, lambda, epochs, negatives, tol
//	popularity    weighting (0: distinct users, 1: summed values)
//
// tol is the solver tolerance (SolverOptions.tolerance); without one the solvers run all their
// iterations or epochs and report converged. seed seeds every solver. An unknown
// hyperparameter name is an error.
func Families(seed uint64) map[string]Family {
	fam := func(name string, allowed []string, build func(p selection.Params) Estimator) Family {
		return Family{Name: name, New: func(p selection.Params) (Estimator, error) {
			for k := range p {
				if !slices.Contains(allowed, k) {
					return nil, fmt.Errorf("family %s has no hyperparameter %q (it has %v)", name, k, allowed)
				}
			}
			return build(p), nil
		}}
	}
	noBias := func(p selection.Params) bool { v, ok := p["biased"]; return ok && v == 0 }
	fams := []Family{
		fam("mf_als", []string{"rank", "lambda", "iterations", "biased", "tol"}, func(p selection.Params) Estimator {
			return ALS{Rank: int(p["rank"]), Lambda: p["lambda"], Iterations: int(p["iterations"]),
				NoBias: noBias(p), Tol: p["tol"], Seed: seed}
		}),
		fam("mf_sgd", []string{"rank", "learning_rate", "lambda", "epochs", "biased", "init_std", "tol"}, func(p selection.Params) Estimator {
			return SGD{Rank: int(p["rank"]), LearningRate: p["learning_rate"], Lambda: p["lambda"],
				Epochs: int(p["epochs"]), NoBias: noBias(p), InitStd: p["init_std"], Tol: p["tol"], Seed: seed}
		}),
		fam("implicit_als", []string{"rank", "lambda", "alpha", "iterations", "cg_steps", "tol"}, func(p selection.Params) Estimator {
			return ImplicitALS{Rank: int(p["rank"]), Lambda: p["lambda"], Alpha: p["alpha"],
				Iterations: int(p["iterations"]), CGSteps: int(p["cg_steps"]), Tol: p["tol"], Seed: seed}
		}),
		fam("bpr", []string{"rank", "learning_rate", "lambda", "epochs", "negatives", "tol"}, func(p selection.Params) Estimator {
			return BPR{Rank: int(p["rank"]), LearningRate: p["learning_rate"], Lambda: p["lambda"],
				Epochs: int(p["epochs"]), Negatives: int(p["negatives"]), Tol: p["tol"], Seed: seed}
		}),
		fam("popularity", []string{"weighting"}, func(p selection.Params) Estimator {
			return Popular{Weighting: Weighting(p["weighting"])}
		}),
	}
	out := make(map[string]Family, len(fams))
	for _, f := range fams {
		out[f.Name] = f
	}
	return out
}

// Grid returns one candidate per combination of the axes' values, in a fixed order (axes by
// name, values as given), as selection.Grid.
func Grid(f Family, axes map[string][]float64) []Candidate {
	out := []Candidate{{Family: f, Params: selection.Params{}}}
	for _, name := range slices.Sorted(maps.Keys(axes)) {
		var next []Candidate
		for _, c := range out {
			for _, v := range axes[name] {
				p := maps.Clone(c.Params)
				p[name] = v
				next = append(next, Candidate{Family: f, Params: p})
			}
		}
		out = next
	}
	return out
}

// Random returns n candidates with hyperparameters drawn from space, reproducibly for a seed,
// as selection.Random.
func Random(f Family, space map[string]selection.Distribution, n int, seed uint64) []Candidate {
	rng := rand.New(rand.NewPCG(seed, 0x7273))
	names := slices.Sorted(maps.Keys(space))
	out := make([]Candidate, n)
	for c := range out {
		p := selection.Params{}
		for _, name := range names {
			p[name] = space[name].Sample(rng)
		}
		out[c] = Candidate{Family: f, Params: p}
	}
	return out
}

// Search cross-validates recommender candidates on interactions and refits the best. Folds
// split the interaction rows (selection.KFold with Shuffle is the usual splitter); each
// candidate is fitted on a fold's training rows and evaluated on its validation rows by
// Evaluate, excluding the training items from each user's list.
type Search struct {
	// Candidates are the models to compare; build them with Grid and Random.
	Candidates []Candidate
	// Splitter makes the folds over interaction rows.
	Splitter selection.Splitter
	// Metric ranks the candidates: "rmse", "mae" (explicit feedback), or a ranking metric
	// "<name>_at_<k>" with name precision, recall, ndcg, map, mrr or catalogue_coverage. A
	// candidate that predicts no ratings (popularity) has no rmse or mae: under those it
	// ranks after the others, its mean NaN.
	Metric string
	// Eval sets the other metrics computed on each fold (reported in Progress); its K is
	// extended with the metric's cut-off, and Ratings is set for rmse and mae.
	Eval EvalOptions
	// Parallelism bounds the fits running at once; 0 means 1, since every fit but SGD's and
	// BPR's already uses GOMAXPROCS goroutines.
	Parallelism int
	// NoRefit skips refitting the winner on all rows.
	NoRefit bool
	// Progress, when set, is called after each fold fit, one call at a time.
	Progress func(selection.Progress)
}

// SearchResult is the outcome of a search.
type SearchResult struct {
	Metric string `json:"metric"`
	// Leaderboard ranks the candidates by their mean fold metric, failed ones last.
	Leaderboard []selection.Row `json:"leaderboard"`
	// Best is Leaderboard[0].
	Best selection.Row `json:"best"`
	// Model is the winner refitted on all rows; nil with NoRefit.
	Model *Factors `json:"model,omitempty"`
}

// Run cross-validates every candidate on d and refits the best on all rows. The same inputs
// give the same leaderboard, whatever the parallelism.
func (s *Search) Run(ctx context.Context, d *Interactions) (*SearchResult, error) {
	spec, err := parseMetric(s.Metric)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	if len(s.Candidates) == 0 {
		return nil, errors.New("search: no candidates")
	}
	if s.Splitter == nil {
		return nil, errors.New("search: no splitter")
	}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	folds, err := s.Splitter.Split(d.Len())
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	eo := s.Eval
	eo.K = slices.Clone(eo.K)
	if spec.k > 0 && !slices.Contains(eo.K, spec.k) {
		eo.K = append(eo.K, spec.k)
	}
	if spec.k == 0 {
		eo.Ratings = true
		if len(eo.K) == 0 {
			eo.K = []int{10}
		}
	}
	train, test := make([]*Interactions, len(folds)), make([]*Interactions, len(folds))
	for f, fold := range folds {
		train[f], test[f] = d.Subset(fold.Train), d.Subset(fold.Test)
	}

	nc, nf := len(s.Candidates), len(folds)
	type outcome struct {
		score      float64
		fit        time.Duration
		converged  bool
		iterations int
		metrics    map[string]float64
		err        error
	}
	out := make([]outcome, nc*nf)
	limit := s.Parallelism
	if limit <= 0 {
		limit = 1
	}
	var mu sync.Mutex
	done := 0
	parallel.Do(nc*nf, limit, func(task int) {
		c, f := task/nf, task%nf
		o := &out[task]
		start := time.Now()
		if o.err = ctx.Err(); o.err == nil {
			var m *Factors
			if m, o.err = fitCandidate(ctx, s.Candidates[c], train[f]); o.err == nil {
				o.converged, o.iterations = m.Converged, m.Iterations
				o.metrics, o.err = evaluate(m, test[f], eo)
				var ok bool
				if o.score, ok = o.metrics[spec.name]; !ok {
					o.score = math.NaN() // no rating metric for a popularity ranking
				}
			}
		}
		o.fit = time.Since(start)
		if o.err != nil {
			o.score = math.NaN()
		}
		if s.Progress != nil {
			mu.Lock()
			done++
			s.Progress(selection.Progress{Candidate: c, Fold: f, Done: done, Total: nc * nf, Score: o.score,
				Err: o.err, TrainRows: train[f].Len(), TestRows: test[f].Len(), FitTime: o.fit,
				Converged: o.converged, Iterations: o.iterations, Metrics: o.metrics})
			mu.Unlock()
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	better := func(a, b float64) bool {
		if spec.higher {
			return a > b
		}
		return a < b
	}
	res := &SearchResult{Metric: spec.name}
	for c, cand := range s.Candidates {
		row := selection.Row{Candidate: c, Family: cand.Family.Name, Params: cand.Params, Converged: true}
		var fit time.Duration
		for f := range nf {
			o := out[c*nf+f]
			if o.err != nil && row.Err == "" {
				row.Err = fmt.Sprintf("fold %d: %v", f, o.err)
			}
			row.Scores = append(row.Scores, o.score)
			row.Converged = row.Converged && o.converged
			fit += o.fit
		}
		row.FitTime = fit / time.Duration(nf)
		row.Mean, row.Std = metrics.MeanStd(row.Scores)
		res.Leaderboard = append(res.Leaderboard, row)
	}
	rankErr := selection.Rank(res.Leaderboard, better)
	if len(res.Leaderboard) > 0 {
		res.Best = res.Leaderboard[0]
	}
	if rankErr != nil {
		return res, rankErr
	}
	if s.NoRefit {
		return res, nil
	}
	m, err := fitCandidate(ctx, s.Candidates[res.Best.Candidate], d)
	if err != nil {
		return nil, fmt.Errorf("search: refit of %s: %w", res.Best, err)
	}
	res.Model = m
	return res, nil
}

func fitCandidate(ctx context.Context, c Candidate, d *Interactions) (*Factors, error) {
	est, err := c.Family.New(c.Params)
	if err != nil {
		return nil, err
	}
	return est.Fit(ctx, d)
}

func evaluate(m *Factors, test *Interactions, o EvalOptions) (map[string]float64, error) {
	s, err := NewScorer(m)
	if err != nil {
		return nil, err
	}
	ev, err := Evaluate(s, test, o)
	if err != nil {
		return nil, err
	}
	return ev.Metrics, nil
}
