package svm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/internal/parallel"
	"gonum.org/v1/gonum/mat"
)

// Platt is Platt scaling: P(y = 1 | f) = 1 / (1 + exp(A·f + B)) for a decision value f.
type Platt struct {
	A float64 `json:"a"`
	B float64 `json:"b"`
}

// Prob returns the probability of the positive class for decision value f.
func (p *Platt) Prob(f float64) float64 {
	z := p.A*f + p.B
	if z >= 0 {
		e := math.Exp(-z)
		return e / (1 + e)
	}
	return 1 / (1 + math.Exp(z))
}

// Apply replaces every decision value of v by its probability and returns v.
func (p *Platt) Apply(v *mat.VecDense) *mat.VecDense {
	raw := v.RawVector().Data
	for i, f := range raw {
		raw[i] = p.Prob(f)
	}
	return v
}

// FitPlatt fits Platt scaling to decision values f and labels y (0 or 1) by Newton's method
// with backtracking on the regularised targets of Platt (1999), as improved by Lin, Lin and
// Weng (2007, "A note on Platt's probabilistic outputs for support vector machines").
// The decision values should come from rows the model was not trained on (see [Calibrate]).
func FitPlatt(f, y []float64) (*Platt, error) {
	if len(f) != len(y) || len(f) == 0 {
		return nil, fmt.Errorf("platt: %d decision values for %d labels", len(f), len(y))
	}
	const (
		maxIter = 100
		minStep = 1e-10
		sigma   = 1e-12
		eps     = 1e-5
	)
	var prior1, prior0 float64
	for _, v := range y {
		if v != 0 {
			prior1++
		} else {
			prior0++
		}
	}
	hi, lo := (prior1+1)/(prior1+2), 1/(prior0+2)
	t := make([]float64, len(y))
	for i, v := range y {
		if v != 0 {
			t[i] = hi
		} else {
			t[i] = lo
		}
	}
	obj := func(a, b float64) float64 {
		var s float64
		for i, fi := range f {
			z := fi*a + b
			if z >= 0 {
				s += t[i]*z + math.Log1p(math.Exp(-z))
			} else {
				s += (t[i]-1)*z + math.Log1p(math.Exp(z))
			}
		}
		return s
	}
	a, b := 0.0, math.Log((prior0+1)/(prior1+1))
	fval := obj(a, b)
	for range maxIter {
		h11, h22, h21, g1, g2 := sigma, sigma, 0.0, 0.0, 0.0
		for i, fi := range f {
			z := fi*a + b
			var p, q float64
			if z >= 0 {
				e := math.Exp(-z)
				p, q = e/(1+e), 1/(1+e)
			} else {
				e := math.Exp(z)
				p, q = 1/(1+e), e/(1+e)
			}
			d2 := p * q
			h11 += fi * fi * d2
			h22 += d2
			h21 += fi * d2
			d1 := t[i] - p
			g1 += fi * d1
			g2 += d1
		}
		if math.Abs(g1) < eps && math.Abs(g2) < eps {
			break
		}
		det := h11*h22 - h21*h21
		dA := -(h22*g1 - h21*g2) / det
		dB := -(-h21*g1 + h11*g2) / det
		gd := g1*dA + g2*dB
		step := 1.0
		for step >= minStep {
			na, nb := a+step*dA, b+step*dB
			if nf := obj(na, nb); nf < fval+1e-4*step*gd {
				a, b, fval = na, nb, nf
				break
			}
			step /= 2
		}
		if step < minStep {
			break
		}
	}
	return &Platt{A: a, B: b}, nil
}

// Calibrate fits Platt scaling for estimator est on (x, y) from out-of-fold decision values
// of a stratified folds-fold cross-validation (LIBSVM's procedure), folds fitted in
// parallel.
func Calibrate(ctx context.Context, est ml.Estimator, x *mat.Dense, y []float64, folds int, seed uint64) (*Platt, error) {
	n, c := x.Dims()
	if folds < 2 {
		return nil, errors.New("platt: need at least 2 folds")
	}
	// Stratified assignment: shuffle each class, deal rows round-robin.
	assign := make([]int, n)
	rng := rand.New(rand.NewPCG(seed, 0x91a7))
	for _, cls := range []bool{false, true} {
		var idx []int
		for i, v := range y {
			if (v != 0) == cls {
				idx = append(idx, i)
			}
		}
		rng.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
		for k, i := range idx {
			assign[i] = k % folds
		}
	}
	dec := make([]float64, n)
	errs := make([]error, folds)
	parallel.Do(folds, 0, func(f int) {
		var train, test []int
		for i, a := range assign {
			if a == f {
				test = append(test, i)
			} else {
				train = append(train, i)
			}
		}
		xt := mat.NewDense(len(train), c, nil)
		yt := make([]float64, len(train))
		for k, i := range train {
			xt.SetRow(k, x.RawRowView(i))
			yt[k] = y[i]
		}
		m, err := est.Fit(ctx, xt, yt)
		if err != nil {
			errs[f] = err
			return
		}
		xs := mat.NewDense(len(test), c, nil)
		for k, i := range test {
			xs.SetRow(k, x.RawRowView(i))
		}
		for k, v := range m.Predict(xs).RawVector().Data {
			dec[test[k]] = v
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("platt cross-validation: %w", err)
	}
	return FitPlatt(dec, y)
}
