package uplift

import (
	"context"
	"fmt"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"gonum.org/v1/gonum/mat"
)

// XLearner is the X-learner of Künzel, Sekhon, Bickel and Yu (2019), in three stages:
//
//  1. Outcome, a classifier whose models give probabilities, is fitted to each arm's
//     responses: μ_T on the treated rows and μ_C on the control rows, as [TwoModels].
//  2. Each row's effect is imputed from the other arm's model, D = y − μ_C(x) for a treated
//     row and D = μ_T(x) − y for a control row, and Effect, a regressor, is fitted to the
//     imputed effects of each arm: τ_T on the treated rows and τ_C on the control rows.
//  3. The uplift is τ(x) = g(x)·τ_C(x) + (1 − g(x))·τ_T(x), weighted by the propensity
//     g(x) = P(t = 1 | x), as the paper recommends: where treated rows are scarce, τ_T is
//     fitted on few rows and τ_C, fitted on many, weighs more.
//
// The propensity is the treated share of the training rows, the design probability of a
// randomised campaign, unless Propensity is set; then a classifier fitted to the treatments
// gives it row by row. The uplift is not clipped to [−1, 1].
type XLearner struct {
	// Outcome fits each arm's response model (stage 1).
	Outcome ml.Estimator
	// Effect fits each arm's imputed effects (stage 2): a regressor, such as boosted trees
	// with the squared error or linear regression.
	Effect ml.Estimator
	// Propensity, when set, fits P(t = 1 | x) on all rows; it must give probabilities.
	Propensity ml.Estimator
}

var _ Estimator = XLearner{}

// Fit implements Estimator; the model is an *XLearnerFit.
func (e XLearner) Fit(ctx context.Context, x *mat.Dense, treatment, y []float64) (Model, error) {
	m, err := e.FitXLearner(ctx, x, treatment, y)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// FitXLearner is Fit returning the concrete model.
func (e XLearner) FitXLearner(ctx context.Context, x *mat.Dense, treatment, y []float64) (*XLearnerFit, error) {
	fail := func(err error) (*XLearnerFit, error) { return nil, fmt.Errorf("x-learner uplift: %w", err) }
	a, err := check(x, treatment, y)
	if err != nil {
		return fail(err)
	}
	if e.Effect == nil {
		return fail(fmt.Errorf("effect: no estimator"))
	}
	_, c := x.Dims()
	m := &XLearnerFit{Features: c, Share: a.share()}
	if m.Treated, m.Control, err = fitArms(ctx, e.Outcome, "outcome", x, y, a); err != nil {
		return fail(err)
	}
	// Treated rows: D = y − μ_C(x); control rows: D = μ_T(x) − y.
	xt, yt := rows(x, y, a.treated)
	dt := values(m.Control.PredictProba(xt))
	for i := range dt {
		dt[i] = yt[i] - dt[i]
	}
	xc, yc := rows(x, y, a.control)
	dc := values(m.Treated.PredictProba(xc))
	for i := range dc {
		dc[i] -= yc[i]
	}
	if m.EffectTreated, err = fitRegressor(ctx, e.Effect, "effect (treated rows)", xt, dt); err != nil {
		return fail(err)
	}
	if m.EffectControl, err = fitRegressor(ctx, e.Effect, "effect (control rows)", xc, dc); err != nil {
		return fail(err)
	}
	if e.Propensity != nil {
		if m.Propensity, err = fitClassifier(ctx, e.Propensity, "propensity", x, treatment); err != nil {
			return fail(err)
		}
	}
	return m, nil
}

func fitRegressor(ctx context.Context, est ml.Estimator, field string, x *mat.Dense, y []float64) (ml.Model, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, err := est.Fit(ctx, x, y)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return m, nil
}

// XLearnerFit is a fitted X-learner.
type XLearnerFit struct {
	// Treated and Control are the stage-1 response models μ_T and μ_C.
	Treated, Control ml.ProbabilityModel
	// EffectTreated and EffectControl are the stage-2 effect models τ_T (fitted on the
	// treated rows) and τ_C (on the control rows).
	EffectTreated, EffectControl ml.Model
	// Propensity is the fitted propensity model, or nil when the propensity is Share.
	Propensity ml.ProbabilityModel
	// Share is the treated share of the training rows.
	Share float64
	// Features is the number of input columns.
	Features int
}

var _ Model = (*XLearnerFit)(nil)

// NumFeatures returns the number of input columns.
func (m *XLearnerFit) NumFeatures() int { return m.Features }

// Predict returns g(x)·τ_C(x) + (1 − g(x))·τ_T(x) for every row of x.
func (m *XLearnerFit) Predict(x *mat.Dense) *mat.VecDense {
	checkColumns(x, m.Features)
	tt := values(m.EffectTreated.Predict(x))
	tc := values(m.EffectControl.Predict(x))
	var g []float64
	if m.Propensity != nil {
		g = values(m.Propensity.PredictProba(x))
	}
	u := make([]float64, len(tt))
	for i := range u {
		gi := m.Share
		if g != nil {
			gi = g[i]
		}
		u[i] = gi*tc[i] + (1-gi)*tt[i]
	}
	return mat.NewVecDense(len(u), u)
}

// Scores returns the uplift and the stage-1 models' probabilities of each arm; the uplift
// is not their difference.
func (m *XLearnerFit) Scores(x *mat.Dense) Scores {
	return Scores{
		Uplift:  values(m.Predict(x)),
		Treated: values(m.Treated.PredictProba(x)),
		Control: values(m.Control.PredictProba(x)),
	}
}
