package logistic

import (
	"context"
	"math"
	"math/rand/v2"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/internal/design"
)

// fitL1 minimises ||w||₁ + Σ c_i log(1 + exp(−y_i w·x_i)) by newGLMNET (Yuan, Ho and Lin
// 2012), LIBLINEAR's L1 solver: each outer Newton iteration builds the quadratic model of the
// loss at w, minimises it plus the L1 term by coordinate descent over features (closed-form
// steps, no exponentials), and takes an Armijo line search along the result. It stops when
// the L1 norm of the minimum-norm subgradient falls below tol times its value at the start.
func fitL1(ctx context.Context, m *design.Matrix, sign, cost, w []float64, tol float64, maxIter int, seed uint64) (ml.Convergence, error) {
	const (
		sigma     = 0.01
		nu        = 1e-12
		maxInner  = 100
		maxSearch = 30
	)
	cols := m.ToColumns()
	n, nw := m.N, m.W
	z := make([]float64, n)  // x_i · w
	dd := make([]float64, n) // c_i σ(1 − σ)
	xd := make([]float64, n) // x_i · d
	grad := make([]float64, nw)
	hess := make([]float64, nw)
	d := make([]float64, nw)
	order := make([]int, nw)
	rng := rand.New(rand.NewPCG(seed, 0x6c31))
	loss := func(step float64) float64 {
		var s float64
		for i := range n {
			s += cost[i] * logLoss(sign[i]*(z[i]+step*xd[i]))
		}
		return s
	}
	var conv ml.Convergence
	var gNorm1Init float64
	innerEps := 1.0
	for iter := 0; iter < maxIter; iter++ {
		if err := ctx.Err(); err != nil {
			return conv, err
		}
		// Gradient and Hessian diagonal of the loss at w.
		for i := range n {
			s := Sigmoid(sign[i] * z[i])
			dd[i] = cost[i] * s * (1 - s)
			xd[i] = cost[i] * (s - 1) * sign[i]
		}
		var gNorm1 float64
		order = order[:0]
		for j := range nw {
			idx, val := cols.Col(j)
			var g, h float64
			for k, i := range idx {
				g += xd[i] * val[k]
				h += dd[i] * val[k] * val[k]
			}
			grad[j], hess[j] = g, h+nu
			var viol float64
			switch {
			case w[j] > 0:
				viol = math.Abs(g + 1)
			case w[j] < 0:
				viol = math.Abs(g - 1)
			case g+1 < 0:
				viol = -(g + 1)
			case g-1 > 0:
				viol = g - 1
			}
			gNorm1 += viol
			// Only weights that are non-zero or could move from zero join the inner problem.
			if w[j] != 0 || viol > 0 {
				order = append(order, j)
			}
		}
		if iter == 0 {
			gNorm1Init = gNorm1
		}
		conv.Iterations = iter
		if gNorm1 <= tol*gNorm1Init {
			conv.Converged = true
			return conv, nil
		}

		// Coordinate descent on the quadratic model: min_d gᵀd + ½dᵀHd + ||w + d||₁.
		for j := range d {
			d[j] = 0
		}
		for i := range xd {
			xd[i] = 0
		}
		passes := 0
		for passes < maxInner {
			passes++
			rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
			var qMax float64
			for _, j := range order {
				idx, val := cols.Col(j)
				g := grad[j]
				for k, i := range idx {
					g += dd[i] * xd[i] * val[k]
				}
				h := hess[j]
				wpd := w[j] + d[j]
				gp, gn := g+1, g-1
				var viol, step float64
				switch {
				case wpd > 0:
					viol = math.Abs(gp)
				case wpd < 0:
					viol = math.Abs(gn)
				case gp < 0:
					viol = -gp
				case gn > 0:
					viol = gn
				}
				qMax = math.Max(qMax, viol)
				switch {
				case gp < h*wpd:
					step = -gp / h
				case gn > h*wpd:
					step = -gn / h
				default:
					step = -wpd
				}
				if math.Abs(step) < 1e-12 {
					continue
				}
				step = math.Min(math.Max(step, -10), 10)
				d[j] += step
				for k, i := range idx {
					xd[i] += step * val[k]
				}
			}
			if qMax <= innerEps {
				break
			}
		}
		if passes == 1 {
			innerEps *= 0.25
		}

		// Armijo line search along d.
		var delta, l1Old float64
		for j := range nw {
			delta += grad[j]*d[j] + math.Abs(w[j]+d[j]) - math.Abs(w[j])
			l1Old += math.Abs(w[j])
		}
		base := loss(0)
		step := 1.0
		accepted := false
		for range maxSearch {
			var l1 float64
			for j := range nw {
				l1 += math.Abs(w[j] + step*d[j])
			}
			if l1-l1Old+loss(step)-base <= sigma*step*delta {
				accepted = true
				break
			}
			step *= 0.5
		}
		if !accepted {
			// No decrease is possible in floating point: the solution is as good as it gets.
			conv.Converged = gNorm1 <= math.Sqrt(tol)*gNorm1Init
			return conv, nil
		}
		for j := range nw {
			w[j] += step * d[j]
		}
		for i := range n {
			z[i] += step * xd[i]
		}
	}
	conv.Iterations = maxIter
	return conv, nil
}
