package oip

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	"github.com/bullseye-ml/bullseye/pkg/gen/inference"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func le32(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return b
}

func bytesRaw(elems ...string) []byte {
	var b []byte
	for _, e := range elems {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	return b
}

// show renders decoded values for comparison.
func show(vs []*commonv1.Value) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		switch k := v.GetKind().(type) {
		case *commonv1.Value_NumberValue:
			out[i] = k.NumberValue
		case *commonv1.Value_IntValue:
			out[i] = k.IntValue
		case *commonv1.Value_StringValue:
			out[i] = k.StringValue
		case *commonv1.Value_BoolValue:
			out[i] = k.BoolValue
		case *commonv1.Value_TimeValue:
			out[i] = k.TimeValue.AsTime()
		}
	}
	return out
}

func TestDecodeTensor(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	num := commonv1.ValueType_VALUE_TYPE_NUMBER
	tests := []struct {
		name string
		in   *inference.ModelInferRequest_InferInputTensor
		raw  []byte
		typ  commonv1.ValueType
		want []any
	}{
		{"fp64 typed, Inf kept for scoring to refuse", &inference.ModelInferRequest_InferInputTensor{Datatype: "FP64", Contents: &inference.InferTensorContents{Fp64Contents: []float64{1.5, math.Inf(-1)}}}, nil, num, []any{1.5, math.Inf(-1)}},
		{"fp32 raw", &inference.ModelInferRequest_InferInputTensor{Datatype: "FP32"}, le32(math.Float32bits(0.25), math.Float32bits(-2)), num, []any{0.25, -2.0}},
		{"fp16 raw", &inference.ModelInferRequest_InferInputTensor{Datatype: "FP16"}, []byte{0x00, 0x3c, 0x00, 0xc0}, num, []any{1.0, -2.0}},
		{"bf16 raw", &inference.ModelInferRequest_InferInputTensor{Datatype: "BF16"}, []byte{0x80, 0x3f, 0x40, 0x40}, num, []any{1.0, 3.0}},
		{"int32 typed", &inference.ModelInferRequest_InferInputTensor{Datatype: "INT32", Contents: &inference.InferTensorContents{IntContents: []int32{-3, 7}}}, nil, num, []any{int64(-3), int64(7)}},
		{"uint8 raw", &inference.ModelInferRequest_InferInputTensor{Datatype: "UINT8"}, []byte{255, 1}, num, []any{int64(255), int64(1)}},
		{"int64 raw", &inference.ModelInferRequest_InferInputTensor{Datatype: "INT64"}, binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, uint64(1<<40)), math.MaxUint64), num, []any{int64(1 << 40), int64(-1)}},
		{"bool raw", &inference.ModelInferRequest_InferInputTensor{Datatype: "BOOL"}, []byte{1, 0}, commonv1.ValueType_VALUE_TYPE_BOOL, []any{true, false}},
		{"bytes typed, empty missing", &inference.ModelInferRequest_InferInputTensor{Datatype: "BYTES", Contents: &inference.InferTensorContents{BytesContents: [][]byte{[]byte("admin."), nil}}}, nil, commonv1.ValueType_VALUE_TYPE_STRING, []any{"admin.", nil}},
		{"bytes raw as times", &inference.ModelInferRequest_InferInputTensor{Datatype: "BYTES"}, bytesRaw(t0.Format(time.RFC3339), t0.Add(time.Hour).Format(time.RFC3339)), commonv1.ValueType_VALUE_TYPE_TIME, []any{t0, t0.Add(time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeTensor(tt.in, tt.raw, 2, tt.typ, "inputs[0]")
			if err != nil {
				t.Fatal(err)
			}
			g := show(got)
			for i := range tt.want {
				if g[i] != tt.want[i] {
					t.Errorf("element %d = %v, want %v", i, g[i], tt.want[i])
				}
			}
		})
	}
}

func TestDecodeTensorErrors(t *testing.T) {
	num := commonv1.ValueType_VALUE_TYPE_NUMBER
	tests := []struct {
		name string
		in   *inference.ModelInferRequest_InferInputTensor
		raw  []byte
		typ  commonv1.ValueType
	}{
		{"short contents", &inference.ModelInferRequest_InferInputTensor{Datatype: "FP64", Contents: &inference.InferTensorContents{Fp64Contents: []float64{1}}}, nil, num},
		{"short raw", &inference.ModelInferRequest_InferInputTensor{Datatype: "FP32"}, []byte{1, 2, 3}, num},
		{"fp16 typed", &inference.ModelInferRequest_InferInputTensor{Datatype: "FP16", Contents: &inference.InferTensorContents{}}, nil, num},
		{"unknown type", &inference.ModelInferRequest_InferInputTensor{Datatype: "STRING"}, nil, num},
		{"truncated bytes", &inference.ModelInferRequest_InferInputTensor{Datatype: "BYTES"}, append(bytesRaw("a"), 9, 0, 0, 0, 'b'), commonv1.ValueType_VALUE_TYPE_STRING},
		{"bad time", &inference.ModelInferRequest_InferInputTensor{Datatype: "BYTES"}, bytesRaw("soon", "later"), commonv1.ValueType_VALUE_TYPE_TIME},
		{"uint64 overflow", &inference.ModelInferRequest_InferInputTensor{Datatype: "UINT64", Contents: &inference.InferTensorContents{Uint64Contents: []uint64{1, math.MaxUint64}}}, nil, num},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeTensor(tt.in, tt.raw, 2, tt.typ, "inputs[0]")
			var v fault.Violations
			if !errors.As(err, &v) || v[0].Field[:9] != "inputs[0]" {
				t.Errorf("err = %v, want a violation on inputs[0]", err)
			}
		})
	}
}

func TestHalfToFloat(t *testing.T) {
	tests := []struct {
		h    uint16
		want float64
	}{{0x3c00, 1}, {0xc000, -2}, {0x3555, 0.333251953125}, {0x0001, math.Ldexp(1, -24)}, {0x7c00, math.Inf(1)}, {0x0000, 0}}
	for _, tt := range tests {
		if got := halfToFloat(tt.h); got != tt.want {
			t.Errorf("halfToFloat(%#04x) = %v, want %v", tt.h, got, tt.want)
		}
	}
	if !math.IsNaN(halfToFloat(0x7e00)) {
		t.Error("0x7e00 is not NaN")
	}
}
