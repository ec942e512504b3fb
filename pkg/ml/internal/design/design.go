// Package design wraps a dense design matrix for the linear solvers: rows x_i with an
// optional constant bias feature appended (LIBLINEAR's bias term, regularised like the
// other weights), and the matrix-vector products they need, split across cores.
package design

import (
	"errors"
	"fmt"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/internal/parallel"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

// minChunk is the fewest rows a goroutine is given: below it the goroutine costs more than
// it saves.
const minChunk = 2048

// Matrix is n rows of d features, plus a bias feature of constant value Bias when Bias > 0.
// Its Reduce keeps per-chunk partial sums, so one Matrix serves one solver at a time.
type Matrix struct {
	X    blas64.General
	N, D int
	// Bias is the value of the appended feature; 0 means none.
	Bias float64
	// W is the number of weights: D, plus one with a bias.
	W int
	// Parts is the number of row chunks that the parallel products use.
	Parts int
	parts [][]float64
}

// New wraps x. x is not copied and must not change while the Matrix is in use.
func New(x *mat.Dense, bias float64) *Matrix {
	raw := x.RawMatrix()
	m := &Matrix{X: raw, N: raw.Rows, D: raw.Cols, Bias: bias, W: raw.Cols}
	if bias > 0 {
		m.W++
	}
	m.Parts = parallel.Parts(m.N, minChunk)
	m.parts = make([][]float64, m.Parts)
	for k := range m.parts {
		m.parts[k] = make([]float64, m.W)
	}
	return m
}

// Row returns row i, without the bias feature.
func (m *Matrix) Row(i int) []float64 {
	return m.X.Data[i*m.X.Stride : i*m.X.Stride+m.D]
}

// Dot returns x_i · w, including the bias feature.
func (m *Matrix) Dot(i int, w []float64) float64 {
	s := floats.Dot(m.Row(i), w[:m.D])
	if m.Bias > 0 {
		s += m.Bias * w[m.D]
	}
	return s
}

// AddScaled does w += a·x_i, including the bias feature.
func (m *Matrix) AddScaled(w []float64, a float64, i int) {
	floats.AddScaled(w[:m.D], a, m.Row(i))
	if m.Bias > 0 {
		w[m.D] += a * m.Bias
	}
}

// SqNorm returns ||x_i||², including the bias feature.
func (m *Matrix) SqNorm(i int) float64 {
	r := m.Row(i)
	return floats.Dot(r, r) + m.Bias*m.Bias
}

func (m *Matrix) rows(lo, hi int) blas64.General {
	return blas64.General{Rows: hi - lo, Cols: m.D, Stride: m.X.Stride, Data: m.X.Data[lo*m.X.Stride:]}
}

// MulVecRows sets z = X[lo:hi] w, including the bias feature; z has hi-lo entries.
func (m *Matrix) MulVecRows(z, w []float64, lo, hi int) {
	b := 0.0
	if m.Bias > 0 {
		b = m.Bias * w[m.D]
	}
	for k := range z {
		z[k] = b
	}
	blas64.Gemv(blas.NoTrans, 1, m.rows(lo, hi), blas64.Vector{N: m.D, Inc: 1, Data: w}, 1,
		blas64.Vector{N: hi - lo, Inc: 1, Data: z})
}

// MulTransVecRows adds X[lo:hi]ᵀ u to g, including the bias feature; u has hi-lo entries.
func (m *Matrix) MulTransVecRows(g, u []float64, lo, hi int) {
	blas64.Gemv(blas.Trans, 1, m.rows(lo, hi), blas64.Vector{N: hi - lo, Inc: 1, Data: u}, 1,
		blas64.Vector{N: m.D, Inc: 1, Data: g})
	if m.Bias > 0 {
		g[m.D] += m.Bias * floats.Sum(u)
	}
}

// Chunks runs f over m.Parts contiguous chunks of rows concurrently.
func (m *Matrix) Chunks(f func(k, lo, hi int)) {
	parallel.Split(m.N, m.Parts, f)
}

// Reduce runs f on each chunk k of rows [lo, hi) with a zeroed partial vector of length W
// and sets g to the sum of the partial vectors. It returns the sum of f's results.
func (m *Matrix) Reduce(g []float64, f func(k int, part []float64, lo, hi int) float64) float64 {
	sums := make([]float64, m.Parts)
	parallel.Split(m.N, m.Parts, func(k, lo, hi int) {
		part := m.parts[k]
		for j := range part {
			part[j] = 0
		}
		sums[k] = f(k, part, lo, hi)
	})
	copy(g, m.parts[0])
	total := sums[0]
	for k := 1; k < m.Parts; k++ {
		floats.Add(g, m.parts[k])
		total += sums[k]
	}
	return total
}

// Columns is a compressed-column copy of a Matrix holding its non-zero entries, with the
// bias feature as the last column when there is one: the layout coordinate descent over
// features needs.
type Columns struct {
	// Column j holds rows Idx[Ptr[j]:Ptr[j+1]] with values Val[Ptr[j]:Ptr[j+1]].
	Ptr []int
	Idx []int32
	Val []float64
}

// Col returns the row indices and values of column j.
func (c *Columns) Col(j int) ([]int32, []float64) {
	return c.Idx[c.Ptr[j]:c.Ptr[j+1]], c.Val[c.Ptr[j]:c.Ptr[j+1]]
}

// ToColumns returns the compressed-column copy of m.
func (m *Matrix) ToColumns() *Columns {
	counts := make([]int, m.W)
	for i := range m.N {
		for j, v := range m.Row(i) {
			if v != 0 {
				counts[j]++
			}
		}
	}
	if m.Bias > 0 {
		counts[m.D] = m.N
	}
	c := &Columns{Ptr: make([]int, m.W+1)}
	for j, k := range counts {
		c.Ptr[j+1] = c.Ptr[j] + k
	}
	nnz := c.Ptr[m.W]
	c.Idx = make([]int32, nnz)
	c.Val = make([]float64, nnz)
	next := append([]int(nil), c.Ptr[:m.W]...)
	for i := range m.N {
		for j, v := range m.Row(i) {
			if v != 0 {
				c.Idx[next[j]], c.Val[next[j]] = int32(i), v
				next[j]++
			}
		}
		if m.Bias > 0 {
			c.Idx[next[m.D]], c.Val[next[m.D]] = int32(i), m.Bias
			next[m.D]++
		}
	}
	return c
}

// Rows is a compressed-row copy of a Matrix holding its non-zero entries, with the bias
// feature stored as an ordinary last entry: the layout for coordinate descent over rows,
// which reads one row at a time in random order and is bound by memory traffic. Entries
// equal to 1 (one-hot columns, the bias) are stored as a column index alone.
//
// Row i's general entries are columns Idx[Off[i] : Off[i]+m] with values Val[VOff[i] :
// VOff[i+1]], m = VOff[i+1] − VOff[i]; its unit entries are columns Idx[Off[i]+m : Off[i+1]].
// Idx and Val end with one entry of padding.
type Rows struct {
	Off, VOff []int32
	Idx       []int32
	Val       []float64
}

// ToRows returns the compressed-row copy of m.
func (m *Matrix) ToRows() *Rows {
	r := &Rows{Off: make([]int32, m.N+1), VOff: make([]int32, m.N+1)}
	var ones []int32
	for i := range m.N {
		ones = ones[:0]
		for j, v := range m.Row(i) {
			switch v {
			case 0:
			case 1:
				ones = append(ones, int32(j))
			default:
				r.Idx = append(r.Idx, int32(j))
				r.Val = append(r.Val, v)
			}
		}
		switch m.Bias {
		case 0:
		case 1:
			ones = append(ones, int32(m.D))
		default:
			r.Idx = append(r.Idx, int32(m.D))
			r.Val = append(r.Val, m.Bias)
		}
		r.Idx = append(r.Idx, ones...)
		r.Off[i+1] = int32(len(r.Idx))
		r.VOff[i+1] = int32(len(r.Val))
	}
	// One entry of padding, so that reading at any row's offset is in bounds.
	r.Idx = append(r.Idx, 0)
	r.Val = append(r.Val, 0)
	return r
}

// Row returns the general entries (columns and values) and the unit entries (columns) of
// row i.
func (r *Rows) Row(i int) (cols []int32, vals []float64, ones []int32) {
	vals = r.Val[r.VOff[i]:r.VOff[i+1]]
	all := r.Idx[r.Off[i]:r.Off[i+1]]
	return all[:len(vals)], vals, all[len(vals):]
}

// Dot returns x_i · w.
func (r *Rows) Dot(i int, w []float64) float64 {
	cols, vals, ones := r.Row(i)
	var s0, s1 float64
	for k, j := range cols {
		s0 += vals[k] * w[j]
	}
	for _, j := range ones {
		s1 += w[j]
	}
	return s0 + s1
}

// AddScaled does w += a·x_i.
func (r *Rows) AddScaled(w []float64, a float64, i int) {
	cols, vals, ones := r.Row(i)
	for k, j := range cols {
		w[j] += a * vals[k]
	}
	for _, j := range ones {
		w[j] += a
	}
}

// SqNorm returns ||x_i||².
func (r *Rows) SqNorm(i int) float64 {
	_, vals, ones := r.Row(i)
	s := float64(len(ones))
	for _, v := range vals {
		s += v * v
	}
	return s
}

// AddGramVecRows adds Σ_{lo ≤ i < hi} d_i (x_i·s) x_i to g, including the bias feature: the
// product XᵀDXs of a generalised Hessian with s, in one pass over the rows (each row is read
// once, for its dot product and its update).
func (m *Matrix) AddGramVecRows(g, s, d []float64, lo, hi int) {
	sw := s[:m.D]
	gw := g[:m.D]
	var bias float64
	for i := lo; i < hi; i++ {
		if d[i] == 0 {
			continue
		}
		row := m.Row(i)
		t := floats.Dot(row, sw)
		if m.Bias > 0 {
			t += m.Bias * s[m.D]
		}
		t *= d[i]
		floats.AddScaled(gw, t, row)
		bias += t
	}
	if m.Bias > 0 {
		g[m.D] += m.Bias * bias
	}
}

// Labels checks that y holds 0/1 labels of both classes and returns them as ±1 with the
// per-row penalties C·weight, and the number of positives.
func Labels(y []float64, c float64, cw ml.ClassWeights) (sign, cost []float64, pos int, err error) {
	neg, posW := cw.Resolve(y)
	sign = make([]float64, len(y))
	cost = make([]float64, len(y))
	for i, v := range y {
		switch v {
		case 1:
			sign[i], cost[i] = 1, c*posW
			pos++
		case 0:
			sign[i], cost[i] = -1, c*neg
		default:
			return nil, nil, 0, fmt.Errorf("label %v at row %d is neither 0 nor 1", v, i)
		}
	}
	if pos == 0 || pos == len(y) {
		return nil, nil, 0, errors.New("labels hold a single class")
	}
	return sign, cost, pos, nil
}
