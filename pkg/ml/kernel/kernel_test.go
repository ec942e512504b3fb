package kernel_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/kernel"
	"github.com/bullseye-ml/bullseye/pkg/ml/logistic"
	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
	"go.uber.org/goleak"
	"gonum.org/v1/gonum/mat"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func random(r, c int, seed uint64) *mat.Dense {
	rng := rand.New(rand.NewPCG(seed, 4))
	x := mat.NewDense(r, c, nil)
	for i := range r {
		for j := range c {
			x.Set(i, j, rng.NormFloat64())
		}
	}
	return x
}

func TestEval(t *testing.T) {
	a, b := []float64{1, 2}, []float64{0, -1}
	// a·b = −2, ||a − b||² = 1 + 9 = 10.
	for _, tc := range []struct {
		k    kernel.Kernel
		want float64
	}{
		{kernel.Kernel{Kind: kernel.Linear}, -2},
		{kernel.Kernel{Kind: kernel.RBF, Gamma: 0.1}, math.Exp(-1)},
		{kernel.Kernel{Kind: kernel.Poly, Gamma: 0.5, Coef0: 2, Degree: 3}, 1}, // (−1 + 2)³
		{kernel.Kernel{Kind: kernel.Poly, Gamma: 1, Coef0: 0, Degree: 2}, 4},   // (−2)²
		{kernel.Kernel{Kind: kernel.Poly, Gamma: 1, Coef0: 1}, -1},             // degree 0 means 3: (−1)³
	} {
		if got := tc.k.Eval(a, b); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%+v: k(a, b) = %v, want %v", tc.k, got, tc.want)
		}
	}
}

// TestMatrix checks the blocked, batched kernel matrix against one-by-one evaluation, with
// more rows than one block.
func TestMatrix(t *testing.T) {
	a, b := random(600, 5, 1), random(70, 5, 2)
	for _, k := range []kernel.Kernel{
		{Kind: kernel.RBF, Gamma: 0.3}, {Kind: kernel.Linear}, {Kind: kernel.Poly, Gamma: 0.2, Coef0: 1, Degree: 2},
	} {
		km := k.Matrix(a, b, nil)
		for i := range 600 {
			for j := range 70 {
				if want := k.Eval(a.RawRowView(i), b.RawRowView(j)); math.Abs(km.At(i, j)-want) > 1e-12 {
					t.Fatalf("%v: K[%d][%d] = %v, want %v", k.Kind, i, j, km.At(i, j), want)
				}
			}
		}
	}
}

func TestScaleGamma(t *testing.T) {
	// Entries 1, 2, 3, 4, 5, 6: mean 3.5, variance 35/12; 3 columns: gamma = 1/(3·35/12) = 4/35.
	x := mat.NewDense(2, 3, []float64{1, 2, 3, 4, 5, 6})
	if got := kernel.ScaleGamma(x); math.Abs(got-4.0/35) > 1e-15 {
		t.Errorf("ScaleGamma = %v, want 4/35", got)
	}
	if got := kernel.ScaleGamma(mat.NewDense(2, 2, []float64{3, 3, 3, 3})); got != 1 {
		t.Errorf("ScaleGamma of a constant matrix = %v, want 1", got)
	}
	k := kernel.Kernel{Kind: kernel.Poly}.Resolve(x)
	if k.Degree != 3 || math.Abs(k.Gamma-4.0/35) > 1e-15 {
		t.Errorf("Resolve = %+v", k)
	}
}

// TestNystroemExact: with every row a landmark, φ(X)φ(X)ᵀ reproduces the kernel matrix.
func TestNystroemExact(t *testing.T) {
	x := random(40, 3, 3)
	k := kernel.Kernel{Kind: kernel.RBF, Gamma: 0.5}
	p, err := kernel.Nystroem{Kernel: k, Components: 40}.Fit(x)
	if err != nil {
		t.Fatal(err)
	}
	phi := p.Transform(x)
	var approx mat.Dense
	approx.Mul(phi, phi.T())
	if exact := k.Matrix(x, x, nil); !mat.EqualApprox(&approx, exact, 1e-8) {
		t.Errorf("φφᵀ differs from K by up to %v", maxAbsDiff(&approx, exact))
	}
}

func maxAbsDiff(a, b mat.Matrix) float64 {
	var d mat.Dense
	d.Sub(a, b)
	return mat.Norm(&d, math.Inf(1))
}

// TestNystroemLogistic: a linear model on Nyström features separates rings that a linear
// model on the raw features cannot.
func TestNystroemLogistic(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	n := 600
	x := mat.NewDense(n, 2, nil)
	y := make([]float64, n)
	for i := range n {
		r := 1.0
		if i%2 == 1 {
			r, y[i] = 2.5, 1
		}
		a := rng.Float64() * 2 * math.Pi
		x.Set(i, 0, r*math.Cos(a)+0.2*rng.NormFloat64())
		x.Set(i, 1, r*math.Sin(a)+0.2*rng.NormFloat64())
	}
	auc := func(est ml.Estimator) float64 {
		m, err := est.Fit(context.Background(), x, y)
		if err != nil {
			t.Fatal(err)
		}
		v, err := metrics.ROCAUC(y, m.Predict(x).RawVector().Data)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	lin := auc(logistic.Regression{})
	ny := auc(kernel.NystroemEstimator{
		Nystroem:  kernel.Nystroem{Kernel: kernel.Kernel{Kind: kernel.RBF, Gamma: 1}, Components: 50, Seed: 1},
		Estimator: logistic.Regression{C: 10},
	})
	if lin > 0.7 || ny < 0.98 {
		t.Errorf("AUC: linear %v (want ≤ 0.7), Nyström %v (want ≥ 0.98)", lin, ny)
	}
}
