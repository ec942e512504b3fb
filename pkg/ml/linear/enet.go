package linear

import (
	"context"
	"fmt"
	"math"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

// ElasticNet fits, by cyclic coordinate descent (Friedman, Hastie and Tibshirani 2010),
//
//	min 1/(2n) ||y − Xw − b||² + Alpha·L1Ratio·||w||₁ + ½·Alpha·(1 − L1Ratio)·||w||²
//
// the objective of scikit-learn's ElasticNet; the intercept is not penalised. It stops, as
// scikit-learn, when the largest weight change of an epoch is below Tol times the largest
// weight and the duality gap is below Tol·||y − ȳ||².
type ElasticNet struct {
	// Alpha is the overall penalty; 0 means 1.
	Alpha float64
	// L1Ratio is the share of the L1 penalty, in (0, 1]; 0 means 0.5 (use Ridge for a pure
	// L2 penalty).
	L1Ratio float64
	// Tol is the tolerance; 0 means 1e-4.
	Tol float64
	// MaxIter caps the epochs; 0 means 1000.
	MaxIter int
	// NoIntercept fits b = 0.
	NoIntercept bool
}

// Lasso is ElasticNet with L1Ratio 1: min 1/(2n) ||y − Xw − b||² + Alpha·||w||₁.
type Lasso struct {
	Alpha       float64
	Tol         float64
	MaxIter     int
	NoIntercept bool
}

// Fit implements [ml.Estimator].
func (l Lasso) Fit(ctx context.Context, x *mat.Dense, y []float64) (ml.Model, error) {
	return l.FitLinear(ctx, x, y)
}

// FitLinear is Fit returning the concrete model.
func (l Lasso) FitLinear(ctx context.Context, x *mat.Dense, y []float64) (*Model, error) {
	return ElasticNet{Alpha: l.Alpha, L1Ratio: 1, Tol: l.Tol, MaxIter: l.MaxIter, NoIntercept: l.NoIntercept}.FitLinear(ctx, x, y)
}

// Fit implements [ml.Estimator].
func (e ElasticNet) Fit(ctx context.Context, x *mat.Dense, y []float64) (ml.Model, error) {
	return e.FitLinear(ctx, x, y)
}

// FitLinear is Fit returning the concrete model.
func (e ElasticNet) FitLinear(ctx context.Context, x *mat.Dense, y []float64) (*Model, error) {
	if err := checkXY(x, y); err != nil {
		return nil, fmt.Errorf("elastic net: %w", err)
	}
	alpha, ratio, tol, maxIter := e.Alpha, e.L1Ratio, e.Tol, e.MaxIter
	if alpha == 0 {
		alpha = 1
	}
	if ratio == 0 {
		ratio = 0.5
	}
	if tol == 0 {
		tol = 1e-4
	}
	if maxIter == 0 {
		maxIter = 1000
	}
	if alpha < 0 || ratio < 0 || ratio > 1 || tol < 0 || maxIter < 0 {
		return nil, fmt.Errorf("elastic net: invalid settings alpha=%v l1_ratio=%v tol=%v max_iter=%d", alpha, ratio, tol, maxIter)
	}
	xc, yc, xMeans, yMean := prepare(x, y, !e.NoIntercept)
	n, d := xc.Dims()
	// Work on the sum-of-squares scale: ½||r||² + l1·||w||₁ + ½·l2·||w||².
	l1 := alpha * ratio * float64(n)
	l2 := alpha * (1 - ratio) * float64(n)
	cols := make([][]float64, d)
	norms := make([]float64, d)
	for j := range d {
		cols[j] = mat.Col(nil, j, xc)
		norms[j] = floats.Dot(cols[j], cols[j])
	}
	w := make([]float64, d)
	r := append([]float64(nil), yc...)
	yy := floats.Dot(yc, yc)
	tolAbs := tol * yy

	m := &Model{Weights: w}
	for epoch := 1; epoch <= maxIter; epoch++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m.Iterations = epoch
		var wMax, dMax float64
		for j := range d {
			if norms[j] == 0 {
				continue
			}
			old := w[j]
			if old != 0 {
				floats.AddScaled(r, old, cols[j])
			}
			rho := floats.Dot(cols[j], r)
			w[j] = softThreshold(rho, l1) / (norms[j] + l2)
			if w[j] != 0 {
				floats.AddScaled(r, -w[j], cols[j])
			}
			dMax = math.Max(dMax, math.Abs(w[j]-old))
			wMax = math.Max(wMax, math.Abs(w[j]))
		}
		if wMax == 0 || dMax/wMax < tol || epoch == maxIter {
			if dualityGap(cols, r, yc, w, l1, l2) < tolAbs {
				m.Converged = true
				break
			}
		}
	}
	if !e.NoIntercept {
		m.Intercept = finish(w, xMeans, yMean)
	}
	return m, nil
}

func softThreshold(v, t float64) float64 {
	switch {
	case v > t:
		return v - t
	case v < -t:
		return v + t
	}
	return 0
}

// dualityGap returns the gap between the primal objective ½||r||² + l1||w||₁ + ½l2||w||²
// and the dual objective at the dual point obtained by scaling the residual into the dual's
// feasible set.
func dualityGap(cols [][]float64, r, y, w []float64, l1, l2 float64) float64 {
	var dualNorm float64
	for j, c := range cols {
		dualNorm = math.Max(dualNorm, math.Abs(floats.Dot(c, r)-l2*w[j]))
	}
	rr := floats.Dot(r, r)
	scale, gap := 1.0, rr
	if dualNorm > l1 {
		scale = l1 / dualNorm
		gap = 0.5 * (rr + rr*scale*scale)
	}
	ww := floats.Dot(w, w)
	return gap + l1*floats.Norm(w, 1) - scale*floats.Dot(r, y) + 0.5*l2*(1+scale*scale)*ww
}
