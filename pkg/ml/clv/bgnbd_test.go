package clv

import (
	"math"
	"math/rand/v2"
	"testing"
)

// checkGradient compares ll's analytic gradient with central differences at p.
func checkGradient(t *testing.T, name string, ll logLikFunc, p []float64) {
	t.Helper()
	grad := make([]float64, len(p))
	ll(p, grad)
	q := append([]float64(nil), p...)
	for j := range p {
		h := 1e-6 * p[j]
		q[j] = p[j] + h
		up := ll(q, nil)
		q[j] = p[j] - h
		down := ll(q, nil)
		q[j] = p[j]
		fd := (up - down) / (2 * h)
		if err := math.Abs(grad[j]-fd) / math.Max(1, math.Abs(fd)); !(err < 1e-6) {
			t.Errorf("%s at %v: ∂/∂p%d analytic %.10g, finite difference %.10g", name, p, j, grad[j], fd)
		}
	}
}

// mixedCustomers are customers with and without repeat purchases, some sharing values.
func mixedCustomers(n int, seed uint64) []Customer {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]Customer, n)
	for i := range out {
		T := 5 + 40*rng.Float64()
		c := Customer{T: T}
		if i%3 != 0 {
			c.Frequency = float64(1 + rng.IntN(12))
			c.Recency = T * rng.Float64()
			c.Monetary = 5 + 100*rng.Float64()
		}
		if i%7 == 0 && i > 0 {
			c = out[i-1]
		}
		out[i] = c
	}
	return out
}

func TestBGNBDGradient(t *testing.T) {
	d := newBGData(mixedCustomers(500, 1))
	for _, p := range [][]float64{
		{0.25, 4.8, 0.75, 2.2},
		{1.3, 0.4, 3.1, 0.6},
		{0.05, 60, 0.2, 9},
		{4, 2, 1.5, 1.1},
	} {
		checkGradient(t, "BG/NBD", d.logLik, p)
	}
}

func TestGammaGammaGradient(t *testing.T) {
	d := newGGData(mixedCustomers(500, 2))
	for _, p := range [][]float64{{6, 4, 15}, {0.5, 1.2, 3}, {20, 9, 100}} {
		checkGradient(t, "Gamma-Gamma", d.logLik, p)
	}
}

// TestBGNBDLogLikelihoodPerCustomer checks the grouped log-likelihood against the
// paper's likelihood written with Γ and B directly, customer by customer.
func TestBGNBDLogLikelihoodPerCustomer(t *testing.T) {
	customers := mixedCustomers(300, 3)
	p := BGNBDParams{R: 0.7, Alpha: 3.2, A: 1.4, B: 2.6}
	beta := func(x, y float64) float64 { return math.Gamma(x) * math.Gamma(y) / math.Gamma(x+y) }
	want := 0.0
	for _, c := range customers {
		r, al, a, b, x := p.R, p.Alpha, p.A, p.B, c.Frequency
		common := math.Gamma(r+x) / math.Gamma(r) * math.Pow(al, r) / beta(a, b)
		l := beta(a, b+x) * common / math.Pow(al+c.T, r+x)
		if x > 0 {
			l += beta(a+1, b+x-1) * common / math.Pow(al+c.Recency, r+x)
		}
		want += math.Log(l)
	}
	got, err := p.LogLikelihood(customers)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-want) > 1e-10*math.Abs(want) {
		t.Errorf("LogLikelihood = %.12g, direct sum %.12g", got, want)
	}
}

func TestGammaGammaLogLikelihoodPerCustomer(t *testing.T) {
	customers := mixedCustomers(300, 4)
	p := GammaGammaParams{P: 2.5, Q: 3.5, Gamma: 20}
	want := 0.0
	for _, c := range customers {
		if c.Frequency == 0 {
			continue
		}
		x, m := c.Frequency, c.Monetary
		// m is the mean of x Gamma(p, ν) values, Gamma(px, rate xν); ν ~ Gamma(q, γ).
		l := math.Gamma(p.P*x+p.Q) / (math.Gamma(p.P*x) * math.Gamma(p.Q)) *
			math.Pow(p.Gamma, p.Q) * math.Pow(m, p.P*x-1) * math.Pow(x, p.P*x) / math.Pow(p.Gamma+m*x, p.P*x+p.Q)
		want += math.Log(l)
	}
	got, err := p.LogLikelihood(customers)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-want) > 1e-10*math.Abs(want) {
		t.Errorf("LogLikelihood = %.12g, direct sum %.12g", got, want)
	}
}

// TestExpectedPurchasesForms checks the Euler-transformed bracket against equation 10
// as printed, and the limits of the predictions.
func TestExpectedPurchasesForms(t *testing.T) {
	for _, p := range []BGNBDParams{{0.25, 4.8, 0.75, 2.2}, {1.2, 9, 2.5, 4}} {
		for _, c := range []Customer{{T: 39}, {Frequency: 1, Recency: 10, T: 39}, {Frequency: 6, Recency: 35, T: 38}, {Frequency: 20, Recency: 30, T: 39}} {
			for _, tt := range []float64{0.5, 10, 39, 200} {
				x := c.Frequency
				z := tt / (p.Alpha + c.T + tt)
				bracket := 1 - math.Pow((p.Alpha+c.T)/(p.Alpha+c.T+tt), p.R+x)*Hyp2F1(p.R+x, p.B+x, p.A+p.B+x-1, z)
				want := (p.A + p.B + x - 1) / (p.A - 1) * bracket * p.ProbAlive(c)
				if got := p.ExpectedPurchases(c, tt); math.Abs(got-want) > 1e-11*math.Abs(want) {
					t.Errorf("%+v, %+v, t=%v: ExpectedPurchases = %.15g, equation 10 %.15g", p, c, tt, got, want)
				}
			}
		}
		// A new customer's expectation is the population's curve.
		for _, tt := range []float64{1, 39, 78} {
			if got, want := p.ExpectedPurchases(Customer{T: 1e-12}, tt), p.ExpectedRepeatPurchases(tt); math.Abs(got-want) > 1e-9*want {
				t.Errorf("%+v: new customer expects %.12g in %v, E[X(t)] = %.12g", p, got, tt, want)
			}
		}
		// Small t: the rate of an active new customer is r/α.
		if got, want := p.ExpectedRepeatPurchases(1e-6)/1e-6, p.R/p.Alpha; math.Abs(got-want) > 1e-4*want {
			t.Errorf("%+v: E[X(t)]/t at t→0 = %.8g, want r/α = %.8g", p, got, want)
		}
	}
}

// TestExpectedRepeatPurchasesBySimulation checks E[X(t)] against the mean of simulated
// customers.
func TestExpectedRepeatPurchasesBySimulation(t *testing.T) {
	p := BGNBDParams{R: 0.25, Alpha: 4.8, A: 0.75, B: 2.2}
	customers := simulate(99, 200000, 39, p, GammaGammaParams{P: 6, Q: 4, Gamma: 15})
	mean, sq := 0.0, 0.0
	for _, c := range customers {
		mean += c.Frequency
		sq += c.Frequency * c.Frequency
	}
	n := float64(len(customers))
	mean /= n
	se := math.Sqrt((sq/n - mean*mean) / n)
	if want := p.ExpectedRepeatPurchases(39); math.Abs(mean-want) > 4*se {
		t.Errorf("simulated mean repeat purchases in 39 weeks %.4f ± %.4f, E[X(39)] = %.4f", mean, se, want)
	}
}

func TestProbAlive(t *testing.T) {
	p := BGNBDParams{R: 0.25, Alpha: 4.8, A: 0.75, B: 2.2}
	if got := p.ProbAlive(Customer{T: 30}); got != 1 {
		t.Errorf("no repeat purchase: P(alive) = %v, want 1", got)
	}
	recent := p.ProbAlive(Customer{Frequency: 4, Recency: 38.5, T: 39})
	stale := p.ProbAlive(Customer{Frequency: 4, Recency: 5, T: 39})
	if !(0 < stale && stale < recent && recent < 1) {
		t.Errorf("P(alive) recent buyer %v, long-silent buyer %v: want 0 < silent < recent < 1", recent, stale)
	}
	// Bought at the very end: 1/(1 + a/(b+x−1)).
	if got, want := p.ProbAlive(Customer{Frequency: 3, Recency: 39, T: 39}), 1/(1+0.75/(2.2+2)); math.Abs(got-want) > 1e-15 {
		t.Errorf("P(alive) at tₓ = T: %v, want %v", got, want)
	}
}

func TestFitRecoversFromOtherUnits(t *testing.T) {
	// Days instead of weeks: α scales by 7, the rest is unchanged.
	weeks := simulate(7, 5000, 39, BGNBDParams{0.25, 4.8, 0.75, 2.2}, GammaGammaParams{6, 4, 15})
	days := make([]Customer, len(weeks))
	for i, c := range weeks {
		c.Recency *= 7
		c.T *= 7
		days[i] = c
	}
	w, err := FitBGNBD(weeks)
	if err != nil {
		t.Fatal(err)
	}
	d, err := FitBGNBD(days)
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]float64{{w.R, d.R}, {7 * w.Alpha, d.Alpha}, {w.A, d.A}, {w.B, d.B}} {
		if math.Abs(pair[0]-pair[1]) > 1e-5*pair[0] {
			t.Errorf("weeks %+v, days %+v: want the same fit with α×7", w.BGNBDParams, d.BGNBDParams)
			break
		}
	}
	// The likelihood is a density in tₓ per repeat purchase: ln 7 apart for each.
	sumX := 0.0
	for _, c := range weeks {
		sumX += c.Frequency
	}
	if want := w.LogLik - sumX*math.Log(7); math.Abs(d.LogLik-want) > 1e-8*math.Abs(want) {
		t.Errorf("log-likelihood in days %.10g, want weeks' %.10g − Σx·ln 7 = %.10g", d.LogLik, w.LogLik, want)
	}
}
