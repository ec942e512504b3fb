package design_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/internal/design"
	"gonum.org/v1/gonum/mat"
)

// sparse returns a matrix with zeros, ones and general values, like a one-hot design.
func sparse(n, d int) *mat.Dense {
	rng := rand.New(rand.NewPCG(1, 2))
	x := mat.NewDense(n, d, nil)
	for i := range n {
		for j := range d {
			switch rng.IntN(3) {
			case 0:
				x.Set(i, j, 1)
			case 1:
				x.Set(i, j, rng.NormFloat64())
			}
		}
	}
	return x
}

func TestProducts(t *testing.T) {
	n, d := 5000, 7 // more rows than one chunk
	x := sparse(n, d)
	for _, bias := range []float64{0, 1, 2.5} {
		m := design.New(x, bias)
		rows, cols := m.ToRows(), m.ToColumns()
		w := make([]float64, m.W)
		for j := range w {
			w[j] = float64(j) - 2.5
		}
		full := func(i, j int) float64 {
			if j == d {
				return bias
			}
			return x.At(i, j)
		}
		z := make([]float64, n)
		u := make([]float64, n)
		m.Chunks(func(_, lo, hi int) { m.MulVecRows(z[lo:hi], w, lo, hi) })
		g := make([]float64, m.W)
		for i := range n {
			u[i] = math.Sin(float64(i))
		}
		m.Reduce(g, func(_ int, part []float64, lo, hi int) float64 {
			m.MulTransVecRows(part, u[lo:hi], lo, hi)
			return 0
		})
		h := make([]float64, m.W)
		m.Reduce(h, func(_ int, part []float64, lo, hi int) float64 {
			m.AddGramVecRows(part, w, u, lo, hi)
			return 0
		})
		wantG, wantH := make([]float64, m.W), make([]float64, m.W)
		for i := range n {
			var dot float64
			for j := range m.W {
				dot += full(i, j) * w[j]
			}
			if math.Abs(z[i]-dot) > 1e-9 || math.Abs(m.Dot(i, w)-dot) > 1e-9 || math.Abs(rows.Dot(i, w)-dot) > 1e-9 {
				t.Fatalf("bias %v row %d: X·w = %v, %v, %v; want %v", bias, i, z[i], m.Dot(i, w), rows.Dot(i, w), dot)
			}
			var sq float64
			for j := range m.W {
				wantG[j] += full(i, j) * u[i]
				wantH[j] += u[i] * dot * full(i, j)
				sq += full(i, j) * full(i, j)
			}
			if math.Abs(rows.SqNorm(i)-sq) > 1e-9 || math.Abs(m.SqNorm(i)-sq) > 1e-9 {
				t.Fatalf("row %d: squared norms %v, %v; want %v", i, rows.SqNorm(i), m.SqNorm(i), sq)
			}
		}
		for j := range m.W {
			if math.Abs(g[j]-wantG[j]) > 1e-8 || math.Abs(h[j]-wantH[j]) > 1e-8 {
				t.Errorf("bias %v: (Xᵀu)[%d] = %v want %v; (XᵀDXw)[%d] = %v want %v", bias, j, g[j], wantG[j], j, h[j], wantH[j])
			}
			idx, val := cols.Col(j)
			var s float64
			for k, i := range idx {
				s += val[k] * u[i]
			}
			if math.Abs(s-wantG[j]) > 1e-8 {
				t.Errorf("bias %v: column %d from compressed columns gives %v, want %v", bias, j, s, wantG[j])
			}
		}
		// AddScaled on both layouts.
		a, b := make([]float64, m.W), make([]float64, m.W)
		m.AddScaled(a, 2, 3)
		rows.AddScaled(b, 2, 3)
		for j := range a {
			if math.Abs(a[j]-2*full(3, j)) > 1e-12 || math.Abs(b[j]-a[j]) > 1e-12 {
				t.Errorf("bias %v: AddScaled[%d] = %v, %v; want %v", bias, j, a[j], b[j], 2*full(3, j))
			}
		}
	}
}
