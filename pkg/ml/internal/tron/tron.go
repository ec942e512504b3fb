// Package tron minimises a smooth convex function by trust-region Newton with
// preconditioned conjugate gradient (Lin and Moré; Lin, Weng and Keerthi 2008; the
// preconditioner of Hsia, Chiang and Lin 2018), as LIBLINEAR's TRON. It needs only
// Hessian-vector products, so the Hessian is never formed.
package tron

import (
	"context"
	"math"

	"gonum.org/v1/gonum/floats"

	"github.com/bullseye-ml/bullseye/pkg/ml/internal/design"
)

// Objective is the function to minimise.
type Objective interface {
	// Fun returns f(w) and remembers what Grad needs.
	Fun(w []float64) float64
	// Grad sets g to the gradient at the w of the last Fun call and remembers what Hv and
	// Diag need.
	Grad(w, g []float64)
	// Hv sets hs to H s, H the Hessian at the w of the last Grad call.
	Hv(s, hs []float64)
	// Diag sets m to the diagonal of that Hessian.
	Diag(m []float64)
}

// Settings control the solver.
type Settings struct {
	// Tol stops the solver when ||∇f(w)|| ≤ Tol·||∇f(0)||.
	Tol float64
	// MaxIter caps the Newton iterations.
	MaxIter int
	// CGTol is the relative tolerance of the inner conjugate gradient; 0 means 0.1.
	CGTol float64
}

// Result says how the solver ended.
type Result struct {
	Iterations int
	Converged  bool
	// CGIterations counts Hessian-vector products.
	CGIterations int
	F            float64
}

const (
	eta0, eta1, eta2       = 1e-4, 0.25, 0.75
	sigma1, sigma2, sigma3 = 0.25, 0.5, 4
	alphaPCG               = 0.01
)

// Minimize improves w in place. It returns ctx's error, with w at the last accepted
// iterate, when ctx is cancelled.
func Minimize(ctx context.Context, obj Objective, w []float64, s Settings) (Result, error) {
	n := len(w)
	cgTol := s.CGTol
	if cgTol == 0 {
		cgTol = 0.1
	}
	g := make([]float64, n)
	step := make([]float64, n)
	r := make([]float64, n)
	m := make([]float64, n)
	wNew := make([]float64, n)
	cg := newCG(n)

	// The stopping rule is relative to the gradient at zero.
	zero := make([]float64, n)
	obj.Fun(zero)
	obj.Grad(zero, g)
	gnorm0 := floats.Norm(g, 2)

	var res Result
	f := obj.Fun(w)
	obj.Grad(w, g)
	gnorm := floats.Norm(g, 2)
	res.F = f
	if gnorm <= s.Tol*gnorm0 {
		res.Converged = true
		return res, nil
	}
	precond := func() {
		obj.Diag(m)
		for i := range m {
			m[i] = (1 - alphaPCG) + alphaPCG*m[i]
		}
	}
	precond()
	delta := math.Sqrt(uMv(g, m, g))
	adjusted := false
	for res.Iterations < s.MaxIter {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		k, boundary := cg.solve(obj, delta, g, m, step, r, cgTol)
		res.CGIterations += k
		copy(wNew, w)
		floats.Add(wNew, step)
		gs := floats.Dot(g, step)
		prered := -0.5 * (gs - floats.Dot(step, r))
		fNew := obj.Fun(wNew)
		actred := f - fNew

		sMnorm := math.Sqrt(uMv(step, m, step))
		if !adjusted {
			delta = math.Min(delta, sMnorm)
			adjusted = true
		}
		var alpha float64
		if fNew-f-gs <= 0 {
			alpha = sigma3
		} else {
			alpha = math.Max(sigma1, -0.5*(gs/(fNew-f-gs)))
		}
		switch {
		case actred < eta0*prered:
			delta = math.Min(alpha*sMnorm, sigma2*delta)
		case actred < eta1*prered:
			delta = math.Max(sigma1*delta, math.Min(alpha*sMnorm, sigma2*delta))
		case actred < eta2*prered:
			delta = math.Max(sigma1*delta, math.Min(alpha*sMnorm, sigma3*delta))
		case boundary:
			delta = sigma3 * delta
		default:
			delta = math.Max(delta, math.Min(alpha*sMnorm, sigma3*delta))
		}
		if actred > eta0*prered {
			res.Iterations++
			copy(w, wNew)
			f = fNew
			res.F = f
			obj.Grad(w, g)
			precond()
			if gnorm = floats.Norm(g, 2); gnorm <= s.Tol*gnorm0 {
				res.Converged = true
				return res, nil
			}
		}
		if f < -1e32 || prered <= 0 ||
			math.Abs(actred) <= 1e-12*math.Abs(f) && math.Abs(prered) <= 1e-12*math.Abs(f) {
			// No further progress is possible in floating point: the gradient is as small as
			// it will get.
			res.Converged = gnorm <= math.Sqrt(s.Tol)*gnorm0
			return res, nil
		}
	}
	return res, nil
}

// uMv returns uᵀ diag(m) v.
func uMv(u, m, v []float64) float64 {
	var s float64
	for i := range u {
		s += u[i] * m[i] * v[i]
	}
	return s
}

type cgState struct {
	d, hd, z []float64
}

func newCG(n int) *cgState {
	return &cgState{d: make([]float64, n), hd: make([]float64, n), z: make([]float64, n)}
}

// solve approximately minimises gᵀs + ½ sᵀHs within ||s||_M ≤ delta by preconditioned
// conjugate gradient, leaving the residual −(g + Hs) in r. It returns the number of
// Hessian-vector products and whether the step reached the trust-region boundary.
func (c *cgState) solve(obj Objective, delta float64, g, m, s, r []float64, tol float64) (int, bool) {
	d, hd, z := c.d, c.hd, c.z
	for i := range s {
		s[i] = 0
		r[i] = -g[i]
		z[i] = r[i] / m[i]
		d[i] = z[i]
	}
	zTr := floats.Dot(z, r)
	stop := tol * math.Sqrt(zTr)
	iter, maxIter := 0, max(len(s), 5)
	for iter < maxIter {
		if math.Sqrt(zTr) <= stop {
			break
		}
		iter++
		obj.Hv(d, hd)
		dHd := floats.Dot(d, hd)
		if dHd <= 1e-16 {
			break
		}
		alpha := zTr / dHd
		floats.AddScaled(s, alpha, d)
		if math.Sqrt(uMv(s, m, s)) > delta {
			// Back up and go to the boundary along d.
			floats.AddScaled(s, -alpha, d)
			sMd, sMs, dMd := uMv(s, m, d), uMv(s, m, s), uMv(d, m, d)
			dsq := delta * delta
			rad := math.Sqrt(sMd*sMd + dMd*(dsq-sMs))
			if sMd >= 0 {
				alpha = (dsq - sMs) / (sMd + rad)
			} else {
				alpha = (rad - sMd) / dMd
			}
			floats.AddScaled(s, alpha, d)
			floats.AddScaled(r, -alpha, hd)
			return iter, true
		}
		floats.AddScaled(r, -alpha, hd)
		for i := range z {
			z[i] = r[i] / m[i]
		}
		zTrNew := floats.Dot(z, r)
		beta := zTrNew / zTr
		for i := range d {
			d[i] = z[i] + beta*d[i]
		}
		zTr = zTrNew
	}
	return iter, false
}

// GaussNewton is what an L2-regularised loss over the rows of a design
// matrix, f(w) = ½‖w‖² + Σ_i c_i ℓ(y_i x_i·w), keeps between calls, and
// its Hessian products: the (generalised) Hessian is I + Xᵀ D X with D the
// rows' second derivatives DD, which the objective's Grad sets. Logistic
// regression and the squared-hinge SVM embed it and add Fun and Grad.
type GaussNewton struct {
	M *design.Matrix
	// Sign is each row's label as ±1 and Cost its weight c_i.
	Sign, Cost []float64
	// Z is each row's x_i·w at the last Fun; DD each row's c_i ℓ'' at the
	// last Grad.
	Z, DD []float64
	// Tmp is one scratch slice per part of M.
	Tmp [][]float64
}

// NewGaussNewton returns the state of a loss over m.
func NewGaussNewton(m *design.Matrix, sign, cost []float64) GaussNewton {
	o := GaussNewton{M: m, Sign: sign, Cost: cost, Z: make([]float64, m.N), DD: make([]float64, m.N), Tmp: make([][]float64, m.Parts)}
	for k := range o.Tmp {
		o.Tmp[k] = make([]float64, m.N/m.Parts+1)
	}
	return o
}

// Hv sets hs to (I + Xᵀ D X) s.
func (o *GaussNewton) Hv(s, hs []float64) {
	o.M.Reduce(hs, func(_ int, part []float64, lo, hi int) float64 {
		o.M.AddGramVecRows(part, s, o.DD, lo, hi)
		return 0
	})
	for j := range hs {
		hs[j] += s[j]
	}
}

// Diag sets d to the diagonal of I + Xᵀ D X.
func (o *GaussNewton) Diag(d []float64) {
	o.M.Reduce(d, func(_ int, part []float64, lo, hi int) float64 {
		for i := lo; i < hi; i++ {
			c := o.DD[i]
			if c == 0 {
				continue
			}
			for j, v := range o.M.Row(i) {
				part[j] += c * v * v
			}
			if o.M.Bias > 0 {
				part[o.M.D] += c * o.M.Bias * o.M.Bias
			}
		}
		return 0
	})
	for j := range d {
		d[j]++
	}
}
