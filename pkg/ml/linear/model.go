// Package linear provides the linear model that linear regression, logistic regression and
// linear SVMs all fit, and the regression solvers: ordinary least squares (QR), ridge
// (Cholesky), and lasso and elastic net (coordinate descent).
package linear

import (
	"fmt"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"gonum.org/v1/gonum/mat"
)

// Model is a fitted linear model: score(x) = Weights · x + Intercept. It is a plain value:
// serialise it as it is.
type Model struct {
	Weights   []float64 `json:"weights"`
	Intercept float64   `json:"intercept"`
	ml.Convergence
}

var _ ml.Model = (*Model)(nil)

// NumFeatures returns the number of weights.
func (m *Model) NumFeatures() int { return len(m.Weights) }

// Predict returns X·Weights + Intercept, computed as one matrix-vector product.
func (m *Model) Predict(x *mat.Dense) *mat.VecDense {
	r, c := x.Dims()
	if c != len(m.Weights) {
		panic(fmt.Sprintf("linear: predict on %d features, model has %d", c, len(m.Weights)))
	}
	out := mat.NewVecDense(r, nil)
	out.MulVec(x, mat.NewVecDense(c, m.Weights))
	raw := out.RawVector().Data
	for i := range raw {
		raw[i] += m.Intercept
	}
	return out
}

func checkXY(x *mat.Dense, y []float64) error {
	r, c := x.Dims()
	if r != len(y) {
		return fmt.Errorf("%d rows but %d targets", r, len(y))
	}
	if r == 0 || c == 0 {
		return fmt.Errorf("empty design matrix (%d×%d)", r, c)
	}
	return nil
}

// center returns the column means of x and a centred copy of x.
func center(x *mat.Dense) ([]float64, *mat.Dense) {
	r, c := x.Dims()
	means := make([]float64, c)
	for i := range r {
		for j, v := range x.RawRowView(i) {
			means[j] += v
		}
	}
	for j := range means {
		means[j] /= float64(r)
	}
	xc := mat.NewDense(r, c, nil)
	for i := range r {
		row, src := xc.RawRowView(i), x.RawRowView(i)
		for j := range row {
			row[j] = src[j] - means[j]
		}
	}
	return means, xc
}

func meanOf(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// finish sets the intercept that goes with weights fitted on centred data.
func finish(w, xMeans []float64, yMean float64) float64 {
	b := yMean
	for j, m := range xMeans {
		b -= w[j] * m
	}
	return b
}

// FromWeights builds a model from solver weights over d features plus, when bias > 0, a
// constant feature of value bias whose weight carries the intercept.
func FromWeights(w []float64, d int, bias float64, conv ml.Convergence) Model {
	m := Model{Weights: append([]float64(nil), w[:d]...), Convergence: conv}
	if bias > 0 {
		m.Intercept = w[d] * bias
	}
	return m
}
