package serving

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/gen/inference"
	mlrec "github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/services/serving/internal/testenv"
)

// TestSharedBoundsAtTheDoor: the strings of Predict, Recommend, ScoreAudience and ModelInfer
// that become keys or lookups are held to pkg/fault's shared bounds. A 3,000-byte (or a
// 300-byte) customer id, an item id with a control character or a 3,000-byte feature name is
// its row's INVALID, its neighbours scored; a 3,000-byte model name, alias or item filter id is
// INVALID_ARGUMENT naming the field and the limit. The service answers afterwards.
func TestSharedBoundsAtTheDoor(t *testing.T) {
	b := sharedBank(t)
	b.register(t, "bank-bounds", testenv.Routing{Live: map[int64]uint32{1: 1}}, b.v1)
	b.registerTinyRecommender(t, "mf-bounds")
	in := startServing(t, b.env, nil)
	ctx := ctxT(t, time.Minute)

	long := strings.Repeat("c", 3000)
	ok := b.data.Rows[b.data.Test[0]].GetEntity().GetId()
	features := b.inline(b.data.Test[0])
	features[strings.Repeat("f", 3000)] = features["age"]
	const (
		okS = servingv1.PredictionStatus_PREDICTION_STATUS_OK
		inv = servingv1.PredictionStatus_PREDICTION_STATUS_INVALID
	)

	pr, err := in.client.Predict(ctx, &servingv1.PredictRequest{Model: ref("bank-bounds"), Instances: []*servingv1.Instance{
		{UserId: ok},
		{UserId: long},
		{UserId: strings.Repeat("c", 300)},
		{UserId: "a\x00b"},
		{Features: features},
		{UserId: ok},
	}})
	if err != nil {
		t.Fatal(err)
	}
	rows := []struct {
		status        servingv1.PredictionStatus
		field, reason string
		text          string
	}{
		{okS, "", "", ""},
		{inv, "instances[1].user_id", "TOO_LONG", "the limit is 256 bytes"},
		{inv, "instances[2].user_id", "TOO_LONG", "the limit is 256 bytes"},
		{inv, "instances[3].user_id", "INVALID_ID", "control character"},
		{inv, "instances[4].features", "INVALID_NAME", "the limit is 256 bytes"},
		{okS, "", "", ""},
	}
	for i, want := range rows {
		p := pr.GetPredictions()[i]
		if p.GetStatus() != want.status || p.GetProblem().GetField() != want.field || p.GetProblem().GetReason() != want.reason ||
			!strings.Contains(p.GetProblem().GetDescription(), want.text) {
			t.Errorf("Predict row %d: %v %v, want %v %s %s with %q", i, p.GetStatus(), p.GetProblem(), want.status, want.field, want.reason, want.text)
		}
		if len(p.GetProblem().GetDescription()) > 300 {
			t.Errorf("Predict row %d: a %d-byte description repeats the caller's value", i, len(p.GetProblem().GetDescription()))
		}
	}

	pairs, err := in.client.Predict(ctx, &servingv1.PredictRequest{Model: ref("mf-bounds"), Instances: []*servingv1.Instance{
		{UserId: testenv.BankID(10), ItemId: "i1"},
		{UserId: testenv.BankID(10), ItemId: "i\n1"},
		{UserId: testenv.BankID(10), ItemId: long},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if p := pairs.GetPredictions(); p[0].GetStatus() != okS || p[1].GetProblem().GetField() != "instances[1].item_id" ||
		p[1].GetProblem().GetReason() != "INVALID_ID" || p[2].GetProblem().GetReason() != "TOO_LONG" {
		t.Errorf("Predict pairs: %v", p)
	}

	rr, err := in.client.Recommend(ctx, &servingv1.RecommendRequest{Model: ref("mf-bounds"), UserIds: []string{testenv.BankID(10), long, "stranger"}, K: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r := rr.GetRecommendations(); r[0].GetStatus() != okS || r[2].GetStatus() != okS ||
		r[1].GetStatus() != inv || r[1].GetProblem().GetField() != "user_ids[1]" || r[1].GetProblem().GetReason() != "TOO_LONG" {
		t.Errorf("Recommend: %v", r)
	}

	calls := []struct {
		name  string
		call  func() error
		field string
	}{
		{"Predict model name", func() error {
			_, err := in.client.Predict(ctx, &servingv1.PredictRequest{Model: ref(long), Instances: byUser(ok)})
			return err
		}, "model.name"},
		{"Predict alias", func() error {
			_, err := in.client.Predict(ctx, &servingv1.PredictRequest{Model: &commonv1.ModelRef{Name: "bank-bounds", Selector: &commonv1.ModelRef_Alias{Alias: long}}, Instances: byUser(ok)})
			return err
		}, "model.alias"},
		{"Recommend excluded item", func() error {
			_, err := in.client.Recommend(ctx, &servingv1.RecommendRequest{Model: ref("mf-bounds"), UserIds: []string{"u"}, ExcludedItemIds: []string{"i0", long}})
			return err
		}, "excluded_item_ids[1]"},
		{"ScoreAudience model name", func() error {
			st, err := in.client.ScoreAudience(ctx, &servingv1.ScoreAudienceRequest{Model: ref(long)})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}, "model.name"},
		{"ModelInfer model name", func() error {
			_, err := in.infer.ModelInfer(ctx, &inference.ModelInferRequest{ModelName: long})
			return err
		}, "model_name"},
		{"ModelInfer input name", func() error {
			_, err := in.infer.ModelInfer(ctx, &inference.ModelInferRequest{ModelName: "bank-bounds", Inputs: []*inference.ModelInferRequest_InferInputTensor{
				{Name: long, Datatype: "FP64", Shape: []int64{1}, Contents: &inference.InferTensorContents{Fp64Contents: []float64{1}}}}})
			return err
		}, "inputs[0].name"},
		{"ModelMetadata name", func() error {
			_, err := in.infer.ModelMetadata(ctx, &inference.ModelMetadataRequest{Name: long})
			return err
		}, "name"},
	}
	for _, c := range calls {
		err := c.call()
		if status.Code(err) != codes.InvalidArgument || !containsField(err, c.field) || !strings.Contains(status.Convert(err).Message(), "the limit is 256 bytes") {
			t.Errorf("%s: %v; want INVALID_ARGUMENT naming %s and the limit", c.name, err, c.field)
		}
		if n := len(status.Convert(err).Message()); n > 500 {
			t.Errorf("%s: a %d-byte message repeats the caller's value", c.name, n)
		}
	}

	// The canary: the service still answers.
	if r, err := in.client.Predict(ctx, &servingv1.PredictRequest{Model: ref("bank-bounds"), Instances: byUser(ok)}); err != nil || r.GetPredictions()[0].GetStatus() != okS {
		t.Fatalf("canary Predict: %v, %v", r, err)
	}
}

// registerTinyRecommender registers, as version 1 of name, an implicit ALS
// recommender of rank 1 that knows one Bank customer and two items.
func (b *bank) registerTinyRecommender(t *testing.T, name string) {
	t.Helper()
	f := &mlrec.Factors{
		Rank:        1,
		UserIDs:     []string{testenv.BankID(10)},
		ItemIDs:     []string{"i0", "i1"},
		UserFactors: []float32{1},
		ItemFactors: []float32{2, 1},
		SeenOffsets: []uint32{0, 0},
		Popularity:  mlrec.Popularity{ItemIDs: []string{"i0", "i1"}, Scores: []float64{2, 1}},
	}
	b.register(t, name, testenv.Routing{Live: map[int64]uint32{1: 1}},
		testenv.FactorsArtifact(f, modelv1.ModelFamily_MODEL_FAMILY_IMPLICIT_ALS, modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT))
}
