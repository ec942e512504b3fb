package recommend

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// TestTile checks the micro-kernel in use (the assembly one on processors with AVX2 and FMA3)
// against the portable one, and both against float64 products.
func TestTile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	t.Logf("assembly kernel: %v", hasAssemblyKernel())
	for _, k := range []int{1, 2, 11, 65, 200} {
		a, b := make([]float32, k*mr), make([]float32, k*nr)
		for i := range a {
			a[i] = float32(rng.NormFloat64())
		}
		for i := range b {
			b[i] = float32(rng.NormFloat64())
		}
		const ldc = nr + 3
		got, port := make([]float32, mr*ldc), make([]float32, mr*ldc)
		for i := range got {
			got[i], port[i] = -7, -7 // the padding between rows must stay untouched
		}
		tile6x16(k, a, b, got, ldc)
		tile6x16Go(k, a, b, port, ldc)
		for r := range mr {
			for j := range ldc {
				g, p := got[r*ldc+j], port[r*ldc+j]
				if j >= nr {
					if g != -7 || p != -7 {
						t.Fatalf("k=%d: padding at row %d column %d written", k, r, j)
					}
					continue
				}
				var want float64
				for q := range k {
					want += float64(a[q*mr+r]) * float64(b[q*nr+j])
				}
				tol := 1e-5 * float64(k)
				if math.Abs(float64(g)-want) > tol || math.Abs(float64(p)-want) > tol {
					t.Fatalf("k=%d (%d, %d): kernel %v, portable %v, float64 %v", k, r, j, g, p, want)
				}
			}
		}
	}
}

func TestCholSolve(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 5, 11, 30} {
		m := mat.NewDense(n+3, n, nil)
		for i := range n + 3 {
			for j := range n {
				m.Set(i, j, rng.NormFloat64())
			}
		}
		var a mat.SymDense
		a.SymOuterK(1, m.T())
		b := make([]float64, n)
		for i := range b {
			b[i] = rng.NormFloat64()
		}
		var want mat.VecDense
		var ch mat.Cholesky
		if !ch.Factorize(&a) {
			t.Fatal("gonum: not positive definite")
		}
		if err := ch.SolveVecTo(&want, mat.NewVecDense(n, slices.Clone(b))); err != nil {
			t.Fatal(err)
		}
		up := make([]float64, n*n) // only the upper triangle is read
		for i := range n {
			for j := i; j < n; j++ {
				up[i*n+j] = a.At(i, j)
			}
		}
		if !cholSolve(up, n, b) {
			t.Fatalf("n=%d: not positive definite", n)
		}
		for i := range n {
			if math.Abs(b[i]-want.AtVec(i)) > 1e-8*(1+math.Abs(want.AtVec(i))) {
				t.Fatalf("n=%d: x[%d] = %v, gonum %v", n, i, b[i], want.AtVec(i))
			}
		}
	}
	if cholSolve([]float64{1, 2, 0, 1}, 2, []float64{1, 1}) {
		t.Error("[[1 2] [2 1]] is indefinite, cholSolve succeeded")
	}
}

func TestTopHeap(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, k := range []int{1, 3, 10, 50} {
		var h topHeap
		h.reset(k)
		type pair struct {
			s float32
			i int32
		}
		var all []pair
		for i := range int32(200) {
			s := float32(rng.IntN(20)) // many ties
			all = append(all, pair{s, i})
			if !h.full() || s > h.min() {
				h.push(s, i)
			}
		}
		slices.SortStableFunc(all, func(a, b pair) int { return cmp.Compare(b.s, a.s) })
		items, scores := h.sorted()
		for n := range items {
			if items[n] != all[n].i || scores[n] != all[n].s {
				t.Fatalf("k=%d: position %d is (%v, %d), want (%v, %d)", k, n, scores[n], items[n], all[n].s, all[n].i)
			}
		}
		if len(items) != k {
			t.Fatalf("k=%d: %d kept", k, len(items))
		}
	}
}

// TestCGSolve checks that enough conjugate gradient steps reach the exact solution of a
// user's normal equations (YᵀY + Yᵀ(C_u − I)Y + λI) x = YᵀC_u p_u, formed densely.
func TestCGSolve(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const k, ni, lambda, alpha = 6, 40, 0.5, 2.0
	y := make([]float64, ni*k)
	for i := range y {
		y[i] = rng.NormFloat64()
	}
	// One user with five items and values 1..5.
	m := csr{ptr: []int{0, 5}, idx: []int32{3, 8, 17, 22, 39}, val: []float64{1, 2, 3, 4, 5}}
	conf := confidences(m.val, alpha)
	s := &cgSolver{k: k, lambda: lambda, steps: k}
	x := make([]float64, k)
	s.half(x, y, m, conf)

	a := make([]float64, k*k)
	b := make([]float64, k)
	for i := range ni {
		addOuter(a, y[i*k:i*k+k])
	}
	for e, i := range m.idx {
		yi := y[int(i)*k : int(i)*k+k]
		c := conf[e]
		for r := range k {
			for q := r; q < k; q++ {
				a[r*k+q] += (c - 1) * yi[r] * yi[q]
			}
		}
		axpy(c, yi, b)
	}
	for r := range k {
		a[r*k+r] += lambda
	}
	if !cholSolve(a, k, b) {
		t.Fatal("not positive definite")
	}
	for r := range k {
		if math.Abs(x[r]-b[r]) > 1e-8 {
			t.Fatalf("CG x = %v, exact %v", x, b)
		}
	}
}

func TestPairHash(t *testing.T) {
	if pairHash("ab", "c", 1) == pairHash("a", "bc", 1) {
		t.Error("(ab, c) and (a, bc) hash alike")
	}
	if pairHash("a", "b", 1) == pairHash("a", "b", 2) {
		t.Error("seeds 1 and 2 hash alike")
	}
	if h := pairHash("a", "b", 1); h != pairHash("a", "b", 1) {
		t.Error("not deterministic")
	}
}
