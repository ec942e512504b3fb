package recommend

import (
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
)

// BenchmarkProduct compares ways of computing the scores of 256 users against 20,000 items at
// rank 64 (the product alone, without top-k): gonum's Gemm in float32 and float64, one
// Gemv per user, and the packed micro-kernel Recommend uses. users/s is the metric.
func BenchmarkProduct(b *testing.B) {
	const users, items, k = 256, 20_000, 64
	rng := rand.New(rand.NewPCG(1, 2))
	u32, v32 := make([]float32, users*k), make([]float32, items*k)
	u64, v64 := make([]float64, users*k), make([]float64, items*k)
	for i := range u32 {
		u64[i] = rng.NormFloat64()
		u32[i] = float32(u64[i])
	}
	for i := range v32 {
		v64[i] = rng.NormFloat64()
		v32[i] = float32(v64[i])
	}
	vt32 := make([]float32, items*k) // k × items
	for i := range items {
		for p := range k {
			vt32[p*items+i] = v32[i*k+p]
		}
	}
	c32, c64 := make([]float32, users*items), make([]float64, users*items)
	g32 := func(rows, cols int, d []float32) blas32.General {
		return blas32.General{Rows: rows, Cols: cols, Stride: cols, Data: d}
	}
	g64 := func(rows, cols int, d []float64) blas64.General {
		return blas64.General{Rows: rows, Cols: cols, Stride: cols, Data: d}
	}
	rate := func(b *testing.B) { b.ReportMetric(float64(b.N*users)/b.Elapsed().Seconds(), "users/s") }
	b.Run("gonum-sgemm-NT", func(b *testing.B) {
		for b.Loop() {
			blas32.Gemm(blas.NoTrans, blas.Trans, 1, g32(users, k, u32), g32(items, k, v32), 0, g32(users, items, c32))
		}
		rate(b)
	})
	b.Run("gonum-sgemm-NN", func(b *testing.B) {
		for b.Loop() {
			blas32.Gemm(blas.NoTrans, blas.NoTrans, 1, g32(users, k, u32), g32(k, items, vt32), 0, g32(users, items, c32))
		}
		rate(b)
	})
	b.Run("gonum-dgemm-NT", func(b *testing.B) {
		for b.Loop() {
			blas64.Gemm(blas.NoTrans, blas.Trans, 1, g64(users, k, u64), g64(items, k, v64), 0, g64(users, items, c64))
		}
		rate(b)
	})
	b.Run("gonum-sgemv-per-user", func(b *testing.B) {
		for b.Loop() {
			for u := range users {
				blas32.Gemv(blas.NoTrans, 1, g32(items, k, v32), blas32.Vector{N: k, Inc: 1, Data: u32[u*k : u*k+k]},
					0, blas32.Vector{N: items, Inc: 1, Data: c32[u*items : u*items+items]})
			}
		}
		rate(b)
	})
	b.Run("gonum-dgemv-per-user", func(b *testing.B) {
		for b.Loop() {
			for u := range users {
				blas64.Gemv(blas.NoTrans, 1, g64(items, k, v64), blas64.Vector{N: k, Inc: 1, Data: u64[u*k : u*k+k]},
					0, blas64.Vector{N: items, Inc: 1, Data: c64[u*items : u*items+items]})
			}
		}
		rate(b)
	})
	// The packed kernel, on one goroutine as the others: panels of nr items, blocks of
	// blockUsers users, chunks of chunkPanels panels.
	np := (items + nr - 1) / nr
	panels := make([]float32, np*k*nr)
	for i := range items {
		for p := range k {
			panels[(i/nr)*k*nr+p*nr+i%nr] = v32[i*k+p]
		}
	}
	a := make([]float32, blockUsers*k)
	c := make([]float32, blockUsers*chunkPanels*nr)
	b.Run("packed-kernel", func(b *testing.B) {
		for b.Loop() {
			for ub := 0; ub < users; ub += blockUsers {
				clear(a)
				for r := range min(blockUsers, users-ub) {
					for p := range k {
						a[(r/mr)*k*mr+p*mr+r%mr] = u32[(ub+r)*k+p]
					}
				}
				for clo := 0; clo < np; clo += chunkPanels {
					for pn := clo; pn < min(clo+chunkPanels, np); pn++ {
						for m := range blockUsers / mr {
							tile6x16(k, a[m*k*mr:(m+1)*k*mr], panels[pn*k*nr:(pn+1)*k*nr], c[m*mr*chunkPanels*nr+(pn-clo)*nr:], chunkPanels*nr)
						}
					}
				}
			}
		}
		rate(b)
	})
}
