package serving

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/testenv"
)

// plain returns typed values as the plain JSON values a grpcurl user writes.
func plain(t *testing.T, typed map[string]*commonv1.Value) map[string]*structpb.Value {
	t.Helper()
	out := map[string]*structpb.Value{}
	for name, v := range typed {
		switch k := v.GetKind().(type) {
		case *commonv1.Value_NumberValue:
			out[name] = structpb.NewNumberValue(k.NumberValue)
		case *commonv1.Value_IntValue:
			out[name] = structpb.NewNumberValue(float64(k.IntValue))
		case *commonv1.Value_StringValue:
			out[name] = structpb.NewStringValue(k.StringValue)
		case *commonv1.Value_BoolValue:
			out[name] = structpb.NewBoolValue(k.BoolValue)
		default:
			t.Fatalf("feature %s: no plain JSON form for %v", name, v)
		}
	}
	return out
}

// TestPlainJSONFeatures: json_features, typed by the model's inputs, score as the same typed
// features do; null asks for imputation; a value that does not suit its input, or a feature
// given in both forms, fails the request with INVALID_ARGUMENT naming the field.
func TestPlainJSONFeatures(t *testing.T) {
	b := sharedBank(t)
	b.register(t, "bank-json", testenv.Routing{Live: map[int64]uint32{1: 1}}, b.v1)
	in := startServing(t, b.env, nil)
	ctx := ctxT(t, 30*time.Second)

	rows := b.data.Test[:20]
	typed := &servingv1.PredictRequest{Model: ref("bank-json")}
	json := &servingv1.PredictRequest{Model: ref("bank-json")}
	for _, i := range rows {
		typed.Instances = append(typed.Instances, &servingv1.Instance{Features: b.inline(i)})
		json.Instances = append(json.Instances, &servingv1.Instance{JsonFeatures: plain(t, b.inline(i))})
	}
	want, err := in.client.Predict(ctx, typed)
	if err != nil {
		t.Fatal(err)
	}
	got, err := in.client.Predict(ctx, json)
	if err != nil {
		t.Fatal(err)
	}
	for k, p := range got.GetPredictions() {
		w := want.GetPredictions()[k]
		if p.GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_OK || !close12(p.GetScore(), w.GetScore()) {
			t.Errorf("row %d: plain JSON %v, typed %v", k, p, w)
		}
	}

	// null is a missing value; the model imputes age, or refuses the row as with a null Value.
	features := b.inline(rows[0])
	delete(features, "age")
	nullAge := plain(t, features)
	nullAge["age"] = structpb.NewNullValue()
	resp, err := in.client.Predict(ctx, &servingv1.PredictRequest{Model: ref("bank-json"), Instances: []*servingv1.Instance{
		{JsonFeatures: nullAge},
		{Features: features},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.GetPredictions(); p[0].GetStatus() != p[1].GetStatus() || !close12(p[0].GetScore(), p[1].GetScore()) ||
		!slices.Equal(p[0].GetImputedInputs(), p[1].GetImputedInputs()) || p[0].GetProblem().GetReason() != p[1].GetProblem().GetReason() {
		t.Errorf("null age: %v, want as a missing typed age: %v", p[0], p[1])
	}

	bad := []struct {
		name  string
		inst  *servingv1.Instance
		field string
	}{
		{"a string for a number", &servingv1.Instance{JsonFeatures: map[string]*structpb.Value{"age": structpb.NewStringValue("41")}},
			"instances[1].json_features.age"},
		{"a number for a category", &servingv1.Instance{JsonFeatures: map[string]*structpb.Value{"job": structpb.NewNumberValue(3)}},
			"instances[1].json_features.job"},
		{"a list", &servingv1.Instance{JsonFeatures: map[string]*structpb.Value{"job": structpb.NewListValue(&structpb.ListValue{})}},
			"instances[1].json_features.job"},
		{"both forms", &servingv1.Instance{Features: map[string]*commonv1.Value{"age": numV(41)},
			JsonFeatures: map[string]*structpb.Value{"age": structpb.NewNumberValue(41)}}, "instances[1].json_features.age"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := in.client.Predict(ctx, &servingv1.PredictRequest{Model: ref("bank-json"),
				Instances: []*servingv1.Instance{{UserId: testenv.BankID(1)}, tc.inst}})
			if status.Code(err) != codes.InvalidArgument || !containsField(err, tc.field) {
				t.Errorf("Predict: %v, want INVALID_ARGUMENT naming %s", err, tc.field)
			}
		})
	}
}

// TestModelByName: Predict, Recommend and ScoreAudience take the model as one string,
// "NAME", "NAME@VERSION" or "NAME@ALIAS", as the CLI writes it; giving both forms, or a
// malformed string, is INVALID_ARGUMENT naming model_name.
func TestModelByName(t *testing.T) {
	b := sharedBank(t)
	b.register(t, "bank-named", testenv.Routing{Live: map[int64]uint32{1: 1}, Aliases: map[string]int64{"champion": 2}}, b.v1, b.v2)
	b.registerTinyRecommender(t, "mf-named")
	in := startServing(t, b.env, nil)
	ctx := ctxT(t, 30*time.Second)
	for _, tc := range []struct {
		model   string
		version int64
	}{{"bank-named", 1}, {"bank-named@2", 2}, {"bank-named@champion", 2}} {
		resp, err := in.client.Predict(ctx, &servingv1.PredictRequest{ModelName: tc.model, Instances: byUser(testenv.BankID(1))})
		if err != nil || resp.GetPredictions()[0].GetModelVersion() != tc.version {
			t.Errorf("Predict(%s) = %v, %v; want version %d", tc.model, resp, err, tc.version)
		}
	}
	if r, err := in.client.Recommend(ctx, &servingv1.RecommendRequest{ModelName: "mf-named@1", UserIds: []string{testenv.BankID(1)}}); err != nil ||
		r.GetRecommendations()[0].GetModelVersion() != 1 {
		t.Errorf("Recommend(mf-named@1) = %v, %v", r, err)
	}
	stream, err := in.client.ScoreAudience(ctx, &servingv1.ScoreAudienceRequest{ModelName: "bank-named@1", TopN: 3})
	if err != nil {
		t.Fatal(err)
	}
	var summary *servingv1.AudienceSummary
	for {
		msg, err := stream.Recv()
		if err != nil {
			break
		}
		if s := msg.GetSummary(); s != nil {
			summary = s
		}
	}
	if summary.GetModelName() != "bank-named" || summary.GetReturned() != 3 {
		t.Errorf("ScoreAudience(bank-named@1) summary %v", summary)
	}

	for _, req := range []*servingv1.PredictRequest{
		{Model: ref("bank-named"), ModelName: "bank-named", Instances: byUser(testenv.BankID(1))},
		{ModelName: "bank-named@0", Instances: byUser(testenv.BankID(1))},
		{ModelName: "@1", Instances: byUser(testenv.BankID(1))},
	} {
		if _, err := in.client.Predict(ctx, req); status.Code(err) != codes.InvalidArgument || !containsField(err, "model_name") {
			t.Errorf("Predict(model %v, model_name %q): %v, want INVALID_ARGUMENT naming model_name", req.GetModel(), req.GetModelName(), err)
		}
	}
}

// TestListModelsPages: ListModels pages by name like every other list; a token it did not
// issue is INVALID_ARGUMENT naming page_token.
func TestListModelsPages(t *testing.T) {
	b := sharedBank(t)
	var names []string
	for i := range 5 {
		name := fmt.Sprintf("bank-page-%d", i)
		b.register(t, name, testenv.Routing{Live: map[int64]uint32{1: 1}}, b.v1)
		names = append(names, name)
	}
	in := startServing(t, b.env, nil)
	ctx := ctxT(t, 30*time.Second)
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("ListModels never ends")
		}
		resp, err := in.client.ListModels(ctx, &servingv1.ListModelsRequest{NamePrefix: "bank-page-", PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetModels()) > 2 {
			t.Fatalf("page of %d models, want at most 2", len(resp.GetModels()))
		}
		for _, m := range resp.GetModels() {
			got = append(got, m.GetName())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if !slices.Equal(got, names) {
		t.Errorf("pages list %v, want %v", got, names)
	}
	all, err := in.client.ListModels(ctx, &servingv1.ListModelsRequest{NamePrefix: "bank-page-"})
	if err != nil || len(all.GetModels()) != 5 || all.GetNextPageToken() != "" {
		t.Errorf("one default page: %v, %v", all, err)
	}
	for _, req := range []*servingv1.ListModelsRequest{{PageToken: "bank-page-1"}, {PageSize: 501}, {PageSize: -1}} {
		field := "page_token"
		if req.GetPageSize() != 0 {
			field = "page_size"
		}
		if _, err := in.client.ListModels(ctx, req); status.Code(err) != codes.InvalidArgument || !containsField(err, field) {
			t.Errorf("ListModels(%v): %v, want INVALID_ARGUMENT naming %s", req, err, field)
		}
	}
}
