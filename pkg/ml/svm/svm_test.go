package svm_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/kernel"
	"github.com/bullseye-ml/bullseye/pkg/ml/svm"
	"go.uber.org/goleak"
	"gonum.org/v1/gonum/mat"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rings draws two noisy concentric rings: not linearly separable, overlapping a little.
func rings(n int, seed uint64) (*mat.Dense, []float64) {
	rng := rand.New(rand.NewPCG(seed, 9))
	x := mat.NewDense(n, 2, nil)
	y := make([]float64, n)
	for i := range n {
		r := 1.0
		if i%2 == 1 {
			r, y[i] = 2, 1
		}
		a := rng.Float64() * 2 * math.Pi
		x.Set(i, 0, r*math.Cos(a)+0.35*rng.NormFloat64())
		x.Set(i, 1, r*math.Sin(a)+0.35*rng.NormFloat64())
	}
	return x, y
}

// blobs draws two Gaussian blobs in d dimensions, separated along every axis by sep.
func blobs(n, d int, sep float64, seed uint64) (*mat.Dense, []float64) {
	rng := rand.New(rand.NewPCG(seed, 8))
	x := mat.NewDense(n, d, nil)
	y := make([]float64, n)
	for i := range n {
		c := -sep / 2
		if i%2 == 1 {
			c, y[i] = sep/2, 1
		}
		for j := range d {
			x.Set(i, j, c+rng.NormFloat64())
		}
	}
	return x, y
}

// TestKernelTwoPoints solves the smallest separable problem by hand: x = ±(1, 0), linear
// kernel. The maximum-margin solution is w = (1, 0), b = 0, reached with α = ½ for both rows,
// so f(x) = x₁.
func TestKernelTwoPoints(t *testing.T) {
	x := mat.NewDense(2, 2, []float64{1, 0, -1, 0})
	m, err := svm.Kernel{C: 10, Kernel: kernel.Kernel{Kind: kernel.Linear}}.FitKernel(context.Background(), x, []float64{1, 0})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Coef) != 2 || math.Abs(m.Coef[0]-0.5) > 1e-9 || math.Abs(m.Coef[1]+0.5) > 1e-9 || math.Abs(m.Rho) > 1e-9 {
		t.Fatalf("coef %v rho %v, want [0.5 −0.5] and 0", m.Coef, m.Rho)
	}
	p := m.Predict(mat.NewDense(2, 2, []float64{3, 7, -0.25, 1}))
	if math.Abs(p.AtVec(0)-3) > 1e-9 || math.Abs(p.AtVec(1)+0.25) > 1e-9 {
		t.Errorf("decision values %v, want [3 −0.25]", p.RawVector().Data)
	}
}

// alphas returns α_i of every training row from a kernel model.
func alphas(m *svm.KernelModel, n int) []float64 {
	a := make([]float64, n)
	for k, i := range m.Indices {
		a[i] = math.Abs(m.Coef[k])
	}
	return a
}

// TestKernelKKT checks the optimality conditions of the dual solution on a non-separable
// problem: y f(x) ≥ 1 where α = 0, y f(x) = 1 where 0 < α < C, y f(x) ≤ 1 where α = C,
// within SMO's tolerance; for each kernel.
func TestKernelKKT(t *testing.T) {
	x, y := rings(400, 1)
	const c = 2.0
	for _, k := range []kernel.Kernel{
		{Kind: kernel.RBF},
		{Kind: kernel.RBF, Gamma: 2},
		{Kind: kernel.Poly, Degree: 2, Coef0: 1},
		{Kind: kernel.Linear},
	} {
		m, err := svm.Kernel{C: c, Kernel: k, Tol: 1e-5}.FitKernel(context.Background(), x, y)
		if err != nil {
			t.Fatal(err)
		}
		if !m.Converged {
			t.Errorf("%v: not converged", k.Kind)
		}
		a := alphas(m, len(y))
		f := m.Predict(x)
		var bad, sum int
		var eq float64
		for i := range y {
			yi := 2*y[i] - 1
			margin := yi * f.AtVec(i)
			eq += a[i] * yi
			sum++
			const tol = 1e-3
			switch {
			case a[i] == 0 && margin < 1-tol,
				a[i] > 0 && a[i] < c-1e-9 && math.Abs(margin-1) > tol,
				a[i] >= c-1e-9 && margin > 1+tol:
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("%v: %d of %d rows violate the optimality conditions", k.Kind, bad, sum)
		}
		if math.Abs(eq) > 1e-9 {
			t.Errorf("%v: Σ α_i y_i = %v, want 0", k.Kind, eq)
		}
	}
}

// TestKernelCacheAndShrinking checks that the kernel cache changes nothing but speed (a 1 MB
// cache that holds a fraction of the rows gives bit-identical results to a large one) and
// that shrinking reaches the same optimum.
func TestKernelCacheAndShrinking(t *testing.T) {
	x, y := rings(1600, 2) // a row of Q is 6.4 kB: 1 MB holds about 160 of 1,600
	ref, err := svm.Kernel{C: 1}.FitKernel(context.Background(), x, y)
	if err != nil {
		t.Fatal(err)
	}
	small, err := svm.Kernel{C: 1, CacheMB: 1}.FitKernel(context.Background(), x, y)
	if err != nil {
		t.Fatal(err)
	}
	if small.Iterations != ref.Iterations || small.Rho != ref.Rho || len(small.Coef) != len(ref.Coef) {
		t.Fatalf("small cache: %d iterations, rho %v, %d SVs; large: %d, %v, %d",
			small.Iterations, small.Rho, len(small.Coef), ref.Iterations, ref.Rho, len(ref.Coef))
	}
	for k := range ref.Coef {
		if small.Coef[k] != ref.Coef[k] {
			t.Fatalf("coef %d: %v with a small cache, %v with a large one", k, small.Coef[k], ref.Coef[k])
		}
	}
	noShrink, err := svm.Kernel{C: 1, NoShrinking: true}.FitKernel(context.Background(), x, y)
	if err != nil {
		t.Fatal(err)
	}
	fr, fn := ref.Predict(x), noShrink.Predict(x)
	for i := range y {
		if math.Abs(fr.AtVec(i)-fn.AtVec(i)) > 2e-3 {
			t.Fatalf("row %d: %v with shrinking, %v without", i, fr.AtVec(i), fn.AtVec(i))
		}
	}
}

func TestKernelBatchedPredict(t *testing.T) {
	x, y := rings(300, 3)
	m, err := svm.Kernel{C: 1}.FitKernel(context.Background(), x, y)
	if err != nil {
		t.Fatal(err)
	}
	got := m.Predict(x)
	sv := m.SupportVectors.Dense()
	for i := range y {
		want := -m.Rho
		for k := range m.Coef {
			want += m.Coef[k] * m.Kernel.Eval(sv.RawRowView(k), x.RawRowView(i))
		}
		if math.Abs(got.AtVec(i)-want) > 1e-9 {
			t.Fatalf("row %d: batched %v, one by one %v", i, got.AtVec(i), want)
		}
	}
	// The model survives JSON.
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back svm.KernelModel
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !mat.EqualApprox(back.Predict(x), got, 1e-12) {
		t.Error("predictions changed through JSON")
	}
}

func TestKernelProbability(t *testing.T) {
	x, y := rings(400, 4)
	m, err := svm.Kernel{C: 1, Probability: true, Seed: 1}.FitKernel(context.Background(), x, y)
	if err != nil {
		t.Fatal(err)
	}
	if m.Platt == nil || m.Platt.A >= 0 {
		t.Fatalf("Platt = %+v, want A < 0", m.Platt)
	}
	pm, ok := ml.Probabilities(m)
	if !ok {
		t.Fatal("model with Platt scaling gives no probabilities")
	}
	f, p := m.Predict(x), pm.PredictProba(x)
	for i := range y {
		if want := 1 / (1 + math.Exp(m.Platt.A*f.AtVec(i)+m.Platt.B)); math.Abs(p.AtVec(i)-want) > 1e-12 {
			t.Fatalf("row %d: probability %v, want %v", i, p.AtVec(i), want)
		}
	}
	plain, _ := svm.Kernel{C: 1}.FitKernel(context.Background(), x, y)
	if _, ok := ml.Probabilities(plain); ok {
		t.Error("model without Platt scaling claims probabilities")
	}
}

func TestKernelSubsample(t *testing.T) {
	x, y := blobs(500, 3, 2, 5)
	m, err := svm.Kernel{C: 1, MaxRows: 200, Seed: 2}.FitKernel(context.Background(), x, y)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subsampled != 200 || m.Rows != 500 || !strings.Contains(m.FitNote(), "200 of 500") {
		t.Errorf("subsampled %d of %d, note %q", m.Subsampled, m.Rows, m.FitNote())
	}
	sv := m.SupportVectors.Dense()
	for k, i := range m.Indices {
		if !mat.Equal(sv.RowView(k), x.RowView(i)) {
			t.Fatalf("support vector %d is not training row %d", k, i)
		}
	}
}

// TestPlattRecovers draws decision values and labels from a known sigmoid and checks that
// FitPlatt recovers its parameters.
func TestPlattRecovers(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	const a, b = -1.5, 0.3
	n := 20000
	f, y := make([]float64, n), make([]float64, n)
	for i := range n {
		f[i] = 2 * rng.NormFloat64()
		if rng.Float64() < 1/(1+math.Exp(a*f[i]+b)) {
			y[i] = 1
		}
	}
	p, err := svm.FitPlatt(f, y)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(p.A-a) > 0.08 || math.Abs(p.B-b) > 0.08 {
		t.Errorf("A, B = %v, %v; want about %v, %v", p.A, p.B, a, b)
	}
}

// primal returns ½||w̃||² + C Σ loss(y_i w̃·x̃_i) for a linear SVM with intercept feature 1.
func primal(m *svm.LinearModel, x *mat.Dense, y []float64, c float64, loss svm.Loss, dw []float64) float64 {
	n, d := x.Dims()
	w := append(append([]float64(nil), m.Weights...), m.Intercept)
	for j := range dw {
		w[j] += dw[j]
	}
	var f float64
	for _, v := range w {
		f += 0.5 * v * v
	}
	for i := range n {
		z := w[d]
		for j := range d {
			z += w[j] * x.At(i, j)
		}
		if h := 1 - (2*y[i]-1)*z; h > 0 {
			if loss == svm.SquaredHinge {
				h *= h
			}
			f += c * h
		}
	}
	return f
}

// TestLinearSolvers checks the linear SVM: dual coordinate descent and the primal Newton
// solver reach the same squared-hinge solution, and each solution is a minimum of its
// primal objective (no small step in any direction lowers it).
func TestLinearSolvers(t *testing.T) {
	x, y := blobs(600, 5, 1, 7)
	const c = 0.5
	dual, err := svm.Linear{C: c, Tol: 1e-8, MaxIter: 100000, Seed: 1}.FitLinear(context.Background(), x, y)
	if err != nil {
		t.Fatal(err)
	}
	prim, err := svm.Linear{C: c, Solver: svm.Primal, Tol: 1e-10}.FitLinear(context.Background(), x, y)
	if err != nil {
		t.Fatal(err)
	}
	if !dual.Converged || !prim.Converged {
		t.Errorf("converged: dual %v (%d epochs), primal %v", dual.Converged, dual.Iterations, prim.Converged)
	}
	for j := range dual.Weights {
		if math.Abs(dual.Weights[j]-prim.Weights[j]) > 1e-4 {
			t.Errorf("w[%d]: dual %v, primal %v", j, dual.Weights[j], prim.Weights[j])
		}
	}
	hinge, err := svm.Linear{C: c, Loss: svm.Hinge, Tol: 1e-8, MaxIter: 100000}.FitLinear(context.Background(), x, y)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct {
		name string
		m    *svm.LinearModel
		loss svm.Loss
	}{{"squared hinge", dual, svm.SquaredHinge}, {"hinge", hinge, svm.Hinge}} {
		f0 := primal(tc.m, x, y, c, tc.loss, nil)
		for range 50 {
			dw := make([]float64, 6)
			for j := range dw {
				dw[j] = 1e-3 * rng.NormFloat64()
			}
			if f := primal(tc.m, x, y, c, tc.loss, dw); f < f0-1e-6 {
				t.Errorf("%s: a step lowers the primal objective from %v to %v", tc.name, f0, f)
				break
			}
		}
	}
}

// TestLinearSeparable: on well separated blobs with a large C every row ends outside the
// margin (up to the tolerance).
func TestLinearSeparable(t *testing.T) {
	x, y := blobs(200, 2, 8, 8)
	m, err := svm.Linear{C: 100, Loss: svm.Hinge, Tol: 1e-6, MaxIter: 100000}.FitLinear(context.Background(), x, y)
	if err != nil {
		t.Fatal(err)
	}
	f := m.Predict(x)
	for i := range y {
		if margin := (2*y[i] - 1) * f.AtVec(i); margin < 1-1e-3 {
			t.Fatalf("row %d margin %v < 1", i, margin)
		}
	}
}

func TestLinearErrors(t *testing.T) {
	x, y := blobs(20, 2, 1, 9)
	if _, err := (svm.Linear{Solver: svm.Primal, Loss: svm.Hinge}).Fit(context.Background(), x, y); err == nil {
		t.Error("primal hinge: no error")
	}
	if _, err := (svm.Kernel{Kernel: kernel.Kernel{Kind: 9}}).Fit(context.Background(), x, y); err == nil {
		t.Error("unknown kernel: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, est := range []ml.Estimator{svm.Linear{}, svm.Linear{Solver: svm.Primal}, svm.Kernel{}} {
		if _, err := est.Fit(ctx, x, y); !errors.Is(err, context.Canceled) {
			t.Errorf("%T with a cancelled context: err = %v", est, err)
		}
	}
}
