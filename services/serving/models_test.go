package serving

import (
	"fmt"
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
	"github.com/bullseye-ml/bullseye/pkg/registry"
	"github.com/bullseye-ml/bullseye/services/serving/internal/testenv"
)

// TestReadyOnceLoadedAndFailedLoads: serving is SERVING only once the models live at start are
// loaded; a version whose artifact is gone fails to load, is reported FAILED, never takes
// traffic, and the live version it was to replace keeps answering.
func TestReadyOnceLoadedAndFailedLoads(t *testing.T) {
	b := sharedBank(t)
	b.register(t, "bank-ready", testenv.Routing{Live: map[int64]uint32{1: 1}}, b.v1)
	b.register(t, "bank-broken", testenv.Routing{}, b.v1, b.v2)
	// Version 2 of bank-broken loses its artifact.
	ctx := ctxT(t, time.Minute)
	v2, err := b.env.Registry.Version(ctx, "bank-broken", 2)
	if err != nil {
		t.Fatal(err)
	}
	store, err := b.env.JS.ObjectStore(ctx, registry.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	object := strings.TrimPrefix(v2.GetArtifact().GetUri(), registry.URIScheme+registry.DefaultBucket+"/")
	if err := store.Delete(ctx, object); err != nil {
		t.Fatal(err)
	}
	if _, err := b.env.Promote(ctx, "bank-broken", testenv.Routing{Live: map[int64]uint32{1: 1}}); err != nil {
		t.Fatal(err)
	}

	in := startServing(t, b.env, func(c *Config) { c.RetryInterval = time.Hour })
	// Ready means the models live at start are loaded: no waiting here.
	for _, name := range []string{"bank-ready", "bank-broken"} {
		st, err := in.client.GetModelStatus(ctx, &servingv1.GetModelStatusRequest{Model: ref(name)})
		if err != nil {
			t.Fatal(err)
		}
		if v := st.GetModel().GetVersions(); len(v) != 1 || v[0].GetState() != servingv1.ModelState_MODEL_STATE_AVAILABLE || v[0].GetTrafficShare() != 1 {
			t.Fatalf("%s at readiness: %v", name, st.GetModel())
		}
		var outputs []string
		for _, o := range st.GetModel().GetVersions()[0].GetOutputs().GetOutputs() {
			outputs = append(outputs, o.GetName())
		}
		if strings.Join(outputs, ",") != "score,probability,label" {
			t.Errorf("%s declares outputs %v", name, outputs)
		}
	}
	list, err := in.client.ListModels(ctx, &servingv1.ListModelsRequest{NamePrefix: "bank-re"})
	if err != nil || len(list.GetModels()) != 1 || list.GetModels()[0].GetName() != "bank-ready" || list.GetModels()[0].GetTask() != modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION {
		t.Errorf("ListModels(bank-re): %v, %v", list, err)
	}

	if _, err := b.env.Promote(ctx, "bank-broken", testenv.Routing{Live: map[int64]uint32{2: 1}}); err != nil {
		t.Fatal(err)
	}
	st := in.waitStatus(t, "bank-broken", func(m *servingv1.ServedModel) bool {
		for _, v := range m.GetVersions() {
			if v.GetVersion() == 2 && v.GetState() == servingv1.ModelState_MODEL_STATE_FAILED {
				return true
			}
		}
		return false
	})
	for _, v := range st.GetVersions() {
		switch v.GetVersion() {
		case 1:
			if v.GetState() != servingv1.ModelState_MODEL_STATE_AVAILABLE || v.GetTrafficShare() != 1 {
				t.Errorf("version 1 after the failed promotion: %v", v)
			}
		case 2:
			if v.GetError().GetReason() != "LOAD_FAILED" || v.GetTrafficShare() != 0 {
				t.Errorf("version 2: %v", v)
			}
		}
	}
	resp, err := in.client.Predict(ctx, &servingv1.PredictRequest{Model: ref("bank-broken"), Instances: byUser(testenv.BankID(1))})
	if err != nil || resp.GetPredictions()[0].GetModelVersion() != 1 {
		t.Errorf("Predict while version 2 failed: %v, %v", resp, err)
	}
	_, err = in.client.Predict(ctx, &servingv1.PredictRequest{Model: &commonv1.ModelRef{Name: "bank-broken", Selector: &commonv1.ModelRef_Version{Version: 2}}, Instances: byUser(testenv.BankID(1))})
	if status.Code(err) != codes.NotFound {
		t.Errorf("Predict with the failed version: %v, want NOT_FOUND", err)
	}
	if r, err := in.infer.ModelReady(ctx, &inference.ModelReadyRequest{Name: "bank-broken"}); err != nil || r.GetReady() {
		t.Errorf("ModelReady of a model whose live version failed: %v, %v", r, err)
	}
	if _, err := in.client.GetModelStatus(ctx, &servingv1.GetModelStatusRequest{Model: ref("never-registered")}); status.Code(err) != codes.NotFound {
		t.Errorf("GetModelStatus of an unknown model: %v", err)
	}
}

// TestRecommendPopularity: Recommend through the core with a popularity model: the ranking
// minus excluded and disallowed items, SUPPRESSED for a customer who objected, everyone else
// served from the ranking (marked as such: a popularity model knows no customer); Predict
// scores (user, item) pairs; concurrent Recommend calls share their consent lookups.
func TestRecommendPopularity(t *testing.T) {
	b := sharedBank(t)
	items := []string{"item-0", "item-1", "item-2", "item-3", "item-4", "item-5", "item-6", "item-7", "item-8", "item-9"}
	scores := []float64{100, 90, 80, 70, 60, 50, 40, 30, 20, 10}
	pop := &modelv1.ModelArtifact{
		FormatVersion: 1,
		Family:        modelv1.ModelFamily_MODEL_FAMILY_POPULARITY,
		Task:          modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT,
		Parameters:    &modelv1.ModelArtifact_Popularity{Popularity: &modelv1.PopularityParameters{ItemIds: items, Scores: scores}},
	}
	b.register(t, "pop", testenv.Routing{Live: map[int64]uint32{1: 1}}, pop)
	in := startServing(t, b.env, nil)
	ctx := ctxT(t, time.Minute)

	resp, err := in.client.Recommend(ctx, &servingv1.RecommendRequest{
		Model: ref("pop"), UserIds: []string{testenv.BankID(10), testenv.BankID(objected[0]), "a-stranger", ""}, K: 3,
		ExcludedItemIds: []string{"item-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	recs := resp.GetRecommendations()
	ids := func(ur *servingv1.UserRecommendations) string {
		var out []string
		for _, it := range ur.GetItems() {
			out = append(out, it.GetItemId())
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		status servingv1.PredictionStatus
		items  string
	}{
		{servingv1.PredictionStatus_PREDICTION_STATUS_OK, "item-0,item-2,item-3"},
		{servingv1.PredictionStatus_PREDICTION_STATUS_SUPPRESSED, ""},
		{servingv1.PredictionStatus_PREDICTION_STATUS_OK, "item-0,item-2,item-3"},
		{servingv1.PredictionStatus_PREDICTION_STATUS_INVALID, ""},
	}
	for i, tt := range tests {
		ur := recs[i]
		okRow := tt.status == servingv1.PredictionStatus_PREDICTION_STATUS_OK
		if ur.GetStatus() != tt.status || ids(ur) != tt.items || ur.GetModelName() != "pop" || ur.GetPopularityFallback() != okRow {
			t.Errorf("user %d: %v, want %v %s", i, ur, tt.status, tt.items)
		}
		if tt.status == servingv1.PredictionStatus_PREDICTION_STATUS_OK && (ur.GetModelVersion() != 1 || ur.GetItems()[0].GetScore() != 100) {
			t.Errorf("user %d: %v", i, ur)
		}
	}
	resp, err = in.client.Recommend(ctx, &servingv1.RecommendRequest{Model: ref("pop"), UserIds: []string{"a-stranger"},
		AllowedItemIds: []string{"item-9", "item-5", "item-0"}, ExcludedItemIds: []string{"item-0"}})
	if err != nil || ids(resp.GetRecommendations()[0]) != "item-5,item-9" {
		t.Errorf("allowed and excluded: %v, %v", resp, err)
	}
	pr, err := in.client.Predict(ctx, &servingv1.PredictRequest{Model: ref("pop"), Instances: []*servingv1.Instance{
		{UserId: "a-stranger", ItemId: "item-4"}, {UserId: "a-stranger", ItemId: "item-99"}, {UserId: "a-stranger"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if p := pr.GetPredictions(); p[0].GetScore() != 60 || p[0].GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_OK ||
		p[1].GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_NOT_FOUND || p[2].GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_INVALID {
		t.Errorf("Predict on the recommender: %v", p)
	}
	checkOutputs(t, pr.GetPredictions()[0], "score")
	if _, err := in.client.Recommend(ctx, &servingv1.RecommendRequest{Model: ref("pop"), UserIds: []string{"x"}, K: 1001}); !containsField(err, "k") {
		t.Errorf("k = 1001: %v", err)
	}

	lookups := in.concurrently(t, "pop", 32, func(i int) error {
		_, err := in.client.Recommend(ctx, &servingv1.RecommendRequest{Model: ref("pop"), UserIds: []string{testenv.BankID(1000 + i)}})
		return err
	})
	t.Logf("32 concurrent Recommend calls made %d consent lookups", lookups)
	if lookups > 8 {
		t.Errorf("32 concurrent calls made %d lookups", lookups)
	}
}

// TestRecommendFactorization: a factorisation model recommends each known customer's best
// unseen items (seen ones when asked), honours exclusions, gives unknown customers the
// popularity ranking marked as a fallback, suppresses a customer who objected, and scores
// (user, item) pairs.
func TestRecommendFactorization(t *testing.T) {
	b := sharedBank(t)
	f := &mlrec.Factors{
		Rank:        2,
		UserIDs:     []string{testenv.BankID(10), testenv.BankID(11), testenv.BankID(objected[0])},
		ItemIDs:     []string{"i0", "i1", "i2", "i3", "i4"},
		UserFactors: []float32{1, 0, 0, 1, 1, 1},
		ItemFactors: []float32{5, 0, 4, 1, 3, 2, 2, 3, 1, 4},
		SeenOffsets: []uint32{0, 1, 1, 1},
		SeenItems:   []uint32{0},
		Popularity:  mlrec.Popularity{ItemIDs: []string{"i4", "i3", "i2", "i1", "i0"}, Scores: []float64{5, 4, 3, 2, 1}},
	}
	a := testenv.FactorsArtifact(f, modelv1.ModelFamily_MODEL_FAMILY_IMPLICIT_ALS, modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT)
	b.register(t, "mf", testenv.Routing{Live: map[int64]uint32{1: 1}}, a)
	in := startServing(t, b.env, nil)
	ctx := ctxT(t, time.Minute)
	items := func(ur *servingv1.UserRecommendations) string {
		var out []string
		for _, it := range ur.GetItems() {
			out = append(out, fmt.Sprintf("%s:%g", it.GetItemId(), it.GetScore()))
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		name     string
		req      *servingv1.RecommendRequest
		want     []string
		fallback []bool
	}{
		{"unseen best", &servingv1.RecommendRequest{UserIds: []string{testenv.BankID(10), testenv.BankID(11), "a-stranger"}, K: 2},
			[]string{"i1:4,i2:3", "i4:4,i3:3", "i4:5,i3:4"}, []bool{false, false, true}},
		{"seen included", &servingv1.RecommendRequest{UserIds: []string{testenv.BankID(10)}, K: 2, IncludeSeenItems: true},
			[]string{"i0:5,i1:4"}, []bool{false}},
		{"excluded", &servingv1.RecommendRequest{UserIds: []string{testenv.BankID(10)}, K: 2, ExcludedItemIds: []string{"i1"}},
			[]string{"i2:3,i3:2"}, []bool{false}},
		{"allowed", &servingv1.RecommendRequest{UserIds: []string{testenv.BankID(11)}, K: 5, AllowedItemIds: []string{"i0", "i2"}},
			[]string{"i2:2,i0:0"}, []bool{false}},
		{"objected", &servingv1.RecommendRequest{UserIds: []string{testenv.BankID(objected[0])}, K: 2}, []string{""}, []bool{false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Model = ref("mf")
			resp, err := in.client.Recommend(ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			for i, ur := range resp.GetRecommendations() {
				if got := items(ur); got != tt.want[i] || ur.GetPopularityFallback() != tt.fallback[i] {
					t.Errorf("user %s: %s (fallback %v), want %s (%v)", ur.GetUserId(), got, ur.GetPopularityFallback(), tt.want[i], tt.fallback[i])
				}
			}
		})
	}
	if r, _ := in.client.Recommend(ctx, &servingv1.RecommendRequest{Model: ref("mf"), UserIds: []string{testenv.BankID(objected[0])}}); r.GetRecommendations()[0].GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_SUPPRESSED {
		t.Errorf("objected customer: %v", r)
	}
	pr, err := in.client.Predict(ctx, &servingv1.PredictRequest{Model: ref("mf"), Instances: []*servingv1.Instance{
		{UserId: testenv.BankID(10), ItemId: "i3"}, {UserId: testenv.BankID(11), ItemId: "i9"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if p := pr.GetPredictions(); p[0].GetScore() != 2 || p[0].GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_OK ||
		p[1].GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_NOT_FOUND {
		t.Errorf("pairs: %v", p)
	}
	checkOutputs(t, pr.GetPredictions()[0], "score")
	if _, err := in.client.Predict(ctx, &servingv1.PredictRequest{Model: ref("mf"), Instances: byUser(testenv.BankID(10))}); err != nil {
		t.Fatal(err)
	}
}
