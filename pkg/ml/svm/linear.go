// Package svm fits support vector machines for binary classification: linear SVMs by dual
// coordinate descent (LIBLINEAR's algorithm, with hinge or squared hinge loss) or, for the
// squared hinge, by trust-region Newton in the primal; kernel SVMs by SMO with LIBSVM's
// second-order working-set selection, a kernel-row cache and shrinking; and Platt scaling to
// turn decision values into probabilities.
//
// Labels are 0 and 1; the decision value is positive for class 1.
package svm

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/internal/design"
	"github.com/bullseye-ml/bullseye/pkg/ml/internal/tron"
	"github.com/bullseye-ml/bullseye/pkg/ml/linear"
	"gonum.org/v1/gonum/mat"
)

// Loss is the loss of a linear SVM.
type Loss int

const (
	// SquaredHinge is max(0, 1 − y·f(x))², scikit-learn LinearSVC's default.
	SquaredHinge Loss = iota
	// Hinge is max(0, 1 − y·f(x)).
	Hinge
)

// Solver chooses how a linear SVM is solved.
type Solver int

const (
	// Dual is dual coordinate descent (Hsieh et al. 2008) with shrinking, LIBLINEAR's
	// L2R_L2LOSS_SVC_DUAL and L2R_L1LOSS_SVC_DUAL.
	Dual Solver = iota
	// Primal is trust-region Newton on the primal, LIBLINEAR's L2R_L2LOSS_SVC; squared hinge
	// only.
	Primal
)

// Linear configures a linear SVM:
//
//	min ½||(w, b)||² + C Σ_i c_i loss(y_i (w·x_i + b·s))
//
// with the intercept carried, as in LIBLINEAR and scikit-learn's LinearSVC, by a constant
// feature s (InterceptScaling) and penalised like the other weights. The zero value is
// scikit-learn's LinearSVC(): squared hinge, C = 1, dual, tol 1e-4, 1000 iterations.
type Linear struct {
	// C is the inverse of the penalty strength; 0 means 1.
	C float64
	// Loss is SquaredHinge (the default) or Hinge.
	Loss Loss
	// Solver is Dual (the default) or Primal.
	Solver Solver
	// Tol is the stopping tolerance; 0 means 1e-4. Dual stops when the projected gradient's
	// spread max − min is at most Tol; Primal when ||∇f|| ≤ Tol·||∇f(0)|| (scaled as
	// LIBLINEAR does by the smaller class's share of the rows).
	Tol float64
	// MaxIter caps epochs (Dual) or Newton iterations (Primal); 0 means 1000.
	MaxIter int
	// InterceptScaling is the value of the constant feature; 0 means 1.
	InterceptScaling float64
	// NoIntercept fits no intercept.
	NoIntercept bool
	// ClassWeights scale C per class.
	ClassWeights ml.ClassWeights
	// Seed orders the dual coordinate-descent epochs.
	Seed uint64
}

// LinearModel is a fitted linear SVM; Predict gives decision values. With Platt set (see
// [Calibrate]) it also gives probabilities.
type LinearModel struct {
	linear.Model
	// Platt maps decision values to probabilities; nil when not calibrated.
	Platt *Platt `json:"platt,omitempty"`
}

var _ ml.Model = (*LinearModel)(nil)

// HasProbabilities reports whether the model has Platt scaling.
func (m *LinearModel) HasProbabilities() bool { return m.Platt != nil }

// PredictProba returns calibrated probabilities; it panics when the model has no Platt
// scaling.
func (m *LinearModel) PredictProba(x *mat.Dense) *mat.VecDense {
	if m.Platt == nil {
		panic("svm: PredictProba on a model without Platt scaling")
	}
	return m.Platt.Apply(m.Predict(x))
}

// Fit implements [ml.Estimator].
func (l Linear) Fit(ctx context.Context, x *mat.Dense, y []float64) (ml.Model, error) {
	return l.FitLinear(ctx, x, y)
}

// FitLinear is Fit returning the concrete model.
func (l Linear) FitLinear(ctx context.Context, x *mat.Dense, y []float64) (*LinearModel, error) {
	c, tol, scale, maxIter := l.C, l.Tol, l.InterceptScaling, l.MaxIter
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
	if l.NoIntercept {
		scale = 0
	}
	if c < 0 || tol < 0 || scale < 0 || maxIter < 0 {
		return nil, fmt.Errorf("linear svm: invalid settings C=%v tol=%v intercept_scaling=%v max_iter=%d", c, tol, scale, maxIter)
	}
	n, _ := x.Dims()
	if n != len(y) {
		return nil, fmt.Errorf("linear svm: %d rows but %d labels", n, len(y))
	}
	sign, cost, pos, err := design.Labels(y, c, l.ClassWeights)
	if err != nil {
		return nil, fmt.Errorf("linear svm: %w", err)
	}
	dm := design.New(x, scale)
	w := make([]float64, dm.W)
	var conv ml.Convergence
	switch {
	case l.Solver == Dual:
		conv, err = dualCD(ctx, dm, sign, cost, l.Loss, w, tol, maxIter, l.Seed)
	case l.Solver == Primal && l.Loss == SquaredHinge:
		tol *= float64(max(min(pos, n-pos), 1)) / float64(n)
		var res tron.Result
		res, err = tron.Minimize(ctx, newL2SVCObjective(dm, sign, cost), w, tron.Settings{Tol: tol, MaxIter: maxIter})
		conv = ml.Convergence{Converged: res.Converged, Iterations: res.Iterations}
	default:
		return nil, fmt.Errorf("linear svm: solver %d does not support loss %d", l.Solver, l.Loss)
	}
	if err != nil {
		return nil, err
	}
	return &LinearModel{Model: linear.FromWeights(w, dm.D, scale, conv)}, nil
}

// dualVar is the state of one dual variable, kept together so that visiting a row in
// random order touches one cache line.
type dualVar struct {
	alpha float64
	sign  float64
	diag  float64 // D_ii: 1/(2C_i) for the squared hinge, 0 for the hinge
	upper float64 // U_i: +Inf for the squared hinge, C_i for the hinge
	invQD float64 // 1 / (D_ii + ||x_i||²)
}

// dualCD solves the dual min ½αᵀQ̄α − Σα, 0 ≤ α_i ≤ U_i, Q̄ = Q + D, by coordinate descent
// in random order with shrinking, keeping w = Σ α_i y_i x_i (Hsieh et al. 2008).
func dualCD(ctx context.Context, dm *design.Matrix, sign, cost []float64, loss Loss, w []float64, tol float64, maxIter int, seed uint64) (ml.Convergence, error) {
	n := dm.N
	rows := dm.ToRows()
	vars := make([]dualVar, n)
	for i := range vars {
		v := &vars[i]
		v.sign = sign[i]
		if loss == SquaredHinge {
			v.diag = 0.5 / cost[i]
			v.upper = math.Inf(1)
		} else {
			v.upper = cost[i]
		}
		v.invQD = 1 / (v.diag + rows.SqNorm(i))
	}
	index := make([]int32, n)
	for i := range index {
		index[i] = int32(i)
	}
	active := n
	rng := rand.New(rand.NewPCG(seed, 0x5d3a))
	pgMaxOld, pgMinOld := math.Inf(1), math.Inf(-1)
	var conv ml.Convergence
	var sink float64 // keeps the touches below from being optimised away
	defer runtime.KeepAlive(&sink)
	for conv.Iterations < maxIter {
		if conv.Iterations%16 == 0 {
			if err := ctx.Err(); err != nil {
				return conv, err
			}
		}
		for s := range active {
			// Lemire's multiply-shift: a bound below 2³² needs no rejection to within 2⁻³².
			k := s + int((rng.Uint64()>>32)*uint64(active-s)>>32)
			index[s], index[k] = index[k], index[s]
		}
		pgMax, pgMin := math.Inf(-1), math.Inf(1)
		var touch int32
		var touchF float64
		for s := 0; s < active; s++ {
			i := int(index[s])
			if s+4 < active {
				// Touch rows ahead of time so that their cache misses overlap this row's
				// work (ToRows pads Idx and Val, so an empty row's offset is valid).
				far := index[s+4]
				touch += rows.Off[far] + rows.VOff[far]
				touchF += vars[far].sign
				near := index[s+2]
				touch += rows.Idx[rows.Off[near]]
				touchF += rows.Val[rows.VOff[near]]
			}
			v := &vars[i]
			g := v.sign*rows.Dot(i, w) - 1 + v.diag*v.alpha
			pg := 0.0
			switch {
			case v.alpha == 0:
				if g > pgMaxOld {
					active--
					index[s], index[active] = index[active], index[s]
					s--
					continue
				}
				if g < 0 {
					pg = g
				}
			case v.alpha == v.upper:
				if g < pgMinOld {
					active--
					index[s], index[active] = index[active], index[s]
					s--
					continue
				}
				if g > 0 {
					pg = g
				}
			default:
				pg = g
			}
			if pg > pgMax {
				pgMax = pg
			}
			if pg < pgMin {
				pgMin = pg
			}
			if pg > 1e-12 || pg < -1e-12 {
				old := v.alpha
				a := old - g*v.invQD
				if a < 0 {
					a = 0
				} else if a > v.upper {
					a = v.upper
				}
				v.alpha = a
				if step := (a - old) * v.sign; step != 0 {
					rows.AddScaled(w, step, i)
				}
			}
		}
		conv.Iterations++
		sink += float64(touch) + touchF
		if pgMax-pgMin <= tol {
			if active == n {
				conv.Converged = true
				break
			}
			// Converged on the active set: check every variable again.
			active = n
			pgMaxOld, pgMinOld = math.Inf(1), math.Inf(-1)
			continue
		}
		pgMaxOld, pgMinOld = pgMax, pgMin
		if pgMaxOld <= 0 {
			pgMaxOld = math.Inf(1)
		}
		if pgMinOld >= 0 {
			pgMinOld = math.Inf(-1)
		}
	}
	return conv, nil
}

// l2svcObjective is ½||w||² + Σ c_i max(0, 1 − y_i w·x_i)² for TRON.
type l2svcObjective struct{ tron.GaussNewton }

func newL2SVCObjective(m *design.Matrix, sign, cost []float64) *l2svcObjective {
	return &l2svcObjective{tron.NewGaussNewton(m, sign, cost)}
}

func (o *l2svcObjective) Fun(w []float64) float64 {
	sums := make([]float64, o.M.Parts)
	o.M.Chunks(func(k, lo, hi int) {
		z := o.Z[lo:hi]
		o.M.MulVecRows(z, w, lo, hi)
		var s float64
		for i, v := range z {
			if d := 1 - o.Sign[lo+i]*v; d > 0 {
				s += o.Cost[lo+i] * d * d
			}
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

func (o *l2svcObjective) Grad(w, g []float64) {
	o.M.Reduce(g, func(k int, part []float64, lo, hi int) float64 {
		u := o.Tmp[k][:hi-lo]
		for i := range u {
			row := lo + i
			yz := o.Sign[row] * o.Z[row]
			u[i], o.DD[row] = 0, 0
			if yz < 1 {
				u[i] = 2 * o.Cost[row] * (yz - 1) * o.Sign[row]
				o.DD[row] = 2 * o.Cost[row]
			}
		}
		o.M.MulTransVecRows(part, u, lo, hi)
		return 0
	})
	for j := range g {
		g[j] += w[j]
	}
}
