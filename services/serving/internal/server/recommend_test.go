package server

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/batch"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring/scoringtest"
)

func recommender(t *testing.T) served {
	return served{live("recs", modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT, 1, 1), []*modelv1.ModelArtifact{scoringtest.Recommender(t, "recs", 1)}}
}

func itemIDs(ur *servingv1.UserRecommendations) []string {
	var out []string
	for _, it := range ur.GetItems() {
		out = append(out, it.GetItemId())
	}
	return out
}

// TestRecommendRefusesMalformedRequests: no users or too many, k out of range, malformed item
// filters, and a model that is not a recommender are INVALID_ARGUMENT naming the field.
func TestRecommendRefusesMalformedRequests(t *testing.T) {
	h := newHarness(t, batch.DefaultOptions(), recommender(t), linearModel(t))
	ctx := testContext(t)
	for _, c := range []struct {
		name  string
		req   *servingv1.RecommendRequest
		field string
	}{
		{"no users", &servingv1.RecommendRequest{Model: ref("recs")}, "user_ids"},
		{"too many users", &servingv1.RecommendRequest{Model: ref("recs"), UserIds: make([]string, MaxUsers+1)}, "user_ids"},
		{"negative k", &servingv1.RecommendRequest{Model: ref("recs"), UserIds: []string{"u1"}, K: -1}, "k"},
		{"k too large", &servingv1.RecommendRequest{Model: ref("recs"), UserIds: []string{"u1"}, K: MaxK + 1}, "k"},
		{"bad allowed id", &servingv1.RecommendRequest{Model: ref("recs"), UserIds: []string{"u1"}, AllowedItemIds: []string{"i0", ""}}, "allowed_item_ids[1]"},
		{"bad excluded id", &servingv1.RecommendRequest{Model: ref("recs"), UserIds: []string{"u1"}, ExcludedItemIds: []string{"\x00"}}, "excluded_item_ids[0]"},
		{"not a recommender", &servingv1.RecommendRequest{Model: ref("spend"), UserIds: []string{"u1"}}, "model"},
	} {
		_, err := h.srv.Recommend(ctx, c.req)
		if r := refusal(err); r.code != codes.InvalidArgument || !slices.Contains(r.fields, c.field) {
			t.Errorf("%s: %v %v, want INVALID_ARGUMENT naming %s", c.name, r.code, r.fields, c.field)
		}
	}
}

// TestRecommendAnswersEachUser: a known user gets the model's ranking, an unknown one the
// popularity ranking marked as a fallback, an objected customer nothing, and a malformed id
// its problem under its path; k (10 by default) and the item filters narrow the items.
func TestRecommendAnswersEachUser(t *testing.T) {
	h := newHarness(t, batch.DefaultOptions(), recommender(t))
	ctx := testContext(t)
	resp, err := h.srv.Recommend(ctx, &servingv1.RecommendRequest{Model: ref("recs"), UserIds: []string{"u1", "stranger", "objected", "bad\x00id"}})
	if err != nil {
		t.Fatal(err)
	}
	recs := resp.GetRecommendations()
	if u := recs[0]; u.GetStatus() != okStatus || !slices.Equal(itemIDs(u), []string{"i1", "i0"}) || u.GetPopularityFallback() || u.GetModelVersion() != 1 || u.GetUserId() != "u1" {
		t.Errorf("u1: %v", u)
	}
	if u := recs[1]; u.GetStatus() != okStatus || !slices.Equal(itemIDs(u), []string{"i0", "i1"}) || !u.GetPopularityFallback() {
		t.Errorf("a stranger: %v, want the popularity ranking as a fallback", u)
	}
	if u := recs[2]; u.GetStatus() != suppressedStatus || len(u.GetItems()) != 0 || u.GetModelVersion() != 0 {
		t.Errorf("an objected customer: %v, want suppressed and nothing else", u)
	}
	if u := recs[3]; u.GetStatus() != invalidStatus || u.GetProblem().GetField() != "user_ids[3]" || u.GetProblem().GetReason() != "INVALID_ID" {
		t.Errorf("a malformed id: %v, want its problem at user_ids[3]", u)
	}
	for _, c := range []struct {
		name string
		req  *servingv1.RecommendRequest
		want []string
	}{
		{"k", &servingv1.RecommendRequest{K: 1}, []string{"i1"}},
		{"allowed", &servingv1.RecommendRequest{AllowedItemIds: []string{"i0"}}, []string{"i0"}},
		{"excluded", &servingv1.RecommendRequest{ExcludedItemIds: []string{"i1"}}, []string{"i0"}},
	} {
		c.req.Model, c.req.UserIds = ref("recs"), []string{"u1"}
		resp, err := h.srv.Recommend(ctx, c.req)
		if err != nil {
			t.Fatal(err)
		}
		if got := itemIDs(resp.GetRecommendations()[0]); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
