package server

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
)

// TestTypedValue: a plain JSON value is typed by its input's type, null is a missing value,
// and a value of the wrong JSON kind says what the input takes.
func TestTypedValue(t *testing.T) {
	at := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	const (
		number  = commonv1.ValueType_VALUE_TYPE_NUMBER
		whole   = commonv1.ValueType_VALUE_TYPE_INT
		text    = commonv1.ValueType_VALUE_TYPE_STRING
		flag    = commonv1.ValueType_VALUE_TYPE_BOOL
		instant = commonv1.ValueType_VALUE_TYPE_TIME
		unknown = commonv1.ValueType_VALUE_TYPE_UNSPECIFIED
	)
	ok := []struct {
		t    commonv1.ValueType
		v    *structpb.Value
		want *commonv1.Value
	}{
		{number, structpb.NewNumberValue(1.5), &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: 1.5}}},
		{whole, structpb.NewNumberValue(41), &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: 41}}},
		{text, structpb.NewStringValue("admin."), &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: "admin."}}},
		{flag, structpb.NewBoolValue(true), &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: true}}},
		{instant, structpb.NewStringValue("2025-03-14T09:26:53Z"), &commonv1.Value{Kind: &commonv1.Value_TimeValue{TimeValue: timestamppb.New(at)}}},
		{number, structpb.NewNullValue(), &commonv1.Value{}},
		{unknown, structpb.NewNumberValue(2), &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: 2}}},
	}
	for _, tc := range ok {
		got, problem := typedValue(tc.t, tc.v)
		if problem != "" || !proto.Equal(got, tc.want) {
			t.Errorf("typedValue(%v, %v) = %v, %q; want %v", tc.t, tc.v, got, problem, tc.want)
		}
	}
	bad := []struct {
		t    commonv1.ValueType
		v    *structpb.Value
		want string
	}{
		{number, structpb.NewStringValue("41"), "takes a number (give a JSON number), not a JSON string"},
		{text, structpb.NewNumberValue(3), "takes a string, a category (give a JSON string), not a JSON number"},
		{flag, structpb.NewNumberValue(1), "takes a bool (give true or false), not a JSON number"},
		{instant, structpb.NewStringValue("yesterday"), "RFC 3339"},
		{unknown, structpb.NewListValue(&structpb.ListValue{}), "not a JSON list"},
	}
	for _, tc := range bad {
		if got, problem := typedValue(tc.t, tc.v); got != nil || !strings.Contains(problem, tc.want) {
			t.Errorf("typedValue(%v, %v) = %v, %q; want a problem saying %q", tc.t, tc.v, got, problem, tc.want)
		}
	}
}
