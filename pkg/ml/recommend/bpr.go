package recommend

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/bullseye-ml/bullseye/pkg/ml"
)

// BPR fits Bayesian personalised ranking (Rendle, Freudenthaler, Gantner and Schmidt-Thieme
// 2009) to implicit feedback by stochastic gradient ascent on
//
//	Σ_(u,i,j) ln σ(x_uij) − λ (‖p_u‖² + ‖q_i‖² + ‖q_j‖² + b_i² + b_j²),  x_uij = b_i − b_j + p_u·(q_i − q_j),
//
// over triples of a user u, an item i with a positive value and an item j the user does not
// have, drawn uniformly: each epoch draws Negatives triples per positive pair. The model
// scores p_u·q_i + b_i. It runs on one goroutine, so a seed gives the same model on any
// machine. The zero value is the BPR family's default: rank 10, η = 0.05, λ = 0.01, 20
// epochs, one negative per positive.
type BPR struct {
	// Rank is the number of factors; 0 means 10.
	Rank int
	// LearningRate is η; 0 means 0.05.
	LearningRate float64
	// Lambda is λ; 0 means 0.01.
	Lambda float64
	// Epochs is the number of passes, or their cap with a tolerance; 0 means 20.
	Epochs int
	// Negatives is the number of triples drawn per positive pair and epoch; 0 means 1.
	Negatives int
	// Tol, when positive, stops when an epoch's mean of −ln σ(x_uij) changes by less than
	// Tol times its previous value, and the fit reports Converged false when the epochs ran
	// out first. 0 (the default) or negative sets no tolerance: the epochs are the schedule,
	// and the fit reports Converged.
	Tol float64
	// InitStd is the standard deviation of the initial factors; 0 means 0.1.
	InitStd float64
	// Seed seeds the initial factors and the triples.
	Seed uint64
}

// Fit implements [Estimator]. Factors.Objective is the last epoch's mean −ln σ(x_uij).
func (b BPR) Fit(ctx context.Context, d *Interactions) (*Factors, error) {
	defaults(&b.Rank, 10)
	defaults(&b.LearningRate, 0.05)
	defaults(&b.Lambda, 0.01)
	defaults(&b.Epochs, 20)
	defaults(&b.Negatives, 1)
	defaults(&b.InitStd, 0.1)
	if b.Rank < 1 || b.LearningRate < 0 || b.Lambda < 0 || b.Epochs < 1 || b.Negatives < 1 || b.InitStd < 0 {
		return nil, fmt.Errorf("bpr: invalid settings rank=%d learning_rate=%v lambda=%v epochs=%d negatives=%d init_std=%v",
			b.Rank, b.LearningRate, b.Lambda, b.Epochs, b.Negatives, b.InitStd)
	}
	p, err := newProblem(d)
	if err != nil {
		return nil, fmt.Errorf("bpr: %w", err)
	}
	k, dim := b.Rank, b.Rank+1
	nu, ni := len(p.userIDs), len(p.itemIDs)
	// User rows hold a constant 1 in column 0, so that x_u·y_i = b_i + p_u·q_i.
	x, y := make([]float64, nu*dim), make([]float64, ni*dim)
	rng := rand.New(rand.NewPCG(b.Seed, 0x627072))
	randomRows(rng, x, dim, 1, b.InitStd)
	randomRows(rng, y, dim, 1, b.InitStd)
	for u := range nu {
		x[u*dim] = 1
	}
	var pos []int32 // entries with a positive value
	users := make([]int32, p.nnz())
	for u := range nu {
		for e := p.byUser.ptr[u]; e < p.byUser.ptr[u+1]; e++ {
			users[e] = int32(u)
			if p.byUser.val[e] > 0 {
				pos = append(pos, int32(e))
			}
		}
	}
	if len(pos) == 0 {
		return nil, fmt.Errorf("bpr: no interaction has a positive value")
	}
	lr, lambda := b.LearningRate, b.Lambda
	diff := make([]float64, dim)
	var conv ml.Convergence
	prev, obj := 0.0, 0.0
	for epoch := 1; epoch <= b.Epochs; epoch++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var sum float64
		var draws int
		for range len(pos) * b.Negatives {
			e := pos[rng.IntN(len(pos))]
			u, i := int(users[e]), int(p.byUser.idx[e])
			have := p.byUser.idx[p.byUser.ptr[u]:p.byUser.ptr[u+1]]
			if len(have) >= ni {
				continue
			}
			j := rng.IntN(ni)
			for {
				if _, found := slices.BinarySearch(have, int32(j)); !found {
					break
				}
				j = rng.IntN(ni)
			}
			xu, yi, yj := x[u*dim:u*dim+dim], y[i*dim:i*dim+dim], y[j*dim:j*dim+dim]
			for c := range diff {
				diff[c] = yi[c] - yj[c]
			}
			xuij := dot(xu, diff)
			sum += softplus(-xuij)
			draws++
			z := 1 / (1 + math.Exp(xuij)) // σ(−x_uij), the gradient's weight
			// Column 0 is the item bias (the user's column 0 stays 1).
			yi[0] += lr * (z - lambda*yi[0])
			yj[0] += lr * (-z - lambda*yj[0])
			for c := 1; c < dim; c++ {
				pu, qi, qj := xu[c], yi[c], yj[c]
				xu[c] += lr * (z*diff[c] - lambda*pu)
				yi[c] += lr * (z*pu - lambda*qi)
				yj[c] += lr * (-z*pu - lambda*qj)
			}
		}
		obj = sum / float64(max(draws, 1))
		if math.IsNaN(obj) || math.IsInf(obj, 0) {
			return nil, fmt.Errorf("bpr: diverged in epoch %d (learning rate %v too large?)", epoch, lr)
		}
		conv.Iterations = epoch
		if epoch > 1 && b.Tol > 0 && math.Abs(prev-obj) < b.Tol*prev {
			conv.Converged = true
			break
		}
		prev = obj
	}
	if b.Tol <= 0 {
		conv.Converged = true
	}
	f := p.factors(k, x, y, dim, true, 0)
	f.UserBiases = nil // the users' column 0 is the constant 1
	f.Convergence, f.Objective = conv, obj
	return f, nil
}

// softplus returns ln(1 + eˣ) without overflow.
func softplus(v float64) float64 {
	if v > 0 {
		return v + math.Log1p(math.Exp(-v))
	}
	return math.Log1p(math.Exp(v))
}
