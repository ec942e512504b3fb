package uplift

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"gonum.org/v1/gonum/mat"
)

// ClassTransformation is the class variable transformation of Jaskowski and Jaroszewicz
// (2012): Base, a classifier whose models give probabilities, is fitted once on all rows to
// the label
//
//	z = y·t + (1 − y)(1 − t),
//
// 1 for a treated responder or a control non-responder, and the uplift of a row is
// 2·P(z = 1 | x) − 1.
//
// The identity needs P(t = 1 | x) = ½: then P(z = 1 | x) = ½·p_T(x) + ½·(1 − p_C(x)). With a
// treated share p ≠ ½ the same classifier would estimate p·p_T + (1 − p)(1 − p_C), and
// 2·P(z = 1) − 1 would be off by (2p − 1)(p_T + p_C − 1). Fit therefore
// balances the arms first: it leaves out a random subset of the larger arm's rows (chosen
// by Seed) so that both arms have as many rows as the smaller, which reweights the arms to
// ½ each without needing an estimator that takes row weights. In a randomised campaign the
// rows kept are still a random sample of their arm, so the estimate stays unbiased; the
// price is the rows left out (none when the arms are equal, a few hundred of tens of
// thousands for a fair coin). [ClassTransformationFit.LeftOut] says how many.
//
// One model of z does not identify either arm's response probability, so Scores gives NaN
// for Treated and Control; fit [TwoModels] when they are needed.
type ClassTransformation struct {
	// Base fits the model of z.
	Base ml.Estimator
	// Seed chooses the rows left out to balance the arms.
	Seed uint64
}

var _ Estimator = ClassTransformation{}

// Fit implements Estimator; the model is a *ClassTransformationFit.
func (e ClassTransformation) Fit(ctx context.Context, x *mat.Dense, treatment, y []float64) (Model, error) {
	m, err := e.FitClassTransformation(ctx, x, treatment, y)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// FitClassTransformation is Fit returning the concrete model.
func (e ClassTransformation) FitClassTransformation(ctx context.Context, x *mat.Dense, treatment, y []float64) (*ClassTransformationFit, error) {
	a, err := check(x, treatment, y)
	if err != nil {
		return nil, fmt.Errorf("class-transformation uplift: %w", err)
	}
	keep, left, larger := balance(a, e.Seed)
	z := make([]float64, len(y))
	for i := range z {
		z[i] = y[i]*treatment[i] + (1-y[i])*(1-treatment[i])
	}
	xs, zs := rows(x, z, keep)
	m, err := fitClassifier(ctx, e.Base, "base", xs, zs)
	if err != nil {
		return nil, fmt.Errorf("class-transformation uplift: %w", err)
	}
	_, c := x.Dims()
	return &ClassTransformationFit{Model: m, Features: c, LeftOut: left, LeftOutOf: larger}, nil
}

// balance returns the rows, in row order, of both arms cut to the size of the smaller: all
// of the smaller arm's rows and a random subset of the larger's. It returns too how many
// rows it left out and the name of the arm they came from.
func balance(a arms, seed uint64) (keep []int, left int, larger string) {
	small, big, larger := a.control, a.treated, "treated"
	if len(a.treated) < len(a.control) {
		small, big, larger = a.treated, a.control, "control"
	}
	left = len(big) - len(small)
	if left == 0 {
		return slices.Concat(a.treated, a.control), 0, ""
	}
	rng := rand.New(rand.NewPCG(seed, 0x75706c696674)) // "uplift"
	perm := rng.Perm(len(big))[:len(small)]
	keep = make([]int, 0, 2*len(small))
	keep = append(keep, small...)
	for _, k := range perm {
		keep = append(keep, big[k])
	}
	slices.Sort(keep)
	return keep, left, larger
}

// ClassTransformationFit is a fitted class-transformation uplift model.
type ClassTransformationFit struct {
	// Model is the classifier of z.
	Model ml.ProbabilityModel
	// Features is the number of input columns.
	Features int
	// LeftOut is the number of rows of the larger arm, LeftOutOf ("treated" or "control"),
	// left out to balance the arms.
	LeftOut   int
	LeftOutOf string
}

var _ Model = (*ClassTransformationFit)(nil)

// NumFeatures returns the number of input columns.
func (m *ClassTransformationFit) NumFeatures() int { return m.Features }

// Predict returns 2·P(z = 1 | x) − 1 for every row of x.
func (m *ClassTransformationFit) Predict(x *mat.Dense) *mat.VecDense {
	checkColumns(x, m.Features)
	u := values(m.Model.PredictProba(x))
	for i, v := range u {
		u[i] = 2*v - 1
	}
	return mat.NewVecDense(len(u), u)
}

// Scores returns the uplift, and NaN for both arms' probabilities, which one model of z
// does not identify.
func (m *ClassTransformationFit) Scores(x *mat.Dense) Scores {
	u := values(m.Predict(x))
	return Scores{Uplift: u, Treated: nans(len(u)), Control: nans(len(u))}
}

// FitNote says how many rows balancing the arms left out.
func (m *ClassTransformationFit) FitNote() string {
	if m.LeftOut == 0 {
		return ""
	}
	return fmt.Sprintf("balanced the arms by leaving out %d %s rows", m.LeftOut, m.LeftOutOf)
}
