package server

import (
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/gen/inference"
	"github.com/bullseye-ml/bullseye/services/serving/internal/batch"
	"github.com/bullseye-ml/bullseye/services/serving/internal/oip"
)

// TestModelStatusAndList: a malformed reference or prefix is INVALID_ARGUMENT, a model not
// loaded NOT_FOUND; a loaded one lists its available versions, and a prefix selects models.
func TestModelStatusAndList(t *testing.T) {
	h := newHarness(t, batch.DefaultOptions(), linearModel(t), recommender(t))
	ctx := testContext(t)
	if _, err := h.srv.GetModelStatus(ctx, &servingv1.GetModelStatusRequest{Model: ref("")}); refusal(err).code != codes.InvalidArgument {
		t.Errorf("no name: %v", err)
	}
	if _, err := h.srv.GetModelStatus(ctx, &servingv1.GetModelStatusRequest{Model: ref("nope")}); refusal(err).code != codes.NotFound {
		t.Errorf("an unknown model: %v", err)
	}
	resp, err := h.srv.GetModelStatus(ctx, &servingv1.GetModelStatusRequest{Model: ref("spend")})
	if err != nil {
		t.Fatal(err)
	}
	vs := resp.GetModel().GetVersions()
	if resp.GetModel().GetName() != "spend" || len(vs) != 1 || vs[0].GetVersion() != 1 || vs[0].GetState() != servingv1.ModelState_MODEL_STATE_AVAILABLE {
		t.Errorf("status %v, want version 1 available", resp.GetModel())
	}
	names := func(prefix string) []string {
		resp, err := h.srv.ListModels(ctx, &servingv1.ListModelsRequest{NamePrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range resp.GetModels() {
			out = append(out, m.GetName())
		}
		slices.Sort(out)
		return out
	}
	if got := names(""); !slices.Equal(got, []string{"recs", "spend"}) {
		t.Errorf("every model: %v", got)
	}
	if got := names("sp"); !slices.Equal(got, []string{"spend"}) {
		t.Errorf("prefix sp: %v", got)
	}
	if got := names("zz"); len(got) != 0 {
		t.Errorf("prefix zz: %v", got)
	}
	if _, err := h.srv.ListModels(ctx, &servingv1.ListModelsRequest{NamePrefix: "a\x00"}); !slices.Contains(refusal(err).fields, "name_prefix") {
		t.Errorf("a malformed prefix: %v", err)
	}
}

func int64Input(name string, vs ...int64) *inference.ModelInferRequest_InferInputTensor {
	return &inference.ModelInferRequest_InferInputTensor{Name: name, Datatype: "INT64", Shape: []int64{int64(len(vs))},
		Contents: &inference.InferTensorContents{Int64Contents: vs}}
}

func fp64Input(name string, vs ...float64) *inference.ModelInferRequest_InferInputTensor {
	return &inference.ModelInferRequest_InferInputTensor{Name: name, Datatype: "FP64", Shape: []int64{int64(len(vs))},
		Contents: &inference.InferTensorContents{Fp64Contents: vs}}
}

// TestInference: the Open Inference Protocol side answers readiness and metadata, scores
// tensors through the same core (naming the inputs it imputed), refuses a recommender, and
// reports rows it could not score once per input and reason, with how many rows share it.
func TestInference(t *testing.T) {
	h := newHarness(t, batch.DefaultOptions(), linearModel(t), recommender(t))
	ctx := testContext(t)
	is := h.srv.Inference()
	if r, err := is.ServerReady(ctx, &inference.ServerReadyRequest{}); err != nil || !r.GetReady() {
		t.Errorf("ServerReady = %v, %v", r, err)
	}
	if r, err := is.ServerMetadata(ctx, &inference.ServerMetadataRequest{}); err != nil || r.GetVersion() != "test" {
		t.Errorf("ServerMetadata = %v, %v", r, err)
	}
	for _, c := range []struct {
		name, version string
		ready         bool
	}{{"spend", "", true}, {"spend", "1", true}, {"spend", "2", false}, {"nope", "", false}} {
		if r, err := is.ModelReady(ctx, &inference.ModelReadyRequest{Name: c.name, Version: c.version}); err != nil || r.GetReady() != c.ready {
			t.Errorf("ModelReady(%s, %q) = %v, %v; want %v", c.name, c.version, r, err, c.ready)
		}
	}
	if _, err := is.ModelReady(ctx, &inference.ModelReadyRequest{Name: ""}); refusal(err).code != codes.InvalidArgument {
		t.Errorf("ModelReady without a name: %v", err)
	}
	md, err := is.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: "spend"})
	if err != nil || !slices.Equal(md.GetVersions(), []string{"1"}) || len(md.GetInputs()) != 3 {
		t.Errorf("ModelMetadata = %v, %v; want version 1 and three inputs", md, err)
	}

	resp, err := is.ModelInfer(ctx, &inference.ModelInferRequest{ModelName: "spend", Id: "req-1",
		Inputs: []*inference.ModelInferRequest_InferInputTensor{int64Input("age", 30, 50), fp64Input("spend", 4, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	var scores []float64
	for _, o := range resp.GetOutputs() {
		if o.GetName() == oip.OutputScore {
			scores = o.GetContents().GetFp64Contents()
		}
	}
	if !slices.Equal(scores, []float64{71, 61}) || resp.GetId() != "req-1" || resp.GetModelVersion() != "1" ||
		resp.GetParameters()[oip.ParameterImputedInputs].GetStringParam() != "bonus" {
		t.Errorf("ModelInfer: scores %v, id %q, version %q, parameters %v; want [71 61], req-1, 1 and bonus imputed",
			scores, resp.GetId(), resp.GetModelVersion(), resp.GetParameters())
	}

	_, err = is.ModelInfer(ctx, &inference.ModelInferRequest{ModelName: "spend",
		Inputs: []*inference.ModelInferRequest_InferInputTensor{int64Input("age", 30, 50, 60), fp64Input("spend", math.NaN(), 1, math.Inf(1))}})
	r := refusal(err)
	if r.code != codes.InvalidArgument || !slices.Equal(r.fields, []string{"inputs[1]"}) || !strings.Contains(r.message, "row 0") || !strings.Contains(r.message, "and 1 more rows") {
		t.Errorf("rows with bad numbers: %v %v %q, want one violation of inputs[1] at row 0 and 1 more row", r.code, r.fields, r.message)
	}
	if _, err := is.ModelInfer(ctx, &inference.ModelInferRequest{ModelName: "recs", Inputs: []*inference.ModelInferRequest_InferInputTensor{int64Input("age", 1)}}); !slices.Contains(refusal(err).fields, "model_name") {
		t.Errorf("a recommender: %v, want model_name refused", err)
	}
	if _, err := is.ModelInfer(ctx, &inference.ModelInferRequest{ModelName: "spend", Id: strings.Repeat("x", 1<<16),
		Inputs: []*inference.ModelInferRequest_InferInputTensor{int64Input("age", 1)}}); !slices.Contains(refusal(err).fields, "id") {
		t.Errorf("a request id past the bounds: %v, want id refused", err)
	}
}
