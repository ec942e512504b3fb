// Package profile is the per-customer state the feature service keeps: the
// customer's behavioural events, trait updates and consent changes, each
// with its stream sequence and event time, and the last stream sequence
// applied. It applies stored records to that state (harmlessly again on
// redelivery), encodes it compactly in the protobuf wire format for the
// state bucket, and answers point-in-time questions about it.
package profile

import (
	"math"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	"github.com/bullseye-ml/bullseye/pkg/values"
)

// Kind is the type of a Value.
type Kind uint8

// The kinds of values.
const (
	// Null is the absence of a value.
	Null Kind = iota
	// Number is a real number, in Value.Num.
	Number
	// Int is a whole number, in Value.Int.
	Int
	// String is a text, in Value.Str.
	String
	// Bool is a yes/no value, in Value.Int (0 or 1).
	Bool
	// Time is an instant, in Value.Int as Unix nanoseconds.
	Time
)

// Value is a typed value, the compact in-memory form of commonv1.Value.
type Value struct {
	// Kind says which field holds the value.
	Kind Kind
	// Num holds a Number.
	Num float64
	// Int holds an Int, a Bool (0 or 1) or a Time (Unix nanoseconds).
	Int int64
	// Str holds a String.
	Str string
}

// NumberValue returns a Number.
func NumberValue(f float64) Value { return Value{Kind: Number, Num: f} }

// IntValue returns an Int.
func IntValue(i int64) Value { return Value{Kind: Int, Int: i} }

// StringValue returns a String.
func StringValue(s string) Value { return Value{Kind: String, Str: s} }

// BoolValue returns a Bool.
func BoolValue(b bool) Value {
	if b {
		return Value{Kind: Bool, Int: 1}
	}
	return Value{Kind: Bool}
}

// TimeValue returns a Time.
func TimeValue(nanos int64) Value { return Value{Kind: Time, Int: nanos} }

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return v.Kind == Null }

// Float returns v as a real number, and false when v is not numeric
// (Number or Int).
func (v Value) Float() (float64, bool) {
	switch v.Kind {
	case Number:
		return v.Num, true
	case Int:
		return float64(v.Int), true
	}
	return 0, false
}

// Equal reports whether v and w are the same value: both null, or comparing
// equal (so Int 2 equals Number 2).
func (v Value) Equal(w Value) bool {
	if v.IsNull() || w.IsNull() {
		return v.IsNull() && w.IsNull()
	}
	c, ok := v.Compare(w)
	return ok && c == 0
}

// Compare orders v and w as values.Scalar.Compare does: -1, 0 or +1, and ok
// false when they do not compare.
func (v Value) Compare(w Value) (c int, ok bool) {
	return v.Scalar().Compare(w.Scalar())
}

// Scalar returns v in the form the shared comparisons take.
func (v Value) Scalar() values.Scalar {
	return values.Scalar{Type: kindTypes[v.Kind], Num: v.Num, Int: v.Int, Str: v.Str}
}

var kindTypes = [...]commonv1.ValueType{
	Null:   commonv1.ValueType_VALUE_TYPE_UNSPECIFIED,
	Number: commonv1.ValueType_VALUE_TYPE_NUMBER,
	Int:    commonv1.ValueType_VALUE_TYPE_INT,
	String: commonv1.ValueType_VALUE_TYPE_STRING,
	Bool:   commonv1.ValueType_VALUE_TYPE_BOOL,
	Time:   commonv1.ValueType_VALUE_TYPE_TIME,
}

// Key returns a string that is equal for equal values, for counting
// distinct values.
func (v Value) Key() string {
	switch v.Kind {
	case Number:
		if v.Num == math.Trunc(v.Num) && math.Abs(v.Num) < 1<<53 {
			return "n" + strconv.FormatInt(int64(v.Num), 10)
		}
		return "n" + strconv.FormatFloat(v.Num, 'g', -1, 64)
	case Int:
		return "n" + strconv.FormatInt(v.Int, 10)
	case String:
		return "s" + v.Str
	case Bool:
		return "b" + strconv.FormatInt(v.Int, 10)
	case Time:
		return "t" + strconv.FormatInt(v.Int, 10)
	}
	return ""
}

// FromProto converts a commonv1.Value; nil and a Value with no kind are
// null.
func FromProto(p *commonv1.Value) Value {
	switch k := p.GetKind().(type) {
	case *commonv1.Value_NumberValue:
		return NumberValue(k.NumberValue)
	case *commonv1.Value_IntValue:
		return IntValue(k.IntValue)
	case *commonv1.Value_StringValue:
		return StringValue(k.StringValue)
	case *commonv1.Value_BoolValue:
		return BoolValue(k.BoolValue)
	case *commonv1.Value_TimeValue:
		return TimeValue(values.UnixNanos(k.TimeValue))
	}
	return Value{}
}

// Proto converts v to a commonv1.Value (one with no kind for null).
func (v Value) Proto() *commonv1.Value {
	out := &commonv1.Value{}
	v.Fill(out)
	return out
}

// Fill sets out to v, reusing out.
func (v Value) Fill(out *commonv1.Value) {
	switch v.Kind {
	case Number:
		out.Kind = &commonv1.Value_NumberValue{NumberValue: v.Num}
	case Int:
		out.Kind = &commonv1.Value_IntValue{IntValue: v.Int}
	case String:
		out.Kind = &commonv1.Value_StringValue{StringValue: v.Str}
	case Bool:
		out.Kind = &commonv1.Value_BoolValue{BoolValue: v.Int != 0}
	case Time:
		out.Kind = &commonv1.Value_TimeValue{TimeValue: Timestamp(v.Int)}
	default:
		out.Kind = nil
	}
}

// Convert returns v as type t, or null when it cannot be read as t:
// numbers convert between NUMBER and INT (only whole numbers to INT), BOOL
// reads 0 and 1, and strings are parsed.
func (v Value) Convert(t commonv1.ValueType) Value {
	switch t {
	case commonv1.ValueType_VALUE_TYPE_NUMBER:
		switch v.Kind {
		case Number:
			return v
		case Int:
			return NumberValue(float64(v.Int))
		case Bool:
			return NumberValue(float64(v.Int))
		case String:
			if f, err := strconv.ParseFloat(v.Str, 64); err == nil {
				return NumberValue(f)
			}
		}
	case commonv1.ValueType_VALUE_TYPE_INT:
		switch v.Kind {
		case Int:
			return v
		case Number:
			if v.Num == math.Trunc(v.Num) && math.Abs(v.Num) < 1<<63 {
				return IntValue(int64(v.Num))
			}
		case Bool:
			return IntValue(v.Int)
		case String:
			if i, err := strconv.ParseInt(v.Str, 10, 64); err == nil {
				return IntValue(i)
			}
		}
	case commonv1.ValueType_VALUE_TYPE_STRING:
		switch v.Kind {
		case String:
			return v
		case Int:
			return StringValue(strconv.FormatInt(v.Int, 10))
		case Number:
			return StringValue(strconv.FormatFloat(v.Num, 'g', -1, 64))
		case Bool:
			return StringValue(strconv.FormatBool(v.Int != 0))
		case Time:
			return StringValue(time.Unix(0, v.Int).UTC().Format(time.RFC3339Nano))
		}
	case commonv1.ValueType_VALUE_TYPE_BOOL:
		switch v.Kind {
		case Bool:
			return v
		case Int:
			if v.Int == 0 || v.Int == 1 {
				return BoolValue(v.Int == 1)
			}
		case String:
			if b, err := strconv.ParseBool(v.Str); err == nil {
				return BoolValue(b)
			}
		}
	case commonv1.ValueType_VALUE_TYPE_TIME:
		switch v.Kind {
		case Time:
			return v
		case String:
			if ts, err := time.Parse(time.RFC3339Nano, v.Str); err == nil {
				return TimeValue(ts.UnixNano())
			}
		}
	}
	return Value{}
}

// TypeOf returns the ValueType of a kind.
func TypeOf(k Kind) commonv1.ValueType {
	switch k {
	case Number:
		return commonv1.ValueType_VALUE_TYPE_NUMBER
	case Int:
		return commonv1.ValueType_VALUE_TYPE_INT
	case String:
		return commonv1.ValueType_VALUE_TYPE_STRING
	case Bool:
		return commonv1.ValueType_VALUE_TYPE_BOOL
	case Time:
		return commonv1.ValueType_VALUE_TYPE_TIME
	}
	return commonv1.ValueType_VALUE_TYPE_UNSPECIFIED
}

// Timestamp returns Unix nanoseconds as a timestamp.
func Timestamp(nanos int64) *timestamppb.Timestamp {
	s, n := nanos/1e9, nanos%1e9
	if n < 0 {
		s, n = s-1, n+1e9
	}
	return &timestamppb.Timestamp{Seconds: s, Nanos: int32(n)}
}
