package audience

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func num(f float64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: f}}
}
func integer(i int64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: i}}
}
func str(s string) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
}
func boolean(b bool) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: b}}
}
func at(t time.Time) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_TimeValue{TimeValue: timestamppb.New(t)}}
}

var types = map[string]commonv1.ValueType{
	"age": commonv1.ValueType_VALUE_TYPE_INT, "spend": commonv1.ValueType_VALUE_TYPE_NUMBER,
	"job": commonv1.ValueType_VALUE_TYPE_STRING, "member": commonv1.ValueType_VALUE_TYPE_BOOL,
	"last": commonv1.ValueType_VALUE_TYPE_TIME,
}

func typeOf(n string) (commonv1.ValueType, bool) { t, ok := types[n]; return t, ok }

func cond(feature string, op commonv1.ComparisonOperator, vals ...*commonv1.Value) *servingv1.AudienceFilter {
	c := &servingv1.FeatureCondition{Feature: feature, Operator: op}
	switch op {
	case commonv1.ComparisonOperator_COMPARISON_OPERATOR_IN, commonv1.ComparisonOperator_COMPARISON_OPERATOR_NOT_IN:
		c.Values = vals
	default:
		if len(vals) > 0 {
			c.Value = vals[0]
		}
	}
	return &servingv1.AudienceFilter{Kind: &servingv1.AudienceFilter_Condition{Condition: c}}
}

func all(fs ...*servingv1.AudienceFilter) *servingv1.AudienceFilter {
	return &servingv1.AudienceFilter{Kind: &servingv1.AudienceFilter_AllOf{AllOf: &servingv1.AudienceFilterList{Filters: fs}}}
}
func anyOf(fs ...*servingv1.AudienceFilter) *servingv1.AudienceFilter {
	return &servingv1.AudienceFilter{Kind: &servingv1.AudienceFilter_AnyOf{AnyOf: &servingv1.AudienceFilterList{Filters: fs}}}
}
func none(fs ...*servingv1.AudienceFilter) *servingv1.AudienceFilter {
	return &servingv1.AudienceFilter{Kind: &servingv1.AudienceFilter_NoneOf{NoneOf: &servingv1.AudienceFilterList{Filters: fs}}}
}

const (
	eq      = commonv1.ComparisonOperator_COMPARISON_OPERATOR_EQ
	ne      = commonv1.ComparisonOperator_COMPARISON_OPERATOR_NE
	lt      = commonv1.ComparisonOperator_COMPARISON_OPERATOR_LT
	ge      = commonv1.ComparisonOperator_COMPARISON_OPERATOR_GE
	in      = commonv1.ComparisonOperator_COMPARISON_OPERATOR_IN
	notIn   = commonv1.ComparisonOperator_COMPARISON_OPERATOR_NOT_IN
	isNull  = commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NULL
	notNull = commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NOT_NULL
)

func TestMatch(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	customer := map[string]*commonv1.Value{"age": integer(41), "spend": num(12.5), "job": str("admin."), "member": boolean(true), "last": at(t0)}
	tests := []struct {
		name string
		f    *servingv1.AudienceFilter
		want bool
	}{
		{"int equals number", cond("age", eq, num(41)), true},
		{"int greater or equal", cond("age", ge, integer(42)), false},
		{"number below int", cond("spend", lt, integer(13)), true},
		{"string in", cond("job", in, str("technician"), str("admin.")), true},
		{"string not in", cond("job", notIn, str("admin.")), false},
		{"string order", cond("job", lt, str("b")), true},
		{"bool", cond("member", eq, boolean(false)), false},
		{"time", cond("last", lt, at(t0.Add(time.Hour))), true},
		{"missing is null", cond("spend_90d", isNull), true},
		{"missing matches nothing else", cond("spend_90d", ne, num(1)), false},
		{"missing not in", cond("spend_90d", notIn, num(1)), false},
		{"present not null", cond("age", notNull), true},
		{"all of", all(cond("age", ge, num(40)), cond("job", eq, str("admin."))), true},
		{"any of", anyOf(cond("age", lt, num(30)), cond("member", eq, boolean(true))), true},
		{"none of", none(cond("age", lt, num(30)), cond("member", eq, boolean(false))), true},
		{"nested", all(anyOf(cond("job", eq, str("x")), none(cond("age", isNull))), cond("spend", ge, num(12.5))), true},
	}
	types["spend_90d"] = commonv1.ValueType_VALUE_TYPE_NUMBER
	defer delete(types, "spend_90d")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, bad := Compile(tt.f, typeOf, "segment")
			if len(bad) > 0 {
				t.Fatalf("Compile: %v", bad)
			}
			got := f.Match(func(n string) (*commonv1.Value, bool) {
				v, ok := customer[n]
				return v, ok
			})
			if got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCompileViolations(t *testing.T) {
	deep := cond("age", isNull)
	for range MaxDepth {
		deep = all(deep)
	}
	tests := []struct {
		name  string
		f     *servingv1.AudienceFilter
		field string
	}{
		{"no kind", &servingv1.AudienceFilter{}, "segment"},
		{"unknown feature", cond("shoe_size", eq, num(1)), "segment.condition.feature"},
		{"no operator", cond("age", commonv1.ComparisonOperator_COMPARISON_OPERATOR_UNSPECIFIED), "segment.condition.operator"},
		{"no value", cond("age", eq), "segment.condition.value"},
		{"wrong type", cond("age", eq, str("old")), "segment.condition.value"},
		{"empty in", cond("job", in), "segment.condition.values"},
		{"wrong type in list", cond("job", in, str("a"), num(2)), "segment.condition.values[1]"},
		{"value with is null", cond("job", isNull, str("a")), "segment.condition"},
		{"empty list", all(), "segment.all_of.filters"},
		{"too deep", deep, "segment" + strings.Repeat(".all_of.filters[0]", MaxDepth)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, bad := Compile(tt.f, typeOf, "segment")
			found := false
			for _, v := range bad {
				found = found || v.Field == tt.field
			}
			if !found {
				t.Errorf("violations %v, want one on %s", bad, tt.field)
			}
		})
	}
}
