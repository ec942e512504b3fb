package values_test

import (
	"math"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	"github.com/bullseye-ml/bullseye/pkg/values"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func num(f float64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: f}}
}
func whole(i int64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: i}}
}
func str(s string) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
}
func flag(b bool) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: b}}
}
func at(t time.Time) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_TimeValue{TimeValue: timestamppb.New(t)}}
}

func TestCompare(t *testing.T) {
	day := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		a, b   *commonv1.Value
		want   int
		wantOK bool
	}{
		{"numbers", num(1.5), num(2), -1, true},
		{"whole numbers exactly", whole(1<<53 + 1), whole(1 << 53), 1, true},
		{"whole number with number", whole(2), num(2), 0, true},
		{"number with whole number", num(2.5), whole(2), 1, true},
		{"strings by bytes", str("B"), str("a"), -1, true},
		{"bools", flag(true), flag(false), 1, true},
		{"times", at(day), at(day.Add(time.Nanosecond)), -1, true},
		{"NaN", num(math.NaN()), num(1), 0, false},
		{"string with number", str("1"), num(1), 0, false},
		{"bool with whole number", flag(true), whole(1), 0, false},
		{"null", &commonv1.Value{}, &commonv1.Value{}, 0, false},
		{"nil with number", nil, num(1), 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := values.Compare(tc.a, tc.b)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("Compare = %d, %v; want %d, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestHolds(t *testing.T) {
	s := values.ScalarOf
	list := func(vs ...*commonv1.Value) []values.Scalar {
		var out []values.Scalar
		for _, v := range vs {
			out = append(out, s(v))
		}
		return out
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
	null := values.Scalar{}
	tests := []struct {
		name     string
		op       commonv1.ComparisonOperator
		v        values.Scalar
		operands []values.Scalar
		want     bool
	}{
		{"EQ across number types", eq, s(whole(3)), list(num(3)), true},
		{"NE", ne, s(str("a")), list(str("b")), true},
		{"NE of another type", ne, s(str("a")), list(num(1)), false},
		{"LT", lt, s(num(1)), list(num(2)), true},
		{"GE equal", ge, s(num(2)), list(whole(2)), true},
		{"GE of NaN", ge, s(num(math.NaN())), list(num(1)), false},
		{"IN", in, s(str("b")), list(str("a"), str("b")), true},
		{"NOT_IN", notIn, s(str("c")), list(str("a"), str("b")), true},
		{"NOT_IN of another type", notIn, s(num(1)), list(str("a")), true},
		{"null matches no comparison", lt, null, list(num(1)), false},
		{"null is not NOT_IN", notIn, null, list(str("a")), false},
		{"IS_NULL", isNull, null, nil, true},
		{"IS_NULL of a value", isNull, s(num(0)), nil, false},
		{"IS_NOT_NULL", notNull, s(str("")), nil, true},
		{"unspecified", commonv1.ComparisonOperator_COMPARISON_OPERATOR_UNSPECIFIED, s(num(1)), list(num(1)), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := values.Holds(tc.op, tc.v, tc.operands); got != tc.want {
				t.Errorf("Holds = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestArityOf: every operator the enum declares has an arity, so that a new operator cannot
// be added to the proto without saying how many values it takes.
func TestArityOf(t *testing.T) {
	for n := range commonv1.ComparisonOperator_name {
		op := commonv1.ComparisonOperator(n)
		got := values.ArityOf(op)
		if (op == commonv1.ComparisonOperator_COMPARISON_OPERATOR_UNSPECIFIED) != (got == values.Invalid) {
			t.Errorf("ArityOf(%s) = %d", op, got)
		}
	}
}

func TestUnixNanosClamps(t *testing.T) {
	far := timestamppb.New(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	if got := values.UnixNanos(far); got != math.MaxInt64 {
		t.Errorf("UnixNanos(9999) = %d, want MaxInt64", got)
	}
	if got := values.UnixNanos(timestamppb.New(time.Unix(2, 5))); got != 2_000_000_005 {
		t.Errorf("UnixNanos = %d", got)
	}
}

func TestString(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 30, 0, 500, time.FixedZone("CET", 3600))
	for _, c := range []struct {
		v    *commonv1.Value
		want string
	}{
		{&commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: 0.1}}, "0.1"},
		{&commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: -42}}, "-42"},
		{&commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: "admin."}}, "admin."},
		{&commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: true}}, "true"},
		{&commonv1.Value{Kind: &commonv1.Value_TimeValue{TimeValue: timestamppb.New(at)}}, "2026-03-01T08:30:00.0000005Z"},
		{&commonv1.Value{}, "null"},
		{nil, "null"},
	} {
		if got := values.String(c.v); got != c.want {
			t.Errorf("String(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}
