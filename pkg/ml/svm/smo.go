package svm

import (
	"context"
	"math"

	"github.com/bullseye-ml/bullseye/pkg/ml/internal/parallel"
	"github.com/bullseye-ml/bullseye/pkg/ml/kernel"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/floats"
)

// Alpha status bits: a variable can move up (is in I_up) or down (in I_low).
const (
	lower uint8 = iota // α = 0
	upper              // α = C
	free
)

// tau replaces a non-positive curvature, as LIBSVM.
const tau = 1e-12

// minKernelChunk is the fewest kernel entries a goroutine computes: a kernel row is split
// across cores only from 2·8,192 entries on. Below that, waking a goroutine costs more than
// it saves (measured on Bank's 8,237 rows: serial rows are about 10 % faster).
const minKernelChunk = 8192

// smo solves the SVM dual
//
//	min ½ αᵀQα − Σ α_i,  0 ≤ α_i ≤ C_i,  yᵀα = 0,  Q_ij = y_i y_j k(x_i, x_j)
//
// by sequential minimal optimisation with the second-order working-set selection of Fan,
// Chen and Lin (2005, "WSS3"), shrinking and gradient reconstruction, as LIBSVM's Solver.
// Arrays are kept in a permuted order so that the active variables come first; x is a
// private row-major copy permuted with them.
type smo struct {
	l, d   int
	k      kernel.Kernel
	x      []float64 // l×d, permuted
	sq     []float64 // squared row norms
	y      []float64 // ±1
	c      []float64 // upper bounds
	qd     []float64 // Q_ii
	alpha  []float64
	g      []float64 // gradient Qα − 1
	gBar   []float64 // Σ_{α_j = C_j} C_j Q_ij
	status []uint8
	perm   []int // original index of each position
	active int
	cache  *rowCache
	eps    float64
	shrink bool
	// unshrunk is set once the gradient was reconstructed near the optimum.
	unshrunk bool
	dots     []float64
	parts    int // most goroutines a kernel row is split across
	chunk    int // fewest entries per goroutine
	pairs    [][2]int
}

func newSMO(k kernel.Kernel, x []float64, l, d int, y, c []float64, eps float64, cacheBytes int, shrink bool) *smo {
	s := &smo{
		l: l, d: d, k: k, x: x, y: y, c: c, eps: eps, shrink: shrink,
		sq:     make([]float64, l),
		qd:     make([]float64, l),
		alpha:  make([]float64, l),
		g:      make([]float64, l),
		gBar:   make([]float64, l),
		status: make([]uint8, l),
		perm:   make([]int, l),
		active: l,
		cache:  newRowCache(l, cacheBytes),
		dots:   make([]float64, l),
		parts:  parallel.Parts(l, minKernelChunk),
		chunk:  minKernelChunk,
	}
	for i := range l {
		row := x[i*d : (i+1)*d]
		s.sq[i] = floats.Dot(row, row)
		s.qd[i] = k.FromDot(s.sq[i], s.sq[i], s.sq[i])
		s.g[i] = -1
		s.perm[i] = i
	}
	return s
}

// row returns Q_i on [0, n), computing the entries the cache lacks.
func (s *smo) row(i, n int) []float32 {
	q, start := s.cache.get(i, n)
	if start < n {
		s.fill(q, i, start, n)
	}
	return q[:n]
}

func (s *smo) fill(q []float32, i, lo, hi int) {
	xi := s.x[i*s.d : (i+1)*s.d]
	yi := s.y[i]
	sqi := s.sq[i]
	compute := func(_, a, b int) {
		a, b = lo+a, lo+b
		dots := s.dots[a:b]
		blas64.Gemv(blas.NoTrans, 1,
			blas64.General{Rows: b - a, Cols: s.d, Stride: s.d, Data: s.x[a*s.d : b*s.d]},
			blas64.Vector{N: s.d, Inc: 1, Data: xi}, 0, blas64.Vector{N: b - a, Inc: 1, Data: dots})
		out := q[a:b]
		y := s.y[a:b]
		switch s.k.Kind {
		case kernel.RBF:
			sq := s.sq[a:b]
			ng := -s.k.Gamma
			for j, dt := range dots {
				d2 := sqi + sq[j] - 2*dt
				if d2 < 0 {
					d2 = 0 // rounding
				}
				out[j] = float32(yi * y[j] * math.Exp(ng*d2))
			}
		default:
			for j, dt := range dots {
				out[j] = float32(yi * y[j] * s.k.FromDot(dt, 0, 0))
			}
		}
	}
	n := hi - lo
	parallel.Split(n, min(s.parts, max(n/s.chunk, 1)), compute)
}

func (s *smo) updateStatus(i int) {
	switch {
	case s.alpha[i] >= s.c[i]:
		s.status[i] = upper
	case s.alpha[i] <= 0:
		s.status[i] = lower
	default:
		s.status[i] = free
	}
}

// swap exchanges positions i and j; the caller applies s.pairs to the cache afterwards.
func (s *smo) swap(i, j int) {
	if i == j {
		return
	}
	s.cache.swap(i, j)
	s.pairs = append(s.pairs, [2]int{i, j})
	s.y[i], s.y[j] = s.y[j], s.y[i]
	s.c[i], s.c[j] = s.c[j], s.c[i]
	s.qd[i], s.qd[j] = s.qd[j], s.qd[i]
	s.sq[i], s.sq[j] = s.sq[j], s.sq[i]
	s.alpha[i], s.alpha[j] = s.alpha[j], s.alpha[i]
	s.g[i], s.g[j] = s.g[j], s.g[i]
	s.gBar[i], s.gBar[j] = s.gBar[j], s.gBar[i]
	s.status[i], s.status[j] = s.status[j], s.status[i]
	s.perm[i], s.perm[j] = s.perm[j], s.perm[i]
	xi, xj := s.x[i*s.d:(i+1)*s.d], s.x[j*s.d:(j+1)*s.d]
	for k := range xi {
		xi[k], xj[k] = xj[k], xi[k]
	}
}

// selectPair returns the working set (i, j), or ok false when the active problem is
// optimal within eps.
func (s *smo) selectPair() (i, j int, ok bool) {
	gMax, gMax2 := math.Inf(-1), math.Inf(-1)
	i, j = -1, -1
	n := s.active
	y, g, st := s.y[:n], s.g[:n], s.status[:n]
	for t := range n {
		if y[t] > 0 {
			if st[t] != upper && -g[t] >= gMax {
				gMax, i = -g[t], t
			}
		} else if st[t] != lower && g[t] >= gMax {
			gMax, i = g[t], t
		}
	}
	if i < 0 {
		return -1, -1, false
	}
	qi := s.row(i, n)
	yi, qdi := s.y[i], s.qd[i]
	qd := s.qd[:n]
	objMin := math.Inf(1)
	for t := range n {
		var diff float64
		if y[t] > 0 {
			if st[t] == lower {
				continue
			}
			if g[t] >= gMax2 {
				gMax2 = g[t]
			}
			diff = gMax + g[t]
		} else {
			if st[t] == upper {
				continue
			}
			if -g[t] >= gMax2 {
				gMax2 = -g[t]
			}
			diff = gMax - g[t]
		}
		if diff > 0 {
			quad := qdi + qd[t] - 2*yi*y[t]*float64(qi[t])
			if quad <= 0 {
				quad = tau
			}
			if obj := -diff * diff / quad; obj <= objMin {
				objMin, j = obj, t
			}
		}
	}
	if gMax+gMax2 < s.eps || j < 0 {
		return -1, -1, false
	}
	return i, j, true
}

// update moves α_i and α_j along the feasible direction to the constrained minimum and
// updates the gradient.
func (s *smo) update(i, j int) {
	n := s.active
	qi := s.row(i, n)
	qj := s.row(j, n)
	ci, cj := s.c[i], s.c[j]
	oldI, oldJ := s.alpha[i], s.alpha[j]
	a := s.alpha
	if s.y[i] != s.y[j] {
		quad := s.qd[i] + s.qd[j] + 2*float64(qi[j])
		if quad <= 0 {
			quad = tau
		}
		delta := (-s.g[i] - s.g[j]) / quad
		diff := a[i] - a[j]
		a[i] += delta
		a[j] += delta
		if diff > 0 {
			if a[j] < 0 {
				a[j], a[i] = 0, diff
			}
		} else if a[i] < 0 {
			a[i], a[j] = 0, -diff
		}
		if diff > ci-cj {
			if a[i] > ci {
				a[i], a[j] = ci, ci-diff
			}
		} else if a[j] > cj {
			a[j], a[i] = cj, cj+diff
		}
	} else {
		quad := s.qd[i] + s.qd[j] - 2*float64(qi[j])
		if quad <= 0 {
			quad = tau
		}
		delta := (s.g[i] - s.g[j]) / quad
		sum := a[i] + a[j]
		a[i] -= delta
		a[j] += delta
		if sum > ci {
			if a[i] > ci {
				a[i], a[j] = ci, sum-ci
			}
		} else if a[j] < 0 {
			a[j], a[i] = 0, sum
		}
		if sum > cj {
			if a[j] > cj {
				a[j], a[i] = cj, sum-cj
			}
		} else if a[i] < 0 {
			a[i], a[j] = 0, sum
		}
	}
	dI, dJ := a[i]-oldI, a[j]-oldJ
	g := s.g[:n]
	qi, qj = qi[:n], qj[:n]
	for t := range g {
		g[t] += float64(qi[t])*dI + float64(qj[t])*dJ
	}
	wasUpperI, wasUpperJ := s.status[i] == upper, s.status[j] == upper
	s.updateStatus(i)
	s.updateStatus(j)
	s.updateGBar(i, wasUpperI)
	s.updateGBar(j, wasUpperJ)
}

func (s *smo) updateGBar(i int, wasUpper bool) {
	isUpper := s.status[i] == upper
	if wasUpper == isUpper {
		return
	}
	q := s.row(i, s.l)
	c := s.c[i]
	if wasUpper {
		c = -c
	}
	for t := range s.gBar {
		s.gBar[t] += c * float64(q[t])
	}
}

// reconstruct recomputes the gradient of the inactive variables.
func (s *smo) reconstruct() {
	if s.active == s.l {
		return
	}
	for t := s.active; t < s.l; t++ {
		s.g[t] = s.gBar[t] - 1
	}
	nFree := 0
	for t := range s.active {
		if s.status[t] == free {
			nFree++
		}
	}
	if nFree*s.l > 2*s.active*(s.l-s.active) {
		for t := s.active; t < s.l; t++ {
			q := s.row(t, s.active)
			for u := range s.active {
				if s.status[u] == free {
					s.g[t] += s.alpha[u] * float64(q[u])
				}
			}
		}
	} else {
		for u := range s.active {
			if s.status[u] != free {
				continue
			}
			q := s.row(u, s.l)
			a := s.alpha[u]
			for t := s.active; t < s.l; t++ {
				s.g[t] += a * float64(q[t])
			}
		}
	}
}

func (s *smo) shrunk(t int, gMax1, gMax2 float64) bool {
	switch s.status[t] {
	case upper:
		if s.y[t] > 0 {
			return -s.g[t] > gMax1
		}
		return -s.g[t] > gMax2
	case lower:
		if s.y[t] > 0 {
			return s.g[t] > gMax2
		}
		return s.g[t] > gMax1
	}
	return false
}

func (s *smo) doShrinking() {
	gMax1, gMax2 := math.Inf(-1), math.Inf(-1)
	for t := range s.active {
		if s.y[t] > 0 {
			if s.status[t] != upper {
				gMax1 = math.Max(gMax1, -s.g[t])
			}
			if s.status[t] != lower {
				gMax2 = math.Max(gMax2, s.g[t])
			}
		} else {
			if s.status[t] != upper {
				gMax2 = math.Max(gMax2, -s.g[t])
			}
			if s.status[t] != lower {
				gMax1 = math.Max(gMax1, s.g[t])
			}
		}
	}
	if !s.unshrunk && gMax1+gMax2 <= s.eps*10 {
		s.unshrunk = true
		s.reconstruct()
		s.active = s.l
	}
	s.pairs = s.pairs[:0]
	for t := 0; t < s.active; t++ {
		if !s.shrunk(t, gMax1, gMax2) {
			continue
		}
		s.active--
		for s.active > t {
			if !s.shrunk(s.active, gMax1, gMax2) {
				s.swap(t, s.active)
				break
			}
			s.active--
		}
	}
	s.cache.permute(s.pairs)
}

// solve runs SMO until optimal within eps or maxIter pair updates. It returns the number of
// updates and whether it converged; ctx is checked every 1000 updates.
func (s *smo) solve(ctx context.Context, maxIter int) (int, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	counter := min(s.l, 1000) + 1
	iter := 0
	for iter < maxIter {
		if counter--; counter == 0 {
			counter = min(s.l, 1000)
			if s.shrink {
				s.doShrinking()
			}
			if err := ctx.Err(); err != nil {
				return iter, false, err
			}
		}
		i, j, ok := s.selectPair()
		if !ok {
			// Optimal on the active set: check every variable.
			s.reconstruct()
			s.active = s.l
			if i, j, ok = s.selectPair(); !ok {
				return iter, true, nil
			}
			counter = 1 // shrink at the next iteration
		}
		iter++
		s.update(i, j)
	}
	// Out of iterations: make the gradient whole for rho.
	s.reconstruct()
	s.active = s.l
	return iter, false, nil
}

// rho returns the bias term: the decision function is Σ α_i y_i k(x_i, x) − rho.
func (s *smo) rho() float64 {
	ub, lb := math.Inf(1), math.Inf(-1)
	var sumFree float64
	nFree := 0
	for t := range s.active {
		yg := s.y[t] * s.g[t]
		switch s.status[t] {
		case upper:
			if s.y[t] < 0 {
				ub = math.Min(ub, yg)
			} else {
				lb = math.Max(lb, yg)
			}
		case lower:
			if s.y[t] > 0 {
				ub = math.Min(ub, yg)
			} else {
				lb = math.Max(lb, yg)
			}
		default:
			nFree++
			sumFree += yg
		}
	}
	if nFree > 0 {
		return sumFree / float64(nFree)
	}
	return (ub + lb) / 2
}
