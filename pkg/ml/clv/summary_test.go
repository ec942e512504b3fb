package clv

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func day(d int, hour int) time.Time {
	return time.Date(2024, 1, 1, hour, 0, 0, 0, time.UTC).AddDate(0, 0, d)
}

func TestSummarize(t *testing.T) {
	purchases := []Purchase{
		{Customer: "b", At: day(3, 9), Value: 10},
		{Customer: "a", At: day(0, 8), Value: 5},
		{Customer: "a", At: day(0, 20), Value: 7}, // same day: one purchase of 12
		{Customer: "a", At: day(7, 1), Value: 4},
		{Customer: "a", At: day(14, 23), Value: 2},
		{Customer: "a", At: day(14, 2), Value: 3},   // one purchase of 5
		{Customer: "a", At: day(21, 0), Value: 100}, // at the cutoff: holdout
		{Customer: "c", At: day(30, 0), Value: 1},   // after the cutoff only
	}
	cutoff := day(21, 0)
	got, err := Summarize(purchases, cutoff, Week)
	if err != nil {
		t.Fatal(err)
	}
	want := []Customer{
		{ID: "a", Frequency: 2, Recency: 2, T: 3, Monetary: 4.5},
		{ID: "b", Frequency: 0, Recency: 0, T: 18.0 / 7},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Summarize in weeks:\n got %+v\nwant %+v", got, want)
	}
	days, err := Summarize(purchases, cutoff, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if days[0].Recency != 14 || days[0].T != 21 || days[1].T != 18 {
		t.Errorf("Summarize in days: %+v, want recency 14, T 21 and 18", days)
	}

	holdout, err := HoldoutPurchases(append(purchases, Purchase{Customer: "c", At: day(30, 5), Value: 2},
		Purchase{Customer: "c", At: day(31, 0), Value: 2}, Purchase{Customer: "b", At: day(40, 0), Value: 1}), cutoff, day(40, 0))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"a": 1, "c": 2}; !reflect.DeepEqual(holdout, want) {
		t.Errorf("HoldoutPurchases = %v, want %v", holdout, want)
	}
}

// wantField checks that err is a *FieldError about field that wraps ErrInvalidInput and
// whose message names the field.
func wantField(t *testing.T, what string, err error, field string) {
	t.Helper()
	var fe *FieldError
	switch {
	case err == nil:
		t.Errorf("%s: no error, want one about %s", what, field)
	case !errors.As(err, &fe) || !errors.Is(err, ErrInvalidInput):
		t.Errorf("%s: error %v (%T), want a *FieldError wrapping ErrInvalidInput", what, err, err)
	case fe.Field != field || !strings.Contains(err.Error(), field):
		t.Errorf("%s: error %q about %q, want %q", what, err, fe.Field, field)
	}
}

func TestBadPurchases(t *testing.T) {
	ok := Purchase{Customer: "a", At: day(0, 0), Value: 1}
	cutoff := day(10, 0)
	for _, tc := range []struct {
		name      string
		purchases []Purchase
		cutoff    time.Time
		unit      time.Duration
		field     string
	}{
		{"empty", nil, cutoff, Week, "purchases"},
		{"no customer", []Purchase{ok, {At: day(1, 0), Value: 1}}, cutoff, Week, "Customer"},
		{"zero time", []Purchase{ok, {Customer: "b", Value: 1}}, cutoff, Week, "At"},
		{"negative value", []Purchase{ok, {Customer: "b", At: day(1, 0), Value: -2}}, cutoff, Week, "Value"},
		{"NaN value", []Purchase{{Customer: "b", At: day(1, 0), Value: math.NaN()}}, cutoff, Week, "Value"},
		{"zero unit", []Purchase{ok}, cutoff, 0, "unit"},
		{"cutoff before all", []Purchase{ok}, day(-1, 0), Week, "cutoff"},
	} {
		_, err := Summarize(tc.purchases, tc.cutoff, tc.unit)
		wantField(t, "Summarize, "+tc.name, err, tc.field)
	}
	_, err := HoldoutPurchases([]Purchase{ok}, cutoff, cutoff)
	wantField(t, "HoldoutPurchases, end at the cutoff", err, "end")
	_, err = HoldoutPurchases([]Purchase{ok, {Customer: "b", At: day(1, 0), Value: -1}}, cutoff, day(20, 0))
	wantField(t, "HoldoutPurchases, negative value", err, "Value")
}
