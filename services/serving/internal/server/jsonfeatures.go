package server

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/values"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring"
)

// instanceFeatures returns an instance's inline features as typed values: its features, and
// its json_features typed by the inputs of m, the version that scores it. A JSON value that
// does not suit its input, and a name given in both forms, are violations under path (e.g.
// "instances[3]"). A name m does not take is typed by its JSON kind alone, for the row's
// UNKNOWN_FEATURE problem.
func instanceFeatures(c *fault.Violations, path string, inst *servingv1.Instance, m *scoring.Model) map[string]*commonv1.Value {
	plain := inst.GetJsonFeatures()
	if len(plain) == 0 {
		return inst.GetFeatures()
	}
	out := make(map[string]*commonv1.Value, len(inst.GetFeatures())+len(plain))
	for name, v := range inst.GetFeatures() {
		out[name] = v
	}
	for name, v := range plain {
		field := path + ".json_features"
		if fault.ValidName(name) && len(name) <= 64 {
			field += "." + name
		}
		if _, twice := out[name]; twice {
			c.Add(field, "feature %s is also in features: give each feature once", fault.Quote(name))
			continue
		}
		t := commonv1.ValueType_VALUE_TYPE_UNSPECIFIED
		if k, ok := m.InputIndex(name); ok {
			t = m.Inputs[k].GetType()
		}
		typed, problem := typedValue(t, v)
		if problem != "" {
			c.Add(field, "feature %s %s", fault.Quote(name), problem)
			continue
		}
		out[name] = typed
	}
	return out
}

// typedValue types a plain JSON value for an input of type t: a number for a NUMBER or INT
// input, a string for a STRING input or, in RFC 3339, for a TIME input, a bool for a BOOL
// input, null as a missing value. For VALUE_TYPE_UNSPECIFIED (no such input) the JSON kind
// alone decides. problem says why v does not suit t.
func typedValue(t commonv1.ValueType, v *structpb.Value) (typed *commonv1.Value, problem string) {
	untyped := t == commonv1.ValueType_VALUE_TYPE_UNSPECIFIED
	switch k := v.GetKind().(type) {
	case nil, *structpb.Value_NullValue:
		return &commonv1.Value{}, ""
	case *structpb.Value_NumberValue:
		if untyped || values.Numeric(t) {
			return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: k.NumberValue}}, ""
		}
	case *structpb.Value_StringValue:
		switch {
		case untyped || t == commonv1.ValueType_VALUE_TYPE_STRING:
			return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: k.StringValue}}, ""
		case t == commonv1.ValueType_VALUE_TYPE_TIME:
			at, err := time.Parse(time.RFC3339Nano, k.StringValue)
			if err != nil {
				return nil, "takes a time: give an RFC 3339 string such as \"2025-03-14T09:26:53Z\""
			}
			return &commonv1.Value{Kind: &commonv1.Value_TimeValue{TimeValue: timestamppb.New(at)}}, ""
		}
	case *structpb.Value_BoolValue:
		if untyped || t == commonv1.ValueType_VALUE_TYPE_BOOL {
			return &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: k.BoolValue}}, ""
		}
	}
	return nil, fmt.Sprintf("takes %s, not %s", inputKind(t), jsonKind(v))
}

func jsonKind(v *structpb.Value) string {
	switch v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		return "a JSON number"
	case *structpb.Value_StringValue:
		return "a JSON string"
	case *structpb.Value_BoolValue:
		return "a JSON bool"
	case *structpb.Value_ListValue:
		return "a JSON list"
	}
	return "a JSON object"
}

// inputKind names the values an input of type t takes, and the JSON that gives them.
func inputKind(t commonv1.ValueType) string {
	switch t {
	case commonv1.ValueType_VALUE_TYPE_NUMBER, commonv1.ValueType_VALUE_TYPE_INT:
		return values.TypeName(t) + " (give a JSON number)"
	case commonv1.ValueType_VALUE_TYPE_STRING:
		return "a string, a category (give a JSON string)"
	case commonv1.ValueType_VALUE_TYPE_BOOL:
		return "a bool (give true or false)"
	case commonv1.ValueType_VALUE_TYPE_TIME:
		return "a time (give an RFC 3339 string)"
	}
	return "a number, a string, a bool or null"
}
