// Package logistic fits binary logistic regression with an L2 penalty, by trust-region
// Newton as LIBLINEAR's TRON, or an L1 penalty, by coordinate descent with one-dimensional
// Newton steps (CDN; Yuan, Chang, Hsieh and Lin 2010).
//
// The objective is LIBLINEAR's, which scikit-learn's LogisticRegression(solver="liblinear")
// uses:
//
//	min R(w) + C Σ_i c_i log(1 + exp(−y_i (w·x_i + b·s)))
//
// with R(w) = ½||(w, b)||² (L2) or ||(w, b)||₁ (L1), y_i = ±1, c_i the class weight of row i,
// and s the intercept scaling: the intercept is the weight b·s of a constant feature s and is
// penalised like the others (scikit-learn's intercept_scaling, 1 by default).
package logistic

import (
	"context"
	"fmt"
	"math"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/internal/design"
	"github.com/bullseye-ml/bullseye/pkg/ml/internal/tron"
	"github.com/bullseye-ml/bullseye/pkg/ml/linear"
	"gonum.org/v1/gonum/mat"
)

// Penalty is the regulariser.
type Penalty int

const (
	// L2 is ½||w||², solved by trust-region Newton.
	L2 Penalty = iota
	// L1 is ||w||₁, solved by coordinate descent; it sets weights to exactly zero.
	L1
)

// Regression configures logistic regression. The zero value is scikit-learn's default
// LogisticRegression(C=1, solver="liblinear").
type Regression struct {
	// C is the inverse of the penalty strength; 0 means 1.
	C float64
	// Penalty is L2 (the default) or L1.
	Penalty Penalty
	// Tol is the stopping tolerance; 0 means 1e-4 (scaled as LIBLINEAR does, by the
	// smaller class's share of the rows).
	Tol float64
	// MaxIter caps Newton iterations (L2) or epochs (L1); 0 means 1000.
	MaxIter int
	// InterceptScaling is the value of the constant feature that carries the intercept;
	// 0 means 1.
	InterceptScaling float64
	// NoIntercept fits no intercept.
	NoIntercept bool
	// ClassWeights scale C per class.
	ClassWeights ml.ClassWeights
	// Seed orders the L1 coordinate-descent epochs.
	Seed uint64
}

// Model is a fitted logistic regression: Predict gives log-odds, PredictProba the
// probability of the positive class.
type Model struct {
	linear.Model
}

var _ ml.ProbabilityModel = (*Model)(nil)

// PredictProba returns 1 / (1 + exp(−score)) for every row of x.
func (m *Model) PredictProba(x *mat.Dense) *mat.VecDense {
	v := m.Predict(x)
	raw := v.RawVector().Data
	for i, s := range raw {
		raw[i] = Sigmoid(s)
	}
	return v
}

// Sigmoid returns 1 / (1 + exp(−s)) without overflow.
func Sigmoid(s float64) float64 {
	if s >= 0 {
		return 1 / (1 + math.Exp(-s))
	}
	e := math.Exp(s)
	return e / (1 + e)
}

// logLoss returns log(1 + exp(−m)) without overflow.
func logLoss(m float64) float64 {
	if m >= 0 {
		return math.Log1p(math.Exp(-m))
	}
	return -m + math.Log1p(math.Exp(m))
}

// Fit implements [ml.Estimator].
func (r Regression) Fit(ctx context.Context, x *mat.Dense, y []float64) (ml.Model, error) {
	return r.FitLogistic(ctx, x, y)
}

func (r Regression) settings() (c, tol, scale float64, maxIter int, err error) {
	c, tol, scale, maxIter = r.C, r.Tol, r.InterceptScaling, r.MaxIter
	if c == 0 {
		c = 1
	}
	if tol == 0 {
		tol = 1e-4
	}
	if scale == 0 {
		scale = 1
	}
	if maxIter == 0 {
		maxIter = 1000
	}
	if r.NoIntercept {
		scale = 0
	}
	if c < 0 || tol < 0 || scale < 0 || maxIter < 0 {
		err = fmt.Errorf("invalid settings C=%v tol=%v intercept_scaling=%v max_iter=%d", c, tol, scale, maxIter)
	}
	return c, tol, scale, maxIter, err
}

// FitLogistic is Fit returning the concrete model.
func (r Regression) FitLogistic(ctx context.Context, x *mat.Dense, y []float64) (*Model, error) {
	c, tol, scale, maxIter, err := r.settings()
	if err != nil {
		return nil, fmt.Errorf("logistic regression: %w", err)
	}
	n, _ := x.Dims()
	if n != len(y) {
		return nil, fmt.Errorf("logistic regression: %d rows but %d labels", n, len(y))
	}
	sign, cost, pos, err := design.Labels(y, c, r.ClassWeights)
	if err != nil {
		return nil, fmt.Errorf("logistic regression: %w", err)
	}
	dm := design.New(x, scale)
	// LIBLINEAR's primal tolerance: eps·max(min(pos, neg), 1)/l.
	tol *= float64(max(min(pos, n-pos), 1)) / float64(n)
	w := make([]float64, dm.W)
	var conv ml.Convergence
	switch r.Penalty {
	case L2:
		res, err := tron.Minimize(ctx, newL2Objective(dm, sign, cost), w, tron.Settings{Tol: tol, MaxIter: maxIter})
		if err != nil {
			return nil, err
		}
		conv = ml.Convergence{Converged: res.Converged, Iterations: res.Iterations}
	case L1:
		conv, err = fitL1(ctx, dm, sign, cost, w, tol, maxIter, r.Seed)
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("logistic regression: unknown penalty %d", r.Penalty)
	}
	return &Model{Model: linear.FromWeights(w, dm.D, scale, conv)}, nil
}

// l2Objective is C Σ c_i log(1 + exp(−y_i w·x_i)) + ½||w||² for TRON.
type l2Objective struct{ tron.GaussNewton }

func newL2Objective(m *design.Matrix, sign, cost []float64) *l2Objective {
	return &l2Objective{tron.NewGaussNewton(m, sign, cost)}
}

func (o *l2Objective) Fun(w []float64) float64 {
	sums := make([]float64, o.M.Parts)
	o.M.Chunks(func(k, lo, hi int) {
		z := o.Z[lo:hi]
		o.M.MulVecRows(z, w, lo, hi)
		var s float64
		for i, v := range z {
			s += o.Cost[lo+i] * logLoss(o.Sign[lo+i]*v)
		}
		sums[k] = s
	})
	var f float64
	for _, s := range sums {
		f += s
	}
	for _, v := range w {
		f += 0.5 * v * v
	}
	return f
}

func (o *l2Objective) Grad(w, g []float64) {
	o.M.Reduce(g, func(k int, part []float64, lo, hi int) float64 {
		u := o.Tmp[k][:hi-lo]
		for i := range u {
			row := lo + i
			yz := o.Sign[row] * o.Z[row]
			s := Sigmoid(yz)
			o.DD[row] = o.Cost[row] * s * (1 - s)
			u[i] = o.Cost[row] * (s - 1) * o.Sign[row]
		}
		o.M.MulTransVecRows(part, u, lo, hi)
		return 0
	})
	for j := range g {
		g[j] += w[j]
	}
}
