package clv

import "math"

// Months in the time units of a fitted model, as lifetimes converts them.
const (
	// WeeksPerMonth is lifetimes' factor for models fitted in weeks.
	WeeksPerMonth = 4.345
	// DaysPerMonth is lifetimes' factor for models fitted in days.
	DaysPerMonth = 30.0
)

// Horizon is the span and discounting of a lifetime value.
type Horizon struct {
	// Months is the number of months summed; at least 1.
	Months int
	// MonthlyDiscount is the discount rate d per month: month m's value is divided by
	// (1+d)ᵐ. At least 0; lifetimes' default is 0.01.
	MonthlyDiscount float64
	// UnitsPerMonth is the length of a month in the time unit of the BG/NBD model's
	// customers: WeeksPerMonth for weeks, DaysPerMonth for days, or any positive length
	// (30.436875 days is the mean Gregorian month).
	UnitsPerMonth float64
}

func (h Horizon) check() error {
	switch {
	case h.Months < 1:
		return argError("Months", "is %d, want ≥ 1", h.Months)
	case !(h.MonthlyDiscount >= 0) || math.IsInf(h.MonthlyDiscount, 0):
		return argError("MonthlyDiscount", "is %v, want a finite rate ≥ 0", h.MonthlyDiscount)
	case !(h.UnitsPerMonth > 0) || math.IsInf(h.UnitsPerMonth, 0):
		return argError("UnitsPerMonth", "is %v, want a finite length > 0", h.UnitsPerMonth)
	}
	return nil
}

// CLV returns customer c's discounted value over horizon h, as lifetimes'
// customer_lifetime_value computes it:
//
//	Σₘ₌₁ᴹ [E(m·u) − E((m−1)·u)] · v / (1+d)ᵐ,
//
// where E(t) is bg's expected number of purchases of c in the next t time units
// ([BGNBDParams.ExpectedPurchases]), u = h.UnitsPerMonth, v is gg's expected average
// purchase value of c ([GammaGammaParams.ExpectedAverageValue]; the population's mean
// for a customer without repeat purchases) and d = h.MonthlyDiscount.
func CLV(bg BGNBDParams, gg GammaGammaParams, c Customer, h Horizon) (float64, error) {
	if err := h.check(); err != nil {
		return 0, err
	}
	if err := bg.check(); err != nil {
		return 0, err
	}
	if err := gg.check(); err != nil {
		return 0, err
	}
	if err := checkCustomer(0, c); err != nil {
		return 0, err
	}
	if gg.Q <= 1 {
		return 0, argError("Q", "is %v, want > 1 for a finite mean purchase value", gg.Q)
	}
	v := gg.ExpectedAverageValue(c)
	total, prev := 0.0, 0.0
	for m := 1; m <= h.Months; m++ {
		cum := bg.ExpectedPurchases(c, float64(m)*h.UnitsPerMonth)
		total += (cum - prev) * v / math.Pow(1+h.MonthlyDiscount, float64(m))
		prev = cum
	}
	return total, nil
}
