package clv

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/mathext"
)

// GammaGammaParams are the parameters of the Gamma-Gamma model of spend. The values of
// a customer's purchases are Gamma(shape P, rate ν), ν ~ Gamma(shape Q, rate Gamma)
// across customers, independently of how often they buy; a customer's mean purchase
// value is then pν⁻¹, and the population's mean P·Gamma/(Q−1).
type GammaGammaParams struct {
	P, Q, Gamma float64
}

// GammaGamma is a Gamma-Gamma model fitted by maximum likelihood.
type GammaGamma struct {
	GammaGammaParams
	// StdErr holds the standard errors of the parameters, NaN when the observed
	// information at the optimum is not positive definite.
	StdErr GammaGammaParams
	// Cov is the inverse of the observed information, in the order P, Q, Gamma.
	Cov [3][3]float64
	// LogLik is the log-likelihood at the estimate.
	LogLik float64
	// Customers is the number of customers fitted: those with Frequency > 0 and
	// Monetary > 0.
	Customers int
	// Iterations is the number of L-BFGS iterations the fit took.
	Iterations int
}

// FitGammaGamma fits the Gamma-Gamma model (Fader and Hardie 2013, "The Gamma-Gamma
// model of monetary value"; Colombo and Jiang 1999) by maximum likelihood to the mean
// repeat-purchase value m = Monetary of the customers with x = Frequency > 0 and
// m > 0; the others carry no information on spend and are skipped. A customer's
// log-likelihood is the log density of the mean of x Gamma(p, ν) values:
//
//	ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln γ + (px−1) ln m + px ln x − (px+q) ln(γ+mx).
//
// The model assumes spend independent of frequency; check their correlation first.
func FitGammaGamma(customers []Customer) (*GammaGamma, error) {
	if err := checkCustomers(customers); err != nil {
		return nil, err
	}
	d := newGGData(customers)
	if len(d.m) == 0 {
		return nil, argError("customers", "has no customer with Frequency > 0 and Monetary > 0")
	}
	meanM := 0.0
	for _, m := range d.m {
		meanM += m
	}
	meanM /= float64(len(d.m))
	// Start at p = 1, q = 2, where the population mean pγ/(q−1) is the observed one.
	p, iters, err := maximize(d.logLik, []float64{1, 2, meanM}, float64(len(d.m)))
	if err != nil {
		return nil, err
	}
	g := &GammaGamma{
		GammaGammaParams: GammaGammaParams{P: p[0], Q: p[1], Gamma: p[2]},
		LogLik:           d.logLik(p, nil),
		Customers:        len(d.m),
		Iterations:       iters,
	}
	cov := covariance(observedInformation(d.logLik, p))
	se := make([]float64, 3)
	for i := range 3 {
		copy(g.Cov[i][:], cov[i])
		se[i] = math.Sqrt(cov[i][i])
	}
	g.StdErr = GammaGammaParams{P: se[0], Q: se[1], Gamma: se[2]}
	return g, nil
}

// LogLikelihood returns the Gamma-Gamma log-likelihood under p of the customers with
// Frequency > 0 and Monetary > 0.
func (p GammaGammaParams) LogLikelihood(customers []Customer) (float64, error) {
	if err := checkCustomers(customers); err != nil {
		return 0, err
	}
	if err := p.check(); err != nil {
		return 0, err
	}
	return newGGData(customers).logLik([]float64{p.P, p.Q, p.Gamma}, nil), nil
}

func (p GammaGammaParams) check() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"P", p.P}, {"Q", p.Q}, {"Gamma", p.Gamma}} {
		if !(f.v > 0) || math.IsInf(f.v, 0) {
			return argError(f.name, "is %v, want a finite number > 0", f.v)
		}
	}
	return nil
}

// MeanValue returns the population's mean purchase value pγ/(q−1), +Inf when q ≤ 1.
func (p GammaGammaParams) MeanValue() float64 {
	if p.Q <= 1 {
		return math.Inf(1)
	}
	return p.P * p.Gamma / (p.Q - 1)
}

// ExpectedAverageValue returns the expected value of customer c's purchases given its
// x = Frequency repeat purchases of mean m = Monetary:
//
//	(γ + mx)p/(px + q − 1) = (1−w)·pγ/(q−1) + w·m,  w = px/(px+q−1),
//
// a mix of the population's mean and the customer's; the population's mean when x = 0
// (as lifetimes' conditional_expected_average_profit). It needs q > 1 and returns
// +Inf otherwise.
func (p GammaGammaParams) ExpectedAverageValue(c Customer) float64 {
	if p.Q <= 1 {
		return math.Inf(1)
	}
	px := p.P * c.Frequency
	return (p.Gamma + c.Monetary*c.Frequency) * p.P / (px + p.Q - 1)
}

// ggData holds the customers of a Gamma-Gamma fit: the terms that depend on x alone once
// per distinct x, and per customer m, ln m and ln x.
type ggData struct {
	xs, xCount     []float64
	x, m, lnM, lnX []float64
}

func newGGData(customers []Customer) *ggData {
	d := &ggData{}
	xCounts := map[float64]float64{}
	for _, c := range customers {
		if c.Frequency <= 0 || c.Monetary <= 0 {
			continue
		}
		d.x = append(d.x, c.Frequency)
		d.m = append(d.m, c.Monetary)
		d.lnM = append(d.lnM, math.Log(c.Monetary))
		d.lnX = append(d.lnX, math.Log(c.Frequency))
		xCounts[c.Frequency]++
	}
	for x := range xCounts {
		d.xs = append(d.xs, x)
	}
	slices.Sort(d.xs)
	for _, x := range d.xs {
		d.xCount = append(d.xCount, xCounts[x])
	}
	return d
}

// logLik is the Gamma-Gamma log-likelihood at (p, q, γ) and, when grad is not nil, its
// gradient:
//
//	∂p = x [ψ(px+q) − ψ(px) + ln m + ln x − ln(γ+mx)]
//	∂q = ψ(px+q) − ψ(q) + ln γ − ln(γ+mx)
//	∂γ = q/γ − (px+q)/(γ+mx).
func (d *ggData) logLik(par, grad []float64) float64 {
	p, q, g := par[0], par[1], par[2]
	lgQ, _ := math.Lgamma(q)
	lnG := math.Log(g)
	var psiQ float64
	if grad != nil {
		psiQ = mathext.Digamma(q)
	}
	var ll, gp, gq, gg float64
	for k, x := range d.xs {
		w := d.xCount[k]
		l1, _ := math.Lgamma(p*x + q)
		l2, _ := math.Lgamma(p * x)
		ll += w * (l1 - l2 - lgQ + q*lnG)
		if grad != nil {
			psi1 := mathext.Digamma(p*x + q)
			gp += w * x * (psi1 - mathext.Digamma(p*x))
			gq += w * (psi1 - psiQ + lnG)
			gg += w * q / g
		}
	}
	for i, x := range d.x {
		m := d.m[i]
		lnS := math.Log(g + m*x)
		ll += (p*x-1)*d.lnM[i] + p*x*d.lnX[i] - (p*x+q)*lnS
		if grad != nil {
			gp += x * (d.lnM[i] + d.lnX[i] - lnS)
			gq -= lnS
			gg -= (p*x + q) / (g + m*x)
		}
	}
	if grad != nil {
		grad[0], grad[1], grad[2] = gp, gq, gg
	}
	return ll
}
