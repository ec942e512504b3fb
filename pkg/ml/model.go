package ml

import (
	"context"

	"gonum.org/v1/gonum/mat"
)

// Model is a fitted model. Predict scores every row of x in one batched computation and
// returns one score per row: the predicted value for regressors, and for classifiers a
// decision value that is larger for the positive class (a margin or a log-odds).
// Predict panics if x does not have NumFeatures columns, as gonum does for shape errors.
// A Model is safe for concurrent use by multiple goroutines.
type Model interface {
	Predict(x *mat.Dense) *mat.VecDense
	NumFeatures() int
}

// ProbabilityModel is a classifier that also gives calibrated probabilities of the
// positive class. Models whose probabilities are optional (an SVM fitted without Platt
// scaling) also implement HasProbabilities; use [Probabilities] to ask.
type ProbabilityModel interface {
	Model
	PredictProba(x *mat.Dense) *mat.VecDense
}

// Probabilities returns m as a ProbabilityModel when it gives probabilities.
func Probabilities(m Model) (ProbabilityModel, bool) {
	pm, ok := m.(ProbabilityModel)
	if !ok {
		return nil, false
	}
	if h, ok := m.(interface{ HasProbabilities() bool }); ok && !h.HasProbabilities() {
		return nil, false
	}
	return pm, true
}

// Noter is implemented by models that have something to say about how they were fitted,
// such as a kernel SVM trained on a subsample of the rows. Model selection shows the note
// in its leaderboard.
type Noter interface {
	FitNote() string
}

// Estimator fits a model to the rows of x with targets y (0 or 1 for classifiers).
// Fit returns promptly with ctx's error when ctx is cancelled.
type Estimator interface {
	Fit(ctx context.Context, x *mat.Dense, y []float64) (Model, error)
}

// CategoricalEstimator is an estimator that splits categories natively: its design
// matrix holds category codes in some columns (see preprocess.Spec.Native), and
// WithCategorical returns the estimator told which columns those are.
type CategoricalEstimator interface {
	Estimator
	WithCategorical(categorical []bool) Estimator
}

// ThreadedEstimator is an estimator whose fit shares its work among goroutines; WithThreads
// returns it bound to n of them, so that fits running side by side (the folds of a search)
// share the cores instead of each taking all of them.
type ThreadedEstimator interface {
	Estimator
	WithThreads(n int) Estimator
}

// Convergence reports how an iterative solver ended. Fitted models embed it, so a model m
// has m.Converged and m.Iterations; closed-form solvers report Converged with one iteration.
type Convergence struct {
	// Converged is true when the solver met its tolerance before its iteration cap.
	Converged bool `json:"converged"`
	// Iterations is the number of outer iterations the solver ran (epochs for coordinate
	// descent, Newton steps for trust-region Newton, pair updates for SMO).
	Iterations int `json:"iterations"`
}

// Status returns c; it lets callers read the convergence of any model that embeds it
// through the [Converger] interface.
func (c Convergence) Status() Convergence { return c }

// Converger is implemented by every model that embeds [Convergence].
type Converger interface {
	Status() Convergence
}

// Matrix is a dense row-major matrix as a plain value, for the fitted parameters of
// models (support vectors, landmarks) that must serialise as they are.
type Matrix struct {
	Rows int       `json:"rows"`
	Cols int       `json:"cols"`
	Data []float64 `json:"data"`
}

// NewMatrix copies m.
func NewMatrix(m mat.Matrix) Matrix {
	r, c := m.Dims()
	out := Matrix{Rows: r, Cols: c, Data: make([]float64, r*c)}
	mat.NewDense(r, c, out.Data).Copy(m)
	return out
}

// Dense returns a gonum view of m that shares its data.
func (m Matrix) Dense() *mat.Dense { return mat.NewDense(m.Rows, m.Cols, m.Data) }
