package clv

import (
	"math"
	"strings"
	"testing"
)

func TestBadCustomers(t *testing.T) {
	good := []Customer{{ID: "a", Frequency: 2, Recency: 10, T: 20, Monetary: 30}, {ID: "b", T: 5}}
	for _, tc := range []struct {
		name  string
		c     Customer
		field string
	}{
		{"negative frequency", Customer{ID: "x", Frequency: -1, T: 3}, "Frequency"},
		{"fractional frequency", Customer{ID: "x", Frequency: 1.5, Recency: 1, T: 3}, "Frequency"},
		{"NaN frequency", Customer{ID: "x", Frequency: math.NaN(), T: 3}, "Frequency"},
		{"negative recency", Customer{ID: "x", Frequency: 1, Recency: -1, T: 3}, "Recency"},
		{"recency after T", Customer{ID: "x", Frequency: 1, Recency: 4, T: 3}, "Recency"},
		{"recency without repeats", Customer{ID: "x", Recency: 1, T: 3}, "Recency"},
		{"zero T", Customer{ID: "x"}, "T"},
		{"negative T", Customer{ID: "x", T: -2}, "T"},
		{"infinite T", Customer{ID: "x", T: math.Inf(1)}, "T"},
		{"negative monetary", Customer{ID: "x", Frequency: 1, Recency: 1, T: 3, Monetary: -5}, "Monetary"},
	} {
		customers := append(append([]Customer(nil), good...), tc.c)
		_, err := FitBGNBD(customers)
		wantField(t, "FitBGNBD, "+tc.name, err, tc.field)
		if err != nil && !strings.Contains(err.Error(), `"x"`) {
			t.Errorf("FitBGNBD, %s: error %q does not name the customer", tc.name, err)
		}
		_, err = FitGammaGamma(customers)
		wantField(t, "FitGammaGamma, "+tc.name, err, tc.field)
		_, err = BGNBDParams{1, 1, 1, 1}.LogLikelihood(customers)
		wantField(t, "LogLikelihood, "+tc.name, err, tc.field)
		_, err = CLV(BGNBDParams{1, 1, 2, 1}, GammaGammaParams{1, 2, 1}, tc.c, Horizon{Months: 1, UnitsPerMonth: 4})
		wantField(t, "CLV, "+tc.name, err, tc.field)
	}
	_, err := FitBGNBD(nil)
	wantField(t, "FitBGNBD, empty", err, "customers")
	_, err = FitGammaGamma([]Customer{{ID: "a", T: 3}, {ID: "b", Frequency: 2, Recency: 1, T: 3}})
	wantField(t, "FitGammaGamma, no spend", err, "customers")
	_, err = BGNBDParams{R: 1, Alpha: -1, A: 1, B: 1}.LogLikelihood(good)
	wantField(t, "LogLikelihood, negative α", err, "Alpha")
	_, err = GammaGammaParams{P: 1, Q: 0, Gamma: 1}.LogLikelihood(good)
	wantField(t, "LogLikelihood, zero q", err, "Q")

	bg, gg := BGNBDParams{0.25, 4.8, 0.75, 2.2}, GammaGammaParams{6, 4, 15}
	for _, tc := range []struct {
		name  string
		h     Horizon
		gg    GammaGammaParams
		field string
	}{
		{"no months", Horizon{Months: 0, UnitsPerMonth: 4}, gg, "Months"},
		{"negative discount", Horizon{Months: 12, MonthlyDiscount: -0.1, UnitsPerMonth: 4}, gg, "MonthlyDiscount"},
		{"zero month", Horizon{Months: 12}, gg, "UnitsPerMonth"},
		{"q ≤ 1", Horizon{Months: 12, UnitsPerMonth: 4}, GammaGammaParams{6, 0.9, 15}, "Q"},
	} {
		_, err := CLV(bg, tc.gg, good[0], tc.h)
		wantField(t, "CLV, "+tc.name, err, tc.field)
	}
}

func TestCLV(t *testing.T) {
	bg, gg := BGNBDParams{0.25, 4.8, 0.75, 2.2}, GammaGammaParams{6, 4, 15}
	c := Customer{ID: "a", Frequency: 3, Recency: 30, T: 39, Monetary: 40}
	h := Horizon{Months: 12, MonthlyDiscount: 0, UnitsPerMonth: WeeksPerMonth}
	undiscounted, err := CLV(bg, gg, c, h)
	if err != nil {
		t.Fatal(err)
	}
	// Without discounting the months telescope to a year's purchases times the value.
	if want := bg.ExpectedPurchases(c, 12*WeeksPerMonth) * gg.ExpectedAverageValue(c); math.Abs(undiscounted-want) > 1e-12*want {
		t.Errorf("undiscounted CLV %.12g, want %.12g", undiscounted, want)
	}
	h.MonthlyDiscount = 0.01
	discounted, err := CLV(bg, gg, c, h)
	if err != nil {
		t.Fatal(err)
	}
	if !(discounted < undiscounted && discounted > undiscounted/1.01/1.01/1.01/1.01/1.01/1.01/1.01/1.01/1.01/1.01/1.01/1.01) {
		t.Errorf("CLV at 1%% a month %v, undiscounted %v: want between it and its 12-month discount", discounted, undiscounted)
	}
	if got, want := gg.ExpectedAverageValue(Customer{T: 3}), gg.MeanValue(); got != want || want != 6*15/3.0 {
		t.Errorf("expected value of a customer without repeats %v, population mean %v, want pγ/(q−1) = 30", got, want)
	}
}
