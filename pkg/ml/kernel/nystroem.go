package kernel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"gonum.org/v1/gonum/mat"
)

// Nystroem configures the Nyström approximation (Williams and Seeger 2001): with m landmark
// rows L drawn from the training rows, a row x maps to φ(x) = k(x, L) U Λ^(−½), where
// k(L, L) = U Λ Uᵀ, so that φ(a)·φ(b) approximates k(a, b). A linear model fitted on φ then
// approximates a kernel model at a cost linear in the number of rows.
type Nystroem struct {
	// Kernel is the kernel to approximate; Gamma 0 is resolved on the training matrix.
	Kernel Kernel
	// Components is the number of landmarks m; 0 means 100 (capped at the number of rows).
	Components int
	// Seed draws the landmarks, uniformly without replacement.
	Seed uint64
}

// NystroemMap is a fitted Nyström feature map. It is a plain value: serialise it as it is.
type NystroemMap struct {
	Kernel    Kernel    `json:"kernel"`
	Landmarks ml.Matrix `json:"landmarks"`
	// Projection is U Λ^(−½) over the eigenvalues kept (those above 1e-12 times the
	// largest): one column per output feature.
	Projection ml.Matrix `json:"projection"`
}

// Fit draws the landmarks from the rows of x and factorises their kernel matrix.
func (n Nystroem) Fit(x *mat.Dense) (*NystroemMap, error) {
	if err := n.Kernel.Validate(); err != nil {
		return nil, fmt.Errorf("nystroem: %w", err)
	}
	r, c := x.Dims()
	m := n.Components
	if m == 0 {
		m = 100
	}
	if m < 0 {
		return nil, fmt.Errorf("nystroem: %d components", m)
	}
	m = min(m, r)
	rng := rand.New(rand.NewPCG(n.Seed, 0x4e79))
	rows := rng.Perm(r)[:m]
	slices.Sort(rows)
	lm := mat.NewDense(m, c, nil)
	for k, i := range rows {
		lm.SetRow(k, x.RawRowView(i))
	}
	kern := n.Kernel.Resolve(x)
	kmm := kern.Matrix(lm, lm, nil)
	sym := mat.NewSymDense(m, nil)
	for i := range m {
		for j := i; j < m; j++ {
			sym.SetSym(i, j, (kmm.At(i, j)+kmm.At(j, i))/2)
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(sym, true) {
		return nil, errors.New("nystroem: eigendecomposition of the landmark kernel matrix failed")
	}
	vals := eig.Values(nil)
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	top := slices.Max(vals)
	var keep []int
	for j, v := range vals {
		if v > 1e-12*top {
			keep = append(keep, j)
		}
	}
	if len(keep) == 0 {
		return nil, errors.New("nystroem: landmark kernel matrix is zero")
	}
	proj := mat.NewDense(m, len(keep), nil)
	for k, j := range keep {
		s := 1 / math.Sqrt(vals[j])
		for i := range m {
			proj.Set(i, k, vecs.At(i, j)*s)
		}
	}
	return &NystroemMap{Kernel: kern, Landmarks: ml.NewMatrix(lm), Projection: ml.NewMatrix(proj)}, nil
}

// NumFeatures returns the number of input columns.
func (p *NystroemMap) NumFeatures() int { return p.Landmarks.Cols }

// NumComponents returns the number of output features.
func (p *NystroemMap) NumComponents() int { return p.Projection.Cols }

// Transform returns φ(x) for every row of x: one batched kernel matrix and one matrix
// product.
func (p *NystroemMap) Transform(x *mat.Dense) *mat.Dense {
	k := p.Kernel.Matrix(x, p.Landmarks.Dense(), nil)
	var out mat.Dense
	out.Mul(k, p.Projection.Dense())
	return &out
}

// NystroemEstimator fits Estimator (a linear SVM or logistic regression) on the Nyström
// features of the training rows.
type NystroemEstimator struct {
	Nystroem  Nystroem
	Estimator ml.Estimator
}

// NystroemModel is a linear model on Nyström features.
type NystroemModel struct {
	Map   *NystroemMap `json:"map"`
	Inner ml.Model     `json:"inner"`
}

var _ ml.Model = (*NystroemModel)(nil)

// Fit implements [ml.Estimator].
func (e NystroemEstimator) Fit(ctx context.Context, x *mat.Dense, y []float64) (ml.Model, error) {
	if e.Estimator == nil {
		return nil, errors.New("nystroem: no estimator")
	}
	p, err := e.Nystroem.Fit(x)
	if err != nil {
		return nil, err
	}
	inner, err := e.Estimator.Fit(ctx, p.Transform(x), y)
	if err != nil {
		return nil, fmt.Errorf("nystroem: %w", err)
	}
	return &NystroemModel{Map: p, Inner: inner}, nil
}

// NumFeatures returns the number of input columns.
func (m *NystroemModel) NumFeatures() int { return m.Map.NumFeatures() }

// Predict returns the inner model's scores on the Nyström features of x.
func (m *NystroemModel) Predict(x *mat.Dense) *mat.VecDense {
	return m.Inner.Predict(m.Map.Transform(x))
}

// HasProbabilities reports whether the inner model gives probabilities.
func (m *NystroemModel) HasProbabilities() bool {
	_, ok := ml.Probabilities(m.Inner)
	return ok
}

// PredictProba returns the inner model's probabilities; it panics when the inner model has
// none.
func (m *NystroemModel) PredictProba(x *mat.Dense) *mat.VecDense {
	pm, ok := m.Inner.(ml.ProbabilityModel)
	if !ok {
		panic("kernel: PredictProba on a Nyström model whose inner model gives no probabilities")
	}
	return pm.PredictProba(m.Map.Transform(x))
}

// Status reports the inner model's convergence when it has one.
func (m *NystroemModel) Status() ml.Convergence {
	if c, ok := m.Inner.(ml.Converger); ok {
		return c.Status()
	}
	return ml.Convergence{Converged: true, Iterations: 1}
}
