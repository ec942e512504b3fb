package clv

import "math"

// checkCustomers rejects an empty summary and the first customer whose values no model
// can take.
func checkCustomers(customers []Customer) error {
	if len(customers) == 0 {
		return argError("customers", "is empty")
	}
	for i, c := range customers {
		if err := checkCustomer(i, c); err != nil {
			return err
		}
	}
	return nil
}

func checkCustomer(i int, c Customer) error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"Frequency", c.Frequency}, {"Recency", c.Recency}, {"T", c.T}, {"Monetary", c.Monetary}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return rowError(i, c.ID, f.name, "is %v, want a finite number", f.v)
		}
		if f.v < 0 {
			return rowError(i, c.ID, f.name, "is %v, want ≥ 0", f.v)
		}
	}
	switch {
	case c.Frequency != math.Trunc(c.Frequency):
		return rowError(i, c.ID, "Frequency", "is %v, want a whole number of repeat purchases", c.Frequency)
	case c.T == 0:
		return rowError(i, c.ID, "T", "is 0, want the customer's age > 0")
	case c.Recency > c.T:
		return rowError(i, c.ID, "Recency", "is %v, want ≤ T (%v)", c.Recency, c.T)
	case c.Frequency == 0 && c.Recency != 0:
		return rowError(i, c.ID, "Recency", "is %v with Frequency 0, want 0", c.Recency)
	}
	return nil
}
