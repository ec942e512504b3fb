package recommend

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/internal/parallel"
)

// ImplicitALS fits weighted matrix factorisation to implicit feedback (Hu, Koren and Volinsky
// 2008). Every (user, item) cell has a preference p_ui = 1 when the pair has a positive value
// r_ui and 0 otherwise, with confidence c_ui = 1 + α·r_ui (1 for the cells without a value),
// and the fit minimises
//
//	Σ_(u,i) c_ui (p_ui − x_u·y_i)² + λ (Σ_u ‖x_u‖² + Σ_i ‖y_i‖²)
//
// over all cells. Each half-iteration updates every user (then every item) by a few steps of
// conjugate gradient on its normal equations (YᵀY + Yᵀ(C_u − I)Y + λI) x_u = YᵀC_u p_u,
// warm-started from its previous factors, as the implicit library's CG solver (Takács, Pilászy
// and Tikk 2011): YᵀY is computed once per half-iteration, so a user costs O(n_u·rank +
// rank²) per step rather than the O(n_u·rank²) of forming its matrix. Users and items are
// updated in parallel on up to GOMAXPROCS goroutines. Pairs with a value ≤ 0 are ignored.
// The zero value is the IMPLICIT_ALS family's default: rank 10, λ = 0.01, α = 40, 15
// iterations of 3 CG steps.
type ImplicitALS struct {
	// Rank is the number of factors; 0 means 10.
	Rank int
	// Lambda is λ; 0 means 0.01.
	Lambda float64
	// Alpha is α; 0 means 40.
	Alpha float64
	// Iterations is the number of alternations, or their cap with a tolerance; 0 means 15.
	Iterations int
	// CGSteps is the number of conjugate gradient steps per user and per item; 0 means 3.
	CGSteps int
	// Tol, when positive, stops when an iteration changes the loss by less than Tol times
	// its value, and the fit reports Converged false when the iterations ran out first. 0
	// (the default) or negative sets no tolerance: every iteration runs, the loss is
	// computed once at the end, and the fit reports Converged.
	Tol float64
	// InitStd is the standard deviation of the initial factors; 0 means 0.01.
	InitStd float64
	// Seed seeds the initial factors.
	Seed uint64
}

// Fit implements [Estimator]. Factors.Objective is the loss divided by the total confidence
// of all cells, as the implicit library reports it.
func (a ImplicitALS) Fit(ctx context.Context, d *Interactions) (*Factors, error) {
	defaults(&a.Rank, 10)
	defaults(&a.Lambda, 0.01)
	defaults(&a.Alpha, 40)
	defaults(&a.Iterations, 15)
	defaults(&a.CGSteps, 3)
	defaults(&a.InitStd, 0.01)
	if a.Rank < 1 || a.Lambda < 0 || a.Alpha < 0 || a.Iterations < 1 || a.CGSteps < 1 || a.InitStd < 0 {
		return nil, fmt.Errorf("implicit als: invalid settings rank=%d lambda=%v alpha=%v iterations=%d cg_steps=%d init_std=%v",
			a.Rank, a.Lambda, a.Alpha, a.Iterations, a.CGSteps, a.InitStd)
	}
	p, err := newProblem(d)
	if err != nil {
		return nil, fmt.Errorf("implicit als: %w", err)
	}
	k := a.Rank
	nu, ni := len(p.userIDs), len(p.itemIDs)
	x, y := make([]float64, nu*k), make([]float64, ni*k)
	rng := rand.New(rand.NewPCG(a.Seed, 0x69616c73))
	randomRows(rng, x, k, 0, a.InitStd)
	randomRows(rng, y, k, 0, a.InitStd)
	s := &cgSolver{k: k, lambda: a.Lambda, steps: a.CGSteps,
		userConf: confidences(p.byUser.val, a.Alpha), itemConf: confidences(p.byItem.val, a.Alpha)}

	var conv ml.Convergence
	prev, loss := 0.0, 0.0
	for it := 1; it <= a.Iterations; it++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s.half(x, y, p.byUser, s.userConf)
		s.half(y, x, p.byItem, s.itemConf)
		conv.Iterations = it
		if a.Tol <= 0 {
			continue
		}
		loss = s.loss(x, y, p)
		if it > 1 && math.Abs(prev-loss) < a.Tol*prev {
			conv.Converged = true
			break
		}
		prev = loss
	}
	if a.Tol <= 0 {
		loss = s.loss(x, y, p)
		conv.Converged = true
	}
	f := p.factors(k, x, y, k, false, 0)
	f.Convergence, f.Objective = conv, loss
	return f, nil
}

// confidences returns 1 + α·v for positive values and 0 (ignored) for the others.
func confidences(vals []float64, alpha float64) []float64 {
	c := make([]float64, len(vals))
	for e, v := range vals {
		if v > 0 {
			c[e] = 1 + alpha*v
		}
	}
	return c
}

// cgSolver holds the settings of one implicit ALS fit.
type cgSolver struct {
	k                  int
	lambda             float64
	steps              int
	userConf, itemConf []float64
}

// gram returns YᵀY + reg·I for the rows of y, k × k row-major.
func (s *cgSolver) gram(y []float64, reg float64) []float64 {
	k := s.k
	g := make([]float64, k*k)
	for r := 0; r < len(y); r += k {
		addOuter(g, y[r:r+k])
	}
	for a := range k {
		g[a*k+a] += reg
		for b := range a {
			g[a*k+b] = g[b*k+a]
		}
	}
	return g
}

// half updates every row of dst by CG against the fixed rows of other.
func (s *cgSolver) half(dst, other []float64, m csr, conf []float64) {
	k := s.k
	yty := s.gram(other, s.lambda)
	n := len(m.ptr) - 1
	parallel.For(n, 64, func(_, lo, hi int) {
		r, p, ap := make([]float64, k), make([]float64, k), make([]float64, k)
		for u := lo; u < hi; u++ {
			x := dst[u*k : u*k+k]
			cols, cs := m.idx[m.ptr[u]:m.ptr[u+1]], conf[m.ptr[u]:m.ptr[u+1]]
			// r = YᵀC_u p_u − (YᵀC_uY + λI) x, without forming YᵀC_uY.
			symv(yty, x, r)
			for c := range r {
				r[c] = -r[c]
			}
			for e, j := range cols {
				c := cs[e]
				if c == 0 {
					continue
				}
				yj := other[int(j)*k : int(j)*k+k]
				axpy(c-(c-1)*dot(yj, x), yj, r)
			}
			copy(p, r)
			rsold := dot(r, r)
			if rsold < 1e-20 {
				continue
			}
			for range s.steps {
				symv(yty, p, ap)
				for e, j := range cols {
					c := cs[e]
					if c == 0 {
						continue
					}
					yj := other[int(j)*k : int(j)*k+k]
					axpy((c-1)*dot(yj, p), yj, ap)
				}
				alpha := rsold / dot(p, ap)
				axpy(alpha, p, x)
				axpy(-alpha, ap, r)
				rsnew := dot(r, r)
				if rsnew < 1e-20 {
					break
				}
				beta := rsnew / rsold
				for c := range p {
					p[c] = r[c] + beta*p[c]
				}
				rsold = rsnew
			}
		}
	})
}

// symv sets out = a·v for the k × k row-major matrix a.
func symv(a, v, out []float64) {
	k := len(v)
	for r := range out {
		out[r] = dot(a[r*k:r*k+k], v)
	}
}

// loss returns the objective over all cells, divided by their total confidence: Σ_u
// [x_uᵀ(YᵀY)x_u + Σ_(i∈I_u) (c_ui (1 − x_u·y_i)² − (x_u·y_i)²)] + λ(‖X‖² + ‖Y‖²), over
// Σ c_ui + (users × items − pairs).
func (s *cgSolver) loss(x, y []float64, p *problem) float64 {
	k := s.k
	yty := s.gram(y, 0)
	nu, ni := len(p.userIDs), len(p.itemIDs)
	perUser := make([]float64, nu)
	confSum := make([]float64, nu)
	counted := make([]float64, nu)
	m := p.byUser
	parallel.For(nu, 256, func(_, lo, hi int) {
		tmp := make([]float64, k)
		for u := lo; u < hi; u++ {
			xu := x[u*k : u*k+k]
			symv(yty, xu, tmp)
			l := dot(xu, tmp) + s.lambda*dot(xu, xu)
			for e, i := range m.idx[m.ptr[u]:m.ptr[u+1]] {
				c := s.userConf[m.ptr[u]+e]
				if c == 0 {
					continue
				}
				xy := dot(xu, y[int(i)*k:int(i)*k+k])
				l += c*(1-xy)*(1-xy) - xy*xy
				confSum[u] += c
				counted[u]++
			}
			perUser[u] = l
		}
	})
	var loss, conf, cells float64
	for u := range nu {
		loss += perUser[u]
		conf += confSum[u]
		cells += counted[u]
	}
	loss += s.lambda * dot(y, y)
	return loss / (conf + float64(nu)*float64(ni) - cells)
}
