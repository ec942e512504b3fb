package gbt

import (
	"context"
	"fmt"
	"slices"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"gonum.org/v1/gonum/mat"
)

// Estimator fits boosted trees with its Params, as an ml.Estimator.
type Estimator struct {
	Params Params
}

var (
	_ ml.CategoricalEstimator = Estimator{}
	_ ml.ThreadedEstimator    = Estimator{}
)

// Fit implements ml.Estimator; the model is a *Fitted.
func (e Estimator) Fit(ctx context.Context, x *mat.Dense, y []float64) (ml.Model, error) {
	f, err := Fit(ctx, x, y, e.Params)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// WithCategorical implements ml.CategoricalEstimator.
func (e Estimator) WithCategorical(categorical []bool) ml.Estimator {
	e.Params.Categorical = slices.Clone(categorical)
	return e
}

// WithThreads implements ml.ThreadedEstimator.
func (e Estimator) WithThreads(n int) ml.Estimator {
	e.Params.Threads = max(n, 1)
	return e
}

// Status reports the rounds run; boosting has no tolerance to miss, so it always converged.
func (f *Fitted) Status() ml.Convergence {
	return ml.Convergence{Converged: true, Iterations: f.Rounds}
}

// FitNote says where early stopping ended boosting.
func (f *Fitted) FitNote() string {
	if !f.Stopped {
		return ""
	}
	return fmt.Sprintf("early stopping kept %d of %d rounds", f.BestRound+1, f.Rounds)
}
