package serving

import (
	"errors"
	"math"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/testenv"
)

// TestConcurrentPredictsShareLookups: 64 concurrent Predict calls by user id make far fewer
// feature lookups than calls, counted both in serving and by the feature service itself, and
// each reply is the training side's score of that customer. The first lookup is held until
// the other calls have arrived (a feature service slower than the callers), so that a loaded
// test machine, which may stagger the callers, cannot make them look sequential.
func TestConcurrentPredictsShareLookups(t *testing.T) {
	b := sharedBank(t)
	b.register(t, "bank-lookups", testenv.Routing{Live: map[int64]uint32{1: 1}}, b.v1)
	in := startServing(t, b.env, nil)
	want := b.trainingScores(t, b.s1)

	const calls = 64
	before := b.env.FeatureCalls(t, "GetOnlineFeatures")
	served := in.concurrently(t, "bank-lookups", calls, func(c int) error {
		row := b.data.Test[c*37%len(b.data.Test)]
		id := b.data.Rows[row].GetEntity().GetId()
		resp, err := in.client.Predict(ctxT(t, 10*time.Second), &servingv1.PredictRequest{Model: ref("bank-lookups"), Instances: byUser(id)})
		if err != nil {
			return err
		}
		p := resp.GetPredictions()[0]
		if p.GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_OK || p.GetModelVersion() != 1 {
			return errors.New("not OK: " + p.String())
		}
		if !close12(p.GetScore(), want.score[row]) || !close12(p.GetProbability(), want.prob[row]) {
			t.Errorf("customer %s: score %v probability %v, training side %v %v", id, p.GetScore(), p.GetProbability(), want.score[row], want.prob[row])
		}
		return nil
	})
	handled := b.env.FeatureCalls(t, "GetOnlineFeatures") - before
	t.Logf("%d concurrent Predict calls made %d feature lookups (the feature service handled %v)", calls, served, handled)
	if served > calls/4 || handled > calls/4 {
		t.Errorf("%d calls made %d lookups (feature service: %v), want at most %d", calls, served, handled, calls/4)
	}
	if got := in.metric(t, "bullseye_serving_feature_lookups_total", map[string]string{"feature_set": bankSet}); got < float64(served) {
		t.Errorf("lookup metric %v < %d lookups", got, served)
	}
}

// TestNoTrainingServingSkew: Predict through the mesh, by user id and by inline features,
// gives the scores pkg/artifact's scorer gives the same rows as training scores them
// (columnar, from the training set), within 1e-12; requests of 1,000 instances are split into
// batches of at most the model's max_batch_size.
func TestNoTrainingServingSkew(t *testing.T) {
	b := sharedBank(t)
	b.register(t, "bank-skew", testenv.Routing{Live: map[int64]uint32{1: 1}}, b.v1)
	in := startServing(t, b.env, func(c *Config) {
		c.ModelBatching = map[string]Batching{"bank-skew": {MaxBatchSize: 100, MaxQueue: 64, MaxConcurrentBatches: 1}}
	})
	want := b.trainingScores(t, b.s1)

	worst := 0.0
	compared := 0
	const per = 1000
	test := b.data.Test
	for start := 0; start < len(test); start += per {
		rows := test[start:min(len(test), start+per)]
		req := &servingv1.PredictRequest{Model: ref("bank-skew")}
		for k, i := range rows {
			inst := &servingv1.Instance{UserId: b.data.Rows[i].GetEntity().GetId()}
			if k%2 == 1 { // every other row inline only
				inst = &servingv1.Instance{Features: b.inline(i)}
			}
			req.Instances = append(req.Instances, inst)
		}
		resp, err := in.client.Predict(ctxT(t, 30*time.Second), req)
		if err != nil {
			t.Fatal(err)
		}
		for k, p := range resp.GetPredictions() {
			i := rows[k]
			if p.GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_OK {
				t.Fatalf("row %d: %v", i, p)
			}
			d := math.Max(math.Abs(p.GetScore()-want.score[i]), math.Abs(p.GetProbability()-want.prob[i]))
			worst = math.Max(worst, d)
			compared++
			if wantLabel := want.prob[i] >= 0.5; p.GetLabel().GetBoolValue() != wantLabel {
				t.Errorf("row %d: label %v, want %v", i, p.GetLabel(), wantLabel)
			}
			if k == 0 {
				checkOutputs(t, p, "score", "probability", "label")
			}
		}
	}
	t.Logf("%d TEST rows: largest difference from the training side %g", compared, worst)
	if worst > 1e-12 {
		t.Errorf("serving differs from training by up to %g", worst)
	}
	count, upTo128 := in.histogramBucket(t, "bullseye_serving_batch_size", map[string]string{"model": "bank-skew"}, 128)
	if count < float64(len(test))/100 || count != upTo128 {
		t.Errorf("%v batches, %v of at most 128 rows: want every batch within max_batch_size 100", count, upTo128)
	}
}

// TestSuppressedAndUnknownCustomers: a customer who objected or was erased is SUPPRESSED, with
// no score, even with inline features; an unknown customer is NOT_FOUND unless features are
// given inline; one bad row never fails its neighbours.
func TestSuppressedAndUnknownCustomers(t *testing.T) {
	b := sharedBank(t)
	b.register(t, "bank-consent", testenv.Routing{Live: map[int64]uint32{1: 1}}, b.v1)
	in := startServing(t, b.env, nil)
	row := b.data.Test[0]
	ok := b.data.Rows[row].GetEntity().GetId()
	str := func(s string) *commonv1.Value {
		return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
	}
	resp, err := in.client.Predict(ctxT(t, 10*time.Second), &servingv1.PredictRequest{Model: ref("bank-consent"), Instances: []*servingv1.Instance{
		{UserId: testenv.BankID(objected[0])},
		{UserId: testenv.BankID(erased[0])},
		{UserId: testenv.BankID(objected[1]), Features: b.inline(row)},
		{UserId: ok},
		{UserId: "nobody-knows-me"},
		{UserId: "nobody-knows-me", Features: b.inline(row)},
		{Features: map[string]*commonv1.Value{"age": str("forty")}},
		{},
	}})
	if err != nil {
		t.Fatal(err)
	}
	const (
		okS  = servingv1.PredictionStatus_PREDICTION_STATUS_OK
		supp = servingv1.PredictionStatus_PREDICTION_STATUS_SUPPRESSED
		nf   = servingv1.PredictionStatus_PREDICTION_STATUS_NOT_FOUND
		inv  = servingv1.PredictionStatus_PREDICTION_STATUS_INVALID
	)
	tests := []struct {
		status servingv1.PredictionStatus
		field  string
		reason string
	}{
		{supp, "", ""}, {supp, "", ""}, {supp, "", ""}, {okS, "", ""},
		{nf, "instances[4].user_id", "UNKNOWN_CUSTOMER"}, {okS, "", ""},
		{inv, "instances[6].features.age", "WRONG_TYPE"}, {inv, "instances[7]", "EMPTY_INSTANCE"},
	}
	want := b.trainingScores(t, b.s1)
	for i, tt := range tests {
		p := resp.GetPredictions()[i]
		if p.GetStatus() != tt.status || p.GetProblem().GetField() != tt.field || p.GetProblem().GetReason() != tt.reason {
			t.Errorf("row %d: %v %v, want %v %q %q", i, p.GetStatus(), p.GetProblem(), tt.status, tt.field, tt.reason)
		}
		if tt.status != okS && (p.GetScore() != 0 || p.Probability != nil || p.GetModelVersion() != 0) {
			t.Errorf("row %d (%v) carries a score: %v", i, tt.status, p)
		}
		if p.GetModelName() != "bank-consent" {
			t.Errorf("row %d model name %q", i, p.GetModelName())
		}
	}
	for _, i := range []int{3, 5} {
		if got := resp.GetPredictions()[i].GetScore(); !close12(got, want.score[row]) {
			t.Errorf("row %d score %v, want %v", i, got, want.score[row])
		}
	}
}

// TestContributions: a linear model explains its score: baseline plus the contributions is
// the score; they come largest first, at most max_contributions, with the raw values used.
func TestContributions(t *testing.T) {
	b := sharedBank(t)
	b.register(t, "bank-why", testenv.Routing{Live: map[int64]uint32{1: 1}}, b.v1)
	in := startServing(t, b.env, nil)
	row := b.data.Test[1]
	id := b.data.Rows[row].GetEntity().GetId()
	override := &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: 77}}
	for _, most := range []int32{0, 3} {
		resp, err := in.client.Predict(ctxT(t, 10*time.Second), &servingv1.PredictRequest{
			Model:                ref("bank-why"),
			Instances:            []*servingv1.Instance{{UserId: id, Features: map[string]*commonv1.Value{"age": override}}},
			IncludeContributions: true,
			MaxContributions:     most,
		})
		if err != nil {
			t.Fatal(err)
		}
		p := resp.GetPredictions()[0]
		ex := p.GetExplanation()
		wantN := len(b.data.Inputs)
		if most > 0 {
			wantN = int(most)
		}
		if len(ex.GetContributions()) != wantN {
			t.Fatalf("max %d: %d contributions, want %d", most, len(ex.GetContributions()), wantN)
		}
		sum := ex.GetBaseline()
		for k, c := range ex.GetContributions() {
			sum += c.GetContribution()
			if k > 0 && math.Abs(c.GetContribution()) > math.Abs(ex.GetContributions()[k-1].GetContribution()) {
				t.Errorf("contributions not in decreasing size at %d", k)
			}
			if c.GetFeature() == "age" && c.GetValue().GetIntValue() != 77 {
				t.Errorf("age contribution's value %v, want the inline 77", c.GetValue())
			}
		}
		if most == 0 && math.Abs(sum-p.GetScore()) > 1e-9 {
			t.Errorf("baseline + contributions = %v, score %v", sum, p.GetScore())
		}
	}
}

// TestBadRequests: whole-request mistakes are INVALID_ARGUMENT with a BadRequest naming the
// fields; a model not loaded here is NOT_FOUND with reason MODEL_NOT_LOADED.
func TestBadRequests(t *testing.T) {
	b := sharedBank(t)
	b.register(t, "bank-bad", testenv.Routing{Live: map[int64]uint32{1: 1}}, b.v1)
	in := startServing(t, b.env, nil)
	many := make([]*servingv1.Instance, MaxInstancesForTest+1)
	for i := range many {
		many[i] = &servingv1.Instance{UserId: "x"}
	}
	tests := []struct {
		name   string
		req    *servingv1.PredictRequest
		code   codes.Code
		fields []string
		reason string
	}{
		{"no model", &servingv1.PredictRequest{Instances: byUser("a")}, codes.InvalidArgument, []string{"model.name"}, "INVALID_ARGUMENT"},
		{"no instances", &servingv1.PredictRequest{Model: ref("bank-bad")}, codes.InvalidArgument, []string{"instances"}, "INVALID_ARGUMENT"},
		{"too many", &servingv1.PredictRequest{Model: ref("bank-bad"), Instances: many}, codes.InvalidArgument, []string{"instances"}, "INVALID_ARGUMENT"},
		{"bad version", &servingv1.PredictRequest{Model: &commonv1.ModelRef{Name: "bank-bad", Selector: &commonv1.ModelRef_Version{Version: 0}}, Instances: byUser("a")},
			codes.InvalidArgument, []string{"model.version"}, "INVALID_ARGUMENT"},
		{"unknown model", &servingv1.PredictRequest{Model: ref("no-such-model"), Instances: byUser("a")}, codes.NotFound, nil, "MODEL_NOT_LOADED"},
		{"version not loaded", &servingv1.PredictRequest{Model: &commonv1.ModelRef{Name: "bank-bad", Selector: &commonv1.ModelRef_Version{Version: 9}}, Instances: byUser("a")},
			codes.NotFound, nil, "MODEL_NOT_LOADED"},
		{"unknown alias", &servingv1.PredictRequest{Model: &commonv1.ModelRef{Name: "bank-bad", Selector: &commonv1.ModelRef_Alias{Alias: "gold"}}, Instances: byUser("a")},
			codes.NotFound, nil, "MODEL_NOT_LOADED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := in.client.Predict(ctxT(t, 10*time.Second), tt.req)
			st := status.Convert(err)
			if st.Code() != tt.code {
				t.Fatalf("code %v (%v), want %v", st.Code(), err, tt.code)
			}
			var fields []string
			reason := ""
			for _, d := range st.Details() {
				switch d := d.(type) {
				case *errdetails.BadRequest:
					for _, v := range d.GetFieldViolations() {
						fields = append(fields, v.GetField())
					}
				case *errdetails.ErrorInfo:
					reason = d.GetReason()
				}
			}
			if reason != tt.reason || len(fields) != len(tt.fields) {
				t.Fatalf("details: reason %q fields %v, want %q %v", reason, fields, tt.reason, tt.fields)
			}
			for i := range fields {
				if fields[i] != tt.fields[i] {
					t.Errorf("field %q, want %q", fields[i], tt.fields[i])
				}
			}
		})
	}
}

// close12 reports whether two scores agree within 1e-12. Bit-equality is not to be had across
// batches: gonum's Gemv kernel sums rows in blocks of four and the remainder rows otherwise, so
// a row's last bit depends on its place in its batch.
func close12(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }

// MaxInstancesForTest mirrors the API's limit of instances per Predict.
const MaxInstancesForTest = 10_000
