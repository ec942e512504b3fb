package artifact

import (
	"fmt"
	"math"
	"strconv"
	"time"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/values"
)

// Raw values become model inputs in one of two ways, chosen by the input's ValueType and
// encoding. These conversions are the only ones: training builds its tables with them and the
// Scorer applies them to the rows it scores, so the two cannot drift apart.

// KindOf returns the ml column kind a raw input of type t is held in before preprocessing:
// ml.Categorical for strings, ml.Numeric for numbers, whole numbers, bools and times.
func KindOf(t commonv1.ValueType) ml.Kind {
	if t == commonv1.ValueType_VALUE_TYPE_STRING {
		return ml.Categorical
	}
	return ml.Numeric
}

// Number converts a raw value of a numeric input to the float64 preprocessing takes: a number
// as it is (NaN counts as missing), a whole number converted, a bool as 0 or 1, and a time as
// the days from it to ref (positive for times before ref; ref is the row's cutoff time in
// training and the scoring time in serving). A missing value (nil, or a Value with no kind)
// gives NaN, which preprocessing imputes. A string gives ErrWrongType.
func Number(v *commonv1.Value, ref time.Time) (float64, error) {
	switch k := v.GetKind().(type) {
	case nil:
		return math.NaN(), nil
	case *commonv1.Value_NumberValue:
		if math.IsInf(k.NumberValue, 0) {
			return 0, fmt.Errorf("%w: infinite number", ErrWrongType)
		}
		return k.NumberValue, nil
	case *commonv1.Value_IntValue:
		return float64(k.IntValue), nil
	case *commonv1.Value_BoolValue:
		if k.BoolValue {
			return 1, nil
		}
		return 0, nil
	case *commonv1.Value_TimeValue:
		if err := k.TimeValue.CheckValid(); err != nil {
			return 0, fmt.Errorf("%w: %v", ErrWrongType, err)
		}
		return Days(ref, k.TimeValue.AsTime()), nil
	}
	return 0, fmt.Errorf("%w: a string where a number is expected", ErrWrongType)
}

// Days returns the days from t to ref, as a fraction: positive when t is before ref.
func Days(ref, t time.Time) float64 {
	return ref.Sub(t).Hours() / 24
}

// Category converts a raw value of a categorical input to the string preprocessing takes:
// a string as it is, a whole number in decimal, a bool as "true" or "false", a number in the
// shortest form that reads back the same ('g' format). A missing value, and the empty string,
// give "", which preprocessing imputes. A time gives ErrWrongType.
func Category(v *commonv1.Value) (string, error) {
	switch k := v.GetKind().(type) {
	case nil:
		return "", nil
	case *commonv1.Value_StringValue:
		return k.StringValue, nil
	case *commonv1.Value_IntValue:
		return strconv.FormatInt(k.IntValue, 10), nil
	case *commonv1.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue), nil
	case *commonv1.Value_NumberValue:
		if math.IsNaN(k.NumberValue) {
			return "", nil
		}
		return strconv.FormatFloat(k.NumberValue, 'g', -1, 64), nil
	}
	return "", fmt.Errorf("%w: a time where a category is expected", ErrWrongType)
}

// Imputes reports whether a model imputes a missing value of the input: its policy is
// MISSING_POLICY_IMPUTE, or unset (artifacts written before the policy was recorded imputed
// every input). With MISSING_POLICY_REQUIRED a missing value is the row's problem.
func Imputes(in *modelv1.InputColumn) bool {
	return in.GetMissing() != modelv1.MissingPolicy_MISSING_POLICY_REQUIRED
}

// CheckType reports, with ErrWrongType, a value that an input of type want does not take.
// Numbers and whole numbers stand in for each other; every other type takes only its own
// values. A missing value is always accepted: preprocessing imputes it.
func CheckType(want commonv1.ValueType, v *commonv1.Value) error {
	got := values.TypeOf(v)
	if got == commonv1.ValueType_VALUE_TYPE_UNSPECIFIED || values.Comparable(got, want) {
		return nil
	}
	return fmt.Errorf("%w: %s where %s is expected", ErrWrongType, values.TypeName(got), values.TypeName(want))
}
