package serving

import (
	"errors"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/testenv"
)

// audienceResult is a whole ScoreAudience stream.
type audienceResult struct {
	rows    []*servingv1.AudienceRow
	summary *servingv1.AudienceSummary
	batches int
}

func scoreAudience(t *testing.T, in *instance, req *servingv1.ScoreAudienceRequest) audienceResult {
	t.Helper()
	stream, err := in.client.ScoreAudience(ctxT(t, 2*time.Minute), req)
	if err != nil {
		t.Fatal(err)
	}
	var r audienceResult
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.summary != nil {
			t.Fatal("a message after the summary")
		}
		if s := m.GetSummary(); s != nil {
			r.summary = s
			continue
		}
		r.batches++
		r.rows = append(r.rows, m.GetBatch().GetRows()...)
	}
	if r.summary == nil {
		t.Fatal("no summary")
	}
	return r
}

// TestScoreAudienceOverBank scores every Bank customer: every one but those who objected or
// were erased comes back, once, with the score Predict gives; top N, a threshold and a
// segment keep what they should.
func TestScoreAudienceOverBank(t *testing.T) {
	b := sharedBank(t)
	const model = "bank-audience"
	b.register(t, model, testenv.Routing{Live: map[int64]uint32{1: 1}}, b.v1)
	in := startServing(t, b.env, nil)

	// What Predict says of every customer of the file.
	type pred struct{ score, prob float64 }
	want := map[string]pred{}
	suppressed := 0
	n := len(b.table.Rows)
	for start := 0; start < n; start += 5000 {
		var ids []string
		for i := start; i < min(n, start+5000); i++ {
			ids = append(ids, testenv.BankID(i))
		}
		resp, err := in.client.Predict(ctxT(t, time.Minute), &servingv1.PredictRequest{Model: ref(model), Instances: byUser(ids...)})
		if err != nil {
			t.Fatal(err)
		}
		for k, p := range resp.GetPredictions() {
			switch p.GetStatus() {
			case servingv1.PredictionStatus_PREDICTION_STATUS_OK:
				want[ids[k]] = pred{p.GetScore(), p.GetProbability()}
			case servingv1.PredictionStatus_PREDICTION_STATUS_SUPPRESSED:
				suppressed++
			default:
				t.Fatalf("Predict of %s: %v", ids[k], p)
			}
		}
	}
	if suppressed != len(objected)+len(erased) || len(want) != n-suppressed {
		t.Fatalf("Predict: %d OK, %d suppressed", len(want), suppressed)
	}

	start := time.Now()
	all := scoreAudience(t, in, &servingv1.ScoreAudienceRequest{Model: ref(model), BatchSize: 5000})
	t.Logf("ScoreAudience over %d customers: %d rows in %d batches in %v; summary %v", n, len(all.rows), all.batches, time.Since(start).Round(time.Millisecond), all.summary)
	got := map[string]bool{}
	for _, r := range all.rows {
		w, ok := want[r.GetEntityId()]
		switch {
		case !ok:
			t.Fatalf("customer %s is in the audience; Predict did not score them", r.GetEntityId())
		case got[r.GetEntityId()]:
			t.Fatalf("customer %s twice", r.GetEntityId())
		case !close12(r.GetScore(), w.score) || !close12(r.GetProbability(), w.prob) || r.GetModelVersion() != 1:
			t.Fatalf("customer %s: %v, Predict %v", r.GetEntityId(), r, w)
		}
		got[r.GetEntityId()] = true
	}
	if len(got) != len(want) {
		t.Fatalf("%d customers in the audience, want %d", len(got), len(want))
	}
	for _, i := range append(slices.Clone(objected), erased...) {
		if got[testenv.BankID(i)] {
			t.Errorf("suppressed customer %d in the audience", i)
		}
	}
	s := all.summary
	if s.GetModelName() != model || s.GetMatched() != int64(n-len(erased)) || s.GetScored() != int64(len(want)) ||
		s.GetSuppressed() != int64(len(objected)) || s.GetReturned() != int64(len(want)) || s.GetInvalid() != 0 ||
		s.GetBelowCutoff() != 0 || s.GetReturnedByVersion()[1] != int64(len(want)) || all.batches < len(want)/5000 {
		t.Errorf("summary %v: erased customers are never listed, objected ones are matched and suppressed", s)
	}

	// Top 100, best first.
	probs := make([]float64, 0, len(want))
	for _, w := range want {
		probs = append(probs, w.prob)
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(probs)))
	top := scoreAudience(t, in, &servingv1.ScoreAudienceRequest{Model: ref(model), TopN: 100})
	if len(top.rows) != 100 || top.summary.GetBelowCutoff() != int64(len(want)-100) || top.summary.GetReturned() != 100 {
		t.Fatalf("top 100: %d rows, summary %v", len(top.rows), top.summary)
	}
	for k, r := range top.rows {
		if math.Abs(r.GetProbability()-probs[k]) > 1e-12 {
			t.Fatalf("top row %d has probability %v, the %dth best is %v", k, r.GetProbability(), k+1, probs[k])
		}
	}

	// At or above a threshold.
	const threshold = 0.5
	above := scoreAudience(t, in, &servingv1.ScoreAudienceRequest{Model: ref(model), MinScore: ptr(threshold)})
	wantAbove := 0
	for _, w := range want {
		if w.prob >= threshold {
			wantAbove++
		}
	}
	if len(above.rows) != wantAbove || above.summary.GetBelowCutoff() != int64(len(want)-wantAbove) {
		t.Fatalf("min_score %v: %d rows, want %d; summary %v", threshold, len(above.rows), wantAbove, above.summary)
	}
	for _, r := range above.rows {
		if r.GetProbability() < threshold {
			t.Fatalf("row %v below the threshold", r)
		}
	}

	// A segment: admin. or technician, aged 40 or more.
	str := func(s string) *commonv1.Value {
		return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
	}
	segment := &servingv1.AudienceFilter{Kind: &servingv1.AudienceFilter_AllOf{AllOf: &servingv1.AudienceFilterList{Filters: []*servingv1.AudienceFilter{
		{Kind: &servingv1.AudienceFilter_Condition{Condition: &servingv1.FeatureCondition{Feature: "job", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_IN,
			Values: []*commonv1.Value{str("admin."), str("technician")}}}},
		{Kind: &servingv1.AudienceFilter_Condition{Condition: &servingv1.FeatureCondition{Feature: "age", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_GE,
			Value: &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: 40}}}}},
	}}}}
	seg := scoreAudience(t, in, &servingv1.ScoreAudienceRequest{Model: ref(model), Segment: segment})
	jobCol, ageCol := slices.Index(b.table.Columns, "job"), slices.Index(b.table.Columns, "age")
	wantSeg := map[string]bool{}
	segSuppressed := 0
	for i, r := range b.table.Rows {
		age, _ := strconv.Atoi(r[ageCol])
		if (r[jobCol] != "admin." && r[jobCol] != "technician") || age < 40 || slices.Contains(erased, i) {
			continue
		}
		if _, ok := want[testenv.BankID(i)]; ok {
			wantSeg[testenv.BankID(i)] = true
		} else {
			segSuppressed++ // objected: matched, then left out
		}
	}
	if len(seg.rows) != len(wantSeg) || seg.summary.GetMatched() != int64(len(wantSeg)+segSuppressed) || seg.summary.GetSuppressed() != int64(segSuppressed) {
		t.Fatalf("segment: %d rows, summary %v; want %d rows, %d suppressed", len(seg.rows), seg.summary, len(wantSeg), segSuppressed)
	}
	for _, r := range seg.rows {
		if !wantSeg[r.GetEntityId()] {
			t.Fatalf("customer %s is outside the segment", r.GetEntityId())
		}
	}
	t.Logf("top 100, %d at or above %v, segment of %d: as expected", wantAbove, threshold, len(wantSeg))

	// A filter on a feature the model's feature set does not have is refused.
	badSeg := &servingv1.AudienceFilter{Kind: &servingv1.AudienceFilter_Condition{Condition: &servingv1.FeatureCondition{
		Feature: "shoe_size", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NULL}}}
	stream, err := in.client.ScoreAudience(ctxT(t, 10*time.Second), &servingv1.ScoreAudienceRequest{Model: ref(model), Segment: badSeg})
	if err == nil {
		_, err = stream.Recv()
	}
	if err == nil || !containsField(err, "segment.condition.feature") {
		t.Errorf("a filter on an unknown feature: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
