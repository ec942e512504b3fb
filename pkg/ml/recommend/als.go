package recommend

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/internal/parallel"
)

// ALS fits biased matrix factorisation to ratings by alternating least squares with
// weighted-λ regularisation (Zhou, Wilkinson, Schreiber and Pan 2008). It minimises
//
//	Σ_(u,i) (r_ui − μ − b_u − b_i − p_u·q_i)² + λ (Σ_u n_u (b_u² + ‖p_u‖²) + Σ_i n_i (b_i² + ‖q_i‖²))
//
// with μ the mean training rating (fixed) and n_u, n_i the users' and items' numbers of
// ratings. Each half-iteration solves every user's (then every item's) rank + 1 normal
// equations by Cholesky, in parallel. Without biases, μ and the b terms are left out. The zero
// value is the MF_ALS family's default: rank 10, λ = 0.1, 15 iterations, no tolerance.
type ALS struct {
	// Rank is the number of factors; 0 means 10.
	Rank int
	// Lambda is λ; 0 means 0.1.
	Lambda float64
	// Iterations is the number of alternations (a user half and an item half each), or
	// their cap with a tolerance; 0 means 15.
	Iterations int
	// Tol, when positive, stops when an iteration changes the objective by less than Tol
	// times its value, and the fit reports Converged false when the iterations ran out
	// first. 0 (the default) or negative sets no tolerance: every iteration runs, the
	// objective is computed once at the end, and the fit reports Converged (there is no
	// tolerance it could miss).
	Tol float64
	// NoBias fits p_u·q_i alone.
	NoBias bool
	// InitStd is the standard deviation of the initial item factors; 0 means 0.1.
	InitStd float64
	// Seed seeds the initial factors.
	Seed uint64
}

// Estimator fits a recommender to interactions. Fit returns promptly with ctx's error when
// ctx is cancelled.
type Estimator interface {
	Fit(ctx context.Context, d *Interactions) (*Factors, error)
}

var (
	_ Estimator = ALS{}
	_ Estimator = SGD{}
	_ Estimator = ImplicitALS{}
	_ Estimator = BPR{}
	_ Estimator = Popular{}
)

func defaults[T int | float64](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// Fit implements [Estimator]. The objective is reported in Factors.Objective.
func (a ALS) Fit(ctx context.Context, d *Interactions) (*Factors, error) {
	defaults(&a.Rank, 10)
	defaults(&a.Lambda, 0.1)
	defaults(&a.Iterations, 15)
	defaults(&a.InitStd, 0.1)
	if a.Rank < 1 || a.Lambda < 0 || a.Iterations < 1 || a.InitStd < 0 {
		return nil, fmt.Errorf("als: invalid settings rank=%d lambda=%v iterations=%d init_std=%v", a.Rank, a.Lambda, a.Iterations, a.InitStd)
	}
	p, err := newProblem(d)
	if err != nil {
		return nil, fmt.Errorf("als: %w", err)
	}
	biased := !a.NoBias
	off, mu := 0, 0.0
	if biased {
		off, mu = 1, p.mean
	}
	dim := a.Rank + off
	nu, ni := len(p.userIDs), len(p.itemIDs)
	x, y := make([]float64, nu*dim), make([]float64, ni*dim)
	rng := rand.New(rand.NewPCG(a.Seed, 0x616c73))
	randomRows(rng, y, dim, off, a.InitStd)

	s := alsSolver{dim: dim, biased: biased, mu: mu, lambda: a.Lambda}
	var conv ml.Convergence
	prev := 0.0
	obj := 0.0
	for it := 1; it <= a.Iterations; it++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s.half(x, y, p.byUser); err != nil {
			return nil, fmt.Errorf("als: users, iteration %d: %w", it, err)
		}
		if err := s.half(y, x, p.byItem); err != nil {
			return nil, fmt.Errorf("als: items, iteration %d: %w", it, err)
		}
		conv.Iterations = it
		if a.Tol <= 0 {
			continue
		}
		obj = s.objective(x, y, p)
		if it > 1 && math.Abs(prev-obj) < a.Tol*prev {
			conv.Converged = true
			break
		}
		prev = obj
	}
	if a.Tol <= 0 {
		obj = s.objective(x, y, p)
		conv.Converged = true
	}
	f := p.factors(a.Rank, x, y, dim, biased, mu)
	f.MinRating, f.MaxRating = p.lo, p.hi
	f.Convergence, f.Objective = conv, obj
	return f, nil
}

// alsSolver holds the settings of one explicit ALS fit.
type alsSolver struct {
	dim    int
	biased bool
	mu     float64
	lambda float64
}

var errNotPD = errors.New("normal equations not positive definite")

// half solves the rows of dst (users or items) against the fixed rows of other, m holding
// each dst row's entries.
func (s *alsSolver) half(dst, other []float64, m csr) error {
	n := len(m.ptr) - 1
	dim := s.dim
	var failed errorOnce
	parallel.For(n, 64, func(_, lo, hi int) {
		a := make([]float64, dim*dim)
		b := make([]float64, dim)
		z := make([]float64, dim)
		for k := lo; k < hi; k++ {
			clear(a)
			clear(b)
			cols, vals := m.idx[m.ptr[k]:m.ptr[k+1]], m.val[m.ptr[k]:m.ptr[k+1]]
			for e, j := range cols {
				copy(z, other[int(j)*dim:int(j)*dim+dim])
				t := vals[e]
				if s.biased {
					// The other side's bias enters the target; this side's bias multiplies 1.
					t -= s.mu + z[0]
					z[0] = 1
				}
				addOuter(a, z)
				axpy(t, z, b)
			}
			reg := s.lambda * float64(len(cols))
			for c := range dim {
				a[c*dim+c] += reg
			}
			if !cholSolve(a, dim, b) {
				failed.set(errNotPD)
				return
			}
			copy(dst[k*dim:k*dim+dim], b)
		}
	})
	return failed.err
}

// objective returns the weighted-λ objective, summed per user in a fixed order.
func (s *alsSolver) objective(x, y []float64, p *problem) float64 {
	dim := s.dim
	nu := len(p.userIDs)
	perUser := make([]float64, nu)
	m := p.byUser
	parallel.For(nu, 256, func(_, lo, hi int) {
		for u := lo; u < hi; u++ {
			xu := x[u*dim : u*dim+dim]
			var loss float64
			for e, i := range m.idx[m.ptr[u]:m.ptr[u+1]] {
				yi := y[int(i)*dim : int(i)*dim+dim]
				pred := s.predict(xu, yi)
				r := m.val[m.ptr[u]+e] - pred
				loss += r * r
			}
			loss += s.lambda * float64(m.ptr[u+1]-m.ptr[u]) * dot(xu, xu)
			perUser[u] = loss
		}
	})
	var obj float64
	for _, v := range perUser {
		obj += v
	}
	for i := range len(p.itemIDs) {
		yi := y[i*dim : i*dim+dim]
		obj += s.lambda * float64(p.byItem.ptr[i+1]-p.byItem.ptr[i]) * dot(yi, yi)
	}
	return obj
}

// predict returns the model's value for rows xu, yi of width dim.
func (s *alsSolver) predict(xu, yi []float64) float64 {
	if !s.biased {
		return dot(xu, yi)
	}
	return s.mu + xu[0] + yi[0] + dot(xu[1:], yi[1:])
}
