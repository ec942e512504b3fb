package server

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/batch"
	"github.com/bullseye-ml/bullseye/services/serving/internal/models"
	"github.com/bullseye-ml/bullseye/services/serving/internal/scoring/scoringtest"
)

var (
	okStatus         = servingv1.PredictionStatus_PREDICTION_STATUS_OK
	invalidStatus    = servingv1.PredictionStatus_PREDICTION_STATUS_INVALID
	notFoundStatus   = servingv1.PredictionStatus_PREDICTION_STATUS_NOT_FOUND
	suppressedStatus = servingv1.PredictionStatus_PREDICTION_STATUS_SUPPRESSED
)

// counter returns the value of one of the server's counters.
func counter(c *prometheus.CounterVec, labels ...string) float64 {
	return testutil.ToFloat64(c.WithLabelValues(labels...))
}

// TestPredictRefusesMalformedRequests: a request without instances or with too many, a
// negative max_contributions or a malformed model reference is INVALID_ARGUMENT naming the
// field; a model or version not loaded here is NOT_FOUND.
func TestPredictRefusesMalformedRequests(t *testing.T) {
	h := newHarness(t, batch.DefaultOptions(), linearModel(t))
	ctx := testContext(t)
	for _, c := range []struct {
		name  string
		req   *servingv1.PredictRequest
		field string
	}{
		{"no instances", &servingv1.PredictRequest{Model: ref("spend")}, "instances"},
		{"too many instances", &servingv1.PredictRequest{Model: ref("spend"), Instances: make([]*servingv1.Instance, MaxInstances+1)}, "instances"},
		{"negative max_contributions", &servingv1.PredictRequest{Model: ref("spend"), Instances: byUser("c1"), MaxContributions: -1}, "max_contributions"},
		{"no model name", &servingv1.PredictRequest{Model: ref(""), Instances: byUser("c1")}, "model.name"},
		{"version 0", &servingv1.PredictRequest{Model: &commonv1.ModelRef{Name: "spend", Selector: &commonv1.ModelRef_Version{}}, Instances: byUser("c1")}, "model.version"},
		{"bad alias", &servingv1.PredictRequest{Model: &commonv1.ModelRef{Name: "spend", Selector: &commonv1.ModelRef_Alias{Alias: "a\x00b"}}, Instances: byUser("c1")}, "model.alias"},
	} {
		_, err := h.srv.Predict(ctx, c.req)
		if r := refusal(err); r.code != codes.InvalidArgument || !slices.Contains(r.fields, c.field) {
			t.Errorf("%s: %v %v, want INVALID_ARGUMENT naming %s", c.name, r.code, r.fields, c.field)
		}
	}
	for _, m := range []*commonv1.ModelRef{ref("nope"), {Name: "spend", Selector: &commonv1.ModelRef_Version{Version: 7}}, {Name: "spend", Selector: &commonv1.ModelRef_Alias{Alias: "gone"}}} {
		_, err := h.srv.Predict(ctx, &servingv1.PredictRequest{Model: m, Instances: byUser("c1")})
		if r := refusal(err); r.code != codes.NotFound || r.reason != ReasonModelNotLoaded {
			t.Errorf("%v: %v %s, want NOT_FOUND %s", m, r.code, r.reason, ReasonModelNotLoaded)
		}
	}
}

// TestPredictAnswersEveryRowInPlace: malformed instances get their own problem under their
// path and the others are scored, in tasks of the batch size, each outcome at its instance's
// index; the rows answered are counted by status.
func TestPredictAnswersEveryRowInPlace(t *testing.T) {
	opts := batch.DefaultOptions()
	opts.MaxBatchSize = 2
	h := newHarness(t, opts, linearModel(t))
	feats := func(kv ...any) *servingv1.Instance {
		inst := &servingv1.Instance{Features: map[string]*commonv1.Value{}}
		for i := 0; i < len(kv); i += 2 {
			inst.Features[kv[i].(string)] = kv[i+1].(*commonv1.Value)
		}
		return inst
	}
	unknown := feats("a1", num(1), "a2", num(1), "a3", num(1), "a4", num(1), "a5", num(1), "a6", num(1))
	withUser := feats("age", integer(20))
	withUser.UserId = "c1"
	insts := []*servingv1.Instance{
		{UserId: "c1"},
		{UserId: "bad\x00id"},
		{},
		{UserId: "c2"},
		feats("bad\x00name", num(1)),
		feats("age", str(strings.Repeat("x", fault.MaxTextBytes+1))),
		feats("age", str("\xff")),
		unknown,
		{UserId: "objected"},
		{UserId: "nobody"},
		withUser,
		feats("spend", num(1)),
		{UserId: strings.Repeat("x", fault.MaxIDBytes+1)},
	}
	resp, err := h.srv.Predict(testContext(t), &servingv1.PredictRequest{Model: ref("spend"), Instances: insts})
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		status  servingv1.PredictionStatus
		score   float64
		imputed []string
		field   string
		reason  string
	}
	wants := []want{
		{status: okStatus, score: 71, imputed: []string{"bonus"}},
		{status: invalidStatus, field: "instances[1].user_id", reason: "INVALID_ID"},
		{status: invalidStatus, field: "instances[2]", reason: "EMPTY_INSTANCE"},
		{status: okStatus, score: 71, imputed: []string{"spend", "bonus"}},
		{status: invalidStatus, field: "instances[4].features", reason: "INVALID_NAME"},
		{status: invalidStatus, field: "instances[5].features.age", reason: "TOO_LONG"},
		{status: invalidStatus, field: "instances[6].features.age", reason: "INVALID_VALUE"},
		{status: invalidStatus, field: "instances[7].features.a1", reason: "UNKNOWN_FEATURE"},
		{status: suppressedStatus},
		{status: notFoundStatus, field: "instances[9].user_id", reason: "UNKNOWN_CUSTOMER"},
		{status: okStatus, score: 61, imputed: []string{"bonus"}},
		{status: invalidStatus, field: "instances[11].features.age", reason: "MISSING_INPUT"},
		{status: invalidStatus, field: "instances[12].user_id", reason: "TOO_LONG"},
	}
	preds := resp.GetPredictions()
	if len(preds) != len(wants) {
		t.Fatalf("%d predictions for %d instances", len(preds), len(wants))
	}
	for i, w := range wants {
		p := preds[i]
		if p.GetStatus() != w.status || p.GetScore() != w.score || !slices.Equal(p.GetImputedInputs(), w.imputed) ||
			p.GetProblem().GetField() != w.field || p.GetProblem().GetReason() != w.reason || p.GetModelName() != "spend" {
			t.Errorf("instance %d: %v score %v imputed %v problem %v; want %v %v %v %s %s",
				i, p.GetStatus(), p.GetScore(), p.GetImputedInputs(), p.GetProblem(), w.status, w.score, w.imputed, w.field, w.reason)
		}
		if (p.GetModelVersion() == 1) != (w.status == okStatus) {
			t.Errorf("instance %d: model version %d with status %v; only a scored row names its version", i, p.GetModelVersion(), p.GetStatus())
		}
	}
	if d := preds[7].GetProblem().GetDescription(); !strings.Contains(d, `"a1", "a2", "a3", "a4", "a5" and 1 more`) {
		t.Errorf("the unknown features are described as %q, want the first five and how many more", d)
	}
	for st, n := range map[string]float64{"ok": 3, "invalid": 8, "suppressed": 1, "not_found": 1} {
		if got := counter(h.srv.metrics.rows, "spend", "1", st); got != n {
			t.Errorf("%s rows counted %v, want %v", st, got, n)
		}
	}
}

// TestPredictOutputs: a regression row has its value; a binary classifier's its probability
// and the class label of its classification output; contributions come largest first, as many
// as asked, with the baseline and without a value for an imputed input.
func TestPredictOutputs(t *testing.T) {
	h := newHarness(t, batch.DefaultOptions(), linearModel(t),
		served{live("buy", modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, 1, 1), []*modelv1.ModelArtifact{scoringtest.Classifier(t, "buy", 1)}})
	ctx := testContext(t)
	resp, err := h.srv.Predict(ctx, &servingv1.PredictRequest{Model: ref("buy"), Instances: byUser("c1", "c2")})
	if err != nil {
		t.Fatal(err)
	}
	sigmoid := func(z float64) float64 { return 1 / (1 + math.Exp(-z)) }
	for i, w := range []struct {
		score float64
		label string
	}{{-1, "no"}, {1, "yes"}} {
		p := resp.GetPredictions()[i]
		if math.Abs(p.GetScore()-w.score) > 1e-9 || p.Probability == nil || math.Abs(p.GetProbability()-sigmoid(w.score)) > 1e-9 ||
			p.GetLabel().GetStringValue() != w.label || p.Value != nil {
			t.Errorf("classifier row %d: score %v probability %v label %v value %v; want %v, %v, %s and no value",
				i, p.GetScore(), p.Probability, p.GetLabel(), p.Value, w.score, sigmoid(w.score), w.label)
		}
	}

	resp, err = h.srv.Predict(ctx, &servingv1.PredictRequest{Model: ref("spend"), Instances: byUser("c1"), IncludeContributions: true, MaxContributions: 2})
	if err != nil {
		t.Fatal(err)
	}
	p := resp.GetPredictions()[0]
	if p.Value == nil || p.GetValue() != p.GetScore() || p.Probability != nil || p.GetLabel() != nil {
		t.Errorf("regression row: value %v score %v probability %v label %v; want the score as value and nothing else", p.Value, p.GetScore(), p.Probability, p.GetLabel())
	}
	ex := p.GetExplanation()
	var names []string
	for _, c := range ex.GetContributions() {
		names = append(names, c.GetFeature())
	}
	if ex.GetBaseline() != 1 || !slices.Equal(names, []string{"spend", "age"}) ||
		ex.GetContributions()[0].GetValue().GetNumberValue() != 4 || ex.GetContributions()[1].GetValue().GetIntValue() != 30 {
		t.Errorf("explanation %v, want baseline 1, then spend (4) and age (30)", ex)
	}
	resp, err = h.srv.Predict(ctx, &servingv1.PredictRequest{Model: ref("spend"), Instances: byUser("c1"), IncludeContributions: true})
	if err != nil {
		t.Fatal(err)
	}
	cs := resp.GetPredictions()[0].GetExplanation().GetContributions()
	if len(cs) != 3 || cs[2].GetFeature() != "bonus" || cs[2].GetValue() != nil || cs[2].GetContribution() != 0 {
		t.Errorf("every contribution: %v, want bonus last, imputed, without a value", cs)
	}
	if resp, _ := h.srv.Predict(ctx, &servingv1.PredictRequest{Model: ref("spend"), Instances: byUser("c1")}); resp.GetPredictions()[0].GetExplanation() != nil {
		t.Error("an explanation nobody asked for")
	}
}

// TestPredictRoutesByTrafficSplit: each customer goes to the live version its stable hash
// selects, rows without a customer to the version of the largest share, and a pinned version
// or an alias takes every row.
func TestPredictRoutesByTrafficSplit(t *testing.T) {
	rm := live("split", regression, 1, 50, 2, 50)
	rm.Aliases = map[string]int64{"stable": 2}
	h := newHarness(t, batch.DefaultOptions(), served{rm, []*modelv1.ModelArtifact{scoringtest.Linear(t, "split", 1), scoringtest.Linear(t, "split", 2)}})
	ctx := testContext(t)
	inline := map[string]*commonv1.Value{"age": integer(1), "spend": num(0)}
	var insts []*servingv1.Instance
	for i := range 40 {
		insts = append(insts, &servingv1.Instance{UserId: "user-" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Features: inline})
	}
	insts = append(insts, &servingv1.Instance{Features: inline})
	for _, c := range []struct {
		name string
		ref  *commonv1.ModelRef
		want func(inst *servingv1.Instance) int64
	}{
		{"live split", ref("split"), func(inst *servingv1.Instance) int64 {
			if inst.GetUserId() == "" || models.Hash(inst.GetUserId())%100 < 50 {
				return 1
			}
			return 2
		}},
		{"pinned", &commonv1.ModelRef{Name: "split", Selector: &commonv1.ModelRef_Version{Version: 1}}, func(*servingv1.Instance) int64 { return 1 }},
		{"alias", &commonv1.ModelRef{Name: "split", Selector: &commonv1.ModelRef_Alias{Alias: "stable"}}, func(*servingv1.Instance) int64 { return 2 }},
	} {
		resp, err := h.srv.Predict(ctx, &servingv1.PredictRequest{Model: c.ref, Instances: insts})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int64]int{}
		for i, p := range resp.GetPredictions() {
			if want := c.want(insts[i]); p.GetModelVersion() != want || p.GetStatus() != okStatus {
				t.Errorf("%s: instance %d (%q) answered by version %d (%v), want %d", c.name, i, insts[i].GetUserId(), p.GetModelVersion(), p.GetStatus(), want)
			}
			seen[p.GetModelVersion()]++
		}
		if c.name == "live split" && (seen[1] == 0 || seen[2] == 0) {
			t.Errorf("the split sent every customer to one version: %v", seen)
		}
	}
}

// TestPredictRefusedByAFullQueue: a request whose tasks do not fit in the queue is
// RESOURCE_EXHAUSTED, and leaves nothing behind: the next one is answered.
func TestPredictRefusedByAFullQueue(t *testing.T) {
	opts := batch.DefaultOptions()
	opts.MaxBatchSize, opts.MaxQueue = 1, 2
	h := newHarness(t, opts, linearModel(t))
	ctx := testContext(t)
	_, err := h.srv.Predict(ctx, &servingv1.PredictRequest{Model: ref("spend"), Instances: byUser("c1", "c2", "c1")})
	if r := refusal(err); r.code != codes.ResourceExhausted || r.reason != ReasonQueueFull {
		t.Errorf("three tasks for a queue of two: %v %s, want RESOURCE_EXHAUSTED %s", r.code, r.reason, ReasonQueueFull)
	}
	if resp, err := h.srv.Predict(ctx, &servingv1.PredictRequest{Model: ref("spend"), Instances: byUser("c1")}); err != nil || resp.GetPredictions()[0].GetStatus() != okStatus {
		t.Errorf("the next request: %v, %v", resp, err)
	}
}

// TestPredictHidesTheFeatureServicesFailure: a failed lookup is UNAVAILABLE with the
// service's own message, not the feature service's.
func TestPredictHidesTheFeatureServicesFailure(t *testing.T) {
	h := newHarness(t, batch.DefaultOptions(), linearModel(t))
	h.fs.Fail(status.Error(codes.Internal, "etcdserver: secret internal detail"))
	_, err := h.srv.Predict(testContext(t), &servingv1.PredictRequest{Model: ref("spend"), Instances: byUser("c1")})
	r := refusal(err)
	if r.code != codes.Unavailable || r.reason != ReasonFeatureLookup || strings.Contains(r.message, "secret") || !strings.Contains(r.message, lookupFailed) {
		t.Errorf("%v %s %q, want UNAVAILABLE %s with its own message", r.code, r.reason, r.message, ReasonFeatureLookup)
	}
}

// TestPredictScoresShadowsOnTheSide: a shadow version scores the same rows in the background,
// counted and compared with the live scores, and never answers.
func TestPredictScoresShadowsOnTheSide(t *testing.T) {
	rm := live("shadowed", regression, 1, 1)
	rm.Shadow = &modelv1.ShadowVersions{Versions: []int64{2}}
	h := newHarness(t, batch.DefaultOptions(), served{rm, []*modelv1.ModelArtifact{scoringtest.Linear(t, "shadowed", 1), scoringtest.Linear(t, "shadowed", 2)}})
	resp, err := h.srv.Predict(testContext(t), &servingv1.PredictRequest{Model: ref("shadowed"), Instances: byUser("c1", "c2", "nobody")})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range resp.GetPredictions() {
		if p.GetStatus() == okStatus && p.GetModelVersion() != 1 {
			t.Errorf("instance %d answered by version %d, want the live version 1", i, p.GetModelVersion())
		}
	}
	shadow := h.srv.metrics.shadow
	deadline := time.Now().Add(time.Minute)
	for counter(shadow, "shadowed", "2", "ok") != 2 || counter(shadow, "shadowed", "2", "not_found") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the shadow's rows were not counted: ok %v, not found %v; want 2 and 1",
				counter(shadow, "shadowed", "2", "ok"), counter(shadow, "shadowed", "2", "not_found"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := testutil.CollectAndCount(h.srv.metrics.diff); n != 1 {
		t.Errorf("%d score difference series, want the shadow's", n)
	}
}

// TestPredictOfAGoneCaller: a request whose caller has gone ends with CANCELED.
func TestPredictOfAGoneCaller(t *testing.T) {
	h := newHarness(t, batch.DefaultOptions(), linearModel(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := h.srv.Predict(ctx, &servingv1.PredictRequest{Model: ref("spend"), Instances: byUser("c1")})
	if code := status.Code(err); code != codes.Canceled {
		t.Errorf("%v, want CANCELED", err)
	}
}
