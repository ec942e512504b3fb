package uplift

import (
	"context"
	"fmt"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"gonum.org/v1/gonum/mat"
)

// TwoModels is the two-model approach (the T-learner): Base is fitted once on the treated
// rows and once on the control rows, and the uplift of a row is the difference of the two
// models' probabilities, p_T(x) − p_C(x). Any classifier whose models give probabilities
// will do.
//
// Each model learns its arm's response on its own, so the difference carries both models'
// errors: when the effect is small beside the response itself, the T-learner is noisy.
type TwoModels struct {
	// Base fits each arm's response model.
	Base ml.Estimator
}

var _ Estimator = TwoModels{}

// Fit implements Estimator; the model is a *TwoModelsFit.
func (e TwoModels) Fit(ctx context.Context, x *mat.Dense, treatment, y []float64) (Model, error) {
	m, err := e.FitTwoModels(ctx, x, treatment, y)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// FitTwoModels is Fit returning the concrete model.
func (e TwoModels) FitTwoModels(ctx context.Context, x *mat.Dense, treatment, y []float64) (*TwoModelsFit, error) {
	a, err := check(x, treatment, y)
	if err != nil {
		return nil, fmt.Errorf("two-model uplift: %w", err)
	}
	treated, control, err := fitArms(ctx, e.Base, "base", x, y, a)
	if err != nil {
		return nil, fmt.Errorf("two-model uplift: %w", err)
	}
	_, c := x.Dims()
	return &TwoModelsFit{Treated: treated, Control: control, Features: c}, nil
}

// fitArms fits est to each arm's rows.
func fitArms(ctx context.Context, est ml.Estimator, field string, x *mat.Dense, y []float64, a arms) (treated, control ml.ProbabilityModel, err error) {
	xt, yt := rows(x, y, a.treated)
	if treated, err = fitClassifier(ctx, est, field+" (treated rows)", xt, yt); err != nil {
		return nil, nil, err
	}
	xc, yc := rows(x, y, a.control)
	if control, err = fitClassifier(ctx, est, field+" (control rows)", xc, yc); err != nil {
		return nil, nil, err
	}
	return treated, control, nil
}

// TwoModelsFit is a fitted two-model uplift model.
type TwoModelsFit struct {
	// Treated and Control are the response models of the two arms.
	Treated, Control ml.ProbabilityModel
	// Features is the number of input columns.
	Features int
}

var _ Model = (*TwoModelsFit)(nil)

// NumFeatures returns the number of input columns.
func (m *TwoModelsFit) NumFeatures() int { return m.Features }

// Predict returns p_T(x) − p_C(x) for every row of x.
func (m *TwoModelsFit) Predict(x *mat.Dense) *mat.VecDense {
	s := m.Scores(x)
	return mat.NewVecDense(len(s.Uplift), s.Uplift)
}

// Scores returns both arms' probabilities and their difference.
func (m *TwoModelsFit) Scores(x *mat.Dense) Scores {
	checkColumns(x, m.Features)
	pt := values(m.Treated.PredictProba(x))
	pc := values(m.Control.PredictProba(x))
	u := make([]float64, len(pt))
	for i := range u {
		u[i] = pt[i] - pc[i]
	}
	return Scores{Uplift: u, Treated: pt, Control: pc}
}
