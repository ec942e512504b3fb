package featureset

import (
	"testing"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
)

// TestConditionsSpeakTheCommonLanguage: event conditions take every common.v1
// ComparisonOperator, EQ and NE included, with the arity it declares, and compare as serving's
// audience filters do (whole numbers with numbers, null matching IS_NULL only).
func TestConditionsSpeakTheCommonLanguage(t *testing.T) {
	num := func(f float64) *commonv1.Value {
		return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: f}}
	}
	str := func(s string) *commonv1.Value {
		return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
	}
	cond := func(op commonv1.ComparisonOperator, vs ...*commonv1.Value) *featurev1.EventFilter {
		return &featurev1.EventFilter{Conditions: []*featurev1.FieldCondition{{Field: "properties.x", Operator: op, Values: vs}}}
	}
	event := func(x profile.Value) *profile.Event {
		e := &profile.Event{}
		if !x.IsNull() {
			e.Props = []profile.Prop{{Name: "x", Value: x}}
		}
		return e
	}
	tests := []struct {
		name   string
		filter *featurev1.EventFilter
		x      profile.Value
		want   bool
	}{
		{"EQ a whole number", cond(commonv1.ComparisonOperator_COMPARISON_OPERATOR_EQ, num(3)), profile.IntValue(3), true},
		{"NE", cond(commonv1.ComparisonOperator_COMPARISON_OPERATOR_NE, str("a")), profile.StringValue("b"), true},
		{"NE of null", cond(commonv1.ComparisonOperator_COMPARISON_OPERATOR_NE, str("a")), profile.Value{}, false},
		{"LT", cond(commonv1.ComparisonOperator_COMPARISON_OPERATOR_LT, num(2)), profile.NumberValue(1.5), true},
		{"NOT_IN", cond(commonv1.ComparisonOperator_COMPARISON_OPERATOR_NOT_IN, str("a"), str("b")), profile.StringValue("c"), true},
		{"IS_NULL", cond(commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NULL), profile.Value{}, true},
		{"IS_NOT_NULL of null", cond(commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NOT_NULL), profile.Value{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, bad := CompileFilter(tc.filter, "filter")
			if len(bad) > 0 {
				t.Fatal(bad)
			}
			if got := f.Match(event(tc.x)); got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}

	refused := []struct {
		name   string
		filter *featurev1.EventFilter
		field  string
	}{
		{"EQ without a value", cond(commonv1.ComparisonOperator_COMPARISON_OPERATOR_EQ), "filter.conditions[0].values"},
		{"NE with a null", cond(commonv1.ComparisonOperator_COMPARISON_OPERATOR_NE, &commonv1.Value{}), "filter.conditions[0].values[0]"},
		{"IS_NULL with a value", cond(commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NULL, num(1)), "filter.conditions[0].values"},
		{"IN without values", cond(commonv1.ComparisonOperator_COMPARISON_OPERATOR_IN), "filter.conditions[0].values"},
		{"no operator", cond(commonv1.ComparisonOperator_COMPARISON_OPERATOR_UNSPECIFIED, num(1)), "filter.conditions[0].operator"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, bad := CompileFilter(tc.filter, "filter")
			if len(bad) != 1 || bad[0].Field != tc.field {
				t.Errorf("violations %v, want one of %s", bad, tc.field)
			}
		})
	}
}
