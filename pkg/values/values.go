// Package values types, names and compares the typed values of bullseye.common.v1: the one
// comparison language (common.v1.ComparisonOperator) that every service's conditions speak.
package values

import (
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
)

// String prints v as people read it: numbers in the shortest form that reads back the
// same, times in RFC 3339 (UTC), and a missing value as null.
func String(v *commonv1.Value) string {
	switch k := v.GetKind().(type) {
	case *commonv1.Value_NumberValue:
		return strconv.FormatFloat(k.NumberValue, 'g', -1, 64)
	case *commonv1.Value_IntValue:
		return strconv.FormatInt(k.IntValue, 10)
	case *commonv1.Value_StringValue:
		return k.StringValue
	case *commonv1.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue)
	case *commonv1.Value_TimeValue:
		return k.TimeValue.AsTime().UTC().Format(time.RFC3339Nano)
	}
	return "null"
}

// Missing reports whether v is a missing value: nil, or a Value with no kind.
func Missing(v *commonv1.Value) bool { return v.GetKind() == nil }

// TypeOf returns the ValueType of v, or VALUE_TYPE_UNSPECIFIED for a missing value.
func TypeOf(v *commonv1.Value) commonv1.ValueType {
	switch v.GetKind().(type) {
	case *commonv1.Value_NumberValue:
		return commonv1.ValueType_VALUE_TYPE_NUMBER
	case *commonv1.Value_IntValue:
		return commonv1.ValueType_VALUE_TYPE_INT
	case *commonv1.Value_StringValue:
		return commonv1.ValueType_VALUE_TYPE_STRING
	case *commonv1.Value_BoolValue:
		return commonv1.ValueType_VALUE_TYPE_BOOL
	case *commonv1.Value_TimeValue:
		return commonv1.ValueType_VALUE_TYPE_TIME
	}
	return commonv1.ValueType_VALUE_TYPE_UNSPECIFIED
}

// TypeName names a type for messages to people: "a number", "a whole number", "a string",
// "a bool", "a time", or "no value" for VALUE_TYPE_UNSPECIFIED.
func TypeName(t commonv1.ValueType) string {
	switch t {
	case commonv1.ValueType_VALUE_TYPE_NUMBER:
		return "a number"
	case commonv1.ValueType_VALUE_TYPE_INT:
		return "a whole number"
	case commonv1.ValueType_VALUE_TYPE_STRING:
		return "a string"
	case commonv1.ValueType_VALUE_TYPE_BOOL:
		return "a bool"
	case commonv1.ValueType_VALUE_TYPE_TIME:
		return "a time"
	}
	return "no value"
}

// Numeric reports whether t is a number or a whole number, the two types that compare with
// each other.
func Numeric(t commonv1.ValueType) bool {
	return t == commonv1.ValueType_VALUE_TYPE_NUMBER || t == commonv1.ValueType_VALUE_TYPE_INT
}

// Comparable reports whether values of types a and b compare: the same type, or both numeric.
func Comparable(a, b commonv1.ValueType) bool {
	return a == b || (Numeric(a) && Numeric(b))
}

// Scalar is a typed value unpacked, the form in which code that holds many values keeps and
// compares them without allocating. The zero Scalar is null.
type Scalar struct {
	// Type says which field holds the value; VALUE_TYPE_UNSPECIFIED is null.
	Type commonv1.ValueType
	// Num holds a NUMBER.
	Num float64
	// Int holds an INT, a BOOL (0 or 1) or a TIME (Unix nanoseconds, clamped to the int64
	// range, about the years 1678 to 2262).
	Int int64
	// Str holds a STRING.
	Str string
}

// ScalarOf unpacks v; a missing value is the null Scalar.
func ScalarOf(v *commonv1.Value) Scalar {
	switch k := v.GetKind().(type) {
	case *commonv1.Value_NumberValue:
		return Scalar{Type: commonv1.ValueType_VALUE_TYPE_NUMBER, Num: k.NumberValue}
	case *commonv1.Value_IntValue:
		return Scalar{Type: commonv1.ValueType_VALUE_TYPE_INT, Int: k.IntValue}
	case *commonv1.Value_StringValue:
		return Scalar{Type: commonv1.ValueType_VALUE_TYPE_STRING, Str: k.StringValue}
	case *commonv1.Value_BoolValue:
		s := Scalar{Type: commonv1.ValueType_VALUE_TYPE_BOOL}
		if k.BoolValue {
			s.Int = 1
		}
		return s
	case *commonv1.Value_TimeValue:
		return Scalar{Type: commonv1.ValueType_VALUE_TYPE_TIME, Int: UnixNanos(k.TimeValue)}
	}
	return Scalar{}
}

// UnixNanos returns a timestamp as Unix nanoseconds, clamped to the int64 range; nil is 0.
func UnixNanos(ts *timestamppb.Timestamp) int64 {
	if ts == nil {
		return 0
	}
	const maxSec = int64(math.MaxInt64/1_000_000_000 - 1)
	s := ts.GetSeconds()
	switch {
	case s > maxSec:
		return math.MaxInt64
	case s < -maxSec:
		return math.MinInt64
	}
	return s*1e9 + int64(ts.GetNanos())
}

// IsNull reports whether s is null.
func (s Scalar) IsNull() bool { return s.Type == commonv1.ValueType_VALUE_TYPE_UNSPECIFIED }

// Compare orders s and t when they compare: numbers and whole numbers with each other (two
// whole numbers exactly), strings by their bytes, bools false before true, times in time
// order. It returns -1, 0 or +1, and ok false for values that do not compare: of other
// types, null, or NaN.
func (s Scalar) Compare(t Scalar) (c int, ok bool) {
	switch {
	case s.Type == commonv1.ValueType_VALUE_TYPE_INT && t.Type == commonv1.ValueType_VALUE_TYPE_INT:
		return cmp3(s.Int < t.Int, s.Int > t.Int), true
	case Numeric(s.Type) && Numeric(t.Type):
		a, b := s.float(), t.float()
		if math.IsNaN(a) || math.IsNaN(b) {
			return 0, false
		}
		return cmp3(a < b, a > b), true
	case s.Type != t.Type || s.IsNull():
		return 0, false
	case s.Type == commonv1.ValueType_VALUE_TYPE_STRING:
		return strings.Compare(s.Str, t.Str), true
	}
	return cmp3(s.Int < t.Int, s.Int > t.Int), true
}

func (s Scalar) float() float64 {
	if s.Type == commonv1.ValueType_VALUE_TYPE_INT {
		return float64(s.Int)
	}
	return s.Num
}

func cmp3(less, more bool) int {
	switch {
	case less:
		return -1
	case more:
		return 1
	}
	return 0
}

// Compare orders two values as Scalar.Compare does.
func Compare(a, b *commonv1.Value) (c int, ok bool) {
	return ScalarOf(a).Compare(ScalarOf(b))
}

// Arity is how many values an operator compares with.
type Arity int

// The arities of the operators.
const (
	// Invalid is the arity of COMPARISON_OPERATOR_UNSPECIFIED and of unknown operators.
	Invalid Arity = iota
	// None: IS_NULL and IS_NOT_NULL take no value.
	None
	// One: EQ, NE, LT, LE, GT and GE take a single, non-null value.
	One
	// List: IN and NOT_IN take one value or more.
	List
)

// ArityOf returns how many values op compares with.
func ArityOf(op commonv1.ComparisonOperator) Arity {
	switch op {
	case commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NULL, commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NOT_NULL:
		return None
	case commonv1.ComparisonOperator_COMPARISON_OPERATOR_EQ, commonv1.ComparisonOperator_COMPARISON_OPERATOR_NE,
		commonv1.ComparisonOperator_COMPARISON_OPERATOR_LT, commonv1.ComparisonOperator_COMPARISON_OPERATOR_LE,
		commonv1.ComparisonOperator_COMPARISON_OPERATOR_GT, commonv1.ComparisonOperator_COMPARISON_OPERATOR_GE:
		return One
	case commonv1.ComparisonOperator_COMPARISON_OPERATOR_IN, commonv1.ComparisonOperator_COMPARISON_OPERATOR_NOT_IN:
		return List
	}
	return Invalid
}

// OperatorNames lists the operators by their short names, for messages to people.
const OperatorNames = "EQ, NE, LT, LE, GT, GE, IN, NOT_IN, IS_NULL or IS_NOT_NULL"

// OperatorName is op's short name, e.g. "LT".
func OperatorName(op commonv1.ComparisonOperator) string {
	return strings.TrimPrefix(op.String(), "COMPARISON_OPERATOR_")
}

// Holds reports whether v meets op with operands, which the caller has checked against
// ArityOf(op).
func Holds(op commonv1.ComparisonOperator, v Scalar, operands []Scalar) bool {
	switch op {
	case commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NULL:
		return v.IsNull()
	case commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NOT_NULL:
		return !v.IsNull()
	}
	if v.IsNull() {
		return false
	}
	switch op {
	case commonv1.ComparisonOperator_COMPARISON_OPERATOR_IN, commonv1.ComparisonOperator_COMPARISON_OPERATOR_NOT_IN:
		in := false
		for _, w := range operands {
			if c, ok := v.Compare(w); ok && c == 0 {
				in = true
				break
			}
		}
		return in == (op == commonv1.ComparisonOperator_COMPARISON_OPERATOR_IN)
	}
	if len(operands) == 0 {
		return false
	}
	c, ok := v.Compare(operands[0])
	if !ok {
		return false
	}
	switch op {
	case commonv1.ComparisonOperator_COMPARISON_OPERATOR_EQ:
		return c == 0
	case commonv1.ComparisonOperator_COMPARISON_OPERATOR_NE:
		return c != 0
	case commonv1.ComparisonOperator_COMPARISON_OPERATOR_LT:
		return c < 0
	case commonv1.ComparisonOperator_COMPARISON_OPERATOR_LE:
		return c <= 0
	case commonv1.ComparisonOperator_COMPARISON_OPERATOR_GT:
		return c > 0
	case commonv1.ComparisonOperator_COMPARISON_OPERATOR_GE:
		return c >= 0
	}
	return false
}
