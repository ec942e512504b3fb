package serving

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/gen/inference"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/services/serving/internal/testenv"
)

// fitWithMissingAge fits the Bank model on training rows of which every tenth has no age:
// its artifact imputes age and no other input (none other was ever missing in training).
func fitWithMissingAge(t *testing.T, b *bank) *modelv1.ModelArtifact {
	t.Helper()
	train := b.data.Table.Subset(b.data.Train)
	cols := slices.Clone(train.Columns)
	for j := range cols {
		if cols[j].Name == "age" {
			cols[j].Numeric = slices.Clone(cols[j].Numeric)
			for i := 0; i < len(cols[j].Numeric); i += 10 {
				cols[j].Numeric[i] = math.NaN()
			}
		}
	}
	train = &ml.Table{Columns: cols}
	y := make([]float64, len(b.data.Train))
	for k, i := range b.data.Train {
		y[k] = b.data.Y[i]
	}
	a, err := testenv.FitLogistic(ctxT(t, time.Minute), train, y, b.data.Inputs, 1, bankSet, b.set.GetVersion())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range a.GetInputs() {
		if got, want := artifact.Imputes(c), c.GetName() == "age"; got != want {
			t.Fatalf("input %q: imputes %v, want %v", c.GetName(), got, want)
		}
	}
	return a
}

// TestUnknownAndMissingFeatures: Predict refuses, per instance, a feature name the model does
// not take (a misspelt "agee" is INVALID naming it), a missing input the model does not
// impute, and NaN or ±Inf numbers; a missing input the model imputes (absent or null) is
// scored, and the row says it was imputed; the neighbours of bad rows are scored as usual.
func TestUnknownAndMissingFeatures(t *testing.T) {
	b := sharedBank(t)
	const model = "bank-strict"
	b.register(t, model, testenv.Routing{Live: map[int64]uint32{1: 1}}, fitWithMissingAge(t, b))
	b.register(t, "bank-strict-complete", testenv.Routing{Live: map[int64]uint32{1: 1}}, b.v1)
	in := startServing(t, b.env, nil)

	row := b.data.Test[3]
	id := b.data.Rows[row].GetEntity().GetId()
	with := func(edit func(map[string]*commonv1.Value)) map[string]*commonv1.Value {
		f := b.inline(row)
		edit(f)
		return f
	}
	num := func(x float64) *commonv1.Value {
		return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: x}}
	}
	full := b.inline(row)
	resp, err := in.client.Predict(ctxT(t, 10*time.Second), &servingv1.PredictRequest{Model: ref(model), Instances: []*servingv1.Instance{
		{UserId: id},
		{Features: with(func(f map[string]*commonv1.Value) { f["agee"] = f["age"]; delete(f, "age") })},
		{Features: with(func(f map[string]*commonv1.Value) { delete(f, "age") })},
		{Features: with(func(f map[string]*commonv1.Value) { f["age"] = &commonv1.Value{} })},
		{Features: with(func(f map[string]*commonv1.Value) { delete(f, "job") })},
		{Features: with(func(f map[string]*commonv1.Value) { f["age"] = num(math.NaN()) })},
		{Features: with(func(f map[string]*commonv1.Value) { f["euribor3m"] = num(math.Inf(1)) })},
		{Features: with(func(f map[string]*commonv1.Value) { f["euribor3m"] = num(math.Inf(-1)) })},
		{Features: full},
		{UserId: id, Features: map[string]*commonv1.Value{"age": {}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	const (
		ok  = servingv1.PredictionStatus_PREDICTION_STATUS_OK
		inv = servingv1.PredictionStatus_PREDICTION_STATUS_INVALID
	)
	tests := []struct {
		status  servingv1.PredictionStatus
		field   string
		reason  string
		imputed []string
	}{
		{ok, "", "", nil},
		{inv, "instances[1].features.agee", "UNKNOWN_FEATURE", nil},
		{ok, "", "", []string{"age"}},
		{ok, "", "", []string{"age"}},
		{inv, "instances[4].features.job", "MISSING_INPUT", nil},
		{inv, "instances[5].features.age", "NOT_FINITE", nil},
		{inv, "instances[6].features.euribor3m", "NOT_FINITE", nil},
		{inv, "instances[7].features.euribor3m", "NOT_FINITE", nil},
		{ok, "", "", nil},
		{ok, "", "", []string{"age"}}, // null overrides the fetched age
	}
	ps := resp.GetPredictions()
	for i, tt := range tests {
		p := ps[i]
		if p.GetStatus() != tt.status || p.GetProblem().GetField() != tt.field || p.GetProblem().GetReason() != tt.reason {
			t.Errorf("row %d: %v %v, want %v %q %q", i, p.GetStatus(), p.GetProblem(), tt.status, tt.field, tt.reason)
		}
		if !slices.Equal(p.GetImputedInputs(), tt.imputed) {
			t.Errorf("row %d: imputed inputs %q, want %q", i, p.GetImputedInputs(), tt.imputed)
		}
	}
	if d := ps[1].GetProblem().GetDescription(); !strings.Contains(d, `"agee"`) {
		t.Errorf("unknown feature: description %q does not name it", d)
	}
	if d := ps[4].GetProblem().GetDescription(); !strings.Contains(d, `"job"`) {
		t.Errorf("missing input: description %q does not name it", d)
	}
	if ps[0].GetScore() != ps[8].GetScore() {
		t.Errorf("by id %v, inline %v: want the same score", ps[0].GetScore(), ps[8].GetScore())
	}
	if ps[2].GetScore() != ps[3].GetScore() || ps[2].GetScore() == ps[8].GetScore() {
		t.Errorf("absent age %v, null age %v, given age %v: want the imputed two equal and unlike the third",
			ps[2].GetScore(), ps[3].GetScore(), ps[8].GetScore())
	}

	// The Bank model as trained on complete rows imputes nothing: a missing age is INVALID.
	resp, err = in.client.Predict(ctxT(t, 10*time.Second), &servingv1.PredictRequest{Model: ref("bank-strict-complete"), Instances: []*servingv1.Instance{
		{Features: with(func(f map[string]*commonv1.Value) { delete(f, "age") })},
		{Features: full},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.GetPredictions()[0]; p.GetStatus() != inv || p.GetProblem().GetField() != "instances[0].features.age" || p.GetProblem().GetReason() != "MISSING_INPUT" {
		t.Errorf("complete-data model, no age: %v", p)
	}
	if p := resp.GetPredictions()[1]; p.GetStatus() != ok || len(p.GetImputedInputs()) != 0 {
		t.Errorf("complete-data model, every input: %v", p)
	}
}

// TestModelInferUnknownAndMissingInputs: ModelInfer refuses with INVALID_ARGUMENT, naming the
// input, a tensor the model does not take, a model input left out that the model does not
// impute, and NaN or ±Inf numbers; an imputed input may be left out.
func TestModelInferUnknownAndMissingInputs(t *testing.T) {
	b := sharedBank(t)
	const model = "bank-strict-oip"
	b.register(t, model, testenv.Routing{Live: map[int64]uint32{1: 1}}, fitWithMissingAge(t, b))
	in := startServing(t, b.env, nil)
	rows := b.data.Test[5:8]

	// request returns a ModelInfer request of rows, every input as a typed tensor, edited.
	request := func(edit func(name string, ti *inference.ModelInferRequest_InferInputTensor) bool) *inference.ModelInferRequest {
		req := &inference.ModelInferRequest{ModelName: model}
		for k, c := range b.data.Inputs {
			ti := &inference.ModelInferRequest_InferInputTensor{Name: c.GetName(), Shape: []int64{int64(len(rows))}, Contents: &inference.InferTensorContents{}}
			for _, i := range rows {
				v := b.data.Rows[i].GetFeatures()[k]
				switch x := v.GetKind().(type) {
				case *commonv1.Value_StringValue:
					ti.Datatype = "BYTES"
					ti.Contents.BytesContents = append(ti.Contents.BytesContents, []byte(x.StringValue))
				case *commonv1.Value_IntValue:
					ti.Datatype = "FP64"
					ti.Contents.Fp64Contents = append(ti.Contents.Fp64Contents, float64(x.IntValue))
				default:
					ti.Datatype = "FP64"
					ti.Contents.Fp64Contents = append(ti.Contents.Fp64Contents, v.GetNumberValue())
				}
			}
			if edit(c.GetName(), ti) {
				req.Inputs = append(req.Inputs, ti)
			}
		}
		return req
	}
	keep := func(string, *inference.ModelInferRequest_InferInputTensor) bool { return true }
	index := func(name string) int {
		for k, c := range b.data.Inputs {
			if c.GetName() == name {
				return k
			}
		}
		t.Fatalf("no input %q", name)
		return -1
	}
	tests := []struct {
		name  string
		edit  func(string, *inference.ModelInferRequest_InferInputTensor) bool
		field string // "" for OK
		text  string // in the violation's description
	}{
		{"every input", keep, "", ""},
		{"age left out (imputed)", func(n string, _ *inference.ModelInferRequest_InferInputTensor) bool { return n != "age" }, "", ""},
		{"misspelt agee", func(n string, ti *inference.ModelInferRequest_InferInputTensor) bool {
			if n == "age" {
				ti.Name = "agee"
			}
			return true
		}, "inputs[0].name", `"agee"`},
		{"job left out", func(n string, _ *inference.ModelInferRequest_InferInputTensor) bool { return n != "job" }, "inputs", `"job"`},
		{"NaN age", func(n string, ti *inference.ModelInferRequest_InferInputTensor) bool {
			if n == "age" {
				ti.Contents.Fp64Contents[1] = math.NaN()
			}
			return true
		}, "inputs[0]", "not a finite number"},
		{"Inf euribor3m", func(n string, ti *inference.ModelInferRequest_InferInputTensor) bool {
			if n == "euribor3m" {
				ti.Contents.Fp64Contents[0] = math.Inf(1)
			}
			return true
		}, "inputs[?]", "not a finite number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			switch tt.name {
			case "misspelt agee":
				tt.field = "inputs[" + strconv.Itoa(index("age")) + "].name"
			case "NaN age":
				tt.field = "inputs[" + strconv.Itoa(index("age")) + "]"
			case "Inf euribor3m":
				tt.field = "inputs[" + strconv.Itoa(index("euribor3m")) + "]"
			}
			resp, err := in.infer.ModelInfer(ctxT(t, 10*time.Second), request(tt.edit))
			if tt.field == "" {
				if err != nil || len(resp.GetOutputs()) == 0 || len(resp.GetOutputs()[0].GetContents().GetFp64Contents()) != len(rows) {
					t.Fatalf("ModelInfer: %v, %v", resp, err)
				}
				want := ""
				if tt.name == "age left out (imputed)" {
					want = "age"
				}
				if got := resp.GetParameters()["imputed_inputs"].GetStringParam(); got != want {
					t.Errorf("imputed_inputs parameter %q, want %q", got, want)
				}
				return
			}
			if status.Code(err) != codes.InvalidArgument || !containsField(err, tt.field) || !strings.Contains(status.Convert(err).Message(), tt.text) {
				t.Fatalf("ModelInfer: %v; want INVALID_ARGUMENT naming %s with %s", err, tt.field, tt.text)
			}
		})
	}
}
