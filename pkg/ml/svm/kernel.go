package svm

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/internal/design"
	"github.com/bullseye-ml/bullseye/pkg/ml/kernel"
	"gonum.org/v1/gonum/mat"
)

// Kernel configures a kernel SVM (C-SVC):
//
//	min ½ Σ_ij α_i α_j y_i y_j k(x_i, x_j) − Σ α_i,  0 ≤ α_i ≤ C c_i,  Σ α_i y_i = 0
//
// solved by SMO as LIBSVM. The zero value is scikit-learn's SVC(): RBF kernel, C = 1,
// gamma "scale", tol 1e-3, shrinking, a 200 MB kernel cache.
type Kernel struct {
	// C is the penalty on margin violations; 0 means 1.
	C float64
	// Kernel is the kernel; its zero value is RBF with gamma "scale".
	Kernel kernel.Kernel
	// Tol stops SMO when the maximal violation of the optimality conditions is below it;
	// 0 means 1e-3.
	Tol float64
	// MaxIter caps the pair updates; 0 means max(10⁷, 100·n).
	MaxIter int
	// CacheMB is the kernel cache budget in megabytes; 0 means 200.
	CacheMB int
	// NoShrinking turns shrinking off.
	NoShrinking bool
	// ClassWeights scale C per class.
	ClassWeights ml.ClassWeights
	// Probability fits Platt scaling on 5-fold cross-validated decision values after the
	// fit (five more fits, run in parallel), so that the model has PredictProba.
	Probability bool
	// MaxRows bounds the exact kernel SVM: with more training rows than this it trains on a
	// stratified random subsample of MaxRows rows and says so in the model's FitNote.
	// 0 means no bound.
	MaxRows int
	// Seed draws the Platt cross-validation folds and the subsample.
	Seed uint64
}

// KernelModel is a fitted kernel SVM: f(x) = Σ_i Coef_i k(SV_i, x) − Rho over its support
// vectors. It is a plain value: serialise it as it is.
type KernelModel struct {
	Kernel kernel.Kernel `json:"kernel"`
	// SupportVectors holds one support vector per row.
	SupportVectors ml.Matrix `json:"support_vectors"`
	// Coef holds α_i y_i for each support vector.
	Coef []float64 `json:"coef"`
	Rho  float64   `json:"rho"`
	// Indices are the training rows of the support vectors.
	Indices []int `json:"indices"`
	// Platt maps decision values to probabilities; nil unless fitted with Probability.
	Platt *Platt `json:"platt,omitempty"`
	// Subsampled is the number of training rows when the fit used a subsample of them
	// (see Kernel.MaxRows), else 0.
	Subsampled int `json:"subsampled,omitempty"`
	// Rows is the number of rows the fit was given.
	Rows int `json:"rows"`
	ml.Convergence
}

// FitNote says when the model was trained on a subsample.
func (m *KernelModel) FitNote() string {
	if m.Subsampled == 0 {
		return ""
	}
	return fmt.Sprintf("exact kernel SVM trained on a stratified subsample of %d of %d rows", m.Subsampled, m.Rows)
}

var _ ml.Model = (*KernelModel)(nil)

// NumFeatures returns the number of columns of the support vectors.
func (m *KernelModel) NumFeatures() int { return m.SupportVectors.Cols }

// Predict returns decision values: the kernel matrix between x and the support vectors is
// computed in blocks of rows, one matrix product per block, then multiplied by Coef.
func (m *KernelModel) Predict(x *mat.Dense) *mat.VecDense {
	r, c := x.Dims()
	if c != m.NumFeatures() {
		panic(fmt.Sprintf("svm: predict on %d features, model has %d", c, m.NumFeatures()))
	}
	sv := m.SupportVectors.Dense()
	var sq []float64
	if m.Kernel.NeedsNorms() {
		sq = kernel.RowNorms(sv)
	}
	out := mat.NewVecDense(r, nil)
	coef := mat.NewVecDense(len(m.Coef), m.Coef)
	// Bound the kernel block to about 32 MB.
	step := max(1, min(r, (4<<20)/max(len(m.Coef), 1)))
	for lo := 0; lo < r; lo += step {
		hi := min(lo+step, r)
		k := m.Kernel.Matrix(x.Slice(lo, hi, 0, c).(*mat.Dense), sv, sq)
		out.SliceVec(lo, hi).(*mat.VecDense).MulVec(k, coef)
	}
	raw := out.RawVector().Data
	for i := range raw {
		raw[i] -= m.Rho
	}
	return out
}

// HasProbabilities reports whether the model has Platt scaling.
func (m *KernelModel) HasProbabilities() bool { return m.Platt != nil }

// PredictProba returns Platt-scaled probabilities; it panics when the model was fitted
// without Probability.
func (m *KernelModel) PredictProba(x *mat.Dense) *mat.VecDense {
	if m.Platt == nil {
		panic("svm: PredictProba on a model fitted without Probability")
	}
	return m.Platt.Apply(m.Predict(x))
}

// Fit implements [ml.Estimator].
func (k Kernel) Fit(ctx context.Context, x *mat.Dense, y []float64) (ml.Model, error) {
	return k.FitKernel(ctx, x, y)
}

// FitKernel is Fit returning the concrete model.
func (k Kernel) FitKernel(ctx context.Context, x *mat.Dense, y []float64) (*KernelModel, error) {
	c, tol, cacheMB := k.C, k.Tol, k.CacheMB
	if c == 0 {
		c = 1
	}
	if tol == 0 {
		tol = 1e-3
	}
	if cacheMB == 0 {
		cacheMB = 200
	}
	if err := k.Kernel.Validate(); err != nil {
		return nil, fmt.Errorf("kernel svm: %w", err)
	}
	if c < 0 || tol < 0 || cacheMB < 0 || k.MaxIter < 0 {
		return nil, fmt.Errorf("kernel svm: invalid settings C=%v tol=%v cache=%d MB max_iter=%d", c, tol, cacheMB, k.MaxIter)
	}
	n, d := x.Dims()
	if n != len(y) {
		return nil, fmt.Errorf("kernel svm: %d rows but %d labels", n, len(y))
	}
	if k.MaxRows > 0 && n > k.MaxRows {
		rows := stratifiedSample(y, k.MaxRows, k.Seed)
		sub := mat.NewDense(len(rows), d, nil)
		ys := make([]float64, len(rows))
		for r, i := range rows {
			sub.SetRow(r, x.RawRowView(i))
			ys[r] = y[i]
		}
		inner := k
		inner.MaxRows = 0
		m, err := inner.FitKernel(ctx, sub, ys)
		if err != nil {
			return nil, err
		}
		for r, i := range m.Indices {
			m.Indices[r] = rows[i]
		}
		m.Subsampled, m.Rows = len(rows), n
		return m, nil
	}
	sign, cost, _, err := design.Labels(y, c, k.ClassWeights)
	if err != nil {
		return nil, fmt.Errorf("kernel svm: %w", err)
	}
	kern := k.Kernel.Resolve(x)
	maxIter := k.MaxIter
	if maxIter == 0 {
		maxIter = max(10_000_000, 100*n)
	}
	data := make([]float64, n*d)
	for i := range n {
		copy(data[i*d:(i+1)*d], x.RawRowView(i))
	}
	s := newSMO(kern, data, n, d, sign, cost, tol, cacheMB<<20, !k.NoShrinking)
	iters, converged, err := s.solve(ctx, maxIter)
	if err != nil {
		return nil, err
	}
	m := &KernelModel{Kernel: kern, Rho: s.rho(), Rows: n, Convergence: ml.Convergence{Converged: converged, Iterations: iters}}
	var rows []int
	for t := range n {
		if s.alpha[t] > 0 {
			rows = append(rows, t)
		}
	}
	// Keep training order so that the model does not depend on the solver's permutation.
	order := make([]int, n)
	for t, orig := range s.perm {
		order[orig] = t
	}
	svs := mat.NewDense(max(len(rows), 1), d, nil)
	for _, orig := range sortedOrig(s.perm, rows) {
		t := order[orig]
		svs.SetRow(len(m.Indices), x.RawRowView(orig))
		m.Coef = append(m.Coef, s.alpha[t]*s.y[t])
		m.Indices = append(m.Indices, orig)
	}
	if len(rows) == 0 {
		m.Coef = []float64{0}
		m.Indices = []int{-1}
	}
	m.SupportVectors = ml.Matrix{Rows: len(m.Coef), Cols: d, Data: svs.RawMatrix().Data}
	if k.Probability {
		inner := k
		inner.Probability = false
		inner.Kernel = kern
		if m.Platt, err = Calibrate(ctx, inner, x, y, 5, k.Seed); err != nil {
			return nil, fmt.Errorf("kernel svm: %w", err)
		}
	}
	return m, nil
}

// sortedOrig returns the original indices of the given positions, ascending.
func sortedOrig(perm, positions []int) []int {
	seen := make([]bool, len(perm))
	for _, t := range positions {
		seen[perm[t]] = true
	}
	out := make([]int, 0, len(positions))
	for i, ok := range seen {
		if ok {
			out = append(out, i)
		}
	}
	return out
}

// stratifiedSample returns about size row indices, ascending, drawn without replacement so
// that each class keeps its share of the rows.
func stratifiedSample(y []float64, size int, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, 0x5a3b))
	var pos, neg []int
	for i, v := range y {
		if v != 0 {
			pos = append(pos, i)
		} else {
			neg = append(neg, i)
		}
	}
	nPos := max(1, int(math.Round(float64(size)*float64(len(pos))/float64(len(y)))))
	nPos = min(nPos, len(pos))
	nNeg := min(size-nPos, len(neg))
	var out []int
	for _, part := range []struct {
		idx []int
		k   int
	}{{pos, nPos}, {neg, nNeg}} {
		rng.Shuffle(len(part.idx), func(a, b int) { part.idx[a], part.idx[b] = part.idx[b], part.idx[a] })
		out = append(out, part.idx[:part.k]...)
	}
	slices.Sort(out)
	return out
}
