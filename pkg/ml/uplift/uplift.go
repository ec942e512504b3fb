// Package uplift fits uplift models on the rows of a randomised campaign: for each customer,
// the effect of treating them (sending the offer) on the probability that they respond,
//
//	uplift(x) = P(y = 1 | x, treated) − P(y = 1 | x, control).
//
// Three learners build it from the project's ordinary estimators (ml.Estimator: logistic
// regression, boosted trees, linear regression…):
//
//   - [TwoModels], the T-learner: one classifier on the treated rows and one on the control
//     rows; the uplift is the difference of their probabilities.
//   - [ClassTransformation] (Jaskowski and Jaroszewicz 2012): one classifier of
//     z = y·t + (1 − y)(1 − t), "treated responder or control non-responder"; with as many
//     treated as control rows, uplift(x) = 2·P(z = 1 | x) − 1. It balances the arms first.
//   - [XLearner] (Künzel, Sekhon, Bickel and Yu 2019): the T-learner's two classifiers impute
//     each row's effect, two regressors learn the imputed effects, and the propensity
//     weighs them.
//
// A fitted [Model] is an ml.Model whose Predict gives the uplift, so it scores a batch as any
// other model; [Model.Scores] adds the two arms' response probabilities where the learner
// identifies them. [GenerateCampaign] draws a campaign with a known (oracle) uplift for
// tests, examples and demonstrations; package metrics scores rankings by uplift
// (metrics.UpliftAtK, metrics.QiniAUC, metrics.UpliftAUC).
//
// Inputs: treatment[i] is 1 for a treated row and 0 for a control row (see [Treatment] for
// booleans), and y[i] is 1 when row i responded and 0 otherwise. The campaign is assumed
// randomised: treatment independent of x, or of x given the propensity for the X-learner
// with a fitted propensity.
package uplift

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"gonum.org/v1/gonum/mat"
)

// Estimator fits an uplift model to the rows of x, their treatments (0 or 1) and their
// outcomes y (0 or 1). Fit returns promptly with ctx's error when ctx is cancelled.
type Estimator interface {
	Fit(ctx context.Context, x *mat.Dense, treatment, y []float64) (Model, error)
}

// Model is a fitted uplift model. Predict (from ml.Model) returns the predicted uplift of
// every row of x; Scores returns it with both arms' response probabilities. Both panic if x
// does not have NumFeatures columns. A Model is safe for concurrent use.
type Model interface {
	ml.Model
	Scores(x *mat.Dense) Scores
}

// Scores are an uplift model's predictions for a batch of rows, one value a row in each
// slice.
type Scores struct {
	// Uplift is the predicted effect of treatment on the probability of a response.
	Uplift []float64 `json:"uplift"`
	// Treated and Control are the predicted probabilities of a response if treated and if
	// not. They are NaN where the learner does not identify them (class transformation).
	// Uplift need not equal Treated − Control (the X-learner's does not).
	Treated []float64 `json:"treated"`
	Control []float64 `json:"control"`
}

// Treatment returns treated as 0/1 values, the form the estimators take.
func Treatment(treated []bool) []float64 {
	t := make([]float64, len(treated))
	for i, b := range treated {
		if b {
			t[i] = 1
		}
	}
	return t
}

// arms holds the row indices of each arm of a checked campaign.
type arms struct {
	treated, control []int
}

// share returns the treated share of the rows.
func (a arms) share() float64 {
	return float64(len(a.treated)) / float64(len(a.treated)+len(a.control))
}

// check validates the inputs of Fit, naming the field at fault, and splits the rows by arm.
func check(x *mat.Dense, treatment, y []float64) (arms, error) {
	if x == nil || x.IsEmpty() {
		return arms{}, errors.New("x: no rows")
	}
	r, _ := x.Dims()
	var errs []error
	if len(treatment) != r {
		errs = append(errs, fmt.Errorf("treatment: %d values for %d rows", len(treatment), r))
	}
	if len(y) != r {
		errs = append(errs, fmt.Errorf("y: %d values for %d rows", len(y), r))
	}
	if len(errs) > 0 {
		return arms{}, errors.Join(errs...)
	}
	var a arms
	badT, badY := -1, -1
	for i := range r {
		switch treatment[i] {
		case 1:
			a.treated = append(a.treated, i)
		case 0:
			a.control = append(a.control, i)
		default:
			if badT < 0 {
				badT = i
			}
		}
		if y[i] != 0 && y[i] != 1 && badY < 0 {
			badY = i
		}
	}
	if badT >= 0 {
		errs = append(errs, fmt.Errorf("treatment[%d] = %g is not 0 or 1", badT, treatment[badT]))
	}
	if badY >= 0 {
		errs = append(errs, fmt.Errorf("y[%d] = %g is not 0 or 1", badY, y[badY]))
	}
	if badT < 0 {
		if len(a.control) == 0 {
			errs = append(errs, errors.New("treatment: no control rows"))
		}
		if len(a.treated) == 0 {
			errs = append(errs, errors.New("treatment: no treated rows"))
		}
	}
	return a, errors.Join(errs...)
}

// rows returns copies of the rows idx of x and of v.
func rows(x *mat.Dense, v []float64, idx []int) (*mat.Dense, []float64) {
	_, c := x.Dims()
	sub := mat.NewDense(len(idx), c, nil)
	out := make([]float64, len(idx))
	for k, i := range idx {
		sub.SetRow(k, x.RawRowView(i))
		out[k] = v[i]
	}
	return sub, out
}

// fitClassifier fits est to x and the 0/1 labels y and returns its model, which must give
// probabilities. field names the estimator in errors.
func fitClassifier(ctx context.Context, est ml.Estimator, field string, x *mat.Dense, y []float64) (ml.ProbabilityModel, error) {
	if est == nil {
		return nil, fmt.Errorf("%s: no estimator", field)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, err := est.Fit(ctx, x, y)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	pm, ok := ml.Probabilities(m)
	if !ok {
		return nil, fmt.Errorf("%s: a %T gives no probabilities", field, m)
	}
	return pm, nil
}

// nans returns n NaNs.
func nans(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = math.NaN()
	}
	return v
}

func checkColumns(x *mat.Dense, features int) {
	if _, c := x.Dims(); c != features {
		panic(fmt.Sprintf("uplift: %d columns for a model of %d features", c, features))
	}
}

// values returns the entries of v as a slice of their own.
func values(v *mat.VecDense) []float64 {
	if raw := v.RawVector(); raw.Inc == 1 && len(raw.Data) == v.Len() {
		return raw.Data
	}
	out := make([]float64, v.Len())
	for i := range out {
		out[i] = v.AtVec(i)
	}
	return out
}
