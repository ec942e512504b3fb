package ml_test

import (
	"reflect"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml"
)

func TestTable(t *testing.T) {
	tb := &ml.Table{Columns: []ml.Column{
		ml.NumericColumn("age", []float64{30, 40, 50}),
		ml.CategoricalColumn("city", []string{"porto", "", "braga"}),
	}}
	if err := tb.Validate(); err != nil {
		t.Fatal(err)
	}
	if tb.Rows() != 3 {
		t.Errorf("Rows = %d, want 3", tb.Rows())
	}
	sub := tb.Subset([]int{2, 0})
	if got := sub.Columns[0].Numeric; !reflect.DeepEqual(got, []float64{50, 30}) {
		t.Errorf("subset age = %v", got)
	}
	if got := sub.Columns[1].Categorical; !reflect.DeepEqual(got, []string{"braga", "porto"}) {
		t.Errorf("subset city = %v", got)
	}
	if d := tb.Drop("age"); len(d.Columns) != 1 || d.Columns[0].Name != "city" {
		t.Errorf("Drop(age) = %+v", d.Columns)
	}
	if c, ok := tb.Column("city"); !ok || c.Kind != ml.Categorical {
		t.Errorf("Column(city) = %v, %v", c, ok)
	}
	for _, bad := range []*ml.Table{
		{Columns: []ml.Column{ml.NumericColumn("a", []float64{1}), ml.NumericColumn("a", []float64{1})}},
		{Columns: []ml.Column{ml.NumericColumn("a", []float64{1}), ml.NumericColumn("b", []float64{1, 2})}},
		{Columns: []ml.Column{{Name: "a"}}},
		{Columns: []ml.Column{ml.NumericColumn("", []float64{1})}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v): no error", bad.Columns)
		}
	}
}

func TestClassWeights(t *testing.T) {
	y := []float64{1, 0, 0, 0}
	for _, tc := range []struct {
		w        ml.ClassWeights
		neg, pos float64
	}{
		{ml.ClassWeights{}, 1, 1},
		{ml.ClassWeights{Positive: 5}, 1, 5},
		// Balanced: n/(2·count) = 4/(2·3) for class 0 and 4/(2·1) for class 1.
		{ml.ClassWeights{Balanced: true}, 4.0 / 6, 2},
	} {
		neg, pos := tc.w.Resolve(y)
		if neg != tc.neg || pos != tc.pos {
			t.Errorf("%+v.Resolve = %v, %v; want %v, %v", tc.w, neg, pos, tc.neg, tc.pos)
		}
	}
}
