// Package kernel provides the kernels of kernel SVMs (linear, polynomial, RBF), batched
// kernel matrices computed with one matrix product per block, and the Nyström
// approximation, which maps rows to a low-dimensional feature space where a linear model
// stands in for a kernel model on data too large for an exact kernel SVM.
package kernel

import (
	"fmt"
	"math"

	"github.com/bullseye-ml/bullseye/pkg/ml/internal/parallel"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

// Kind names a kernel function.
type Kind int

const (
	// RBF is exp(−Gamma·||a − b||²).
	RBF Kind = iota
	// Linear is a·b.
	Linear
	// Poly is (Gamma·a·b + Coef0)^Degree.
	Poly
)

// String returns "rbf", "linear" or "poly".
func (k Kind) String() string {
	switch k {
	case RBF:
		return "rbf"
	case Linear:
		return "linear"
	case Poly:
		return "poly"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Kernel is a kernel function with its parameters. It is a plain value: serialise it as it
// is.
type Kernel struct {
	Kind Kind `json:"kind"`
	// Gamma scales RBF and polynomial kernels. Fitting replaces 0 with scikit-learn's
	// "scale", 1 / (features · variance of all entries of the training matrix); see
	// [Kernel.Resolve].
	Gamma float64 `json:"gamma,omitempty"`
	// Coef0 is the polynomial kernel's constant.
	Coef0 float64 `json:"coef0,omitempty"`
	// Degree is the polynomial kernel's degree; 0 means 3.
	Degree int `json:"degree,omitempty"`
}

// Validate checks the parameters.
func (k Kernel) Validate() error {
	switch {
	case k.Kind != RBF && k.Kind != Linear && k.Kind != Poly:
		return fmt.Errorf("unknown kernel kind %d", int(k.Kind))
	case k.Gamma < 0 || math.IsNaN(k.Gamma):
		return fmt.Errorf("kernel gamma %v is negative", k.Gamma)
	case k.Degree < 0:
		return fmt.Errorf("kernel degree %d is negative", k.Degree)
	}
	return nil
}

// Resolve returns k with defaults filled in for the training matrix x: Gamma 0 becomes
// ScaleGamma(x) and Degree 0 becomes 3.
func (k Kernel) Resolve(x *mat.Dense) Kernel {
	if k.Gamma == 0 && k.Kind != Linear {
		k.Gamma = ScaleGamma(x)
	}
	if k.Degree == 0 && k.Kind == Poly {
		k.Degree = 3
	}
	return k
}

// ScaleGamma returns scikit-learn's gamma="scale": 1 / (d · Var(x)), the variance taken
// over all n·d entries; 1 when that variance is 0.
func ScaleGamma(x *mat.Dense) float64 {
	r, c := x.Dims()
	var sum, sq float64
	for i := range r {
		row := x.RawRowView(i)
		sum += floats.Sum(row)
		sq += floats.Dot(row, row)
	}
	n := float64(r * c)
	v := sq/n - (sum/n)*(sum/n)
	if v <= 0 {
		return 1
	}
	return 1 / (float64(c) * v)
}

// FromDot returns k(a, b) given a·b and the squared norms of a and b.
func (k Kernel) FromDot(dot, sqA, sqB float64) float64 {
	switch k.Kind {
	case RBF:
		return math.Exp(-k.Gamma * math.Max(sqA+sqB-2*dot, 0))
	case Poly:
		return powi(k.Gamma*dot+k.Coef0, k.Degree)
	}
	return dot
}

// NeedsNorms reports whether FromDot uses the squared norms.
func (k Kernel) NeedsNorms() bool { return k.Kind == RBF }

func powi(v float64, d int) float64 {
	if d == 0 {
		d = 3
	}
	r := 1.0
	for d > 0 {
		if d&1 == 1 {
			r *= v
		}
		v *= v
		d >>= 1
	}
	return r
}

// Eval returns k(a, b).
func (k Kernel) Eval(a, b []float64) float64 {
	return k.FromDot(floats.Dot(a, b), floats.Dot(a, a), floats.Dot(b, b))
}

// RowNorms returns the squared norm of every row of x.
func RowNorms(x *mat.Dense) []float64 {
	r, _ := x.Dims()
	out := make([]float64, r)
	for i := range out {
		row := x.RawRowView(i)
		out[i] = floats.Dot(row, row)
	}
	return out
}

// blockRows is the number of rows of a whose kernel values Matrix computes per matrix
// product.
const blockRows = 256

// Matrix returns the kernel matrix K[i][j] = k(a_i, b_j), computed in blocks of rows of a,
// one matrix product per block, blocks spread over GOMAXPROCS goroutines. sqB may be nil;
// pass RowNorms(b) when calling repeatedly with the same b.
func (k Kernel) Matrix(a, b *mat.Dense, sqB []float64) *mat.Dense {
	ra, ca := a.Dims()
	rb, cb := b.Dims()
	if ca != cb {
		panic(fmt.Sprintf("kernel: %d columns against %d", ca, cb))
	}
	if sqB == nil && k.NeedsNorms() {
		sqB = RowNorms(b)
	}
	out := mat.NewDense(ra, rb, nil)
	blocks := (ra + blockRows - 1) / blockRows
	parallel.Do(blocks, 0, func(blk int) {
		lo, hi := blk*blockRows, min((blk+1)*blockRows, ra)
		dst := out.Slice(lo, hi, 0, rb).(*mat.Dense)
		src := a.Slice(lo, hi, 0, ca).(*mat.Dense)
		blas64.Gemm(blas.NoTrans, blas.Trans, 1, src.RawMatrix(), b.RawMatrix(), 0, dst.RawMatrix())
		k.apply(dst, src, sqB)
	})
	return out
}

// apply turns the dot products in dst (rows of a against all of b) into kernel values.
func (k Kernel) apply(dst, a *mat.Dense, sqB []float64) {
	r, _ := dst.Dims()
	for i := range r {
		row := dst.RawRowView(i)
		switch k.Kind {
		case RBF:
			ar := a.RawRowView(i)
			sqA := floats.Dot(ar, ar)
			for j, d := range row {
				row[j] = math.Exp(-k.Gamma * math.Max(sqA+sqB[j]-2*d, 0))
			}
		case Poly:
			for j, d := range row {
				row[j] = powi(k.Gamma*d+k.Coef0, k.Degree)
			}
		}
	}
}
