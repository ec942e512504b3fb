package server

import (
	"context"
	"math"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/batch"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring/scoringtest"
)

// audienceStream collects what ScoreAudience sends.
type audienceStream struct {
	grpc.ServerStream
	ctx     context.Context
	batches [][]*servingv1.AudienceRow
	summary *servingv1.AudienceSummary
}

func (s *audienceStream) Context() context.Context { return s.ctx }

func (s *audienceStream) Send(m *servingv1.ScoreAudienceResponse) error {
	if b := m.GetBatch(); b != nil {
		s.batches = append(s.batches, b.GetRows())
	}
	if m.GetSummary() != nil {
		s.summary = m.GetSummary()
	}
	return nil
}

func (s *audienceStream) entities() []string {
	var out []string
	for _, b := range s.batches {
		for _, r := range b {
			out = append(out, r.GetEntityId())
		}
	}
	slices.Sort(out)
	return out
}

// TestScoreAudienceRefusesMalformedRequests: batch_size, top_n and min_score out of range,
// and a recommender, are INVALID_ARGUMENT naming the field; a model without a feature set to
// list customers from is FAILED_PRECONDITION.
func TestScoreAudienceRefusesMalformedRequests(t *testing.T) {
	noSet := scoringtest.Linear(t, "noset", 1)
	noSet.Lineage = nil
	h := newHarness(t, batch.DefaultOptions(), linearModel(t), recommender(t), served{live("noset", regression, 1, 1), []*modelv1.ModelArtifact{noSet}})
	nan := math.NaN()
	for _, c := range []struct {
		name  string
		req   *servingv1.ScoreAudienceRequest
		field string
	}{
		{"negative batch size", &servingv1.ScoreAudienceRequest{Model: ref("spend"), BatchSize: -1}, "batch_size"},
		{"batch size too large", &servingv1.ScoreAudienceRequest{Model: ref("spend"), BatchSize: MaxAudienceBatch + 1}, "batch_size"},
		{"negative top_n", &servingv1.ScoreAudienceRequest{Model: ref("spend"), TopN: -1}, "top_n"},
		{"NaN min_score", &servingv1.ScoreAudienceRequest{Model: ref("spend"), MinScore: &nan}, "min_score"},
		{"a recommender", &servingv1.ScoreAudienceRequest{Model: ref("recs")}, "model"},
	} {
		err := h.srv.ScoreAudience(c.req, &audienceStream{ctx: testContext(t)})
		if r := refusal(err); r.code != codes.InvalidArgument || !slices.Contains(r.fields, c.field) {
			t.Errorf("%s: %v %v, want INVALID_ARGUMENT naming %s", c.name, r.code, r.fields, c.field)
		}
	}
	err := h.srv.ScoreAudience(&servingv1.ScoreAudienceRequest{Model: ref("noset")}, &audienceStream{ctx: testContext(t)})
	if r := refusal(err); r.code != codes.FailedPrecondition || r.reason != ReasonNoFeatureSet {
		t.Errorf("a model without a feature set: %v %s, want FAILED_PRECONDITION %s", r.code, r.reason, ReasonNoFeatureSet)
	}
}

// TestScoreAudience: every listed customer is scored in pages; objected ones are counted as
// suppressed and those that cannot be scored as invalid, neither streamed; top_n and min_score
// keep the best and count the rest below the cutoff; rows come in batches of batch_size.
func TestScoreAudience(t *testing.T) {
	h := newHarness(t, batch.DefaultOptions(), linearModel(t))
	cutoff := 50.0
	for _, c := range []struct {
		name    string
		req     *servingv1.ScoreAudienceRequest
		want    []string
		below   int64
		batches int
	}{
		{"all", &servingv1.ScoreAudienceRequest{BatchSize: 1}, []string{"c1", "c2", "c3"}, 0, 3},
		{"top 2", &servingv1.ScoreAudienceRequest{TopN: 2}, []string{"c1", "c2"}, 1, 1},
		{"min score", &servingv1.ScoreAudienceRequest{MinScore: &cutoff}, []string{"c1", "c2"}, 1, 1},
	} {
		c.req.Model = ref("spend")
		st := &audienceStream{ctx: testContext(t)}
		if err := h.srv.ScoreAudience(c.req, st); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		s := st.summary
		if got := st.entities(); !slices.Equal(got, c.want) || len(st.batches) != c.batches {
			t.Errorf("%s: rows %v in %d batches, want %v in %d", c.name, got, len(st.batches), c.want, c.batches)
		}
		if s.GetMatched() != 5 || s.GetScored() != 3 || s.GetSuppressed() != 1 || s.GetInvalid() != 1 || s.GetBelowCutoff() != c.below ||
			s.GetReturned() != int64(len(c.want)) || s.GetReturnedByVersion()[1] != int64(len(c.want)) || s.GetModelName() != "spend" {
			t.Errorf("%s: summary %v, want 5 matched, 3 scored, 1 suppressed, 1 invalid, %d below the cutoff, %d returned", c.name, s, c.below, len(c.want))
		}
	}
}
