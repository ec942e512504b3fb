package linear_test

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/linear"
	"gonum.org/v1/gonum/mat"
)

func randomProblem(n, d int, seed uint64) (*mat.Dense, []float64, []float64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	x := mat.NewDense(n, d, nil)
	w := make([]float64, d)
	for j := range w {
		w[j] = rng.NormFloat64()
	}
	y := make([]float64, n)
	for i := range n {
		y[i] = 0.5
		for j := range d {
			v := rng.NormFloat64() + float64(j)
			x.Set(i, j, v)
			y[i] += w[j] * v
		}
		y[i] += 0.1 * rng.NormFloat64()
	}
	return x, y, w
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

// TestOLSNormalEquations compares the QR solution with the normal equations
// [1 X]ᵀ[1 X] β = [1 X]ᵀ y solved independently.
func TestOLSNormalEquations(t *testing.T) {
	x, y, _ := randomProblem(60, 4, 7)
	m, err := linear.OLS{}.FitLinear(context.Background(), x, y)
	if err != nil {
		t.Fatal(err)
	}
	n, d := x.Dims()
	a := mat.NewDense(n, d+1, nil)
	for i := range n {
		a.Set(i, 0, 1)
		for j := range d {
			a.Set(i, j+1, x.At(i, j))
		}
	}
	var ata mat.Dense
	ata.Mul(a.T(), a)
	var aty, beta mat.VecDense
	aty.MulVec(a.T(), mat.NewVecDense(n, y))
	if err := beta.SolveVec(&ata, &aty); err != nil {
		t.Fatal(err)
	}
	if !near(m.Intercept, beta.AtVec(0), 1e-9) {
		t.Errorf("intercept = %v, want %v", m.Intercept, beta.AtVec(0))
	}
	for j := range d {
		if !near(m.Weights[j], beta.AtVec(j+1), 1e-9) {
			t.Errorf("w[%d] = %v, want %v", j, m.Weights[j], beta.AtVec(j+1))
		}
	}
	if !m.Converged || m.Iterations != 1 {
		t.Errorf("closed form reports %+v", m.Convergence)
	}
	// Predict is X·w + b.
	p := m.Predict(x)
	for i := range n {
		want := m.Intercept + mat.Dot(x.RowView(i), mat.NewVecDense(d, m.Weights))
		if !near(p.AtVec(i), want, 1e-12) {
			t.Fatalf("Predict row %d = %v, want %v", i, p.AtVec(i), want)
		}
	}
}

// TestOLSRankDeficient fits y = 2a + 1 on two copies of a: the minimum-norm solution splits
// the weight evenly.
func TestOLSRankDeficient(t *testing.T) {
	a := []float64{1, 2, 4, 7, 11}
	x := mat.NewDense(5, 2, nil)
	y := make([]float64, 5)
	for i, v := range a {
		x.Set(i, 0, v)
		x.Set(i, 1, v)
		y[i] = 2*v + 1
	}
	m, err := linear.OLS{}.FitLinear(context.Background(), x, y)
	if err != nil {
		t.Fatal(err)
	}
	if !near(m.Weights[0], 1, 1e-9) || !near(m.Weights[1], 1, 1e-9) || !near(m.Intercept, 1, 1e-9) {
		t.Errorf("weights %v intercept %v, want [1 1] and 1", m.Weights, m.Intercept)
	}
}

// TestRidgeAugmented checks ridge against least squares on the augmented system
// [Xc; √α I] w = [yc; 0], which has the same solution.
func TestRidgeAugmented(t *testing.T) {
	x, y, _ := randomProblem(40, 3, 11)
	const alpha = 5.0
	m, err := linear.Ridge{Alpha: alpha}.FitLinear(context.Background(), x, y)
	if err != nil {
		t.Fatal(err)
	}
	n, d := x.Dims()
	means := make([]float64, d)
	var ym float64
	for i := range n {
		for j := range d {
			means[j] += x.At(i, j) / float64(n)
		}
		ym += y[i] / float64(n)
	}
	aug := mat.NewDense(n+d, d, nil)
	yAug := make([]float64, n+d)
	for i := range n {
		for j := range d {
			aug.Set(i, j, x.At(i, j)-means[j])
		}
		yAug[i] = y[i] - ym
	}
	for j := range d {
		aug.Set(n+j, j, math.Sqrt(alpha))
	}
	ref, err := linear.OLS{NoIntercept: true}.FitLinear(context.Background(), aug, yAug)
	if err != nil {
		t.Fatal(err)
	}
	b := ym
	for j := range d {
		if !near(m.Weights[j], ref.Weights[j], 1e-9) {
			t.Errorf("w[%d] = %v, want %v", j, m.Weights[j], ref.Weights[j])
		}
		b -= ref.Weights[j] * means[j]
	}
	if !near(m.Intercept, b, 1e-9) {
		t.Errorf("intercept = %v, want %v", m.Intercept, b)
	}
}

// TestElasticNetOrthogonal uses an orthogonal, centred design with ||x_j||² = n, where
// coordinate descent's fixed point has a closed form: w_j = S(x_jᵀy/n, αρ) / (1 + α(1−ρ)),
// S the soft threshold, and b = ȳ.
func TestElasticNetOrthogonal(t *testing.T) {
	x := mat.NewDense(4, 2, []float64{
		1, 1,
		-1, 1,
		1, -1,
		-1, -1,
	})
	y := []float64{3, 1, -1, 0.5}
	// x₁ᵀy/n = (3 − 1 − 1 − 0.5)/4 = 0.125; x₂ᵀy/n = (3 + 1 + 1 − 0.5)/4 = 1.125; ȳ = 0.875.
	soft := func(v, t float64) float64 { return math.Copysign(math.Max(math.Abs(v)-t, 0), v) }
	for _, tc := range []struct {
		alpha, ratio float64
	}{{0.1, 1}, {0.5, 1}, {0.1, 0.5}, {0.3, 0.2}} {
		m, err := linear.ElasticNet{Alpha: tc.alpha, L1Ratio: tc.ratio, Tol: 1e-12}.FitLinear(context.Background(), x, y)
		if err != nil {
			t.Fatal(err)
		}
		want := []float64{
			soft(0.125, tc.alpha*tc.ratio) / (1 + tc.alpha*(1-tc.ratio)),
			soft(1.125, tc.alpha*tc.ratio) / (1 + tc.alpha*(1-tc.ratio)),
		}
		for j := range want {
			if !near(m.Weights[j], want[j], 1e-9) {
				t.Errorf("alpha %v ratio %v: w[%d] = %v, want %v", tc.alpha, tc.ratio, j, m.Weights[j], want[j])
			}
		}
		if !near(m.Intercept, 0.875, 1e-9) || !m.Converged {
			t.Errorf("alpha %v ratio %v: intercept %v converged %v", tc.alpha, tc.ratio, m.Intercept, m.Converged)
		}
	}
}

// TestLassoSparsity fits 3 informative and 7 noise features and checks the lasso's
// optimality conditions: |x_jᵀr|/n ≤ α where w_j = 0 and x_jᵀr/n = α·sign(w_j) elsewhere.
func TestLassoSparsity(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	n, d := 200, 10
	x := mat.NewDense(n, d, nil)
	y := make([]float64, n)
	for i := range n {
		for j := range d {
			x.Set(i, j, rng.NormFloat64())
		}
		y[i] = 3*x.At(i, 0) - 2*x.At(i, 1) + 1.5*x.At(i, 2) + 0.5*rng.NormFloat64() + 4
	}
	const alpha = 0.3
	m, err := linear.Lasso{Alpha: alpha, Tol: 1e-10, MaxIter: 10000}.FitLinear(context.Background(), x, y)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Converged {
		t.Fatalf("not converged after %d epochs", m.Iterations)
	}
	r := m.Predict(x)
	for i := range n {
		r.SetVec(i, y[i]-r.AtVec(i))
	}
	zeros := 0
	for j := range d {
		g := mat.Dot(x.ColView(j), r) / float64(n)
		switch {
		case j < 3 && m.Weights[j] == 0:
			t.Errorf("informative feature %d has weight 0", j)
		case m.Weights[j] == 0:
			zeros++
			if math.Abs(g) > alpha+1e-6 {
				t.Errorf("w[%d] = 0 but |x_jᵀr/n| = %v > α", j, math.Abs(g))
			}
		default:
			if math.Abs(g-alpha*math.Copysign(1, m.Weights[j])) > 1e-6 {
				t.Errorf("w[%d] = %v but x_jᵀr/n = %v, want %v", j, m.Weights[j], g, alpha*math.Copysign(1, m.Weights[j]))
			}
		}
	}
	if zeros < 5 {
		t.Errorf("only %d of 7 noise weights are exactly zero: %v", zeros, m.Weights)
	}
}

func TestModelJSON(t *testing.T) {
	x, y, _ := randomProblem(30, 2, 5)
	m, err := linear.Ridge{Alpha: 1}.FitLinear(context.Background(), x, y)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back linear.Model
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !mat.EqualApprox(m.Predict(x), back.Predict(x), 0) || back.Converged != m.Converged {
		t.Errorf("model changed through JSON: %s", b)
	}
}

func TestErrors(t *testing.T) {
	x := mat.NewDense(3, 1, []float64{1, 2, 3})
	if _, err := (linear.OLS{}).Fit(context.Background(), x, []float64{1, 2}); err == nil {
		t.Error("OLS with 2 targets for 3 rows: no error")
	}
	if _, err := (linear.Ridge{Alpha: -1}).Fit(context.Background(), x, []float64{1, 2, 3}); err == nil {
		t.Error("ridge with negative alpha: no error")
	}
	if _, err := (linear.ElasticNet{L1Ratio: 2}).Fit(context.Background(), x, []float64{1, 2, 3}); err == nil {
		t.Error("elastic net with l1_ratio 2: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (linear.Lasso{}).Fit(ctx, x, []float64{1, 2, 3}); err == nil {
		t.Error("lasso with a cancelled context: no error")
	}
}
