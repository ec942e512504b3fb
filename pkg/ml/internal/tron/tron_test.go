package tron_test

import (
	"context"
	"math"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/internal/tron"
)

// quartic is f(w) = Σ_j a_j (w_j − c_j)² + (w_j − c_j)⁴: convex, minimum at c, and not
// quadratic, so Newton needs several steps.
type quartic struct{ a, c, w []float64 }

func (q *quartic) Fun(w []float64) float64 {
	q.w = append(q.w[:0], w...)
	var f float64
	for j, v := range w {
		d := v - q.c[j]
		f += q.a[j]*d*d + d*d*d*d
	}
	return f
}

func (q *quartic) Grad(_, g []float64) {
	for j, v := range q.w {
		d := v - q.c[j]
		g[j] = 2*q.a[j]*d + 4*d*d*d
	}
}

func (q *quartic) Hv(s, hs []float64) {
	for j, v := range q.w {
		d := v - q.c[j]
		hs[j] = (2*q.a[j] + 12*d*d) * s[j]
	}
}

func (q *quartic) Diag(m []float64) {
	for j, v := range q.w {
		d := v - q.c[j]
		m[j] = 2*q.a[j] + 12*d*d
	}
}

func TestMinimize(t *testing.T) {
	q := &quartic{a: []float64{1, 0.01, 100}, c: []float64{3, -2, 0.5}}
	w := make([]float64, 3)
	res, err := tron.Minimize(context.Background(), q, w, tron.Settings{Tol: 1e-10, MaxIter: 100})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Converged || res.Iterations < 2 {
		t.Errorf("result %+v", res)
	}
	for j := range w {
		if math.Abs(w[j]-q.c[j]) > 1e-5 {
			t.Errorf("w[%d] = %v, want %v", j, w[j], q.c[j])
		}
	}
	// An iteration cap of 1 stops early and says so.
	w = make([]float64, 3)
	res, _ = tron.Minimize(context.Background(), q, w, tron.Settings{Tol: 1e-10, MaxIter: 1})
	if res.Converged || res.Iterations != 1 {
		t.Errorf("capped result %+v", res)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tron.Minimize(ctx, q, make([]float64, 3), tron.Settings{Tol: 1e-10, MaxIter: 10}); err == nil {
		t.Error("cancelled context: no error")
	}
}
