package selection

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/internal/parallel"
	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
	"gonum.org/v1/gonum/mat"
)

// Search cross-validates candidates and refits the best.
type Search struct {
	// Candidates are the models to compare; build them with Grid and Random.
	Candidates []Candidate
	// Preprocess is fitted on each training fold, and on all rows for the refit.
	Preprocess preprocess.Spec
	// Splitter makes the folds, e.g. StratifiedKFold{K: 5, Labels: y, Seed: 1}.
	Splitter Splitter
	// Metric names the metric that ranks candidates (see metrics.Lookup), e.g. "roc_auc".
	Metric string
	// Parallelism bounds the fits running at once; 0 means GOMAXPROCS.
	Parallelism int
	// NoRefit skips refitting the winner on all rows.
	NoRefit bool
	// Progress, when set, is called after each fold fit, one call at a time.
	Progress func(Progress)
	// Extra names more metrics (see metrics.Lookup) computed on each fold's validation rows
	// and reported in Progress.Metrics; a metric that needs probabilities is left out for
	// models that give none.
	Extra []string
}

// Progress reports one finished fold fit.
type Progress struct {
	// Candidate and Fold index Search.Candidates and the folds.
	Candidate, Fold int
	// Done of Total fold fits have finished.
	Done, Total int
	// Score is the fold's metric value (NaN when the fit failed).
	Score float64
	Err   error
	// TrainRows and TestRows are the sizes of the fold's training and validation rows.
	TrainRows, TestRows int
	// FitTime is the time the fit and its scoring by the search metric took.
	FitTime time.Duration
	// Converged and Iterations report how the fold's solver ended (Converged is true and
	// Iterations 0 for models that do not report it).
	Converged  bool
	Iterations int
	// Note is what the fitted model said about its fit (see ml.Noter), if anything.
	Note string
	// Metrics holds the fold's value of the search metric and of each Extra metric the
	// model could be scored by, by metric name; nil when the fit failed.
	Metrics map[string]float64
}

// Row is one candidate's line of the leaderboard.
type Row struct {
	// Rank counts from 1 (the best); failed candidates come last.
	Rank      int    `json:"rank"`
	Candidate int    `json:"candidate"`
	Family    string `json:"family"`
	Params    Params `json:"params"`
	// Mean and Std are the mean and (population) standard deviation of the fold scores.
	Mean   float64   `json:"mean"`
	Std    float64   `json:"std"`
	Scores []float64 `json:"scores"`
	// Converged is false when a fold's solver stopped at its iteration cap.
	Converged bool `json:"converged"`
	// FitTime is the mean fit time of a fold.
	FitTime time.Duration `json:"fit_time"`
	// Notes gathers what the fitted models said about their fits (see ml.Noter).
	Notes []string `json:"notes,omitempty"`
	// Err is set when the candidate failed on some fold.
	Err string `json:"error,omitempty"`
}

// Rank orders a leaderboard, best first by mean score (better says which
// of two means is better; ties go to the earlier candidate), then the
// candidates whose mean is NaN (no value of the metric), failed candidates
// last, numbers the ranks from 1, and fails when every candidate failed.
func Rank(rows []Row, better func(a, b float64) bool) error {
	slices.SortStableFunc(rows, func(a, b Row) int {
		switch {
		case (a.Err == "") != (b.Err == ""):
			if a.Err == "" {
				return -1
			}
			return 1
		case a.Err != "":
		case math.IsNaN(a.Mean) != math.IsNaN(b.Mean):
			// A candidate without a value of the metric (a popularity ranking has no RMSE)
			// comes after those with one.
			if !math.IsNaN(a.Mean) {
				return -1
			}
			return 1
		case better(a.Mean, b.Mean):
			return -1
		case better(b.Mean, a.Mean):
			return 1
		}
		return cmp.Compare(a.Candidate, b.Candidate)
	})
	for i := range rows {
		rows[i].Rank = i + 1
	}
	if len(rows) == 0 {
		return errors.New("search: no candidates")
	}
	if rows[0].Err != "" {
		return fmt.Errorf("search: every candidate failed; first: %s", rows[0].Err)
	}
	return nil
}

// String formats the row as "3. logistic_l2 C=1: 0.9301 ± 0.0042".
func (r Row) String() string {
	s := fmt.Sprintf("%d. %s %s: %.4f ± %.4f", r.Rank, r.Family, r.Params, r.Mean, r.Std)
	if r.Err != "" {
		s += " (failed: " + r.Err + ")"
	}
	return s
}

// Result is the outcome of a search.
type Result struct {
	Metric      string `json:"metric"`
	Leaderboard []Row  `json:"leaderboard"`
	// Best is Leaderboard[0].
	Best Row `json:"best"`
	// Model is the winner refitted on all rows; nil with NoRefit.
	Model *Fitted `json:"model,omitempty"`
}

// Fitted is fitted preprocessing and a model: what serving needs to score raw rows.
type Fitted struct {
	Family     string               `json:"family"`
	Params     Params               `json:"params"`
	Preprocess *preprocess.Pipeline `json:"preprocess"`
	Model      ml.Model             `json:"model"`
}

// Predict preprocesses t and scores it.
func (f *Fitted) Predict(t *ml.Table) (*mat.VecDense, error) {
	x, err := f.Preprocess.Transform(t)
	if err != nil {
		return nil, err
	}
	return f.Model.Predict(x), nil
}

type foldData struct {
	pipe          *preprocess.Pipeline
	xTrain, xTest *mat.Dense
	yTrain, yTest []float64
	err           error
}

// Run cross-validates every candidate on t and y and refits the best on all rows. It is
// deterministic: the same inputs give the same leaderboard, whatever the parallelism.
func (s *Search) Run(ctx context.Context, t *ml.Table, y []float64) (*Result, error) {
	metric, err := metrics.Lookup(s.Metric)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	extra := make([]metrics.Metric, 0, len(s.Extra))
	for _, name := range s.Extra {
		m, err := metrics.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		extra = append(extra, m)
	}
	if len(s.Candidates) == 0 {
		return nil, errors.New("search: no candidates")
	}
	if s.Splitter == nil {
		return nil, errors.New("search: no splitter")
	}
	if t.Rows() != len(y) {
		return nil, fmt.Errorf("search: %d rows but %d targets", t.Rows(), len(y))
	}
	folds, err := s.Splitter.Split(len(y))
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}

	// Preprocessing is fitted once per fold, on its training rows only, and shared by the
	// candidates: once as the spec says and, when native families take part, once native.
	specs := []preprocess.Spec{s.Preprocess}
	if slices.ContainsFunc(s.Candidates, func(c Candidate) bool { return c.Family.Native }) {
		specs = append(specs, s.Preprocess.Native())
	}
	data := make([][]foldData, len(specs))
	for v := range data {
		data[v] = make([]foldData, len(folds))
	}
	parallel.Do(len(folds)*len(specs), s.Parallelism, func(task int) {
		v, f := task/len(folds), task%len(folds)
		data[v][f] = prepareFold(t, y, folds[f], specs[v])
	})
	for v := range data {
		for f := range data[v] {
			if data[v][f].err != nil {
				return nil, fmt.Errorf("search: fold %d: %w", f, data[v][f].err)
			}
		}
	}
	foldOf := func(c Candidate, f int) *foldData {
		if c.Family.Native {
			return &data[1][f]
		}
		return &data[0][f]
	}

	nc, nf := len(s.Candidates), len(folds)
	type outcome struct {
		score      float64
		fit        time.Duration
		converged  bool
		iterations int
		note       string
		metrics    map[string]float64
		err        error
	}
	out := make([]outcome, nc*nf)
	var mu sync.Mutex
	done := 0
	threads := threadsPerFit(s.Parallelism, nc*nf)
	parallel.Do(nc*nf, s.Parallelism, func(task int) {
		c, f := task/nf, task%nf
		o := &out[task]
		if o.err = ctx.Err(); o.err == nil {
			start := time.Now()
			var m ml.Model
			d := foldOf(s.Candidates[c], f)
			m, o.score, o.err = evaluate(ctx, s.Candidates[c], metric, d, threads)
			o.fit = time.Since(start)
			if o.err == nil && s.Progress != nil {
				o.metrics = foldMetrics(m, metric, o.score, extra, d)
			}
			o.converged = true
			if cv, ok := m.(ml.Converger); ok {
				st := cv.Status()
				o.converged, o.iterations = st.Converged, st.Iterations
			}
			if nt, ok := m.(ml.Noter); ok {
				o.note = nt.FitNote()
			}
		}
		if o.err != nil {
			o.score = math.NaN()
		}
		if s.Progress != nil {
			mu.Lock()
			done++
			s.Progress(Progress{Candidate: c, Fold: f, Done: done, Total: nc * nf, Score: o.score, Err: o.err,
				TrainRows: len(folds[f].Train), TestRows: len(folds[f].Test), FitTime: o.fit,
				Converged: o.converged, Iterations: o.iterations, Note: o.note, Metrics: o.metrics})
			mu.Unlock()
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	res := &Result{Metric: metric.Name}
	for c, cand := range s.Candidates {
		row := Row{Candidate: c, Family: cand.Family.Name, Params: cand.Params, Converged: true}
		var fit time.Duration
		for f := range nf {
			o := out[c*nf+f]
			if o.err != nil && row.Err == "" {
				row.Err = fmt.Sprintf("fold %d: %v", f, o.err)
			}
			row.Scores = append(row.Scores, o.score)
			row.Converged = row.Converged && o.converged
			fit += o.fit
			if o.note != "" && !slices.Contains(row.Notes, o.note) {
				row.Notes = append(row.Notes, o.note)
			}
		}
		row.FitTime = fit / time.Duration(nf)
		row.Mean, row.Std = metrics.MeanStd(row.Scores)
		res.Leaderboard = append(res.Leaderboard, row)
	}
	rankErr := Rank(res.Leaderboard, metric.Better)
	if len(res.Leaderboard) > 0 {
		res.Best = res.Leaderboard[0]
	}
	if rankErr != nil {
		return res, rankErr
	}
	if s.NoRefit {
		return res, nil
	}
	best := s.Candidates[res.Best.Candidate]
	spec := s.Preprocess
	if best.Family.Native {
		spec = spec.Native()
	}
	pipe, x, err := preprocess.FitTransform(t, spec)
	if err != nil {
		return nil, fmt.Errorf("search: refit: %w", err)
	}
	est, err := best.EstimatorFor(pipe)
	if err != nil {
		return nil, fmt.Errorf("search: refit: %w", err)
	}
	m, err := est.Fit(ctx, x, y)
	if err != nil {
		return nil, fmt.Errorf("search: refit of %s: %w", res.Best, err)
	}
	res.Model = &Fitted{Family: best.Family.Name, Params: best.Params, Preprocess: pipe, Model: m}
	return res, nil
}

func prepareFold(t *ml.Table, y []float64, f Fold, spec preprocess.Spec) foldData {
	var d foldData
	d.pipe, d.xTrain, d.err = preprocess.FitTransform(t.Subset(f.Train), spec)
	if d.err != nil {
		return d
	}
	if d.xTest, d.err = d.pipe.Transform(t.Subset(f.Test)); d.err != nil {
		return d
	}
	d.yTrain, d.yTest = pick(y, f.Train), pick(y, f.Test)
	return d
}

func pick(v []float64, idx []int) []float64 {
	out := make([]float64, len(idx))
	for k, i := range idx {
		out[k] = v[i]
	}
	return out
}

// evaluate fits one candidate on one fold and scores its test rows.
func evaluate(ctx context.Context, c Candidate, metric metrics.Metric, d *foldData, threads int) (ml.Model, float64, error) {
	est, err := c.EstimatorFor(d.pipe)
	if err != nil {
		return nil, 0, err
	}
	if te, ok := est.(ml.ThreadedEstimator); ok {
		est = te.WithThreads(threads)
	}
	m, err := est.Fit(ctx, d.xTrain, d.yTrain)
	if err != nil {
		return nil, 0, err
	}
	score, err := Score(m, metric, d.xTest, d.yTest)
	return m, score, err
}

// threadsPerFit is how many goroutines each of fits fits may use when parallelism of them
// (0: GOMAXPROCS) run at once: the cores shared out, at least one each.
func threadsPerFit(parallelism, fits int) int {
	procs := runtime.GOMAXPROCS(0)
	if parallelism <= 0 {
		parallelism = procs
	}
	return max(1, procs/max(1, min(parallelism, fits)))
}

// foldMetrics scores a fold's fitted model by the extra metrics, beside the search metric's
// score, predicting the validation rows once (and their probabilities once).
func foldMetrics(m ml.Model, metric metrics.Metric, score float64, extra []metrics.Metric, d *foldData) map[string]float64 {
	out := map[string]float64{metric.Name: score}
	var scores, probs []float64
	for _, e := range extra {
		if _, ok := out[e.Name]; ok {
			continue
		}
		var in []float64
		if e.NeedsProbability {
			if probs == nil {
				pm, ok := ml.Probabilities(m)
				if !ok {
					continue
				}
				probs = pm.PredictProba(d.xTest).RawVector().Data
			}
			in = probs
		} else {
			if scores == nil {
				scores = m.Predict(d.xTest).RawVector().Data
			}
			in = scores
		}
		if v, err := e.Score(d.yTest, in); err == nil {
			out[e.Name] = v
		}
	}
	return out
}

// Score evaluates model m on rows x with targets y by metric, using probabilities when the
// metric needs them.
func Score(m ml.Model, metric metrics.Metric, x *mat.Dense, y []float64) (float64, error) {
	var s *mat.VecDense
	if metric.NeedsProbability {
		pm, ok := ml.Probabilities(m)
		if !ok {
			return 0, fmt.Errorf("metric %s needs probabilities, and the model gives none", metric.Name)
		}
		s = pm.PredictProba(x)
	} else {
		s = m.Predict(x)
	}
	return metric.Score(y, s.RawVector().Data)
}
