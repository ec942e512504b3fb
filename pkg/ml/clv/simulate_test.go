package clv

import (
	"fmt"
	"math/rand/v2"

	"gonum.org/v1/gonum/stat/distuv"
)

// simulate draws n customers observed for T time units from the BG/NBD model of bg,
// their spend from the Gamma-Gamma model of gg: λ ~ Gamma(r, α) and p ~ Beta(a, b) per
// customer; purchases follow a Poisson process of rate λ from the first one at 0, and
// after each repeat purchase the customer drops out with probability p. Each customer's
// ν ~ Gamma(q, γ), and each repeat purchase is worth Gamma(p, ν).
func simulate(seed uint64, n int, T float64, bg BGNBDParams, gg GammaGammaParams) []Customer {
	src := rand.NewPCG(seed, 0x5eed)
	rng := rand.New(src)
	rate := distuv.Gamma{Alpha: bg.R, Beta: bg.Alpha, Src: src}
	drop := distuv.Beta{Alpha: bg.A, Beta: bg.B, Src: src}
	spendRate := distuv.Gamma{Alpha: gg.Q, Beta: gg.Gamma, Src: src}
	out := make([]Customer, n)
	for i := range out {
		lambda, p := rate.Rand(), drop.Rand()
		c := Customer{ID: fmt.Sprint(i), T: T}
		for t := 0.0; ; {
			t += rng.ExpFloat64() / lambda
			if t > T {
				break
			}
			c.Frequency++
			c.Recency = t
			if rng.Float64() < p {
				break
			}
		}
		nu := spendRate.Rand()
		value := distuv.Gamma{Alpha: gg.P, Beta: nu, Src: src}
		for range int(c.Frequency) {
			c.Monetary += value.Rand()
		}
		if c.Frequency > 0 {
			c.Monetary /= c.Frequency
		}
		out[i] = c
	}
	return out
}
