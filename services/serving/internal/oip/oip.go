// Package oip maps the Open Inference Protocol v2 (KServe v2, Triton) onto Bullseye's models:
// a model's inputs are its raw features, one tensor each of shape [batch] (or [batch, 1]):
// numbers as FP32 or FP64 (integer types accepted; NaN and ±Inf are refused, never taken for
// missing values), categories as BYTES (an empty element is missing), yes/no values as BOOL,
// times as BYTES in RFC 3339; given in the typed contents or in raw_input_contents. Every
// input the model does not impute must be given, and only the model's inputs; the response's
// "imputed_inputs" parameter names those that were imputed.
// Outputs are "score" (FP64), and "probability" (FP64) and "label" (BYTES) for binary
// classifiers, "value" (FP64) for regression, the named outputs of the signature
// ("expected_purchases", "p_alive", "expected_order_value", "clv"; FP64) for customer lifetime
// value models.
package oip

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/gen/inference"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring"
)

// ParameterImputedInputs is the response parameter (a string) that names, comma-separated in
// the model's input order, the inputs some row was missing and the model imputed; absent when
// every row had every input.
const ParameterImputedInputs = "imputed_inputs"

// Output tensor names.
const (
	OutputScore       = "score"
	OutputProbability = "probability"
	OutputLabel       = "label"
	OutputValue       = "value"
)

// MaxRows is the most rows of one inference request.
const MaxRows = 10_000

// Datatype returns the tensor datatype ModelMetadata lists for an input of type t.
func Datatype(t commonv1.ValueType) string {
	switch t {
	case commonv1.ValueType_VALUE_TYPE_STRING, commonv1.ValueType_VALUE_TYPE_TIME:
		return "BYTES"
	case commonv1.ValueType_VALUE_TYPE_BOOL:
		return "BOOL"
	}
	return "FP64"
}

// InputMetadata lists a model's input tensors.
func InputMetadata(inputs []*modelv1.InputColumn) []*inference.ModelMetadataResponse_TensorMetadata {
	out := make([]*inference.ModelMetadataResponse_TensorMetadata, len(inputs))
	for i, in := range inputs {
		out[i] = &inference.ModelMetadataResponse_TensorMetadata{Name: in.GetName(), Datatype: Datatype(in.GetType()), Shape: []int64{-1}}
	}
	return out
}

// OutputNames returns a model's output tensors, in order.
func OutputNames(m *scoring.Model) []string {
	out := []string{OutputScore}
	switch m.Task {
	case modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION:
		if m.HasProbability {
			out = append(out, OutputProbability)
		}
		out = append(out, OutputLabel)
	case modelv1.TaskKind_TASK_KIND_REGRESSION:
		out = append(out, OutputValue)
	case modelv1.TaskKind_TASK_KIND_CUSTOMER_LIFETIME_VALUE:
		// The named outputs of its signature: expected_purchases, p_alive, ...
		for _, spec := range m.Outputs.GetOutputs() {
			if spec.GetName() != OutputScore && spec.GetKind() == modelv1.OutputKind_OUTPUT_KIND_NUMBER {
				out = append(out, spec.GetName())
			}
		}
	}
	return out
}

// OutputMetadata lists a model's output tensors.
func OutputMetadata(m *scoring.Model) []*inference.ModelMetadataResponse_TensorMetadata {
	var out []*inference.ModelMetadataResponse_TensorMetadata
	for _, n := range OutputNames(m) {
		dt := "FP64"
		if n == OutputLabel {
			dt = "BYTES"
		}
		out = append(out, &inference.ModelMetadataResponse_TensorMetadata{Name: n, Datatype: dt, Shape: []int64{-1}})
	}
	return out
}

// Decode turns the input tensors of req into rows for model m. It returns fault.Violations for a
// malformed request, and for one that names an input m does not take or leaves out an input m
// does not impute (as Triton refuses unknown and missing inputs). An input left out that m
// imputes is missing in every row; a BYTES element that is empty is missing in its row.
func Decode(req *inference.ModelInferRequest, m *scoring.Model) ([]scoring.Row, error) {
	inputs := req.GetInputs()
	raw := req.GetRawInputContents()
	if len(inputs) == 0 {
		return nil, fault.Invalid("inputs", "at least one input tensor is required")
	}
	if len(raw) > 0 && len(raw) != len(inputs) {
		return nil, fault.Invalid("raw_input_contents", "%d entries for %d inputs", len(raw), len(inputs))
	}
	n := -1
	for i, in := range inputs {
		field := fmt.Sprintf("inputs[%d]", i)
		if in.GetName() == "" {
			return nil, fault.Invalid(field+".name", "is required")
		}
		sh := in.GetShape()
		if len(sh) == 0 || len(sh) > 2 || (len(sh) == 2 && sh[1] != 1) || sh[0] < 0 {
			return nil, fault.Invalid(field+".shape", "must be [batch] or [batch, 1], got %s", shapeText(sh))
		}
		if n < 0 {
			n = int(sh[0])
		} else if int(sh[0]) != n {
			return nil, fault.Invalid(field+".shape", "batch %d differs from the first input's %d", sh[0], n)
		}
		if len(raw) > 0 && in.GetContents() != nil {
			return nil, fault.Invalid(field+".contents", "must be empty when raw_input_contents is used")
		}
	}
	if n == 0 || n > MaxRows {
		return nil, fault.Invalid("inputs[0].shape", "the batch must have 1 to %d rows", MaxRows)
	}
	w := len(m.Inputs)
	slab := make([]*commonv1.Value, n*w)
	rows := make([]scoring.Row, n)
	for i := range rows {
		rows[i].Values = slab[i*w : (i+1)*w : (i+1)*w]
	}
	given := make([]bool, w)
	var vs fault.Violations
	for i, in := range inputs {
		k, ok := m.InputIndex(in.GetName())
		if !ok {
			vs = append(vs, fault.Violation{Field: fmt.Sprintf("inputs[%d].name", i),
				Description: fmt.Sprintf("model %q has no input %s (ModelMetadata lists its inputs)", m.Name, fault.Quote(in.GetName()))})
			continue
		}
		if given[k] {
			vs = append(vs, fault.Violation{Field: fmt.Sprintf("inputs[%d].name", i), Description: fmt.Sprintf("input %q is given twice", in.GetName())})
			continue
		}
		given[k] = true
	}
	for k, in := range m.Inputs {
		if !given[k] && !artifact.Imputes(in) {
			vs = append(vs, fault.Violation{Field: "inputs",
				Description: fmt.Sprintf("input %q is missing and model %q does not impute it: it was never missing in training", in.GetName(), m.Name)})
		}
	}
	if len(vs) > 0 {
		return nil, vs
	}
	for i, in := range inputs {
		k, _ := m.InputIndex(in.GetName())
		var data []byte
		if len(raw) > 0 {
			data = raw[i]
		}
		vals, err := decodeTensor(in, data, n, m.Inputs[k].GetType(), fmt.Sprintf("inputs[%d]", i))
		if err != nil {
			return nil, err
		}
		for r := range rows {
			rows[r].Values[k] = vals[r]
		}
	}
	return rows, nil
}

// shapeText shows a shape in a message: whole when it has a few dimensions, else its first
// ones and how many there are.
func shapeText(sh []int64) string {
	if len(sh) <= 4 {
		return fmt.Sprint(sh)
	}
	return fmt.Sprintf("%v… (%d dimensions)", sh[:4], len(sh))
}

// decodeTensor returns the n values of one input tensor.
func decodeTensor(in *inference.ModelInferRequest_InferInputTensor, raw []byte, n int, typ commonv1.ValueType, field string) ([]*commonv1.Value, error) {
	vals := make([]commonv1.Value, n)
	out := make([]*commonv1.Value, n)
	for i := range vals {
		out[i] = &vals[i]
	}
	c := in.GetContents()
	count := func(got int) error {
		if got != n {
			return fault.Invalid(field, "%d elements for a batch of %d", got, n)
		}
		return nil
	}
	rawSize := func(size int) error {
		if len(raw) != n*size {
			return fault.Invalid(field, "raw contents of %d bytes, want %d (%d elements of %d bytes)", len(raw), n*size, n, size)
		}
		return nil
	}
	// NaN and ±Inf are kept: scoring refuses them (NOT_FINITE), never taking NaN for missing.
	number := func(i int, f float64) { vals[i].Kind = &commonv1.Value_NumberValue{NumberValue: f} }
	integer := func(i int, x int64) { vals[i].Kind = &commonv1.Value_IntValue{IntValue: x} }
	useRaw := raw != nil
	switch dt := in.GetDatatype(); dt {
	case "FP64":
		if useRaw {
			if err := rawSize(8); err != nil {
				return nil, err
			}
			for i := range n {
				number(i, math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
			}
		} else {
			if err := count(len(c.GetFp64Contents())); err != nil {
				return nil, err
			}
			for i, f := range c.GetFp64Contents() {
				number(i, f)
			}
		}
	case "FP32":
		if useRaw {
			if err := rawSize(4); err != nil {
				return nil, err
			}
			for i := range n {
				number(i, float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))))
			}
		} else {
			if err := count(len(c.GetFp32Contents())); err != nil {
				return nil, err
			}
			for i, f := range c.GetFp32Contents() {
				number(i, float64(f))
			}
		}
	case "FP16", "BF16":
		if !useRaw {
			return nil, fault.Invalid(field+".datatype", "%s data can only be sent in raw_input_contents", dt)
		}
		if err := rawSize(2); err != nil {
			return nil, err
		}
		for i := range n {
			h := binary.LittleEndian.Uint16(raw[2*i:])
			if dt == "FP16" {
				number(i, halfToFloat(h))
			} else {
				number(i, float64(math.Float32frombits(uint32(h)<<16)))
			}
		}
	case "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64":
		if err := decodeInts(dt, c, raw, useRaw, n, integer, count, rawSize, field); err != nil {
			return nil, err
		}
	case "BOOL":
		if useRaw {
			if err := rawSize(1); err != nil {
				return nil, err
			}
			for i := range n {
				vals[i].Kind = &commonv1.Value_BoolValue{BoolValue: raw[i] != 0}
			}
		} else {
			if err := count(len(c.GetBoolContents())); err != nil {
				return nil, err
			}
			for i, b := range c.GetBoolContents() {
				vals[i].Kind = &commonv1.Value_BoolValue{BoolValue: b}
			}
		}
	case "BYTES":
		elems := c.GetBytesContents()
		if useRaw {
			var err error
			if elems, err = splitBytes(raw, n, field); err != nil {
				return nil, err
			}
		} else if err := count(len(elems)); err != nil {
			return nil, err
		}
		for i, b := range elems {
			if len(b) == 0 {
				out[i] = nil
				continue
			}
			if len(b) > fault.MaxTextBytes {
				return nil, fault.Invalid(field, "element %d is %d bytes long; the limit is %d bytes", i, len(b), fault.MaxTextBytes)
			}
			if !utf8.Valid(b) {
				return nil, fault.Invalid(field, "element %d is not UTF-8", i)
			}
			s := string(b)
			if typ == commonv1.ValueType_VALUE_TYPE_TIME {
				t, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					return nil, fault.Invalid(field, "element %d: a time input takes RFC 3339 text, not %s", i, fault.Quote(s))
				}
				vals[i].Kind = &commonv1.Value_TimeValue{TimeValue: timestamppb.New(t)}
				continue
			}
			vals[i].Kind = &commonv1.Value_StringValue{StringValue: s}
		}
	default:
		return nil, fault.Invalid(field+".datatype", "unknown datatype %s", fault.Quote(dt))
	}
	return out, nil
}

func decodeInts(dt string, c *inference.InferTensorContents, raw []byte, useRaw bool, n int, set func(int, int64), count func(int) error, rawSize func(int) error, field string) error {
	if useRaw {
		size := map[string]int{"INT8": 1, "UINT8": 1, "INT16": 2, "UINT16": 2, "INT32": 4, "UINT32": 4, "INT64": 8, "UINT64": 8}[dt]
		if err := rawSize(size); err != nil {
			return err
		}
		for i := range n {
			b := raw[size*i:]
			var x int64
			switch dt {
			case "INT8":
				x = int64(int8(b[0]))
			case "UINT8":
				x = int64(b[0])
			case "INT16":
				x = int64(int16(binary.LittleEndian.Uint16(b)))
			case "UINT16":
				x = int64(binary.LittleEndian.Uint16(b))
			case "INT32":
				x = int64(int32(binary.LittleEndian.Uint32(b)))
			case "UINT32":
				x = int64(binary.LittleEndian.Uint32(b))
			case "INT64":
				x = int64(binary.LittleEndian.Uint64(b))
			case "UINT64":
				u := binary.LittleEndian.Uint64(b)
				if u > math.MaxInt64 {
					return fault.Invalid(field, "element %d overflows INT64", i)
				}
				x = int64(u)
			}
			set(i, x)
		}
		return nil
	}
	switch dt {
	case "INT8", "INT16", "INT32":
		if err := count(len(c.GetIntContents())); err != nil {
			return err
		}
		for i, x := range c.GetIntContents() {
			set(i, int64(x))
		}
	case "INT64":
		if err := count(len(c.GetInt64Contents())); err != nil {
			return err
		}
		for i, x := range c.GetInt64Contents() {
			set(i, x)
		}
	case "UINT8", "UINT16", "UINT32":
		if err := count(len(c.GetUintContents())); err != nil {
			return err
		}
		for i, x := range c.GetUintContents() {
			set(i, int64(x))
		}
	case "UINT64":
		if err := count(len(c.GetUint64Contents())); err != nil {
			return err
		}
		for i, x := range c.GetUint64Contents() {
			if x > math.MaxInt64 {
				return fault.Invalid(field, "element %d overflows INT64", i)
			}
			set(i, int64(x))
		}
	}
	return nil
}

// splitBytes splits raw BYTES data: each element a 4-byte little-endian length, then bytes.
func splitBytes(raw []byte, n int, field string) ([][]byte, error) {
	out := make([][]byte, 0, n)
	for len(raw) > 0 {
		if len(raw) < 4 {
			return nil, fault.Invalid(field, "truncated BYTES element length")
		}
		l := int(binary.LittleEndian.Uint32(raw))
		raw = raw[4:]
		if l > len(raw) {
			return nil, fault.Invalid(field, "BYTES element of %d bytes overruns the data", l)
		}
		out = append(out, raw[:l])
		raw = raw[l:]
	}
	if len(out) != n {
		return nil, fault.Invalid(field, "%d BYTES elements for a batch of %d", len(out), n)
	}
	return out, nil
}

// halfToFloat converts an IEEE 754 half-precision value.
func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(frac, -24)
	case 0x1f:
		if frac == 0 {
			return sign * math.Inf(1)
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1+frac/1024, exp-15)
}

// LabelText returns the text of a class label for the "label" output.
func LabelText(v *commonv1.Value) string {
	switch k := v.GetKind().(type) {
	case *commonv1.Value_StringValue:
		return k.StringValue
	case *commonv1.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue)
	case *commonv1.Value_IntValue:
		return strconv.FormatInt(k.IntValue, 10)
	case *commonv1.Value_NumberValue:
		return strconv.FormatFloat(k.NumberValue, 'g', -1, 64)
	}
	return ""
}

// Encode builds the output tensors of the scored rows (all OK) of model m: the requested
// outputs (all when names is empty), in contents or, with raw, in raw_output_contents.
func Encode(m *scoring.Model, out []scoring.Outcome, names []string, raw bool) ([]*inference.ModelInferResponse_InferOutputTensor, [][]byte, error) {
	all := OutputNames(m)
	if len(names) == 0 {
		names = all
	}
	n := len(out)
	var tensors []*inference.ModelInferResponse_InferOutputTensor
	var raws [][]byte
	for i, name := range names {
		found := false
		for _, a := range all {
			found = found || a == name
		}
		if !found {
			return nil, nil, fault.Invalid(fmt.Sprintf("outputs[%d].name", i), "model %q has no output %q (it has %v)", m.Name, name, all)
		}
		t := &inference.ModelInferResponse_InferOutputTensor{Name: name, Datatype: "FP64", Shape: []int64{int64(n)}}
		if name == OutputLabel {
			t.Datatype = "BYTES"
			elems := make([][]byte, n)
			pos, neg := []byte(LabelText(m.Classification.GetPositiveLabel())), []byte(LabelText(m.Classification.GetNegativeLabel()))
			if m.Classification == nil {
				pos, neg = []byte("true"), []byte("false")
			}
			for r, o := range out {
				if o.Positive {
					elems[r] = pos
				} else {
					elems[r] = neg
				}
			}
			if raw {
				var b []byte
				for _, e := range elems {
					b = binary.LittleEndian.AppendUint32(b, uint32(len(e)))
					b = append(b, e...)
				}
				raws = append(raws, b)
			} else {
				t.Contents = &inference.InferTensorContents{BytesContents: elems}
			}
			tensors = append(tensors, t)
			continue
		}
		vals := make([]float64, n)
		for r, o := range out {
			switch {
			case name == OutputProbability:
				vals[r] = o.Probability
			case name != OutputScore && o.Outputs != nil:
				vals[r] = o.Outputs[name]
			default:
				vals[r] = o.Score
			}
		}
		if raw {
			b := make([]byte, 8*n)
			for r, v := range vals {
				binary.LittleEndian.PutUint64(b[8*r:], math.Float64bits(v))
			}
			raws = append(raws, b)
		} else {
			t.Contents = &inference.InferTensorContents{Fp64Contents: vals}
		}
		tensors = append(tensors, t)
	}
	return tensors, raws, nil
}
