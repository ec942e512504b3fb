package clv

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize"
)

// logLikFunc returns a model's log-likelihood at the natural parameters p and, when
// grad is not nil, stores its gradient with respect to p there.
type logLikFunc func(p, grad []float64) float64

const (
	// gradTol is the largest component of the gradient of the mean negative
	// log-likelihood, over the log-parameters, at which L-BFGS stops. Much below it the
	// line search works in the rounding noise of the log-likelihood and may cycle.
	gradTol = 1e-8
	// gradAccept is the largest such component accepted when L-BFGS stops otherwise.
	gradAccept = 1e-6
	// maxEvaluations bounds the log-likelihood evaluations of L-BFGS.
	maxEvaluations = 5000
	// newtonSteps bounds the Newton steps that polish the L-BFGS optimum.
	newtonSteps = 4
)

// maximize maximises ll from p0: L-BFGS over the logarithms of the parameters (so they
// stay positive) until the gradient is small, then Newton steps in the natural
// parameters with the differenced Hessian while they shrink the gradient; these use no
// function values, so they converge past the rounding noise of the log-likelihood. n
// scales the objective to a mean per customer. It returns the parameters and the
// number of L-BFGS iterations.
func maximize(ll logLikFunc, p0 []float64, n float64) ([]float64, int, error) {
	p, iters, err := maximizeLBFGS(ll, p0, n)
	if err != nil {
		return nil, iters, err
	}
	return polish(ll, p, n), iters, nil
}

// scaledGradient returns the largest component of the gradient of the mean negative
// log-likelihood over the log-parameters, and the gradient of ll in grad.
func scaledGradient(ll logLikFunc, p, grad []float64, n float64) float64 {
	ll(p, grad)
	worst := 0.0
	for i, g := range grad {
		worst = max(worst, math.Abs(g*p[i]/n))
	}
	if math.IsNaN(worst) {
		return math.Inf(1)
	}
	return worst
}

// polish takes Newton steps p ← p + I⁻¹∇ℓ(p) while each lowers the scaled gradient and
// keeps the parameters positive, with the observed information I of the first point
// throughout (it barely changes over steps this small).
func polish(ll logLikFunc, p []float64, n float64) []float64 {
	dim := len(p)
	grad, next, nextGrad := make([]float64, dim), make([]float64, dim), make([]float64, dim)
	worst := scaledGradient(ll, p, grad, n)
	if worst < 1e-14 {
		return p
	}
	var chol mat.Cholesky
	if !chol.Factorize(observedInformation(ll, p)) {
		return p
	}
	var step mat.VecDense
	for range newtonSteps {
		if err := chol.SolveVecTo(&step, mat.NewVecDense(dim, slices.Clone(grad))); err != nil {
			break
		}
		ok := true
		for i := range p {
			next[i] = p[i] + step.AtVec(i)
			ok = ok && next[i] > 0
		}
		if !ok {
			break
		}
		w := scaledGradient(ll, next, nextGrad, n)
		if !(w < worst) {
			break
		}
		p, next = next, p
		grad, nextGrad = nextGrad, grad
		worst = w
		if worst < 1e-14 {
			break
		}
	}
	return p
}

// maximizeLBFGS minimises the mean negative log-likelihood over the log-parameters.
// It fails when the search ends with a scaled gradient above gradAccept.
func maximizeLBFGS(ll logLikFunc, p0 []float64, n float64) ([]float64, int, error) {
	dim := len(p0)
	p, g := make([]float64, dim), make([]float64, dim)
	var lastX, lastG []float64
	var lastF float64
	eval := func(x []float64) {
		if lastX != nil && slices.Equal(x, lastX) {
			return
		}
		for i, xi := range x {
			p[i] = math.Exp(xi)
		}
		f := ll(p, g)
		lastF = -f / n
		lastG = lastG[:0]
		for i := range g {
			lastG = append(lastG, -g[i]*p[i]/n)
		}
		if math.IsNaN(lastF) {
			lastF = math.Inf(1)
		}
		lastX = append(lastX[:0], x...)
	}
	prob := optimize.Problem{
		Func: func(x []float64) float64 { eval(x); return lastF },
		Grad: func(grad, x []float64) { eval(x); copy(grad, lastG) },
	}
	x0 := make([]float64, dim)
	for i, v := range p0 {
		x0[i] = math.Log(v)
	}
	settings := &optimize.Settings{
		GradientThreshold: gradTol,
		Converger:         &optimize.FunctionConverge{Iterations: 20},
		FuncEvaluations:   maxEvaluations,
	}
	res, err := optimize.Minimize(prob, x0, settings, &optimize.LBFGS{})
	if res == nil {
		return nil, 0, fmt.Errorf("maximising the likelihood: %w", err)
	}
	worst := 0.0
	for _, v := range res.Gradient {
		worst = max(worst, math.Abs(v))
	}
	if math.IsInf(res.F, 0) || math.IsNaN(worst) || worst > gradAccept {
		if err == nil {
			err = fmt.Errorf("stopped (%v) with gradient %.3g", res.Status, worst)
		}
		return nil, res.MajorIterations, fmt.Errorf("maximising the likelihood from %v: %w", p0, err)
	}
	out := make([]float64, dim)
	for i, xi := range res.X {
		out[i] = math.Exp(xi)
	}
	return out, res.MajorIterations, nil
}

// observedInformation returns the Hessian of −ll at p, central differences of the
// analytic gradient with steps 1e-5·pⱼ, symmetrised.
func observedInformation(ll logLikFunc, p []float64) *mat.SymDense {
	dim := len(p)
	h := mat.NewDense(dim, dim, nil)
	gp, gm := make([]float64, dim), make([]float64, dim)
	q := slices.Clone(p)
	for j := range dim {
		step := 1e-5 * p[j]
		q[j] = p[j] + step
		ll(q, gp)
		q[j] = p[j] - step
		ll(q, gm)
		q[j] = p[j]
		for i := range dim {
			h.Set(i, j, -(gp[i]-gm[i])/(2*step))
		}
	}
	info := mat.NewSymDense(dim, nil)
	for i := range dim {
		for j := i; j < dim; j++ {
			info.SetSym(i, j, (h.At(i, j)+h.At(j, i))/2)
		}
	}
	return info
}

// covariance inverts the observed information. When it is not positive definite (the
// optimum is not a strict maximum) every entry is NaN.
func covariance(info *mat.SymDense) [][]float64 {
	dim := info.SymmetricDim()
	out := make([][]float64, dim)
	var chol mat.Cholesky
	ok := chol.Factorize(info)
	var inv mat.SymDense
	if ok {
		ok = chol.InverseTo(&inv) == nil
	}
	for i := range dim {
		out[i] = make([]float64, dim)
		for j := range dim {
			out[i][j] = math.NaN()
			if ok {
				out[i][j] = inv.At(i, j)
			}
		}
	}
	return out
}
