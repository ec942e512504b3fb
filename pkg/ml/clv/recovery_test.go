package clv

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

var (
	recoveryBG = BGNBDParams{R: 0.25, Alpha: 4.8, A: 0.75, B: 2.2}
	recoveryGG = GammaGammaParams{P: 6, Q: 4, Gamma: 15}
	paramNames = []string{"r", "α", "a", "b", "p", "q", "γ"}
)

// recoveryZ simulates n customers over 39 weeks from recoveryBG and recoveryGG, fits
// both models, and returns each estimate's distance from the truth in standard errors,
// and the estimates.
func recoveryZ(t *testing.T, seed uint64, n int) (z, est []float64, repeat int) {
	t.Helper()
	customers := simulate(seed, n, 39, recoveryBG, recoveryGG)
	bg, err := FitBGNBD(customers)
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	gg, err := FitGammaGamma(customers)
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	truth := []float64{recoveryBG.R, recoveryBG.Alpha, recoveryBG.A, recoveryBG.B, recoveryGG.P, recoveryGG.Q, recoveryGG.Gamma}
	est = []float64{bg.R, bg.Alpha, bg.A, bg.B, gg.P, gg.Q, gg.Gamma}
	se := []float64{bg.StdErr.R, bg.StdErr.Alpha, bg.StdErr.A, bg.StdErr.B, gg.StdErr.P, gg.StdErr.Q, gg.StdErr.Gamma}
	z = make([]float64, len(est))
	for i := range est {
		if !(se[i] > 0) {
			t.Fatalf("seed %d: %s standard error %v", seed, paramNames[i], se[i])
		}
		z[i] = (est[i] - truth[i]) / se[i]
	}
	return z, est, gg.Customers
}

// TestRecovery simulates 20,000 customers over 39 weeks from known BG/NBD
// (r 0.25, α 4.8, a 0.75, b 2.2) and Gamma-Gamma (p 6, q 4, γ 15) parameters with
// seeds 1 to 5 and compares each of the 35 estimates with the truth in standard errors.
//
// Under correct standard errors each estimate falls outside 2 of them with probability
// about 0.046, so all 35 fall within with probability about 0.2 (r and α are
// correlated about 0.8 and tend to miss together). The test therefore requires every
// estimate within 3 standard errors and at most 4 of the 35 outside 2 (at least 5 has
// probability about 0.02), and logs the table; TestStandardErrorsCalibrated checks the
// standard errors themselves over 100 fits. With seeds 1 to 5, 32 of the 35 are within
// 2: seed 2's r and α (−2.4 and −2.3) and seed 5's γ (−2.003) are not.
func TestRecovery(t *testing.T) {
	within, beyond3, total := 0, 0, 0
	var table strings.Builder
	fmt.Fprintf(&table, "seed %s\n", strings.Join(paramNames, "       "))
	for seed := uint64(1); seed <= 5; seed++ {
		z, est, repeat := recoveryZ(t, seed, 20000)
		fmt.Fprintf(&table, "%4d", seed)
		for i := range z {
			fmt.Fprintf(&table, " %+6.3f ", z[i])
			total++
			switch a := math.Abs(z[i]); {
			case a <= 2:
				within++
			case a > 3:
				beyond3++
				t.Errorf("seed %d: %s = %.4g is %.2f standard errors from the truth", seed, paramNames[i], est[i], z[i])
			}
		}
		fmt.Fprintf(&table, "  (%d repeat buyers)\n", repeat)
	}
	t.Logf("estimate − truth in standard errors:\n%s%d of %d within 2 standard errors, %d beyond 3", table.String(), within, total, beyond3)
	if total-within > 4 {
		t.Errorf("%d of %d estimates more than 2 standard errors from the truth, want at most 4", total-within, total)
	}
}

// TestStandardErrorsCalibrated fits 100 simulated samples of 5,000 customers (seeds
// 1000 to 1099) and checks, per parameter, that the estimates' distances from the truth
// in standard errors have mean near 0 (|mean| < 0.35, 3.5 of its standard errors) and
// standard deviation near 1 (0.8 to 1.25, about 3 of its standard errors).
func TestStandardErrorsCalibrated(t *testing.T) {
	const fits = 100
	var sum, sumSq [7]float64
	for seed := uint64(1000); seed < 1000+fits; seed++ {
		z, _, _ := recoveryZ(t, seed, 5000)
		for i, v := range z {
			sum[i] += v
			sumSq[i] += v * v
		}
	}
	for i, name := range paramNames {
		mean := sum[i] / fits
		sd := math.Sqrt(sumSq[i]/fits - mean*mean)
		t.Logf("%s: z mean %+.3f, sd %.3f", name, mean, sd)
		if math.Abs(mean) > 0.35 || sd < 0.8 || sd > 1.25 {
			t.Errorf("%s: (estimate − truth)/SE over %d fits has mean %.3f and sd %.3f, want about 0 and 1", name, fits, mean, sd)
		}
	}
}
