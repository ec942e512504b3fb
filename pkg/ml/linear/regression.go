package linear

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"gonum.org/v1/gonum/mat"
)

// OLS fits ordinary least squares, min ||y − Xw − b||², by a QR decomposition of the centred
// design matrix. When the matrix is rank deficient (say, one-hot columns beside an
// intercept) it returns the minimum-norm solution from an SVD instead.
type OLS struct {
	// NoIntercept fits b = 0.
	NoIntercept bool
}

// Fit implements [ml.Estimator].
func (o OLS) Fit(ctx context.Context, x *mat.Dense, y []float64) (ml.Model, error) {
	return o.FitLinear(ctx, x, y)
}

// FitLinear is Fit returning the concrete model.
func (o OLS) FitLinear(_ context.Context, x *mat.Dense, y []float64) (*Model, error) {
	if err := checkXY(x, y); err != nil {
		return nil, fmt.Errorf("ols: %w", err)
	}
	xc, yc, xMeans, yMean := prepare(x, y, !o.NoIntercept)
	w, err := leastSquares(xc, yc)
	if err != nil {
		return nil, fmt.Errorf("ols: %w", err)
	}
	m := &Model{Weights: w, Convergence: ml.Convergence{Converged: true, Iterations: 1}}
	if !o.NoIntercept {
		m.Intercept = finish(w, xMeans, yMean)
	}
	return m, nil
}

func prepare(x *mat.Dense, y []float64, intercept bool) (*mat.Dense, []float64, []float64, float64) {
	if !intercept {
		return x, y, nil, 0
	}
	xMeans, xc := center(x)
	yMean := meanOf(y)
	yc := make([]float64, len(y))
	for i, v := range y {
		yc[i] = v - yMean
	}
	return xc, yc, xMeans, yMean
}

// rcond is the relative singular-value cut-off below which the design matrix is treated as
// rank deficient.
const rcond = 1e-10

func leastSquares(x *mat.Dense, y []float64) ([]float64, error) {
	r, c := x.Dims()
	yv := mat.NewVecDense(r, y)
	if r >= c {
		var qr mat.QR
		qr.Factorize(x)
		var rm mat.Dense
		qr.RTo(&rm)
		lo, hi := math.Inf(1), 0.0
		for j := range c {
			d := math.Abs(rm.At(j, j))
			lo, hi = math.Min(lo, d), math.Max(hi, d)
		}
		if hi > 0 && lo > rcond*hi {
			var w mat.VecDense
			if err := qr.SolveVecTo(&w, false, yv); err == nil {
				return w.RawVector().Data, nil
			}
		}
	}
	var svd mat.SVD
	if !svd.Factorize(x, mat.SVDThin) {
		return nil, errors.New("svd did not converge")
	}
	rank := svd.Rank(rcond)
	if rank == 0 {
		return make([]float64, c), nil
	}
	var w mat.Dense
	svd.SolveTo(&w, mat.NewDense(r, 1, y), rank)
	return mat.Col(nil, 0, &w), nil
}

// Ridge fits min ||y − Xw − b||² + Alpha·||w||² (the intercept is not penalised) by a
// Cholesky factorisation of XᵀX + Alpha·I on centred data.
type Ridge struct {
	// Alpha is the penalty; 0 means 1.
	Alpha float64
	// NoIntercept fits b = 0.
	NoIntercept bool
}

// Fit implements [ml.Estimator].
func (rg Ridge) Fit(ctx context.Context, x *mat.Dense, y []float64) (ml.Model, error) {
	return rg.FitLinear(ctx, x, y)
}

// FitLinear is Fit returning the concrete model.
func (rg Ridge) FitLinear(_ context.Context, x *mat.Dense, y []float64) (*Model, error) {
	if err := checkXY(x, y); err != nil {
		return nil, fmt.Errorf("ridge: %w", err)
	}
	alpha := rg.Alpha
	if alpha == 0 {
		alpha = 1
	}
	if alpha < 0 {
		return nil, fmt.Errorf("ridge: negative alpha %v", alpha)
	}
	xc, yc, xMeans, yMean := prepare(x, y, !rg.NoIntercept)
	_, c := xc.Dims()
	a := mat.NewSymDense(c, nil)
	a.SymOuterK(1, xc.T())
	for j := range c {
		a.SetSym(j, j, a.At(j, j)+alpha)
	}
	var chol mat.Cholesky
	if !chol.Factorize(a) {
		return nil, errors.New("ridge: XᵀX + αI is not positive definite")
	}
	var xty mat.VecDense
	xty.MulVec(xc.T(), mat.NewVecDense(len(yc), yc))
	var w mat.VecDense
	if err := chol.SolveVecTo(&w, &xty); err != nil {
		return nil, fmt.Errorf("ridge: %w", err)
	}
	m := &Model{Weights: w.RawVector().Data, Convergence: ml.Convergence{Converged: true, Iterations: 1}}
	if !rg.NoIntercept {
		m.Intercept = finish(m.Weights, xMeans, yMean)
	}
	return m, nil
}
