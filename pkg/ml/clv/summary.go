package clv

import (
	"math"
	"slices"
	"strings"
	"time"
)

// Purchase is one line of a purchase log.
type Purchase struct {
	// Customer identifies the buyer; it must not be empty.
	Customer string
	// At is when the purchase was made. Its calendar day is taken in At's location.
	At time.Time
	// Value is what the purchase was worth; it must be finite and not negative.
	Value float64
}

// Customer is the recency–frequency–monetary summary of one customer's purchases up to
// a cutoff, the input of the models. Recency and T are in one time unit (weeks, days…),
// the unit of the models fitted on them.
type Customer struct {
	ID string
	// Frequency is the number of repeat purchases: purchase days after the first one.
	// It is a whole number.
	Frequency float64
	// Recency is the time from the first purchase to the last one; 0 when Frequency is 0.
	Recency float64
	// T is the customer's age: the time from the first purchase to the cutoff. It is
	// positive and not less than Recency.
	T float64
	// Monetary is the mean value of the repeat purchases, 0 when there are none.
	Monetary float64
}

// Week is the unit in which the BTYD literature states its CDNOW results.
const Week = 7 * 24 * time.Hour

// Summarize summarises purchases made before cutoff, per customer, with the definitions
// of lifetimes' summary_data_from_transaction_data:
//
//   - the purchases of one customer on one calendar day are one purchase, its value the
//     sum of theirs;
//   - Frequency is the number of purchase days after the first (repeat purchases);
//   - Recency is the time from the first purchase day to the last, and T the time from
//     the first purchase day (its midnight) to cutoff, both divided by unit (unit Week
//     gives weeks = days/7);
//   - Monetary is the mean value of the repeat purchase days, 0 when there are none.
//
// The calibration window is [first purchase, cutoff): a purchase at cutoff belongs to
// the holdout window of [HoldoutPurchases]. Purchases at or after cutoff are ignored,
// and customers with none before it are left out. The result is sorted by ID. Times are
// differences of instants, so use a location without daylight-saving shifts (UTC) when
// the unit is a day or more.
func Summarize(purchases []Purchase, cutoff time.Time, unit time.Duration) ([]Customer, error) {
	if unit <= 0 {
		return nil, argError("unit", "is %v, want > 0", unit)
	}
	if len(purchases) == 0 {
		return nil, argError("purchases", "is empty")
	}
	type day struct {
		customer string
		day      time.Time
	}
	days := map[day]float64{}
	for i, p := range purchases {
		if err := checkPurchase(i, p); err != nil {
			return nil, err
		}
		if !p.At.Before(cutoff) {
			continue
		}
		days[day{p.Customer, midnight(p.At)}] += p.Value
	}
	if len(days) == 0 {
		return nil, argError("cutoff", "is %v, before every purchase", cutoff)
	}
	keys := make([]day, 0, len(days))
	for k := range days {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b day) int {
		if c := strings.Compare(a.customer, b.customer); c != 0 {
			return c
		}
		return a.day.Compare(b.day)
	})
	u := float64(unit)
	var out []Customer
	for lo := 0; lo < len(keys); {
		hi := lo + 1
		for hi < len(keys) && keys[hi].customer == keys[lo].customer {
			hi++
		}
		first, last := keys[lo].day, keys[hi-1].day
		c := Customer{
			ID:        keys[lo].customer,
			Frequency: float64(hi - lo - 1),
			Recency:   float64(last.Sub(first)) / u,
			T:         float64(cutoff.Sub(first)) / u,
		}
		if hi-lo > 1 {
			sum := 0.0
			for _, k := range keys[lo+1 : hi] {
				sum += days[k]
			}
			c.Monetary = sum / c.Frequency
		}
		out = append(out, c)
		lo = hi
	}
	return out, nil
}

// HoldoutPurchases counts, per customer, the purchase days in the holdout window
// [cutoff, end): the number of purchases to compare with a model's expected purchases
// over a period of (end − cutoff)/unit from cutoff. Purchases on one calendar day count
// once, as in [Summarize]. Customers without holdout purchases are absent from the map.
func HoldoutPurchases(purchases []Purchase, cutoff, end time.Time) (map[string]int, error) {
	if !end.After(cutoff) {
		return nil, argError("end", "is %v, want after the cutoff %v", end, cutoff)
	}
	type day struct {
		customer string
		day      time.Time
	}
	seen := map[day]bool{}
	counts := map[string]int{}
	for i, p := range purchases {
		if err := checkPurchase(i, p); err != nil {
			return nil, err
		}
		if p.At.Before(cutoff) || !p.At.Before(end) {
			continue
		}
		k := day{p.Customer, midnight(p.At)}
		if !seen[k] {
			seen[k] = true
			counts[p.Customer]++
		}
	}
	return counts, nil
}

func checkPurchase(i int, p Purchase) error {
	switch {
	case p.Customer == "":
		return rowError(i, "", "Customer", "is empty")
	case p.At.IsZero():
		return rowError(i, p.Customer, "At", "is the zero time")
	case math.IsNaN(p.Value) || math.IsInf(p.Value, 0):
		return rowError(i, p.Customer, "Value", "is %v, want a finite number", p.Value)
	case p.Value < 0:
		return rowError(i, p.Customer, "Value", "is %v, want ≥ 0", p.Value)
	}
	return nil
}

func midnight(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}
