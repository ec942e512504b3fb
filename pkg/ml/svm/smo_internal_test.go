package svm

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/kernel"
)

// TestFillParallel checks that a kernel row split across goroutines equals the row computed
// by one, entry by entry, and matches Q_ij = y_i y_j k(x_i, x_j).
func TestFillParallel(t *testing.T) {
	const l, d = 1000, 4
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float64, l*d)
	y := make([]float64, l)
	c := make([]float64, l)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	for i := range y {
		y[i], c[i] = float64(2*(i%2)-1), 1
	}
	k := kernel.Kernel{Kind: kernel.RBF, Gamma: 0.3}
	serial := newSMO(k, append([]float64(nil), x...), l, d, y, c, 1e-3, 1<<20, true)
	split := newSMO(k, append([]float64(nil), x...), l, d, y, c, 1e-3, 1<<20, true)
	split.parts, split.chunk = 4, 100
	for _, i := range []int{0, 17, 999} {
		a, b := serial.row(i, l), split.row(i, l)
		for j := range l {
			want := float32(y[i] * y[j] * k.Eval(x[i*d:(i+1)*d], x[j*d:(j+1)*d]))
			if a[j] != b[j] || math.Abs(float64(a[j]-want)) > 1e-6 {
				t.Fatalf("Q[%d][%d]: serial %v, split %v, want %v", i, j, a[j], b[j], want)
			}
		}
	}
	// A row extended from a cached prefix matches too.
	p := split.row(500, 300)
	full := split.row(500, l)
	if &p[0] != &full[0] || full[299] != serial.row(500, l)[299] || full[700] != serial.row(500, l)[700] {
		t.Error("extending a cached row changed it")
	}
}
