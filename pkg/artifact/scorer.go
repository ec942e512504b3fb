package artifact

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/gbt"
	"github.com/bullseye-ml/bullseye/pkg/ml/kernel"
	"github.com/bullseye-ml/bullseye/pkg/ml/linear"
	"github.com/bullseye-ml/bullseye/pkg/ml/logistic"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
	"github.com/bullseye-ml/bullseye/pkg/ml/svm"
)

// Scorer scores batches of rows with one model version. It is safe for concurrent use by
// multiple goroutines; each call brings its own Batch and Result.
//
// NewScorer returns the scorer of feature models (linear, logistic, SVM, kernel and Nyström
// families) and, for recommenders, a Recommender: it implements the same interface, scoring
// the (user, item) pairs added with Batch.AddPair, and adds top-k retrieval beside it.
type Scorer interface {
	// Info describes the model: its identity, raw inputs and outputs.
	Info() *Info
	// Score scores every row of b into out, reusing out's storage. It fails as a whole only
	// when ctx is done or b does not fit the model; a row that cannot be scored (a value of
	// the wrong type, or a number that is NaN or infinite) gets its own problem in
	// out.Problems and NaN scores, and its neighbours are scored as usual.
	Score(ctx context.Context, b *Batch, out *Result) error
}

// Info describes a loaded model.
type Info struct {
	// Name and Version identify the registered model version.
	Name    string
	Version int64
	// Family and Task are the model's family and task.
	Family modelv1.ModelFamily
	Task   modelv1.TaskKind
	// Inputs are the raw inputs, in the order Batch rows hold them.
	Inputs []*modelv1.InputColumn
	// Features names the design positions preprocessing produces.
	Features []string
	// Classification maps outputs to labels; binary classification only.
	Classification *modelv1.ClassificationOutput
	// HasProbability is true when the model gives probabilities of the positive class.
	HasProbability bool
	// HasContributions is true for linear families, whose scores split into per-input
	// contributions.
	HasContributions bool
	// Threshold is the probability (or, without probabilities, the score) at or above which
	// a row is predicted positive.
	Threshold float64

	index map[string]int
}

// InputIndex returns the position of the named raw input in a Batch row.
func (i *Info) InputIndex(name string) (int, bool) {
	k, ok := i.index[name]
	return k, ok
}

// Batch is the rows of one Score call, row-major: each row holds one raw value per input of
// the model, in Info.Inputs order, nil where a value is missing (preprocessing imputes it).
// Build it with NewBatch, then Add rows and fill them, or AddMap rows given by name. A Batch
// is reusable after Reset and is not safe for concurrent use.
//
// Alternatively set Table to score a columnar batch (see Batch.Table).
type Batch struct {
	// Now is the reference time of TIME inputs for rows added without one: such a value
	// becomes the days from it to Now. Zero means the time of the Score call.
	Now time.Time
	// Contributions asks for per-input contributions (Info.HasContributions models only).
	Contributions bool
	// Table, when set, is scored instead of the rows: one column per input, matched by name,
	// numeric inputs as ml.Numeric columns (NaN for missing; TIME inputs already in days
	// before the row's reference time; bools as 0 and 1) and categorical ones as
	// ml.Categorical ("" for missing), converted as Number and Category convert values. An
	// absent column counts as missing in every row.
	Table *ml.Table

	info   *Info
	values []*commonv1.Value
	refs   []time.Time
	users  []string
	items  []string
}

// NewBatch returns an empty batch for the scorer's model.
func NewBatch(info *Info) *Batch { return &Batch{info: info} }

// Reset empties the batch, keeping its storage and settings.
func (b *Batch) Reset() {
	clear(b.values)
	b.values, b.refs = b.values[:0], b.refs[:0]
	b.users, b.items = b.users[:0], b.items[:0]
}

// Len returns the number of rows.
func (b *Batch) Len() int {
	if b.Table != nil {
		return b.Table.Rows()
	}
	if b.info == nil {
		return len(b.users)
	}
	if w := len(b.info.Inputs); w > 0 {
		return len(b.values) / w
	}
	return len(b.users)
}

// Add appends a row of missing values and returns it for the caller to fill: element j is
// input j of Info.Inputs. ref is the row's reference time for TIME inputs (the cutoff of a
// training row); zero means Batch.Now.
func (b *Batch) Add(ref time.Time) []*commonv1.Value {
	w := len(b.info.Inputs)
	n := len(b.values)
	// Elements beyond the length are nil: Reset clears what it truncates.
	b.values = slices.Grow(b.values, w)[:n+w]
	b.refs = append(b.refs, ref)
	return b.values[n : n+w : n+w]
}

// AddMap appends a row given by input name; names the model does not take are ignored.
func (b *Batch) AddMap(features map[string]*commonv1.Value, ref time.Time) {
	row := b.Add(ref)
	for name, v := range features {
		if k, ok := b.info.index[name]; ok {
			row[k] = v
		}
	}
}

// Row returns row i's values, to read or change.
func (b *Batch) Row(i int) []*commonv1.Value {
	w := len(b.info.Inputs)
	return b.values[i*w : (i+1)*w : (i+1)*w]
}

// AddPair appends a (user, item) pair to score with a recommender.
func (b *Batch) AddPair(user, item string) {
	b.users = append(b.users, user)
	b.items = append(b.items, item)
}

// Result is the output of one Score call, one entry per row. Its slices are reused by the
// next Score call with the same Result.
type Result struct {
	// Scores are the raw outputs: log-odds (logistic), decision values (SVMs), predicted
	// values (regression); NaN for rows with a problem.
	Scores []float64
	// Probabilities are the probabilities of the positive class; nil when the model gives
	// none.
	Probabilities []float64
	// Positive holds the predicted class of binary classifiers (true for the positive label,
	// see Info.Classification); nil for other tasks.
	Positive []bool
	// Problems holds, for each row, why it could not be scored, or nil. Problem fields name
	// the input as "features.<name>".
	Problems []*commonv1.Problem
	// Contributions holds, with Batch.Contributions on a linear model, row i's contribution
	// of input j at i·len(Info.Inputs)+j: the sum of weight × design value over the design
	// positions the input produces. Scores[i] = Baseline + Σ_j contributions (up to
	// rounding). Nil otherwise.
	Contributions []float64
	// Outputs holds, for a model whose named outputs go beyond score, probability, label and
	// value (a CLV model's, see CLVSignature), each such output's values by name, one per row,
	// NaN for rows with a problem; nil for other models.
	Outputs map[string][]float64
	// Baseline is a linear model's intercept, or a tree ensemble's expected margin (its
	// contributions are in margin units, also for a Poisson ensemble whose score is a mean).
	Baseline float64
}

func (r *Result) reset(n int, probs, positive bool) {
	r.Outputs = nil
	r.Scores = grow(r.Scores, n)
	if probs {
		r.Probabilities = grow(r.Probabilities, n)
	} else {
		r.Probabilities = nil
	}
	if positive {
		if cap(r.Positive) < n {
			r.Positive = make([]bool, n)
		}
		r.Positive = r.Positive[:n]
	} else {
		r.Positive = nil
	}
	if cap(r.Problems) < n {
		r.Problems = make([]*commonv1.Problem, n)
	}
	r.Problems = r.Problems[:n]
	clear(r.Problems)
	r.Contributions = r.Contributions[:0]
	r.Baseline = 0
}

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

// NewScorer loads an artifact for scoring. It checks the artifact as Decode does and
// precomputes what scoring needs (category indexes, weights). Recommender artifacts
// (factorisation and popularity families) give a Scorer that is also a Recommender, checked
// as DecodeFactors checks them.
func NewScorer(a *modelv1.ModelArtifact) (Scorer, error) {
	if IsRecommender(a.GetFamily()) {
		return newRecommenderScorer(a)
	}
	if a.GetFamily() == modelv1.ModelFamily_MODEL_FAMILY_BG_NBD_GAMMA_GAMMA {
		return newCLVScorer(a)
	}
	f, err := Decode(a)
	if err != nil {
		return nil, err
	}
	s, err := newFeatureScorer(f)
	if err != nil {
		return nil, err
	}
	s.info.Name, s.info.Version = a.GetModelName(), a.GetModelVersion()
	s.info.Classification = a.GetClassification()
	if th := a.GetClassification().GetThreshold(); th > 0 && s.info.HasProbability {
		s.info.Threshold = th
	}
	return s, nil
}

// NewFittedScorer returns a scorer of a fitted model that was not encoded, e.g. to score test
// rows right after training; it scores exactly as NewScorer on Encode(f) would.
func NewFittedScorer(f *Fitted) (Scorer, error) {
	return newFeatureScorer(f)
}

// link is how a score becomes a probability.
type link int

const (
	linkNone link = iota
	linkLogistic
	linkPlatt
)

// featureScorer scores models on preprocessed raw features.
type featureScorer struct {
	info    Info
	columns []column
	width   int // design width

	// Linear families: w and intercept, scored with one matrix-vector product.
	linear    bool
	weights   []float64
	intercept float64
	// Boosted trees: scored tree by tree over the batch, with TreeSHAP contributions.
	trees     *gbt.Ensemble
	explainer *gbt.Explainer // of trees
	// Other families: the decoded model.
	model ml.Model

	link  link
	platt svm.Platt

	scratch sync.Pool
}

// scratch is the per-call working memory of a featureScorer, pooled so that scoring
// allocates nothing in the steady state for linear models.
type scratch struct {
	design []float64
	x      mat.Dense
	y, w   mat.VecDense
}

// linkOf returns how a model's output becomes a probability of the positive class: its link
// and, for Platt scaling, the scaling; linkNone for a model that gives no probability.
func linkOf(m ml.Model) (link, svm.Platt) {
	switch m := m.(type) {
	case *logistic.Model:
		return linkLogistic, svm.Platt{}
	case *svm.LinearModel:
		if m.Platt != nil {
			return linkPlatt, *m.Platt
		}
	case *svm.KernelModel:
		if m.Platt != nil {
			return linkPlatt, *m.Platt
		}
	case *kernel.NystroemModel:
		return linkOf(m.Inner)
	}
	if e, ok := treesIn(m); ok && e.Objective == gbt.Logistic {
		return linkLogistic, svm.Platt{}
	}
	return linkNone, svm.Platt{}
}

func newFeatureScorer(f *Fitted) (*featureScorer, error) {
	s := &featureScorer{
		info: Info{
			Family:   f.Family,
			Task:     f.Task,
			Inputs:   f.Inputs,
			Features: f.Pipeline.Features,
			index:    make(map[string]int, len(f.Inputs)),
		},
		width: f.Pipeline.NumFeatures(),
	}
	for k, in := range f.Inputs {
		s.info.index[in.GetName()] = k
	}
	for k := range f.Pipeline.Inputs {
		s.columns = append(s.columns, newColumn(f.Pipeline.Inputs[k], f.Inputs[k].GetType()))
	}
	var lin *linear.Model
	switch m := f.Model.(type) {
	case *linear.Model:
		lin = m
	case *logistic.Model:
		lin = &m.Model
	case *svm.LinearModel:
		lin = &m.Model
	case *gbt.Ensemble:
		s.trees, s.explainer = m, m.Explainer()
		s.info.HasContributions = true
	case *svm.KernelModel, *kernel.NystroemModel:
		s.model = m
	default:
		return nil, fmt.Errorf("new scorer: %w: model %T", ErrUnsupported, f.Model)
	}
	s.link, s.platt = linkOf(f.Model)
	if lin != nil {
		s.linear, s.weights, s.intercept = true, lin.Weights, lin.Intercept
		s.info.HasContributions = true
	}
	s.info.HasProbability = s.link != linkNone
	if s.info.HasProbability {
		s.info.Threshold = 0.5
	}
	s.scratch.New = func() any { return &scratch{} }
	return s, nil
}

// Info implements Scorer.
func (s *featureScorer) Info() *Info { return &s.info }

// Score implements Scorer.
func (s *featureScorer) Score(ctx context.Context, b *Batch, out *Result) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.Table == nil && b.info != &s.info {
		return fmt.Errorf("score: the batch was not made by NewBatch with this scorer's Info")
	}
	n := b.Len()
	classify := s.info.Task == modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION
	out.reset(n, s.info.HasProbability, classify)
	if n == 0 {
		return nil
	}
	sc := s.scratch.Get().(*scratch)
	defer s.scratch.Put(sc)
	d := s.width
	if cap(sc.design) < n*d {
		sc.design = make([]float64, n*d)
	}
	design := sc.design[:n*d]
	clear(design)

	if b.Table != nil {
		if err := s.encodeTable(design, b.Table); err != nil {
			return err
		}
	} else {
		now := b.Now
		if now.IsZero() {
			now = time.Now()
		}
		s.encodeRows(design, b, now, out.Problems)
	}

	scores := out.Scores
	if s.linear {
		sc.x.SetRawMatrix(blas64.General{Rows: n, Cols: d, Stride: d, Data: design})
		sc.w.SetRawVector(blas64.Vector{N: d, Inc: 1, Data: s.weights})
		sc.y.SetRawVector(blas64.Vector{N: n, Inc: 1, Data: scores})
		// One Gemv, exactly as linear.Model.Predict computes it.
		sc.y.MulVec(&sc.x, &sc.w)
		// Keep no reference to the caller's or the model's memory in the pool.
		sc.x, sc.y, sc.w = mat.Dense{}, mat.VecDense{}, mat.VecDense{}
		for i := range scores {
			scores[i] += s.intercept
		}
		out.Baseline = s.intercept
		if b.Contributions {
			s.contributions(design, n, out)
		}
	} else if s.trees != nil {
		s.scoreTrees(design, n, b.Contributions, out)
	} else {
		x := mat.NewDense(n, d, design)
		copy(scores, s.model.Predict(x).RawVector().Data)
	}
	for i, v := range scores {
		if out.Problems[i] != nil {
			v = math.NaN()
			scores[i] = v
		}
		switch s.link {
		case linkLogistic:
			out.Probabilities[i] = logistic.Sigmoid(v)
		case linkPlatt:
			out.Probabilities[i] = s.platt.Prob(v)
		}
		if classify {
			if s.info.HasProbability {
				out.Positive[i] = out.Probabilities[i] >= s.info.Threshold
			} else {
				out.Positive[i] = v >= s.info.Threshold
			}
		}
	}
	return nil
}

func (s *featureScorer) contributions(design []float64, n int, out *Result) {
	w := len(s.columns)
	if cap(out.Contributions) < n*w {
		out.Contributions = make([]float64, n*w)
	}
	out.Contributions = out.Contributions[:n*w]
	for i := range n {
		row := design[i*s.width : (i+1)*s.width]
		for k := range s.columns {
			c := &s.columns[k].in
			var sum float64
			for j := c.Offset; j < c.Offset+c.Width; j++ {
				sum += s.weights[j] * row[j]
			}
			out.Contributions[i*w+k] = sum
		}
	}
}

// scoreTrees scores the batch tree by tree; a Poisson ensemble's score is its mean, the
// others' their margin. Contributions are TreeSHAP's per design position, summed per raw
// input, in margin units, from the ensemble's expected value.
func (s *featureScorer) scoreTrees(design []float64, n int, contributions bool, out *Result) {
	e := s.trees
	e.MarginsInto(design, s.width, out.Scores)
	if contributions {
		w := len(s.columns)
		if cap(out.Contributions) < n*w {
			out.Contributions = make([]float64, n*w)
		}
		out.Contributions = out.Contributions[:n*w]
		phi := make([]float64, s.width)
		for i := range n {
			s.explainer.Contributions(design[i*s.width:(i+1)*s.width], phi)
			for k := range s.columns {
				c := &s.columns[k].in
				var sum float64
				for _, v := range phi[c.Offset : c.Offset+c.Width] {
					sum += v
				}
				out.Contributions[i*w+k] = sum
			}
		}
		out.Baseline = s.explainer.ExpectedValue()
	}
	if e.Objective == gbt.Poisson {
		for i, v := range out.Scores[:n] {
			out.Scores[i] = math.Exp(v)
		}
	}
}

func (s *featureScorer) encodeRows(design []float64, b *Batch, now time.Time, problems []*commonv1.Problem) {
	w := len(s.columns)
	for i := range len(b.values) / max(w, 1) {
		row := design[i*s.width : (i+1)*s.width]
		ref := now
		if i < len(b.refs) && !b.refs[i].IsZero() {
			ref = b.refs[i]
		}
		vals := b.values[i*w : (i+1)*w]
		for k := range s.columns {
			c := &s.columns[k]
			if err := c.write(row, vals[k], ref); err != nil {
				reason := "WRONG_TYPE"
				if errors.Is(err, ErrNotFinite) {
					reason = "NOT_FINITE"
				}
				problems[i] = &commonv1.Problem{
					Field:       "features." + c.in.Name,
					Reason:      reason,
					Description: fmt.Sprintf("feature %q: %v", c.in.Name, err),
				}
				break
			}
		}
	}
}

func (s *featureScorer) encodeTable(design []float64, t *ml.Table) error {
	n := t.Rows()
	for k := range s.columns {
		c := &s.columns[k]
		col, ok := t.Column(c.in.Name)
		if !ok {
			for i := range n {
				row := design[i*s.width : (i+1)*s.width]
				if c.in.Kind == ml.Numeric {
					c.number(row, math.NaN())
				} else {
					c.category(row, "")
				}
			}
			continue
		}
		if col.Kind != c.in.Kind || col.Len() != n {
			return fmt.Errorf("score: column %q is %v with %d rows, the model takes %v with %d", c.in.Name, col.Kind, col.Len(), c.in.Kind, n)
		}
		for i := range n {
			row := design[i*s.width : (i+1)*s.width]
			if c.in.Kind == ml.Numeric {
				c.number(row, col.Numeric[i])
			} else {
				c.category(row, col.Categorical[i])
			}
		}
	}
	return nil
}

// column is one compiled preprocessing column. Its arithmetic is preprocess.Pipeline's,
// operation for operation, so that both give the same design values bit for bit.
type column struct {
	in    preprocess.Input
	typ   commonv1.ValueType
	scale float64
	index map[string]int
}

func newColumn(in preprocess.Input, typ commonv1.ValueType) column {
	c := column{in: in, typ: typ, scale: in.Scale}
	if c.scale == 0 {
		c.scale = 1
	}
	if in.Kind == ml.Categorical && in.HashBuckets == 0 {
		c.index = make(map[string]int, len(in.Categories))
		for i, v := range in.Categories {
			c.index[v] = i
		}
	}
	return c
}

// write converts a raw value and writes the column's design values into row. A number that
// is NaN or infinite is ErrNotFinite, whatever the input's type: only a value with no kind is
// missing.
func (c *column) write(row []float64, v *commonv1.Value, ref time.Time) error {
	if x, ok := v.GetKind().(*commonv1.Value_NumberValue); ok && (math.IsNaN(x.NumberValue) || math.IsInf(x.NumberValue, 0)) {
		return fmt.Errorf("%w: %v; send a null value (no kind) for a missing one", ErrNotFinite, x.NumberValue)
	}
	if err := CheckType(c.typ, v); err != nil {
		return err
	}
	if c.in.Kind == ml.Numeric {
		x, err := Number(v, ref)
		if err != nil {
			return err
		}
		c.number(row, x)
		return nil
	}
	x, err := Category(v)
	if err != nil {
		return err
	}
	c.category(row, x)
	return nil
}

func (c *column) number(row []float64, v float64) {
	missing := math.IsNaN(v)
	if missing && c.in.KeepMissing {
		row[c.in.Offset] = math.NaN()
		if c.in.Indicator {
			row[c.in.Offset+c.in.Width-1] = 1
		}
		return
	}
	if missing {
		v = c.in.Fill
	}
	if c.in.Log1p {
		v = preprocess.Log1p(v)
	}
	row[c.in.Offset] = (v - c.in.Mean) / c.scale
	if c.in.Indicator && missing {
		row[c.in.Offset+c.in.Width-1] = 1
	}
}

func (c *column) category(row []float64, v string) {
	missing := v == ""
	if missing && c.in.FillCategory != "" {
		v = c.in.FillCategory
	}
	if c.in.Indicator && missing {
		row[c.in.Offset+c.in.Width-1] = 1
	}
	if c.in.HashBuckets > 0 {
		row[c.in.Offset+preprocess.HashBucket(v, c.in.HashSeed, c.in.HashBuckets)] = 1
		return
	}
	if c.in.Ordinal {
		row[c.in.Offset] = math.NaN()
		if j, ok := c.index[v]; ok {
			row[c.in.Offset] = float64(j)
		}
		return
	}
	if j, ok := c.index[v]; ok {
		row[c.in.Offset+j] = 1
	} else if c.in.Bucket {
		row[c.in.Offset+len(c.in.Categories)] = 1
	}
}
