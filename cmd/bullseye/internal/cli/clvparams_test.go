package cli

import (
	"strings"
	"testing"

	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
)

// TestCLVParameters: models get shows a CLV version's fitted parameters with their standard
// errors, the unit, the horizon and which column is which.
func TestCLVParameters(t *testing.T) {
	p := &modelv1.ClvParameters{
		TimeUnitDays: 7,
		BgNbd: &modelv1.BgNbdParameters{R: 0.2426, Alpha: 4.4135, A: 0.7929, B: 2.4259,
			RStdErr: 0.0126, AlphaStdErr: 0.378, AStdErr: 0.1847, BStdErr: 0.7048, LogLikelihood: -9582.43, Customers: 2357},
		GammaGamma:    &modelv1.GammaGammaParameters{P: 6.25, Q: 3.74, Gamma: 15.44, LogLikelihood: -4000.5, Customers: 946},
		Inputs:        &modelv1.ClvInputs{Frequency: "rfm_frequency", RecencyDays: "rfm_recency_days", AgeDays: "rfm_age_days", Monetary: "rfm_monetary_mean_repeat"},
		HorizonMonths: 12, MonthlyDiscount: 0.01, UnitsPerMonth: 4.345,
	}
	got := clvParameters(p)
	for _, want := range []string{
		"BG/NBD in units of 7 days (2357 customers, log-likelihood -9582.4300)",
		"  r            0.2426 ± 0.0126",
		"  alpha        4.4135 ± 0.378",
		"Gamma-Gamma (946 customers, log-likelihood -4000.5000)",
		"  gamma         15.44 ± 0",
		"horizon 12 months of 4.345 time units, monthly discount 0.01",
		"age rfm_age_days",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	p.GammaGamma = nil
	if got := clvParameters(p); !strings.Contains(got, "Gamma-Gamma not fitted") {
		t.Errorf("without Gamma-Gamma:\n%s", got)
	}
}
