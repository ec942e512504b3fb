package clv

import (
	"cmp"
	"math"
	"slices"

	"gonum.org/v1/gonum/mathext"
)

// BGNBDParams are the parameters of the BG/NBD model. A customer buys as a Poisson
// process of rate λ while active, λ ~ Gamma(shape R, rate Alpha) across customers, and
// after each repeat purchase drops out for good with probability p,
// p ~ Beta(A, B) across customers. Alpha is in the time unit of the customers' T.
type BGNBDParams struct {
	R, Alpha, A, B float64
}

// BGNBD is a BG/NBD model fitted by maximum likelihood.
type BGNBD struct {
	BGNBDParams
	// StdErr holds the standard errors of the parameters: the square roots of the
	// diagonal of Cov. They are NaN when the observed information at the optimum is
	// not positive definite.
	StdErr BGNBDParams
	// Cov is the inverse of the observed information (the Hessian of the negative
	// log-likelihood in the natural parameters), rows and columns in the order R,
	// Alpha, A, B.
	Cov [4][4]float64
	// LogLik is the log-likelihood at the estimate.
	LogLik float64
	// Customers is the number of customers fitted.
	Customers int
	// Iterations is the number of L-BFGS iterations the fit took.
	Iterations int
}

// CheckCustomers returns a [FieldError] naming the first customer and field whose
// value no model can take (see [Customer]), or an error when customers is empty.
func CheckCustomers(customers []Customer) error { return checkCustomers(customers) }

// FitBGNBD fits the BG/NBD model (Fader, Hardie and Lee 2005) to customers' frequency x,
// recency tₓ and age T by maximum likelihood. A customer's likelihood is
//
//	B(a, b+x)/B(a, b) · Γ(r+x)/Γ(r) · αʳ/(α+T)ʳ⁺ˣ
//	  + [x > 0] B(a+1, b+x−1)/B(a, b) · Γ(r+x)/Γ(r) · αʳ/(α+tₓ)ʳ⁺ˣ,
//
// computed in logs with the two terms added by log-sum-exp. Customers sharing
// (x, tₓ, T), as day-grained summaries often do, are evaluated once.
func FitBGNBD(customers []Customer) (*BGNBD, error) {
	if err := checkCustomers(customers); err != nil {
		return nil, err
	}
	d := newBGData(customers)
	meanX, meanT := 0.0, 0.0
	for _, c := range customers {
		meanX += c.Frequency
		meanT += c.T
	}
	meanX /= float64(len(customers))
	meanT /= float64(len(customers))
	// Start where the mean purchase rate r/α matches the observed repeat rate.
	p0 := []float64{1, meanT / math.Max(meanX, 0.01), 1, 1}
	p, iters, err := maximize(d.logLik, p0, float64(len(customers)))
	if err != nil {
		return nil, err
	}
	m := &BGNBD{
		BGNBDParams: BGNBDParams{R: p[0], Alpha: p[1], A: p[2], B: p[3]},
		LogLik:      d.logLik(p, nil),
		Customers:   len(customers),
		Iterations:  iters,
	}
	cov := covariance(observedInformation(d.logLik, p))
	se := make([]float64, 4)
	for i := range 4 {
		copy(m.Cov[i][:], cov[i])
		se[i] = math.Sqrt(cov[i][i])
	}
	m.StdErr = BGNBDParams{R: se[0], Alpha: se[1], A: se[2], B: se[3]}
	return m, nil
}

// LogLikelihood returns the BG/NBD log-likelihood of customers under p.
func (p BGNBDParams) LogLikelihood(customers []Customer) (float64, error) {
	if err := checkCustomers(customers); err != nil {
		return 0, err
	}
	if err := p.check(); err != nil {
		return 0, err
	}
	return newBGData(customers).logLik([]float64{p.R, p.Alpha, p.A, p.B}, nil), nil
}

func (p BGNBDParams) check() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"R", p.R}, {"Alpha", p.Alpha}, {"A", p.A}, {"B", p.B}} {
		if !(f.v > 0) || math.IsInf(f.v, 0) {
			return argError(f.name, "is %v, want a finite number > 0", f.v)
		}
	}
	return nil
}

// ProbAlive returns the probability that customer c is still active at the end of the
// observation (age T): 1 when c has no repeat purchase, else
//
//	1 / (1 + a/(b+x−1) · ((α+T)/(α+tₓ))ʳ⁺ˣ).
//
// c must pass [CheckCustomers].
func (p BGNBDParams) ProbAlive(c Customer) float64 {
	x := c.Frequency
	if x == 0 {
		return 1
	}
	l := math.Log(p.A/(p.B+x-1)) + (p.R+x)*math.Log((p.Alpha+c.T)/(p.Alpha+c.Recency))
	return 1 / (1 + math.Exp(l))
}

// ExpectedPurchases returns the expected number of purchases customer c makes in the
// next t time units, (T, T+t], given its history (equation 10 of Fader, Hardie and Lee
// 2005):
//
//	(a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))ʳ⁺ˣ ₂F₁(r+x, b+x; a+b+x−1; t/(α+T+t))] · P(alive).
//
// The bracket is evaluated through Euler's transformation as
// 1 − (1−z)ᵃ⁻¹ ₂F₁(a+b−1−r, a−1; a+b+x−1; z), z = t/(α+T+t), whose series does not grow
// with x (lifetimes falls back to the same form when the first overflows). The formula
// is singular at a = 1. c must pass [CheckCustomers]; t ≥ 0.
func (p BGNBDParams) ExpectedPurchases(c Customer, t float64) float64 {
	if t == 0 {
		return 0
	}
	x := c.Frequency
	z := t / (p.Alpha + c.T + t)
	w := (p.Alpha + c.T) / (p.Alpha + c.T + t)
	bracket := 1 - math.Pow(w, p.A-1)*Hyp2F1(p.A+p.B-1-p.R, p.A-1, p.A+p.B+x-1, z)
	return (p.A + p.B + x - 1) / (p.A - 1) * bracket * p.ProbAlive(c)
}

// ExpectedRepeatPurchases returns E[X(t)], the expected number of repeat purchases a
// new customer makes in its first t time units (equation 9 of Fader, Hardie and Lee
// 2005); over the customers of a cohort it draws the cumulative repeat-purchase curve:
//
//	(a+b−1)/(a−1) · [1 − (α/(α+t))ʳ ₂F₁(r, b; a+b−1; t/(α+t))],
//
// evaluated, like [BGNBDParams.ExpectedPurchases], through Euler's transformation.
func (p BGNBDParams) ExpectedRepeatPurchases(t float64) float64 {
	if t == 0 {
		return 0
	}
	z := t / (p.Alpha + t)
	w := p.Alpha / (p.Alpha + t)
	bracket := 1 - math.Pow(w, p.A-1)*Hyp2F1(p.A+p.B-1-p.R, p.A-1, p.A+p.B-1, z)
	return (p.A + p.B - 1) / (p.A - 1) * bracket
}

// bgData holds the customers of a BG/NBD fit grouped: the terms that depend on x alone
// once per distinct x, the rest once per distinct (x, tₓ, T), each with its count.
type bgData struct {
	xs, xCount    []float64
	x, tx, t, cnt []float64
	// xi, ti and txi index each row's x, T and tₓ among the distinct values ts and
	// txs, whose logarithms are taken once per evaluation into lnT and lnTx (so a bgData
	// serves one fit at a time).
	xi, ti, txi      []int32
	ts, txs          []float64
	lnT, lnTx, lnBx1 []float64
}

func newBGData(customers []Customer) *bgData {
	type row struct{ x, tx, t float64 }
	counts := map[row]float64{}
	xCounts := map[float64]float64{}
	for _, c := range customers {
		tx := c.Recency
		if c.Frequency == 0 {
			tx = 0
		}
		counts[row{c.Frequency, tx, c.T}]++
		xCounts[c.Frequency]++
	}
	rows := make([]row, 0, len(counts))
	for r := range counts {
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(a.x, b.x), cmp.Compare(a.tx, b.tx), cmp.Compare(a.t, b.t))
	})
	d := &bgData{}
	for _, r := range rows {
		d.x = append(d.x, r.x)
		d.tx = append(d.tx, r.tx)
		d.t = append(d.t, r.t)
		d.cnt = append(d.cnt, counts[r])
	}
	for x := range xCounts {
		d.xs = append(d.xs, x)
	}
	slices.Sort(d.xs)
	for _, x := range d.xs {
		d.xCount = append(d.xCount, xCounts[x])
	}
	d.xi = positions(d.xs, d.x)
	d.ts, d.ti = index(d.t)
	d.txs, d.txi = index(d.tx)
	d.lnT, d.lnTx, d.lnBx1 = make([]float64, len(d.ts)), make([]float64, len(d.txs)), make([]float64, len(d.xs))
	return d
}

// index returns the sorted distinct values of v and the position of each element of v
// among them.
func index(v []float64) (values []float64, at []int32) {
	values = slices.Clone(v)
	slices.Sort(values)
	values = slices.Compact(values)
	return values, positions(values, v)
}

// positions returns the position of each element of v in the sorted values.
func positions(values, v []float64) []int32 {
	at := make([]int32, len(v))
	for i, x := range v {
		j, _ := slices.BinarySearch(values, x)
		at[i] = int32(j)
	}
	return at
}

// logLik is the BG/NBD log-likelihood at p = (r, α, a, b) and, when grad is not nil, its
// gradient. With A₃ = −(r+x) ln(α+T), A₄ = ln a − ln(b+x−1) − (r+x) ln(α+tₓ) and
// s = e^A₄/(e^A₃+e^A₄) (s = 0 when x = 0), a customer's log-likelihood is
//
//	ln Γ(r+x) − ln Γ(r) + r ln α + ln Γ(a+b) + ln Γ(b+x) − ln Γ(b) − ln Γ(a+b+x) + ln(e^A₃ + e^A₄)
//
// and its derivatives
//
//	∂r = ψ(r+x) − ψ(r) + ln α − (1−s) ln(α+T) − s ln(α+tₓ)
//	∂α = r/α − (r+x) [(1−s)/(α+T) + s/(α+tₓ)]
//	∂a = ψ(a+b) − ψ(a+b+x) + s/a
//	∂b = ψ(a+b) + ψ(b+x) − ψ(b) − ψ(a+b+x) − s/(b+x−1).
func (d *bgData) logLik(p, grad []float64) float64 {
	r, al, a, b := p[0], p[1], p[2], p[3]
	lgR, _ := math.Lgamma(r)
	lgAB, _ := math.Lgamma(a + b)
	lgB, _ := math.Lgamma(b)
	lnAl, lnA := math.Log(al), math.Log(a)
	var psiR, psiAB, psiB float64
	if grad != nil {
		psiR, psiAB, psiB = mathext.Digamma(r), mathext.Digamma(a+b), mathext.Digamma(b)
	}
	var ll, gr, gal, ga, gb float64
	for k, x := range d.xs {
		w := d.xCount[k]
		l1, _ := math.Lgamma(r + x)
		l2, _ := math.Lgamma(b + x)
		l3, _ := math.Lgamma(a + b + x)
		ll += w * (l1 - lgR + r*lnAl + lgAB + l2 - lgB - l3)
		if grad != nil {
			psiABX := mathext.Digamma(a + b + x)
			gr += w * (mathext.Digamma(r+x) - psiR + lnAl)
			gal += w * r / al
			ga += w * (psiAB - psiABX)
			gb += w * (psiAB + mathext.Digamma(b+x) - psiB - psiABX)
		}
	}
	for j, t := range d.ts {
		d.lnT[j] = math.Log(al + t)
	}
	for j, tx := range d.txs {
		d.lnTx[j] = math.Log(al + tx)
	}
	for k, x := range d.xs {
		d.lnBx1[k] = math.Log(b + x - 1)
	}
	for i, x := range d.x {
		w := d.cnt[i]
		lnT := d.lnT[d.ti[i]]
		a3 := -(r + x) * lnT
		if x == 0 {
			ll += w * a3
			if grad != nil {
				gr -= w * lnT
				gal -= w * r / (al + d.t[i])
			}
			continue
		}
		lnTx := d.lnTx[d.txi[i]]
		a4 := lnA - d.lnBx1[d.xi[i]] - (r+x)*lnTx
		// e = exp(−|A₃−A₄|) gives both ln(e^A₃+e^A₄) and the weight s of the second term.
		e := math.Exp(-math.Abs(a3 - a4))
		ll += w * (math.Max(a3, a4) + math.Log1p(e))
		if grad != nil {
			s := 1 / (1 + e)
			if a4 < a3 {
				s = e / (1 + e)
			}
			gr -= w * ((1-s)*lnT + s*lnTx)
			gal -= w * (r + x) * ((1-s)/(al+d.t[i]) + s/(al+d.tx[i]))
			ga += w * s / a
			gb -= w * s / (b + x - 1)
		}
	}
	if grad != nil {
		grad[0], grad[1], grad[2], grad[3] = gr, gal, ga, gb
	}
	return ll
}
