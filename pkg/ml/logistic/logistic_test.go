package logistic_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/logistic"
	"go.uber.org/goleak"
	"gonum.org/v1/gonum/mat"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// problem draws n rows of d features with labels from a logistic model, so that classes
// overlap.
func problem(n, d int, seed uint64) (*mat.Dense, []float64) {
	rng := rand.New(rand.NewPCG(seed, 2))
	x := mat.NewDense(n, d, nil)
	y := make([]float64, n)
	for i := range n {
		z := -0.5
		for j := range d {
			v := rng.NormFloat64()
			if j%3 == 2 {
				v = float64(rng.IntN(2)) // a one-hot-like column
			}
			x.Set(i, j, v)
			z += float64(j%4-1) * v
		}
		if rng.Float64() < logistic.Sigmoid(z) {
			y[i] = 1
		}
	}
	return x, y
}

// augmented returns [X s] and the weights [w b/s] of the solver's problem.
func augmented(x *mat.Dense, m *logistic.Model, s float64) (*mat.Dense, []float64) {
	n, d := x.Dims()
	a := mat.NewDense(n, d+1, nil)
	for i := range n {
		for j := range d {
			a.Set(i, j, x.At(i, j))
		}
		a.Set(i, d, s)
	}
	return a, append(append([]float64(nil), m.Weights...), m.Intercept/s)
}

// lossGrad returns ∇ of C Σ log(1 + exp(−y_i w·a_i)) at w.
func lossGrad(a *mat.Dense, y, w []float64, c float64) []float64 {
	n, d := a.Dims()
	g := make([]float64, d)
	for i := range n {
		yi := 2*y[i] - 1
		z := mat.Dot(a.RowView(i), mat.NewVecDense(d, w))
		f := c * (logistic.Sigmoid(yi*z) - 1) * yi
		for j := range d {
			g[j] += f * a.At(i, j)
		}
	}
	return g
}

// newton minimises ½||w||² + C Σ log(1 + exp(−y w·a)) by plain Newton with the full Hessian:
// an independent reference for TRON.
func newton(a *mat.Dense, y []float64, c float64) []float64 {
	n, d := a.Dims()
	w := make([]float64, d)
	for range 50 {
		g := lossGrad(a, y, w, c)
		h := mat.NewSymDense(d, nil)
		for j := range d {
			g[j] += w[j]
			h.SetSym(j, j, 1)
		}
		for i := range n {
			p := logistic.Sigmoid(mat.Dot(a.RowView(i), mat.NewVecDense(d, w)))
			dd := c * p * (1 - p)
			for j := range d {
				for k := j; k < d; k++ {
					h.SetSym(j, k, h.At(j, k)+dd*a.At(i, j)*a.At(i, k))
				}
			}
		}
		var step mat.VecDense
		if err := step.SolveVec(h, mat.NewVecDense(d, g)); err != nil {
			panic(err)
		}
		for j := range d {
			w[j] -= step.AtVec(j)
		}
	}
	return w
}

func TestL2MatchesNewton(t *testing.T) {
	x, y := problem(300, 6, 1)
	for _, c := range []float64{0.1, 1, 10} {
		m, err := logistic.Regression{C: c, Tol: 1e-10}.FitLogistic(context.Background(), x, y)
		if err != nil {
			t.Fatal(err)
		}
		if !m.Converged {
			t.Errorf("C=%v: not converged after %d iterations", c, m.Iterations)
		}
		a, got := augmented(x, m, 1)
		want := newton(a, y, c)
		for j := range want {
			if math.Abs(got[j]-want[j]) > 1e-6 {
				t.Errorf("C=%v: w[%d] = %.8f, Newton gives %.8f", c, j, got[j], want[j])
			}
		}
	}
}

func TestInterceptScaling(t *testing.T) {
	x, y := problem(200, 3, 4)
	// With a large scaling the intercept is nearly unpenalised: the mean predicted
	// probability approaches the positive rate (the unpenalised score equation).
	m, err := logistic.Regression{C: 1, InterceptScaling: 100, Tol: 1e-10}.FitLogistic(context.Background(), x, y)
	if err != nil {
		t.Fatal(err)
	}
	var mp, rate float64
	p := m.PredictProba(x)
	for i, v := range y {
		mp += p.AtVec(i)
		rate += v
	}
	if math.Abs(mp-rate) > 0.05 {
		t.Errorf("Σp = %v, Σy = %v: intercept still penalised", mp, rate)
	}
	// Without an intercept it is exactly 0.
	m, _ = logistic.Regression{NoIntercept: true}.FitLogistic(context.Background(), x, y)
	if m.Intercept != 0 {
		t.Errorf("NoIntercept gives intercept %v", m.Intercept)
	}
}

// TestL1Optimality checks the L1 solution's optimality conditions on the solver's own
// problem (intercept as a penalised feature): |∇L_j| ≤ 1 where w_j = 0 and ∇L_j = −sign(w_j)
// elsewhere; and that a stronger penalty gives more exact zeros.
func TestL1Optimality(t *testing.T) {
	x, y := problem(400, 12, 2)
	zeros := map[float64]int{}
	for _, c := range []float64{0.01, 0.05, 1} {
		m, err := logistic.Regression{C: c, Penalty: logistic.L1, Tol: 1e-8, Seed: 3}.FitLogistic(context.Background(), x, y)
		if err != nil {
			t.Fatal(err)
		}
		if !m.Converged {
			t.Errorf("C=%v: not converged after %d epochs", c, m.Iterations)
		}
		a, w := augmented(x, m, 1)
		g := lossGrad(a, y, w, c)
		for j, v := range w {
			switch {
			case v == 0:
				zeros[c]++
				if math.Abs(g[j]) > 1+1e-3 {
					t.Errorf("C=%v: w[%d] = 0 but |∇L| = %v > 1", c, j, math.Abs(g[j]))
				}
			case math.Abs(g[j]+math.Copysign(1, v)) > 1e-3:
				t.Errorf("C=%v: w[%d] = %v but ∇L = %v", c, j, v, g[j])
			}
		}
	}
	if !(zeros[0.01] > zeros[0.05] && zeros[0.05] >= zeros[1]) || zeros[0.01] == 0 {
		t.Errorf("zero weights by C: %v; want more zeros for smaller C", zeros)
	}
}

// TestClassWeightsDuplicate checks that weighting the positive class by 2 is the same
// problem as listing every positive row twice.
func TestClassWeightsDuplicate(t *testing.T) {
	x, y := problem(150, 4, 5)
	n, d := x.Dims()
	var rows [][]float64
	var yy []float64
	for i := range n {
		rows = append(rows, x.RawRowView(i))
		yy = append(yy, y[i])
		if y[i] == 1 {
			rows = append(rows, x.RawRowView(i))
			yy = append(yy, 1)
		}
	}
	dup := mat.NewDense(len(rows), d, nil)
	for i, r := range rows {
		dup.SetRow(i, r)
	}
	for _, pen := range []logistic.Penalty{logistic.L2, logistic.L1} {
		w, err := logistic.Regression{Penalty: pen, Tol: 1e-10, ClassWeights: ml.ClassWeights{Positive: 2}}.FitLogistic(context.Background(), x, y)
		if err != nil {
			t.Fatal(err)
		}
		r, err := logistic.Regression{Penalty: pen, Tol: 1e-10}.FitLogistic(context.Background(), dup, yy)
		if err != nil {
			t.Fatal(err)
		}
		for j := range d {
			if math.Abs(w.Weights[j]-r.Weights[j]) > 1e-5 {
				t.Errorf("penalty %d: weighted w[%d] = %v, duplicated %v", pen, j, w.Weights[j], r.Weights[j])
			}
		}
		if math.Abs(w.Intercept-r.Intercept) > 1e-5 {
			t.Errorf("penalty %d: intercepts %v and %v", pen, w.Intercept, r.Intercept)
		}
	}
}

func TestProbabilities(t *testing.T) {
	x, y := problem(100, 3, 6)
	m, err := logistic.Regression{}.FitLogistic(context.Background(), x, y)
	if err != nil {
		t.Fatal(err)
	}
	s, p := m.Predict(x), m.PredictProba(x)
	for i := range y {
		if want := 1 / (1 + math.Exp(-s.AtVec(i))); math.Abs(p.AtVec(i)-want) > 1e-15 {
			t.Fatalf("row %d: probability %v, want %v", i, p.AtVec(i), want)
		}
	}
	if got := logistic.Sigmoid(-800); got != 0 || math.IsNaN(got) {
		t.Errorf("Sigmoid(−800) = %v", got)
	}
}

func TestErrors(t *testing.T) {
	x := mat.NewDense(3, 1, []float64{1, 2, 3})
	for _, tc := range []struct {
		name string
		r    logistic.Regression
		y    []float64
	}{
		{"one class", logistic.Regression{}, []float64{1, 1, 1}},
		{"label 2", logistic.Regression{}, []float64{0, 1, 2}},
		{"negative C", logistic.Regression{C: -1}, []float64{0, 1, 1}},
		{"short labels", logistic.Regression{}, []float64{0, 1}},
		{"unknown penalty", logistic.Regression{Penalty: 7}, []float64{0, 1, 1}},
	} {
		if _, err := tc.r.Fit(context.Background(), x, tc.y); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	xs, ys := problem(50, 2, 1)
	for _, pen := range []logistic.Penalty{logistic.L2, logistic.L1} {
		if _, err := (logistic.Regression{Penalty: pen}).Fit(ctx, xs, ys); !errors.Is(err, context.Canceled) {
			t.Errorf("penalty %d with a cancelled context: err = %v", pen, err)
		}
	}
}
