package recommend

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/bullseye-ml/bullseye/pkg/ml"
)

// SGD fits the biased matrix factorisation model of Funk's and Koren's "SVD" by stochastic
// gradient descent, as the Surprise library's SVD: for each rating, in an order shuffled every
// epoch, with e = r_ui − (μ + b_u + b_i + p_u·q_i),
//
//	b_u += η (e − λ b_u)    b_i += η (e − λ b_i)
//	p_u += η (e q_i − λ p_u)    q_i += η (e p_u − λ q_i)
//
// It minimises Σ e² + λ (b_u² + b_i² + ‖p_u‖² + ‖q_i‖²) summed over the ratings. The epochs run
// one after another on one goroutine, so a seed gives the same model on any machine. The zero
// value is the MF_SGD family's default: rank 10, η = 0.005, λ = 0.02, 20 epochs, initial
// factors of standard deviation 0.1.
type SGD struct {
	// Rank is the number of factors; 0 means 10.
	Rank int
	// LearningRate is η; 0 means 0.005.
	LearningRate float64
	// Lambda is λ; 0 means 0.02.
	Lambda float64
	// Epochs is the number of passes over the ratings, or their cap with a tolerance; 0
	// means 20.
	Epochs int
	// Tol, when positive, stops when an epoch changes the objective (the sum, over the
	// epoch, of each rating's penalised squared error before its update) by less than Tol
	// times its value, and the fit reports Converged false when the epochs ran out first. 0
	// (the default) or negative sets no tolerance: the epochs are the schedule, as in the
	// Surprise library, and the fit reports Converged.
	Tol float64
	// NoBias fits p_u·q_i alone, without μ, b_u and b_i.
	NoBias bool
	// InitStd is the standard deviation of the initial factors; 0 means 0.1.
	InitStd float64
	// Seed seeds the initial factors and the order of the ratings.
	Seed uint64
}

// Fit implements [Estimator].
func (s SGD) Fit(ctx context.Context, d *Interactions) (*Factors, error) {
	defaults(&s.Rank, 10)
	defaults(&s.LearningRate, 0.005)
	defaults(&s.Lambda, 0.02)
	defaults(&s.Epochs, 20)
	defaults(&s.InitStd, 0.1)
	if s.Rank < 1 || s.LearningRate < 0 || s.Lambda < 0 || s.Epochs < 1 || s.InitStd < 0 {
		return nil, fmt.Errorf("sgd: invalid settings rank=%d learning_rate=%v lambda=%v epochs=%d init_std=%v",
			s.Rank, s.LearningRate, s.Lambda, s.Epochs, s.InitStd)
	}
	p, err := newProblem(d)
	if err != nil {
		return nil, fmt.Errorf("sgd: %w", err)
	}
	biased := !s.NoBias
	off, mu := 0, 0.0
	if biased {
		off, mu = 1, p.mean
	}
	k, dim := s.Rank, s.Rank+off
	nu, ni := len(p.userIDs), len(p.itemIDs)
	x, y := make([]float64, nu*dim), make([]float64, ni*dim)
	rng := rand.New(rand.NewPCG(s.Seed, 0x736764))
	randomRows(rng, x, dim, off, s.InitStd)
	randomRows(rng, y, dim, off, s.InitStd)

	// The ratings as (user, item, value) entries, in user order before shuffling.
	nnz := p.nnz()
	users := make([]int32, nnz)
	for u := range nu {
		for e := p.byUser.ptr[u]; e < p.byUser.ptr[u+1]; e++ {
			users[e] = int32(u)
		}
	}
	order := make([]int32, nnz)
	for e := range order {
		order[e] = int32(e)
	}
	lr, lambda := s.LearningRate, s.Lambda
	var conv ml.Convergence
	prev, obj := 0.0, 0.0
	for epoch := 1; epoch <= s.Epochs; epoch++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rng.Shuffle(nnz, func(a, b int) { order[a], order[b] = order[b], order[a] })
		obj = 0
		for _, e := range order {
			u, i := int(users[e]), int(p.byUser.idx[e])
			xu, yi := x[u*dim:u*dim+dim], y[i*dim:i*dim+dim]
			pu, qi := xu[off:], yi[off:]
			pu = pu[:k]
			qi = qi[:k]
			pred := mu
			if biased {
				pred += xu[0] + yi[0]
			}
			for f, v := range pu {
				pred += v * qi[f]
			}
			err := p.byUser.val[e] - pred
			obj += err * err
			if biased {
				obj += lambda * (xu[0]*xu[0] + yi[0]*yi[0])
				xu[0] += lr * (err - lambda*xu[0])
				yi[0] += lr * (err - lambda*yi[0])
			}
			for f, pf := range pu {
				qf := qi[f]
				obj += lambda * (pf*pf + qf*qf)
				pu[f] += lr * (err*qf - lambda*pf)
				qi[f] += lr * (err*pf - lambda*qf)
			}
		}
		if math.IsNaN(obj) || math.IsInf(obj, 0) {
			return nil, fmt.Errorf("sgd: diverged in epoch %d (learning rate %v too large?)", epoch, lr)
		}
		conv.Iterations = epoch
		if epoch > 1 && s.Tol > 0 && math.Abs(prev-obj) < s.Tol*prev {
			conv.Converged = true
			break
		}
		prev = obj
	}
	if s.Tol <= 0 {
		conv.Converged = true
	}
	f := p.factors(k, x, y, dim, biased, mu)
	f.MinRating, f.MaxRating = p.lo, p.hi
	f.Convergence, f.Objective = conv, obj
	return f, nil
}
