package serving

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionalphapb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/fault/hostile"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/gen/inference"
	"github.com/bullseye-ml/bullseye/services/serving/internal/testenv"
)

const (
	predictPrefix = "/bullseye.serving.v1.PredictionService/"
	oipPrefix     = "/inference.GRPCInferenceService/"
	hostileModel  = "bank-hostile"
	hostileMF     = "mf-hostile"
)

func one(m proto.Message) []proto.Message { return []proto.Message{m} }

func itoa(i int) string { return strconv.Itoa(i) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// rowInvalid checks that the i-th prediction of a Predict reply is INVALID naming field.
func rowInvalid(i int, field string) func(*testing.T, proto.Message) {
	return func(t *testing.T, reply proto.Message) {
		t.Helper()
		ps := reply.(*servingv1.PredictResponse).GetPredictions()
		if len(ps) <= i {
			t.Fatalf("%d predictions, want more than %d", len(ps), i)
		}
		p := ps[i]
		if p.GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_INVALID || !strings.HasPrefix(p.GetProblem().GetField(), field) {
			t.Fatalf("prediction %d: %v %v, want INVALID naming %s", i, p.GetStatus(), p.GetProblem(), field)
		}
		if d := p.GetProblem().GetDescription(); len(d) > 512 {
			t.Errorf("prediction %d: a %d-byte description repeats the caller's value", i, len(d))
		}
	}
}

// hostileTable is a table of bad inputs for every public RPC of serving: the
// PredictionService and the Open Inference Protocol. row is a Bank customer's inline
// features, id its id.
func hostileTable(id string, row map[string]*commonv1.Value) hostile.Table {
	inv := codes.InvalidArgument
	model := ref(hostileModel)
	many := make([]string, 10_000)
	for i := range many {
		many[i] = "x"
	}
	with := func(edit func(map[string]*commonv1.Value)) map[string]*commonv1.Value {
		f := make(map[string]*commonv1.Value, len(row))
		for k, v := range row {
			f[k] = v
		}
		edit(f)
		return f
	}
	num := func(x float64) *commonv1.Value {
		return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: x}}
	}
	str := func(s string) *commonv1.Value {
		return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
	}
	predict := func(insts ...*servingv1.Instance) []proto.Message {
		return one(&servingv1.PredictRequest{Model: model, Instances: insts})
	}
	users := func(n int) []*servingv1.Instance {
		out := make([]*servingv1.Instance, n)
		for i := range out {
			out[i] = &servingv1.Instance{UserId: id}
		}
		return out
	}
	wideFeatures := make(map[string]*commonv1.Value, 10_000)
	for i := range 10_000 {
		wideFeatures["f"+strings.Repeat("x", i%50)+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676))] = num(1)
	}
	cond := func(c *servingv1.FeatureCondition) *servingv1.AudienceFilter {
		return &servingv1.AudienceFilter{Kind: &servingv1.AudienceFilter_Condition{Condition: c}}
	}
	audience := func(seg *servingv1.AudienceFilter) []proto.Message {
		return one(&servingv1.ScoreAudienceRequest{Model: model, Segment: seg})
	}
	deep := cond(&servingv1.FeatureCondition{Feature: "age", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NULL})
	for range 12 {
		deep = &servingv1.AudienceFilter{Kind: &servingv1.AudienceFilter_AllOf{AllOf: &servingv1.AudienceFilterList{Filters: []*servingv1.AudienceFilter{deep}}}}
	}
	manyValues := make([]*commonv1.Value, 10_000)
	for i := range manyValues {
		manyValues[i] = str("admin.")
	}
	recommend := func(mut func(*servingv1.RecommendRequest)) []proto.Message {
		r := &servingv1.RecommendRequest{Model: ref(hostileMF), UserIds: []string{testenv.BankID(10)}}
		mut(r)
		return one(r)
	}
	// infer returns a ModelInfer request of one row: age as FP64, job as BYTES and every
	// other input the model takes from row, edited.
	infer := func(edit func(*inference.ModelInferRequest)) []proto.Message {
		req := &inference.ModelInferRequest{ModelName: hostileModel}
		for _, name := range sortedKeys(row) {
			v := row[name]
			ti := &inference.ModelInferRequest_InferInputTensor{Name: name, Shape: []int64{1}, Contents: &inference.InferTensorContents{}}
			switch x := v.GetKind().(type) {
			case *commonv1.Value_StringValue:
				ti.Datatype = "BYTES"
				ti.Contents.BytesContents = [][]byte{[]byte(x.StringValue)}
			case *commonv1.Value_IntValue:
				ti.Datatype = "INT64"
				ti.Contents.Int64Contents = []int64{x.IntValue}
			default:
				ti.Datatype = "FP64"
				ti.Contents.Fp64Contents = []float64{v.GetNumberValue()}
			}
			req.Inputs = append(req.Inputs, ti)
		}
		if edit != nil {
			edit(req)
		}
		return one(req)
	}
	input := func(req *inference.ModelInferRequest, name string) *inference.ModelInferRequest_InferInputTensor {
		for _, in := range req.GetInputs() {
			if in.GetName() == name {
				return in
			}
		}
		panic("no input " + name)
	}
	inputField := func(name string) string {
		return "inputs[" + itoa(slices.Index(sortedKeys(row), name)) + "]"
	}
	numeric := func() string {
		for _, name := range sortedKeys(row) {
			if _, ok := row[name].GetKind().(*commonv1.Value_NumberValue); ok {
				return name
			}
		}
		panic("no numeric input")
	}()
	categorical := func() string {
		for _, name := range sortedKeys(row) {
			if _, ok := row[name].GetKind().(*commonv1.Value_StringValue); ok {
				return name
			}
		}
		panic("no categorical input")
	}()
	manyInputs := make([]*inference.ModelInferRequest_InferInputTensor, 10_001)
	for i := range manyInputs {
		manyInputs[i] = &inference.ModelInferRequest_InferInputTensor{Name: "x", Datatype: "FP64", Shape: []int64{1}}
	}
	manyOutputs := make([]*inference.ModelInferRequest_InferRequestedOutputTensor, 10_001)
	for i := range manyOutputs {
		manyOutputs[i] = &inference.ModelInferRequest_InferRequestedOutputTensor{Name: "score"}
	}
	longShape := make([]int64, 10_000)
	for i := range longShape {
		longShape[i] = 1
	}

	return hostile.Table{
		predictPrefix + "Predict": {
			{Name: "empty", Requests: one(&servingv1.PredictRequest{}), Code: inv, Field: "model.name"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "no instances", Requests: one(&servingv1.PredictRequest{Model: model}), Code: inv, Field: "instances"},
			{Name: "10,001 instances", Requests: predict(users(10_001)...), Code: inv, Field: "instances"},
			{Name: "1 MiB model name", Requests: one(&servingv1.PredictRequest{Model: ref(hostile.MB1), Instances: users(1)}), Code: inv, Field: "model.name"},
			{Name: "invalid UTF-8 model name", Requests: one(&servingv1.PredictRequest{Model: ref(hostile.InvalidUTF8), Instances: users(1)}), Code: inv, Field: "model.name"},
			{Name: "10 kB alias", Requests: one(&servingv1.PredictRequest{Model: &commonv1.ModelRef{Name: hostileModel, Selector: &commonv1.ModelRef_Alias{Alias: hostile.KB10}}, Instances: users(1)}), Code: inv, Field: "model.alias"},
			{Name: "version 0", Requests: one(&servingv1.PredictRequest{Model: &commonv1.ModelRef{Name: hostileModel, Selector: &commonv1.ModelRef_Version{}}, Instances: users(1)}), Code: inv, Field: "model.version"},
			{Name: "negative max contributions", Requests: one(&servingv1.PredictRequest{Model: model, Instances: users(1), MaxContributions: -1}), Code: inv, Field: "max_contributions"},
			{Name: "unknown model", Requests: one(&servingv1.PredictRequest{Model: ref("no-such-model"), Instances: users(1)}), Code: codes.NotFound},
			{Name: "unknown version", Requests: one(&servingv1.PredictRequest{Model: &commonv1.ModelRef{Name: hostileModel, Selector: &commonv1.ModelRef_Version{Version: math.MaxInt64}}, Instances: users(1)}), Code: codes.NotFound},
			{Name: "empty instance", Requests: predict(&servingv1.Instance{UserId: id}, &servingv1.Instance{}), Code: codes.OK,
				Reply: &servingv1.PredictResponse{}, Check: rowInvalid(1, "instances[1]")},
			{Name: "1 MiB user id", Requests: predict(&servingv1.Instance{UserId: id}, &servingv1.Instance{UserId: hostile.MB1}), Code: codes.OK,
				Reply: &servingv1.PredictResponse{}, Check: rowInvalid(1, "instances[1].user_id")},
			{Name: "invalid UTF-8 user id", Requests: predict(&servingv1.Instance{UserId: hostile.InvalidUTF8}), Code: codes.OK,
				Reply: &servingv1.PredictResponse{}, Check: rowInvalid(0, "instances[0].user_id")},
			{Name: "10 kB item id", Requests: predict(&servingv1.Instance{UserId: id, ItemId: hostile.KB10}), Code: codes.OK,
				Reply: &servingv1.PredictResponse{}, Check: rowInvalid(0, "instances[0].item_id")},
			{Name: "unknown feature", Requests: predict(&servingv1.Instance{Features: with(func(f map[string]*commonv1.Value) { f["agee"] = num(30) })}), Code: codes.OK,
				Reply: &servingv1.PredictResponse{}, Check: rowInvalid(0, "instances[0].features.agee")},
			{Name: "10,000 unknown features", Requests: predict(&servingv1.Instance{Features: wideFeatures}), Code: codes.OK,
				Reply: &servingv1.PredictResponse{}, Check: rowInvalid(0, "instances[0].features")},
			{Name: "1 MiB feature name", Requests: predict(&servingv1.Instance{Features: with(func(f map[string]*commonv1.Value) { f[hostile.MB1] = num(1) })}), Code: codes.OK,
				Reply: &servingv1.PredictResponse{}, Check: rowInvalid(0, "instances[0].features")},
			{Name: "invalid UTF-8 feature name", Requests: predict(&servingv1.Instance{Features: with(func(f map[string]*commonv1.Value) { f[hostile.InvalidUTF8] = num(1) })}), Code: codes.OK,
				Reply: &servingv1.PredictResponse{}, Check: rowInvalid(0, "instances[0].features")},
			{Name: "NaN feature", Requests: predict(&servingv1.Instance{Features: with(func(f map[string]*commonv1.Value) { f[numeric] = num(math.NaN()) })}), Code: codes.OK,
				Reply: &servingv1.PredictResponse{}, Check: rowInvalid(0, "instances[0].features."+numeric)},
			{Name: "+Inf feature", Requests: predict(&servingv1.Instance{Features: with(func(f map[string]*commonv1.Value) { f[numeric] = num(math.Inf(1)) })}), Code: codes.OK,
				Reply: &servingv1.PredictResponse{}, Check: rowInvalid(0, "instances[0].features."+numeric)},
			{Name: "-Inf feature by id", Requests: predict(&servingv1.Instance{UserId: id, Features: map[string]*commonv1.Value{numeric: num(math.Inf(-1))}}), Code: codes.OK,
				Reply: &servingv1.PredictResponse{}, Check: rowInvalid(0, "instances[0].features."+numeric)},
			{Name: "time out of range", Requests: predict(&servingv1.Instance{Features: with(func(f map[string]*commonv1.Value) {
				f[numeric] = &commonv1.Value{Kind: &commonv1.Value_TimeValue{TimeValue: &timestamppb.Timestamp{Seconds: math.MaxInt64}}}
			})}), Code: codes.OK, Reply: &servingv1.PredictResponse{}, Check: rowInvalid(0, "instances[0].features."+numeric)},
			{Name: "string for a number", Requests: predict(&servingv1.Instance{Features: with(func(f map[string]*commonv1.Value) { f[numeric] = str("thirty") })}), Code: codes.OK,
				Reply: &servingv1.PredictResponse{}, Check: rowInvalid(0, "instances[0].features."+numeric)},
			{Name: "1 MiB category", Requests: predict(&servingv1.Instance{Features: with(func(f map[string]*commonv1.Value) { f[categorical] = str(hostile.MB1) })}), Code: codes.OK,
				Reply: &servingv1.PredictResponse{}, Check: rowInvalid(0, "instances[0].features."+categorical)},
			{Name: "invalid UTF-8 category", Requests: predict(&servingv1.Instance{Features: with(func(f map[string]*commonv1.Value) { f[categorical] = str(hostile.InvalidUTF8) })}), Code: codes.OK,
				Reply: &servingv1.PredictResponse{}, Check: rowInvalid(0, "instances[0].features."+categorical)},
		},
		predictPrefix + "Recommend": {
			{Name: "empty", Requests: one(&servingv1.RecommendRequest{}), Code: inv, Field: "model.name"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "no users", Requests: recommend(func(r *servingv1.RecommendRequest) { r.UserIds = nil }), Code: inv, Field: "user_ids"},
			{Name: "10,000 users", Requests: recommend(func(r *servingv1.RecommendRequest) { r.UserIds = many }), Code: inv, Field: "user_ids"},
			{Name: "1 MiB model name", Requests: recommend(func(r *servingv1.RecommendRequest) { r.Model = ref(hostile.MB1) }), Code: inv, Field: "model.name"},
			{Name: "invalid UTF-8 alias", Requests: recommend(func(r *servingv1.RecommendRequest) {
				r.Model = &commonv1.ModelRef{Name: hostileMF, Selector: &commonv1.ModelRef_Alias{Alias: hostile.InvalidUTF8}}
			}), Code: inv, Field: "model.alias"},
			{Name: "negative k", Requests: recommend(func(r *servingv1.RecommendRequest) { r.K = -1 }), Code: inv, Field: "k"},
			{Name: "huge k", Requests: recommend(func(r *servingv1.RecommendRequest) { r.K = math.MaxInt32 }), Code: inv, Field: "k"},
			{Name: "100,001 allowed items", Requests: recommend(func(r *servingv1.RecommendRequest) {
				r.AllowedItemIds = make([]string, 100_001)
				for i := range r.AllowedItemIds {
					r.AllowedItemIds[i] = "i0"
				}
			}), Code: inv, Field: "allowed_item_ids"},
			{Name: "invalid UTF-8 allowed item", Requests: recommend(func(r *servingv1.RecommendRequest) { r.AllowedItemIds = []string{"i0", hostile.InvalidUTF8} }), Code: inv, Field: "allowed_item_ids[1]"},
			{Name: "1 MiB excluded item", Requests: recommend(func(r *servingv1.RecommendRequest) { r.ExcludedItemIds = []string{hostile.MB1} }), Code: inv, Field: "excluded_item_ids[0]"},
			{Name: "empty excluded item", Requests: recommend(func(r *servingv1.RecommendRequest) { r.ExcludedItemIds = []string{""} }), Code: inv, Field: "excluded_item_ids[0]"},
			{Name: "a classifier", Requests: recommend(func(r *servingv1.RecommendRequest) { r.Model = model }), Code: inv, Field: "model"},
			{Name: "unknown model", Requests: recommend(func(r *servingv1.RecommendRequest) { r.Model = ref("no-such-model") }), Code: codes.NotFound},
			{Name: "1 MiB user id", Requests: recommend(func(r *servingv1.RecommendRequest) { r.UserIds = []string{testenv.BankID(10), hostile.MB1} }), Code: codes.OK,
				Reply: &servingv1.RecommendResponse{}, Check: func(t *testing.T, reply proto.Message) {
					rs := reply.(*servingv1.RecommendResponse).GetRecommendations()
					if len(rs) != 2 || rs[0].GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_OK ||
						rs[1].GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_INVALID || rs[1].GetProblem().GetField() != "user_ids[1]" {
						t.Fatalf("recommendations %v, want the first OK, the second INVALID naming user_ids[1]", rs)
					}
					if len(rs[1].GetUserId()) > 0 && len(rs[1].GetUserId()) == len(hostile.MB1) && len(rs[1].GetProblem().GetDescription()) > 512 {
						t.Errorf("a %d-byte description", len(rs[1].GetProblem().GetDescription()))
					}
				}},
		},
		predictPrefix + "ScoreAudience": {
			{Name: "empty", Requests: one(&servingv1.ScoreAudienceRequest{}), Code: inv, Field: "model.name"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB model name", Requests: one(&servingv1.ScoreAudienceRequest{Model: ref(hostile.MB1)}), Code: inv, Field: "model.name"},
			{Name: "invalid UTF-8 model name", Requests: one(&servingv1.ScoreAudienceRequest{Model: ref(hostile.InvalidUTF8)}), Code: inv, Field: "model.name"},
			{Name: "negative batch size", Requests: one(&servingv1.ScoreAudienceRequest{Model: model, BatchSize: -1}), Code: inv, Field: "batch_size"},
			{Name: "huge batch size", Requests: one(&servingv1.ScoreAudienceRequest{Model: model, BatchSize: math.MaxInt32}), Code: inv, Field: "batch_size"},
			{Name: "negative top n", Requests: one(&servingv1.ScoreAudienceRequest{Model: model, TopN: -1}), Code: inv, Field: "top_n"},
			{Name: "NaN min score", Requests: one(&servingv1.ScoreAudienceRequest{Model: model, MinScore: ptr(math.NaN())}), Code: inv, Field: "min_score"},
			{Name: "+Inf min score", Requests: one(&servingv1.ScoreAudienceRequest{Model: model, MinScore: ptr(math.Inf(1))}), Code: inv, Field: "min_score"},
			{Name: "unknown model", Requests: one(&servingv1.ScoreAudienceRequest{Model: ref("no-such-model")}), Code: codes.NotFound},
			{Name: "a recommender", Requests: one(&servingv1.ScoreAudienceRequest{Model: ref(hostileMF)}), Code: inv, Field: "model"},
			{Name: "empty filter", Requests: audience(&servingv1.AudienceFilter{}), Code: inv, Field: "segment"},
			{Name: "unknown feature", Requests: audience(cond(&servingv1.FeatureCondition{Feature: "shoe_size", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NULL})), Code: inv, Field: "segment.condition.feature"},
			{Name: "1 MiB feature", Requests: audience(cond(&servingv1.FeatureCondition{Feature: hostile.MB1, Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NULL})), Code: inv, Field: "segment.condition.feature"},
			{Name: "invalid UTF-8 feature", Requests: audience(cond(&servingv1.FeatureCondition{Feature: hostile.InvalidUTF8, Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NULL})), Code: inv, Field: "segment.condition.feature"},
			{Name: "bad operator enum", Requests: audience(cond(&servingv1.FeatureCondition{Feature: "age", Operator: 99, Value: num(30)})), Code: inv, Field: "segment.condition.operator"},
			{Name: "unspecified operator", Requests: audience(cond(&servingv1.FeatureCondition{Feature: "age", Value: num(30)})), Code: inv, Field: "segment.condition.operator"},
			{Name: "NaN value", Requests: audience(cond(&servingv1.FeatureCondition{Feature: "age", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_GE, Value: num(math.NaN())})), Code: inv, Field: "segment.condition.value"},
			{Name: "-Inf value", Requests: audience(cond(&servingv1.FeatureCondition{Feature: "age", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_GE, Value: num(math.Inf(-1))})), Code: inv, Field: "segment.condition.value"},
			{Name: "time out of range", Requests: audience(cond(&servingv1.FeatureCondition{Feature: "age", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_GE,
				Value: &commonv1.Value{Kind: &commonv1.Value_TimeValue{TimeValue: &timestamppb.Timestamp{Seconds: math.MinInt64}}}})), Code: inv, Field: "segment.condition.value"},
			{Name: "1 MiB value", Requests: audience(cond(&servingv1.FeatureCondition{Feature: "job", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_EQ, Value: str(hostile.MB1)})), Code: inv, Field: "segment.condition.value"},
			{Name: "invalid UTF-8 value", Requests: audience(cond(&servingv1.FeatureCondition{Feature: "job", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_EQ, Value: str(hostile.InvalidUTF8)})), Code: inv, Field: "segment.condition.value"},
			{Name: "10,000 values", Requests: audience(cond(&servingv1.FeatureCondition{Feature: "job", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_IN, Values: manyValues})), Code: inv, Field: "segment.condition.values"},
			{Name: "nested 13 deep", Requests: audience(deep), Code: inv, Field: "segment"},
		},
		predictPrefix + "ListModels": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB prefix", Requests: one(&servingv1.ListModelsRequest{NamePrefix: hostile.MB1}), Code: inv, Field: "name_prefix"},
			{Name: "invalid UTF-8 prefix", Requests: one(&servingv1.ListModelsRequest{NamePrefix: hostile.InvalidUTF8}), Code: inv, Field: "name_prefix"},
			{Name: "control character prefix", Requests: one(&servingv1.ListModelsRequest{NamePrefix: "bank\x00"}), Code: inv, Field: "name_prefix"},
			{Name: "prefix of no model", Requests: one(&servingv1.ListModelsRequest{NamePrefix: "no-such-"}), Code: codes.OK,
				Reply: &servingv1.ListModelsResponse{}, Check: func(t *testing.T, reply proto.Message) {
					if ms := reply.(*servingv1.ListModelsResponse).GetModels(); len(ms) != 0 {
						t.Fatalf("%d models, want none", len(ms))
					}
				}},
		},
		predictPrefix + "GetModelStatus": {
			{Name: "empty", Requests: one(&servingv1.GetModelStatusRequest{}), Code: inv, Field: "model.name"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB name", Requests: one(&servingv1.GetModelStatusRequest{Model: ref(hostile.MB1)}), Code: inv, Field: "model.name"},
			{Name: "invalid UTF-8 name", Requests: one(&servingv1.GetModelStatusRequest{Model: ref(hostile.InvalidUTF8)}), Code: inv, Field: "model.name"},
			{Name: "10 kB alias", Requests: one(&servingv1.GetModelStatusRequest{Model: &commonv1.ModelRef{Name: hostileModel, Selector: &commonv1.ModelRef_Alias{Alias: hostile.KB10}}}), Code: inv, Field: "model.alias"},
			{Name: "negative version", Requests: one(&servingv1.GetModelStatusRequest{Model: &commonv1.ModelRef{Name: hostileModel, Selector: &commonv1.ModelRef_Version{Version: -1}}}), Code: inv, Field: "model.version"},
			{Name: "unknown", Requests: one(&servingv1.GetModelStatusRequest{Model: ref("no-such-model")}), Code: codes.NotFound},
		},

		oipPrefix + "ServerLive": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "empty", Requests: one(&inference.ServerLiveRequest{}), Code: codes.OK, Reply: &inference.ServerLiveResponse{},
				Check: func(t *testing.T, reply proto.Message) {
					if !reply.(*inference.ServerLiveResponse).GetLive() {
						t.Fatal("not live")
					}
				}},
		},
		oipPrefix + "ServerReady": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "empty", Requests: one(&inference.ServerReadyRequest{}), Code: codes.OK, Reply: &inference.ServerReadyResponse{},
				Check: func(t *testing.T, reply proto.Message) {
					if !reply.(*inference.ServerReadyResponse).GetReady() {
						t.Fatal("not ready")
					}
				}},
		},
		oipPrefix + "ServerMetadata": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "empty", Requests: one(&inference.ServerMetadataRequest{}), Code: codes.OK, Reply: &inference.ServerMetadataResponse{},
				Check: func(t *testing.T, reply proto.Message) {
					if reply.(*inference.ServerMetadataResponse).GetName() != "bullseye" {
						t.Fatalf("metadata %v", reply)
					}
				}},
		},
		oipPrefix + "ModelReady": {
			{Name: "empty", Requests: one(&inference.ModelReadyRequest{}), Code: inv, Field: "name"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB name", Requests: one(&inference.ModelReadyRequest{Name: hostile.MB1}), Code: inv, Field: "name"},
			{Name: "invalid UTF-8 name", Requests: one(&inference.ModelReadyRequest{Name: hostile.InvalidUTF8}), Code: inv, Field: "name"},
			{Name: "10 kB version", Requests: one(&inference.ModelReadyRequest{Name: hostileModel, Version: hostile.KB10}), Code: inv, Field: "version"},
			{Name: "invalid UTF-8 version", Requests: one(&inference.ModelReadyRequest{Name: hostileModel, Version: hostile.InvalidUTF8}), Code: inv, Field: "version"},
			{Name: "unknown", Requests: one(&inference.ModelReadyRequest{Name: "no-such-model"}), Code: codes.OK, Reply: &inference.ModelReadyResponse{},
				Check: func(t *testing.T, reply proto.Message) {
					if reply.(*inference.ModelReadyResponse).GetReady() {
						t.Fatal("an unknown model is ready")
					}
				}},
		},
		oipPrefix + "ModelMetadata": {
			{Name: "empty", Requests: one(&inference.ModelMetadataRequest{}), Code: inv, Field: "name"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB name", Requests: one(&inference.ModelMetadataRequest{Name: hostile.MB1}), Code: inv, Field: "name"},
			{Name: "invalid UTF-8 name", Requests: one(&inference.ModelMetadataRequest{Name: hostile.InvalidUTF8}), Code: inv, Field: "name"},
			{Name: "10 kB version", Requests: one(&inference.ModelMetadataRequest{Name: hostileModel, Version: hostile.KB10}), Code: inv, Field: "version"},
			{Name: "invalid UTF-8 version", Requests: one(&inference.ModelMetadataRequest{Name: hostileModel, Version: hostile.InvalidUTF8}), Code: inv, Field: "version"},
			{Name: "unknown", Requests: one(&inference.ModelMetadataRequest{Name: "no-such-model"}), Code: codes.NotFound},
			{Name: "unknown version", Requests: one(&inference.ModelMetadataRequest{Name: hostileModel, Version: "99"}), Code: codes.NotFound},
		},
		oipPrefix + "ModelInfer": {
			{Name: "empty", Requests: one(&inference.ModelInferRequest{}), Code: inv, Field: "model_name"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "no inputs", Requests: infer(func(r *inference.ModelInferRequest) { r.Inputs = nil }), Code: inv, Field: "inputs"},
			{Name: "1 MiB model name", Requests: infer(func(r *inference.ModelInferRequest) { r.ModelName = hostile.MB1 }), Code: inv, Field: "model_name"},
			{Name: "invalid UTF-8 model name", Requests: infer(func(r *inference.ModelInferRequest) { r.ModelName = hostile.InvalidUTF8 }), Code: inv, Field: "model_name"},
			{Name: "10 kB model version", Requests: infer(func(r *inference.ModelInferRequest) { r.ModelVersion = hostile.KB10 }), Code: inv, Field: "model_version"},
			{Name: "1 MiB id", Requests: infer(func(r *inference.ModelInferRequest) { r.Id = hostile.MB1 }), Code: inv, Field: "id"},
			{Name: "invalid UTF-8 id", Requests: infer(func(r *inference.ModelInferRequest) { r.Id = hostile.InvalidUTF8 }), Code: inv, Field: "id"},
			{Name: "unknown model", Requests: infer(func(r *inference.ModelInferRequest) { r.ModelName = "no-such-model" }), Code: codes.NotFound},
			{Name: "a recommender", Requests: infer(func(r *inference.ModelInferRequest) { r.ModelName = hostileMF }), Code: inv, Field: "model_name"},
			{Name: "10,001 inputs", Requests: infer(func(r *inference.ModelInferRequest) { r.Inputs = manyInputs }), Code: inv, Field: "inputs"},
			{Name: "10,001 outputs", Requests: infer(func(r *inference.ModelInferRequest) { r.Outputs = manyOutputs }), Code: inv, Field: "outputs"},
			{Name: "1 MiB input name", Requests: infer(func(r *inference.ModelInferRequest) { r.Inputs[0].Name = hostile.MB1 }), Code: inv, Field: "inputs[0].name"},
			{Name: "invalid UTF-8 input name", Requests: infer(func(r *inference.ModelInferRequest) { r.Inputs[1].Name = hostile.InvalidUTF8 }), Code: inv, Field: "inputs[1].name"},
			{Name: "unknown input", Requests: infer(func(r *inference.ModelInferRequest) { r.Inputs[0].Name = "shoe_size" }), Code: inv, Field: "inputs[0].name"},
			{Name: "1 MiB output name", Requests: infer(func(r *inference.ModelInferRequest) {
				r.Outputs = []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: hostile.MB1}}
			}), Code: inv, Field: "outputs[0].name"},
			{Name: "unknown output", Requests: infer(func(r *inference.ModelInferRequest) {
				r.Outputs = []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "shoe_size"}}
			}), Code: inv, Field: "outputs[0].name"},
			{Name: "1 MiB datatype", Requests: infer(func(r *inference.ModelInferRequest) { input(r, numeric).Datatype = hostile.MB1 }), Code: inv, Field: inputField(numeric) + ".datatype"},
			{Name: "invalid UTF-8 datatype", Requests: infer(func(r *inference.ModelInferRequest) { input(r, numeric).Datatype = hostile.InvalidUTF8 }), Code: inv, Field: inputField(numeric) + ".datatype"},
			{Name: "10,000-dimension shape", Requests: infer(func(r *inference.ModelInferRequest) { input(r, numeric).Shape = longShape }), Code: inv, Field: inputField(numeric) + ".shape"},
			{Name: "negative batch", Requests: infer(func(r *inference.ModelInferRequest) { r.Inputs[0].Shape = []int64{-1} }), Code: inv, Field: "inputs[0].shape"},
			{Name: "huge batch", Requests: infer(func(r *inference.ModelInferRequest) {
				for _, in := range r.Inputs {
					in.Shape = []int64{math.MaxInt64}
				}
			}), Code: inv, Field: "inputs[0].shape"},
			{Name: "batch of 2^32 + 1", Requests: infer(func(r *inference.ModelInferRequest) {
				for _, in := range r.Inputs {
					in.Shape = []int64{1<<32 + 1}
				}
			}), Code: inv, Field: "inputs[0].shape"},
			{Name: "too few elements", Requests: infer(func(r *inference.ModelInferRequest) { input(r, numeric).Contents.Fp64Contents = nil }), Code: inv, Field: inputField(numeric)},
			{Name: "10,000 elements for one row", Requests: infer(func(r *inference.ModelInferRequest) {
				input(r, numeric).Contents.Fp64Contents = make([]float64, 10_000)
			}), Code: inv, Field: inputField(numeric)},
			{Name: "NaN", Requests: infer(func(r *inference.ModelInferRequest) { input(r, numeric).Contents.Fp64Contents[0] = math.NaN() }), Code: inv, Field: inputField(numeric)},
			{Name: "+Inf", Requests: infer(func(r *inference.ModelInferRequest) { input(r, numeric).Contents.Fp64Contents[0] = math.Inf(1) }), Code: inv, Field: inputField(numeric)},
			{Name: "invalid UTF-8 category", Requests: infer(func(r *inference.ModelInferRequest) {
				input(r, categorical).Contents.BytesContents[0] = []byte(hostile.InvalidUTF8)
			}), Code: inv, Field: inputField(categorical)},
			{Name: "1 MiB category", Requests: infer(func(r *inference.ModelInferRequest) {
				input(r, categorical).Contents.BytesContents[0] = []byte(hostile.MB1)
			}), Code: inv, Field: inputField(categorical)},
			{Name: "raw contents for some inputs", Requests: infer(func(r *inference.ModelInferRequest) { r.RawInputContents = [][]byte{{1}} }), Code: inv, Field: "raw_input_contents"},
			{Name: "short raw contents", Requests: infer(func(r *inference.ModelInferRequest) {
				r.RawInputContents = make([][]byte, len(r.Inputs))
				for _, in := range r.Inputs {
					in.Contents = nil
				}
			}), Code: inv, Field: "inputs[0]"},
			{Name: "FP16 in typed contents", Requests: infer(func(r *inference.ModelInferRequest) { input(r, numeric).Datatype = "FP16" }), Code: inv, Field: inputField(numeric) + ".datatype"},
			{Name: "1 MiB parameter", Requests: infer(func(r *inference.ModelInferRequest) {
				r.Parameters = map[string]*inference.InferParameter{"x": {ParameterChoice: &inference.InferParameter_StringParam{StringParam: hostile.MB1}}}
			}), Code: inv, Field: "parameters[x]"},
			{Name: "10,001 parameters", Requests: infer(func(r *inference.ModelInferRequest) {
				r.Parameters = make(map[string]*inference.InferParameter, 10_001)
				for i := range 10_001 {
					r.Parameters["p"+itoa(i)] = &inference.InferParameter{ParameterChoice: &inference.InferParameter_BoolParam{BoolParam: true}}
				}
			}), Code: inv, Field: "parameters"},
		},
	}
}

// TestHostileInputs sends every public RPC of serving, both services, its table of bad inputs,
// each answered with its code and the field at fault (a bad row of a batch with its row's
// INVALID), and checks after each method that Predict still scores a customer as training
// does.
func TestHostileInputs(t *testing.T) {
	b := sharedBank(t)
	b.register(t, hostileModel, testenv.Routing{Live: map[int64]uint32{1: 1}}, b.v1)
	b.registerTinyRecommender(t, hostileMF)
	in := startServing(t, b.env, nil)
	want := b.trainingScores(t, b.s1)

	row := b.data.Test[0]
	for suppressed(b.data.Rows[row].GetEntity().GetId()) {
		row++
	}
	id := b.data.Rows[row].GetEntity().GetId()
	table := hostileTable(id, b.inline(row))
	for m, cases := range meshTable() {
		table[m] = cases
	}
	descs := []*grpc.ServiceDesc{&servingv1.PredictionService_ServiceDesc, &inference.GRPCInferenceService_ServiceDesc,
		&healthpb.Health_ServiceDesc, &reflectionpb.ServerReflection_ServiceDesc, &reflectionalphapb.ServerReflection_ServiceDesc}
	hostile.Cover(t, table, descs...)
	n := 0
	calls := hostile.Run(t, in.conn, hostile.Streams(descs...), table, func(t *testing.T) {
		t.Helper()
		n++
		k := b.data.Test[n%len(b.data.Test)]
		for b.data.Rows[k].GetEntity().GetId() == id || suppressed(b.data.Rows[k].GetEntity().GetId()) {
			n++
			k = b.data.Test[n%len(b.data.Test)]
		}
		resp, err := in.client.Predict(ctxT(t, 10*time.Second), &servingv1.PredictRequest{Model: ref(hostileModel), Instances: []*servingv1.Instance{
			{UserId: b.data.Rows[k].GetEntity().GetId()},
			{Features: b.inline(k)},
		}})
		if err != nil {
			t.Fatalf("canary Predict: %v", err)
		}
		for j, p := range resp.GetPredictions() {
			if p.GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_OK || !close12(p.GetScore(), want.score[k]) || !close12(p.GetProbability(), want.prob[k]) {
				t.Fatalf("canary Predict row %d: %v, want OK score %v probability %v", j, p, want.score[k], want.prob[k])
			}
		}
	})
	t.Logf("%d hostile calls", calls)
}

// suppressed reports whether a Bank customer objected or was erased: Predict by id does not
// score them.
func suppressed(id string) bool {
	for _, i := range append(slices.Clone(objected), erased...) {
		if testenv.BankID(i) == id {
			return true
		}
	}
	return false
}

// meshTable is a table of bad inputs for the services every node of the mesh serves beside its
// own: gRPC health and server reflection (both versions; v1alpha, deprecated, has the wire
// format of v1, so its cases are v1 messages). A Watch of a known or unknown service
// streams until the caller leaves, so its cases are only those refused at once.
func meshTable() hostile.Table {
	const (
		healthPrefix     = "/grpc.health.v1.Health/"
		reflectionPrefix = "/grpc.reflection.v1.ServerReflection/"
		alphaPrefix      = "/grpc.reflection.v1alpha.ServerReflection/"
	)
	inv := codes.InvalidArgument
	servingStatus := func(t *testing.T, reply proto.Message) {
		t.Helper()
		if st := reply.(*healthpb.HealthCheckResponse).GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %v, want SERVING", st)
		}
	}
	symbol := func(s string) *reflectionpb.ServerReflectionRequest {
		return &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: s}}
	}
	notFound := func(t *testing.T, reply proto.Message) {
		t.Helper()
		if e := reply.(*reflectionpb.ServerReflectionResponse).GetErrorResponse(); codes.Code(e.GetErrorCode()) != codes.NotFound || len(e.GetErrorMessage()) > 2048 {
			t.Fatalf("reply %v, want a short NOT_FOUND error response", reply)
		}
	}
	listed := func(t *testing.T, reply proto.Message) {
		t.Helper()
		for _, s := range reply.(*reflectionpb.ServerReflectionResponse).GetListServicesResponse().GetService() {
			if s.GetName() == "bullseye.serving.v1.PredictionService" {
				return
			}
		}
		t.Fatalf("reply %v does not list the PredictionService", reply)
	}
	// These messages have no MarshalVT, and proto.Marshal refuses invalid UTF-8: their bad
	// strings are written as wire bytes (field 1 of HealthCheckRequest is service, field 4 of
	// ServerReflectionRequest file_containing_symbol).
	badString := func(field protowire.Number) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, field, protowire.BytesType), hostile.InvalidUTF8)
	}
	many := make([]proto.Message, 10_000)
	for i := range many {
		many[i] = symbol("no.such.Symbol" + itoa(i))
	}
	list := &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}
	return hostile.Table{
		healthPrefix + "Check": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "invalid UTF-8 service", Raw: badString(1), Code: inv},
			{Name: "1 MiB service", Requests: one(&healthpb.HealthCheckRequest{Service: hostile.MB1}), Code: codes.NotFound},
			{Name: "unknown service", Requests: one(&healthpb.HealthCheckRequest{Service: "no.such.Service"}), Code: codes.NotFound},
			{Name: "empty", Requests: one(&healthpb.HealthCheckRequest{}), Code: codes.OK, Reply: &healthpb.HealthCheckResponse{}, Check: servingStatus},
		},
		healthPrefix + "List": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "empty", Requests: one(&healthpb.HealthListRequest{}), Code: codes.OK, Reply: &healthpb.HealthListResponse{},
				Check: func(t *testing.T, reply proto.Message) {
					if st := reply.(*healthpb.HealthListResponse).GetStatuses()[""].GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
						t.Fatalf("health list %v, want the server SERVING", reply)
					}
				}},
		},
		healthPrefix + "Watch": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "invalid UTF-8 service", Raw: badString(1), Code: inv},
		},
		reflectionPrefix + "ServerReflectionInfo": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "invalid UTF-8 symbol", Raw: badString(4), Code: inv},
			{Name: "1 MiB symbol", Requests: one(symbol(hostile.MB1)), Code: codes.OK, Reply: &reflectionpb.ServerReflectionResponse{}, Check: notFound},
			{Name: "1 MiB file name", Requests: one(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileByFilename{FileByFilename: hostile.MB1}}),
				Code: codes.OK, Reply: &reflectionpb.ServerReflectionResponse{}, Check: notFound},
			{Name: "empty request", Requests: one(&reflectionpb.ServerReflectionRequest{}), Code: inv},
			{Name: "10,000 requests", Requests: many, Code: codes.OK, Reply: &reflectionpb.ServerReflectionResponse{}, Check: notFound},
			{Name: "list services", Requests: one(list), Code: codes.OK, Reply: &reflectionpb.ServerReflectionResponse{}, Check: listed},
		},
		alphaPrefix + "ServerReflectionInfo": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "invalid UTF-8 symbol", Raw: badString(4), Code: inv},
			{Name: "1 MiB symbol", Requests: one(symbol(hostile.MB1)), Code: codes.OK, Reply: &reflectionpb.ServerReflectionResponse{}, Check: notFound},
			{Name: "empty request", Requests: one(&reflectionpb.ServerReflectionRequest{}), Code: inv},
		},
	}
}
