package serving

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/gen/inference"
	"github.com/bullseye-ml/bullseye/services/serving/internal/testenv"
)

// TestOpenInferenceProtocol: health, metadata and inference through the OIP service: the
// inputs are the raw features, typed contents and raw_input_contents give the same scores as
// Predict, and mistakes are INVALID_ARGUMENT or NOT_FOUND.
func TestOpenInferenceProtocol(t *testing.T) {
	b := sharedBank(t)
	const model = "bank-oip"
	b.register(t, model, testenv.Routing{Live: map[int64]uint32{1: 1}, Aliases: map[string]int64{"staging": 2}}, b.v1, b.v2)
	in := startServing(t, b.env, nil)
	ctx := ctxT(t, time.Minute)

	if r, err := in.infer.ServerLive(ctx, &inference.ServerLiveRequest{}); err != nil || !r.GetLive() {
		t.Errorf("ServerLive: %v, %v", r, err)
	}
	if r, err := in.infer.ServerReady(ctx, &inference.ServerReadyRequest{}); err != nil || !r.GetReady() {
		t.Errorf("ServerReady: %v, %v", r, err)
	}
	if r, err := in.infer.ServerMetadata(ctx, &inference.ServerMetadataRequest{}); err != nil || r.GetName() != "bullseye" || r.GetVersion() == "" {
		t.Errorf("ServerMetadata: %v, %v", r, err)
	}
	ready := []struct {
		name, version string
		want          bool
	}{{model, "", true}, {model, "1", true}, {model, "2", true}, {model, "staging", true}, {model, "3", false}, {model, "gold", false}, {"no-such-model", "", false}}
	for _, tt := range ready {
		r, err := in.infer.ModelReady(ctx, &inference.ModelReadyRequest{Name: tt.name, Version: tt.version})
		if err != nil || r.GetReady() != tt.want {
			t.Errorf("ModelReady(%q, %q) = %v, %v; want %v", tt.name, tt.version, r.GetReady(), err, tt.want)
		}
	}
	md, err := in.infer.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: model})
	if err != nil {
		t.Fatal(err)
	}
	if md.GetPlatform() != "bullseye" || strings.Join(md.GetVersions(), ",") != "1,2" || len(md.GetInputs()) != len(b.data.Inputs) {
		t.Errorf("ModelMetadata: %v", md)
	}
	for k, ti := range md.GetInputs() {
		wantType := "FP64"
		if b.data.Inputs[k].GetType() == commonv1.ValueType_VALUE_TYPE_STRING {
			wantType = "BYTES"
		}
		if ti.GetName() != b.data.Inputs[k].GetName() || ti.GetDatatype() != wantType || len(ti.GetShape()) != 1 || ti.GetShape()[0] != -1 {
			t.Errorf("input %d: %v, want %s %s [-1]", k, ti, b.data.Inputs[k].GetName(), wantType)
		}
	}
	var outs []string
	for _, o := range md.GetOutputs() {
		outs = append(outs, o.GetName()+":"+o.GetDatatype())
	}
	if got := strings.Join(outs, ","); got != "score:FP64,probability:FP64,label:BYTES" {
		t.Errorf("outputs %s", got)
	}

	// Five TEST rows, every input as a tensor, typed and raw.
	rows := b.data.Test[10:15]
	typed := &inference.ModelInferRequest{ModelName: model, Id: "req-1"}
	raw := &inference.ModelInferRequest{ModelName: model}
	pred := &servingv1.PredictRequest{Model: ref(model)}
	for _, i := range rows {
		pred.Instances = append(pred.Instances, &servingv1.Instance{Features: b.inline(i)})
	}
	for k, c := range b.data.Inputs {
		shape := []int64{int64(len(rows))}
		ti := &inference.ModelInferRequest_InferInputTensor{Name: c.GetName(), Shape: shape, Contents: &inference.InferTensorContents{}}
		ri := &inference.ModelInferRequest_InferInputTensor{Name: c.GetName(), Shape: shape}
		var rb []byte
		if c.GetType() == commonv1.ValueType_VALUE_TYPE_STRING {
			ti.Datatype, ri.Datatype = "BYTES", "BYTES"
			for _, i := range rows {
				s := []byte(b.data.Rows[i].GetFeatures()[k].GetStringValue())
				ti.Contents.BytesContents = append(ti.Contents.BytesContents, s)
				rb = binary.LittleEndian.AppendUint32(rb, uint32(len(s)))
				rb = append(rb, s...)
			}
		} else {
			ti.Datatype, ri.Datatype = "FP64", "FP64"
			for _, i := range rows {
				v := b.data.Rows[i].GetFeatures()[k]
				x := v.GetNumberValue()
				if _, ok := v.GetKind().(*commonv1.Value_IntValue); ok {
					x = float64(v.GetIntValue())
				}
				if v.GetKind() == nil {
					x = math.NaN()
				}
				ti.Contents.Fp64Contents = append(ti.Contents.Fp64Contents, x)
				rb = binary.LittleEndian.AppendUint64(rb, math.Float64bits(x))
			}
		}
		typed.Inputs = append(typed.Inputs, ti)
		raw.Inputs = append(raw.Inputs, ri)
		raw.RawInputContents = append(raw.RawInputContents, rb)
	}
	pr, err := in.client.Predict(ctx, pred)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := in.infer.ModelInfer(ctx, typed)
	if err != nil {
		t.Fatal(err)
	}
	if tr.GetModelName() != model || tr.GetModelVersion() != "1" || tr.GetId() != "req-1" || len(tr.GetOutputs()) != 3 {
		t.Fatalf("ModelInfer: %v", tr)
	}
	rr, err := in.infer.ModelInfer(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.GetRawOutputContents()) != 3 {
		t.Fatalf("raw ModelInfer: %d raw outputs", len(rr.GetRawOutputContents()))
	}
	for r, p := range pr.GetPredictions() {
		score := tr.GetOutputs()[0].GetContents().GetFp64Contents()[r]
		prob := tr.GetOutputs()[1].GetContents().GetFp64Contents()[r]
		label := string(tr.GetOutputs()[2].GetContents().GetBytesContents()[r])
		rawScore := math.Float64frombits(binary.LittleEndian.Uint64(rr.GetRawOutputContents()[0][8*r:]))
		if !close12(score, p.GetScore()) || !close12(prob, p.GetProbability()) || !close12(rawScore, p.GetScore()) ||
			label != fmt.Sprint(p.GetLabel().GetBoolValue()) {
			t.Errorf("row %d: ModelInfer %v %v %q (raw %v), Predict %v", r, score, prob, label, rawScore, p)
		}
	}
	// Only the outputs asked for; a pinned version and an alias.
	typed.Outputs = []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "probability"}}
	typed.ModelVersion = "staging"
	if r, err := in.infer.ModelInfer(ctx, typed); err != nil || len(r.GetOutputs()) != 1 || r.GetOutputs()[0].GetName() != "probability" || r.GetModelVersion() != "2" {
		t.Errorf("ModelInfer of probability by alias: %v, %v", r, err)
	}

	bad := []struct {
		name  string
		mod   func(*inference.ModelInferRequest)
		code  codes.Code
		field string
	}{
		{"unknown model", func(r *inference.ModelInferRequest) { r.ModelName = "no-such-model" }, codes.NotFound, ""},
		{"ragged batch", func(r *inference.ModelInferRequest) { r.Inputs[1].Shape = []int64{2} }, codes.InvalidArgument, "inputs[1].shape"},
		{"short contents", func(r *inference.ModelInferRequest) {
			r.Inputs[0].Contents.Fp64Contents = r.Inputs[0].Contents.Fp64Contents[:2]
		}, codes.InvalidArgument, "inputs[0]"},
		{"unknown datatype", func(r *inference.ModelInferRequest) { r.Inputs[0].Datatype = "COMPLEX" }, codes.InvalidArgument, "inputs[0].datatype"},
		{"unknown output", func(r *inference.ModelInferRequest) {
			r.Outputs = []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "value"}}
		}, codes.InvalidArgument, "outputs[0].name"},
		{"wrong type", func(r *inference.ModelInferRequest) {
			r.Inputs[0] = &inference.ModelInferRequest_InferInputTensor{Name: "age", Datatype: "BYTES", Shape: r.Inputs[0].Shape,
				Contents: &inference.InferTensorContents{BytesContents: [][]byte{[]byte("x"), []byte("y"), []byte("z"), []byte("u"), []byte("v")}}}
		}, codes.InvalidArgument, "inputs[0]"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			req := &inference.ModelInferRequest{ModelName: model}
			req.Inputs = append(req.Inputs, b.oipInputs(rows)...)
			tt.mod(req)
			_, err := in.infer.ModelInfer(ctx, req)
			if status.Code(err) != tt.code || (tt.field != "" && !containsField(err, tt.field)) {
				t.Errorf("%v, want %v naming %q", err, tt.code, tt.field)
			}
		})
	}
}

// oipInputs returns the typed input tensors of data rows.
func (b *bank) oipInputs(rows []int) []*inference.ModelInferRequest_InferInputTensor {
	var out []*inference.ModelInferRequest_InferInputTensor
	for k, c := range b.data.Inputs {
		ti := &inference.ModelInferRequest_InferInputTensor{Name: c.GetName(), Shape: []int64{int64(len(rows))}, Contents: &inference.InferTensorContents{}}
		if c.GetType() == commonv1.ValueType_VALUE_TYPE_STRING {
			ti.Datatype = "BYTES"
			for _, i := range rows {
				ti.Contents.BytesContents = append(ti.Contents.BytesContents, []byte(b.data.Rows[i].GetFeatures()[k].GetStringValue()))
			}
		} else {
			ti.Datatype = "FP64"
			for _, i := range rows {
				v := b.data.Rows[i].GetFeatures()[k]
				x := v.GetNumberValue()
				if _, ok := v.GetKind().(*commonv1.Value_IntValue); ok {
					x = float64(v.GetIntValue())
				}
				ti.Contents.Fp64Contents = append(ti.Contents.Fp64Contents, x)
			}
		}
		out = append(out, ti)
	}
	return out
}

// grpcurlBinary returns the pinned grpcurl: $BULLSEYE_BIN/grpcurl, or bin/grpcurl at the
// repository's root.
func grpcurlBinary(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BULLSEYE_BIN")
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for root := wd; ; root = filepath.Dir(root) {
			if _, err := os.Stat(filepath.Join(root, "go.work")); err == nil {
				dir = filepath.Join(root, "bin")
				break
			}
			if filepath.Dir(root) == root {
				t.Fatalf("no go.work above %s", wd)
			}
		}
	}
	bin := filepath.Join(dir, "grpcurl")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the pinned grpcurl is missing (run `make tools`): %v", err)
	}
	return bin
}

func grpcurl(t *testing.T, addr, method, body string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, grpcurlBinary(t), "-plaintext", "-d", "@", addr, method)
	cmd.Stdin = strings.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("grpcurl %s: %v: %s", method, err, stderr.String())
	}
	return out
}

// TestGrpcurl calls ModelInfer and Predict with JSON bodies through the pinned grpcurl (over
// server reflection): ModelInfer gives Predict's scores, and Predict the expected reply.
func TestGrpcurl(t *testing.T) {
	b := sharedBank(t)
	const model = "bank-curl"
	// v1 as an artifact written before inputs had a missing policy: it imputes every input,
	// so that three inputs make a row.
	old := proto.Clone(b.v1).(*modelv1.ModelArtifact)
	for _, c := range old.GetInputs() {
		c.Missing = modelv1.MissingPolicy_MISSING_POLICY_UNSPECIFIED
	}
	b.register(t, model, testenv.Routing{Live: map[int64]uint32{1: 1}}, old)
	in := startServing(t, b.env, nil)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

	body := fmt.Sprintf(`{
  "model_name": %q,
  "id": "curl-1",
  "inputs": [
    {"name": "age", "datatype": "FP64", "shape": [2], "contents": {"fp64_contents": [41, 29]}},
    {"name": "job", "datatype": "BYTES", "shape": [2], "contents": {"bytes_contents": [%q, %q]}},
    {"name": "euribor3m", "datatype": "FP32", "shape": [2], "contents": {"fp32_contents": [4.857, 1.25]}}
  ]
}`, model, b64("admin."), b64("technician"))
	var infer inference.ModelInferResponse
	if err := protojson.Unmarshal(grpcurl(t, in.addr, "inference.GRPCInferenceService/ModelInfer", body), &infer); err != nil {
		t.Fatal(err)
	}
	num := func(f float64) *commonv1.Value {
		return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: f}}
	}
	str := func(s string) *commonv1.Value {
		return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
	}
	pred, err := in.client.Predict(ctxT(t, 10*time.Second), &servingv1.PredictRequest{Model: ref(model), Instances: []*servingv1.Instance{
		{Features: map[string]*commonv1.Value{"age": num(41), "job": str("admin."), "euribor3m": num(float64(float32(4.857)))}},
		{Features: map[string]*commonv1.Value{"age": num(29), "job": str("technician"), "euribor3m": num(float64(float32(1.25)))}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if infer.GetId() != "curl-1" || infer.GetModelVersion() != "1" || infer.GetOutputs()[0].GetName() != "score" {
		t.Fatalf("ModelInfer reply: %v", &infer)
	}
	for r, p := range pred.GetPredictions() {
		if got := infer.GetOutputs()[0].GetContents().GetFp64Contents()[r]; !close12(got, p.GetScore()) {
			t.Errorf("row %d: grpcurl ModelInfer score %v, Predict %v", r, got, p.GetScore())
		}
	}
	t.Logf("grpcurl ModelInfer scores %v = Predict's", infer.GetOutputs()[0].GetContents().GetFp64Contents())

	row := b.data.Test[20]
	id := b.data.Rows[row].GetEntity().GetId()
	want := b.trainingScores(t, b.s1)
	body = fmt.Sprintf(`{
  "model": {"name": %q},
  "instances": [
    {"user_id": %q},
    {"user_id": %q},
    {"user_id": "nobody-at-all"},
    {"features": {"age": {"int_value": "41"}, "job": {"string_value": "admin."}}}
  ]
}`, model, id, testenv.BankID(objected[0]))
	var got servingv1.PredictResponse
	if err := protojson.Unmarshal(grpcurl(t, in.addr, "bullseye.serving.v1.PredictionService/Predict", body), &got); err != nil {
		t.Fatal(err)
	}
	inline, err := in.client.Predict(ctxT(t, 10*time.Second), &servingv1.PredictRequest{Model: ref(model), Instances: []*servingv1.Instance{
		{Features: map[string]*commonv1.Value{"age": {Kind: &commonv1.Value_IntValue{IntValue: 41}}, "job": str("admin.")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ps := got.GetPredictions()
	switch {
	case len(ps) != 4:
		t.Fatalf("grpcurl Predict: %v", &got)
	case ps[0].GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_OK || !close12(ps[0].GetScore(), want.score[row]) ||
		ps[0].GetModelName() != model || ps[0].GetModelVersion() != 1 || !close12(ps[0].GetProbability(), want.prob[row]):
		t.Errorf("row 0: %v, want OK score %v probability %v", ps[0], want.score[row], want.prob[row])
	case ps[1].GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_SUPPRESSED || ps[1].Probability != nil:
		t.Errorf("row 1: %v, want SUPPRESSED", ps[1])
	case ps[2].GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_NOT_FOUND || ps[2].GetProblem().GetField() != "instances[2].user_id":
		t.Errorf("row 2: %v, want NOT_FOUND", ps[2])
	case ps[3].GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_OK || !close12(ps[3].GetScore(), inline.GetPredictions()[0].GetScore()):
		t.Errorf("row 3: %v, want %v", ps[3], inline.GetPredictions()[0])
	}
}
