package clv

import "math"

const (
	// seriesEps is the relative size of a series' bounded tail at which summing stops.
	seriesEps = 0x1p-53
	// maxSeriesTerms bounds a direct series; past z ≈ 1 − 1e-6 with c−a−b within
	// nearInteger of a whole number it may not converge before it.
	maxSeriesTerms = 20_000_000
	// nearInteger is how close c−a−b may come to a whole number before the 1−z
	// transformation, whose two terms then grow like 1/(c−a−b−n) and cancel, gives way
	// to the direct series.
	nearInteger = 1e-4
	// directBelow is the largest z summed directly (unless c−a−b is near a whole number).
	directBelow = 0.9
)

// Hyp2F1 returns the Gauss hypergeometric function ₂F₁(a, b; c; z) for real arguments
// and z ≤ 1:
//
//	₂F₁(a, b; c; z) = Σₖ (a)ₖ (b)ₖ / ((c)ₖ k!) zᵏ.
//
// For 0 ≤ z ≤ 0.9 it sums the series until a bound on the remaining terms falls below
// 2⁻⁵³ of the sum. For z < 0 it applies Pfaff's transformation,
// ₂F₁(a, b; c; z) = (1−z)⁻ᵃ ₂F₁(a, c−b; c; z/(z−1)), which moves the argument into
// (0, 1). For 0.9 < z < 1 it applies the linear transformation to 1−z (Abramowitz and
// Stegun 15.3.6), whose two series converge fast, unless c−a−b is within 1e-4 of a
// whole number, where that formula cancels and the direct series is summed instead
// (slowly as z nears 1). At z = 1 it is Gauss's Γ(c)Γ(c−a−b)/(Γ(c−a)Γ(c−b)) when
// c−a−b > 0 and +Inf otherwise.
//
// When a or b is zero or a negative whole number the series is a polynomial and is
// summed for any z. Hyp2F1 returns NaN when an argument is NaN, when c is zero or a
// negative whole number, when z > 1 (outside the polynomial case), and when a series
// fails to converge. Accuracy is near machine precision for the arguments of the BTYD
// models (a, b, c of modest size, not both large and of opposite signs); large negative
// parameters make the series alternate and lose digits.
func Hyp2F1(a, b, c, z float64) float64 {
	switch {
	case math.IsNaN(a) || math.IsNaN(b) || math.IsNaN(c) || math.IsNaN(z):
		return math.NaN()
	case nonPositiveInteger(c):
		return math.NaN()
	case z == 0 || a == 0 || b == 0:
		return 1
	case nonPositiveInteger(a) || nonPositiveInteger(b):
		s, _ := hypSeries(a, b, c, z)
		return s
	case z > 1:
		return math.NaN()
	case z == 1:
		if c-a-b <= 0 {
			return math.Inf(1)
		}
		return gammaRatio(c, c-a-b, c-a, c-b)
	case z < 0:
		return math.Pow(1-z, -a) * Hyp2F1(a, c-b, c, z/(z-1))
	}
	d := c - a - b
	if z <= directBelow || math.Abs(d-math.Round(d)) < nearInteger {
		s, ok := hypSeries(a, b, c, z)
		if !ok {
			return math.NaN()
		}
		return s
	}
	w := 1 - z
	s1, ok1 := hypSeries(a, b, 1-d, w)
	s2, ok2 := hypSeries(c-a, c-b, 1+d, w)
	if !ok1 || !ok2 {
		return math.NaN()
	}
	t1 := gammaRatio(c, d, c-a, c-b) * s1
	t2 := 0.0
	if !nonPositiveInteger(a) && !nonPositiveInteger(b) {
		t2 = gammaRatio(c, -d, a, b) * math.Pow(w, d) * s2
	}
	return t1 + t2
}

// hypSeries sums the hypergeometric series at z. It stops when the remaining terms are
// bounded by seriesEps of the sum: past k > |c|, |(a+k)(b+k)/((c+k)(k+1))| ≤ 1 + f(k) with
// f(k) = (|a+b−c−1|k + |ab−c|)/((k−|c|)(k+1)) decreasing in k, so every later term ratio
// is at most q = |z|(1+f(k)) and, when q < 1, the tail at most |termₖ|·q/(1−q).
func hypSeries(a, b, c, z float64) (float64, bool) {
	// Neumaier's compensated sum: slow series near z = 1 add up to millions of terms.
	sum, comp, term := 1.0, 0.0, 1.0
	alpha, beta, ac := math.Abs(a+b-c-1), math.Abs(a*b-c), math.Abs(c)
	az := math.Abs(z)
	for k := 0; k < maxSeriesTerms; k++ {
		fk := float64(k)
		term *= (a + fk) * (b + fk) / ((c + fk) * (fk + 1)) * z
		if term == 0 {
			return sum + comp, true
		}
		t := sum + term
		if math.Abs(sum) >= math.Abs(term) {
			comp += (sum - t) + term
		} else {
			comp += (term - t) + sum
		}
		sum = t
		if math.IsInf(sum, 0) || math.IsNaN(sum) {
			return sum, false
		}
		if next := fk + 1; next > ac {
			q := az * (1 + (alpha*next+beta)/((next-ac)*(next+1)))
			if q < 1 && math.Abs(term)*q/(1-q) <= seriesEps*math.Abs(sum) {
				return sum + comp, true
			}
		}
	}
	return sum + comp, false
}

// gammaRatio returns Γ(p)Γ(q)/(Γ(r)Γ(s)), 0 when r or s is a pole of Γ.
func gammaRatio(p, q, r, s float64) float64 {
	if nonPositiveInteger(r) || nonPositiveInteger(s) {
		return 0
	}
	if nonPositiveInteger(p) || nonPositiveInteger(q) {
		return math.NaN()
	}
	lp, sp := math.Lgamma(p)
	lq, sq := math.Lgamma(q)
	lr, sr := math.Lgamma(r)
	ls, ss := math.Lgamma(s)
	return float64(sp*sq*sr*ss) * math.Exp(lp+lq-lr-ls)
}

func nonPositiveInteger(x float64) bool { return x <= 0 && x == math.Trunc(x) }
