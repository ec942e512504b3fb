package serving

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/services/serving/internal/testenv"
)

func numV(x float64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: x}}
}
func intV(x int64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: x}}
}
func strV(s string) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
}
func boolV(b bool) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: b}}
}
func timeV(t time.Time) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_TimeValue{TimeValue: timestamppb.New(t)}}
}

func traitFeature(name string, typ commonv1.ValueType, def *commonv1.Value) *featurev1.Feature {
	return &featurev1.Feature{Name: name, Type: typ, DefaultValue: def,
		Source: &featurev1.Feature_Trait{Trait: &featurev1.TraitFeature{Trait: name}}}
}

// TestLookedUpValuesOfEveryType: features of every type (NUMBER, INT, STRING, BOOL, TIME,
// some with defaults) fetched by Predict from the feature service give the values and the
// scores that the same values give inline, in the same batch, as the feature service's rows
// layout states them: BOOL and TIME values keep their kinds, a NULL or unknown customer's
// cells their defaults (or nothing). Explanations carry those values, even after later batches
// of the same request reused the batch's storage. An objected customer is SUPPRESSED, an
// unknown one without inline features NOT_FOUND. Audience filters on looked-up BOOL and TIME
// features, and IS_NULL on a feature with a default, select the customers they should.
func TestLookedUpValuesOfEveryType(t *testing.T) {
	env := testenv.New(t, &binaries)
	t.Cleanup(env.Close)
	ctx := ctxT(t, 3*time.Minute)
	const (
		set   = "kinds"
		model = "kinds-model"
		n     = 150
	)
	id := func(i int) string { return fmt.Sprintf("kinds-%d", i) }
	const nobody = "kinds-nobody"
	objectedID := id(8) // without a tier: in the "tier is null" segment

	// Customers, some without some traits (NULL online: the default, or nothing).
	rng := rand.New(rand.NewPCG(3, 5))
	at := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	tiers := []string{"gold", "silver", "bronze"}
	traits := make([]map[string]*commonv1.Value, n)
	p := env.Publisher()
	for i := range n {
		tr := map[string]*commonv1.Value{}
		if i%7 != 3 {
			tr["spend"] = numV(math.Round(rng.NormFloat64()*5000+10000) / 100)
		}
		if i%5 != 1 {
			tr["visits"] = intV(int64(rng.IntN(30)))
		}
		if i%6 != 2 {
			tr["tier"] = strV(tiers[rng.IntN(len(tiers))])
		}
		if i%4 != 0 {
			tr["vip"] = boolV(rng.IntN(2) == 1)
		}
		switch {
		case i%9 == 4:
		case i%10 == 6: // before 1970: negative Unix nanoseconds, with a fraction of a second
			tr["joined"] = timeV(time.Date(1965, 3, 4, 5, 6, 7, 123456789, time.UTC).Add(time.Duration(i) * time.Hour))
		default:
			tr["joined"] = timeV(at.Add(-time.Duration(rng.IntN(3000*24))*time.Hour - time.Duration(rng.IntN(1e9))))
		}
		traits[i] = tr
		if err := p.Publish(testenv.Identify(id(i), fmt.Sprintf("kinds-%d", i), at, tr, "", 0)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	defaultJoined := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	fs, err := env.ApplyReady(ctx, &featurev1.FeatureSet{Name: set, Features: []*featurev1.Feature{
		traitFeature("spend", commonv1.ValueType_VALUE_TYPE_NUMBER, numV(0)),
		traitFeature("visits", commonv1.ValueType_VALUE_TYPE_INT, nil),
		traitFeature("tier", commonv1.ValueType_VALUE_TYPE_STRING, strV("none")),
		traitFeature("vip", commonv1.ValueType_VALUE_TYPE_BOOL, boolV(false)),
		traitFeature("joined", commonv1.ValueType_VALUE_TYPE_TIME, timeV(defaultJoined)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(testenv.Consent(objectedID, "kinds-objects", commonv1.ConsentState_CONSENT_STATE_OBJECTED)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := env.WaitConsent(ctx, set, objectedID, commonv1.ConsentState_CONSENT_STATE_OBJECTED); err != nil {
		t.Fatal(err)
	}

	// A logistic regression over the five inputs, on labels planted from them.
	var inputs []*modelv1.InputColumn
	for _, c := range fs.GetColumns() {
		inputs = append(inputs, &modelv1.InputColumn{Name: c.GetName(), Type: c.GetType()})
	}
	table := &ml.Table{}
	for _, in := range inputs {
		col := ml.Column{Name: in.GetName(), Kind: artifact.KindOf(in.GetType())}
		for i := range n {
			v := traits[i][in.GetName()]
			if col.Kind == ml.Numeric {
				x, err := artifact.Number(v, at)
				if err != nil {
					t.Fatal(err)
				}
				col.Numeric = append(col.Numeric, x)
			} else {
				x, err := artifact.Category(v)
				if err != nil {
					t.Fatal(err)
				}
				col.Categorical = append(col.Categorical, x)
			}
		}
		table.Columns = append(table.Columns, col)
	}
	y := make([]float64, n)
	for i := range n {
		z := (traits[i]["spend"].GetNumberValue()-100)/50 + float64(traits[i]["visits"].GetIntValue()-15)/10
		if traits[i]["vip"].GetBoolValue() {
			z++
		}
		if traits[i]["tier"].GetStringValue() == "gold" {
			z++
		}
		if ts := traits[i]["joined"].GetTimeValue(); ts != nil && ts.AsTime().Year() < 2020 {
			z--
		}
		if rng.Float64() < 1/(1+math.Exp(-z)) {
			y[i] = 1
		}
	}
	a, err := testenv.FitLogistic(ctx, table, y, inputs, 1, set, fs.GetVersion())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Register(ctx, model, a, 0.9); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Promote(ctx, model, testenv.Routing{Live: map[int64]uint32{1: 1}}); err != nil {
		t.Fatal(err)
	}
	// Small batches, one at a time: later batches of one request reuse the storage of earlier
	// ones.
	in := startServing(t, env, func(c *Config) {
		c.ModelBatching = map[string]Batching{model: {MaxBatchSize: 16, MaxQueue: 64, MaxConcurrentBatches: 1}}
	})

	// What the feature service says in its rows layout.
	names := make([]string, len(inputs))
	for k, c := range inputs {
		names[k] = c.GetName()
	}
	ids := make([]string, 0, n+1)
	for i := range n {
		ids = append(ids, id(i))
	}
	ids = append(ids, nobody)
	ents := make([]*commonv1.EntityKey, len(ids))
	for i, x := range ids {
		ents[i] = &commonv1.EntityKey{Id: x}
	}
	rowsResp, err := env.Feature.GetOnlineFeatures(ctx, &featurev1.GetOnlineFeaturesRequest{
		FeatureSet: &featurev1.FeatureSetRef{Name: set}, Entities: ents, FeatureNames: names})
	if err != nil {
		t.Fatal(err)
	}
	if len(rowsResp.GetResults()) != len(ids) {
		t.Fatalf("rows layout: %d results for %d entities", len(rowsResp.GetResults()), len(ids))
	}
	rowValues := func(i int) []*commonv1.Value {
		out := make([]*commonv1.Value, len(names))
		for k, fv := range rowsResp.GetResults()[i].GetValues() {
			if fv.GetValue().GetKind() != nil {
				out[k] = fv.GetValue()
			}
		}
		return out
	}
	inline := func(vals []*commonv1.Value) map[string]*commonv1.Value {
		m := map[string]*commonv1.Value{}
		for k, v := range vals {
			if v != nil {
				m[names[k]] = v
			}
		}
		return m
	}
	// The unknown customer's cells are the defaults, visits none.
	want := []*commonv1.Value{numV(0), nil, strV("none"), boolV(false), timeV(defaultJoined)}
	for k, v := range rowValues(n) {
		if !proto.Equal(v, want[k]) {
			t.Fatalf("rows layout: an unknown customer's %s is %v, want the default %v", names[k], v, want[k])
		}
	}

	// Pairs of instances, each in one batch: by user id, and inline with the rows layout's
	// values. The unknown customer is given visits inline (the rest comes from the lookup's
	// defaults); then the unknown customer alone.
	type pair struct {
		i    int               // index in ids
		vals []*commonv1.Value // what the by-user instance should be scored with
		user *servingv1.Instance
	}
	var pairs []pair
	req := &servingv1.PredictRequest{Model: ref(model), IncludeContributions: true}
	for i := range ids {
		vals := rowValues(i)
		user := &servingv1.Instance{UserId: ids[i]}
		if ids[i] == nobody {
			vals[1] = intV(12)
			user.Features = map[string]*commonv1.Value{"visits": intV(12)}
		}
		pairs = append(pairs, pair{i, vals, user})
		req.Instances = append(req.Instances, user, &servingv1.Instance{Features: inline(vals)})
	}
	req.Instances = append(req.Instances, &servingv1.Instance{UserId: nobody})
	resp, err := in.client.Predict(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	preds := resp.GetPredictions()
	if len(preds) != len(req.Instances) {
		t.Fatalf("%d predictions for %d instances", len(preds), len(req.Instances))
	}
	const (
		okS  = servingv1.PredictionStatus_PREDICTION_STATUS_OK
		supp = servingv1.PredictionStatus_PREDICTION_STATUS_SUPPRESSED
	)
	contribs := make([]map[float64]bool, len(names))
	for k := range contribs {
		contribs[k] = map[float64]bool{}
	}
	byUser := map[string]*servingv1.Prediction{}
	for k, pr := range pairs {
		u, l := preds[2*k], preds[2*k+1]
		if l.GetStatus() != okS {
			t.Fatalf("%s inline: %v", ids[pr.i], l)
		}
		if ids[pr.i] == objectedID {
			if u.GetStatus() != supp {
				t.Errorf("objected customer %s: %v, want SUPPRESSED", objectedID, u)
			}
			continue
		}
		if u.GetStatus() != okS {
			t.Fatalf("%s by user id: %v", ids[pr.i], u)
		}
		byUser[ids[pr.i]] = u
		if !close12(u.GetScore(), l.GetScore()) || !close12(u.GetProbability(), l.GetProbability()) {
			t.Errorf("%s: by user id score %v probability %v, inline with the rows layout's values %v %v",
				ids[pr.i], u.GetScore(), u.GetProbability(), l.GetScore(), l.GetProbability())
		}
		got := map[string]*servingv1.FeatureContribution{}
		for _, c := range u.GetExplanation().GetContributions() {
			got[c.GetFeature()] = c
		}
		for j, name := range names {
			c, ok := got[name]
			if !ok {
				t.Fatalf("%s: no contribution of %s", ids[pr.i], name)
			}
			if !proto.Equal(c.GetValue(), pr.vals[j]) {
				t.Errorf("%s: %s explained with value %v, the feature service says %v", ids[pr.i], name, c.GetValue(), pr.vals[j])
			}
			contribs[j][c.GetContribution()] = true
		}
	}
	for j, name := range names {
		if len(contribs[j]) < 2 {
			t.Errorf("every customer's %s contributes %v: the scores do not depend on it", name, contribs[j])
		}
	}
	last := preds[len(preds)-1]
	if last.GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_NOT_FOUND || last.GetProblem().GetReason() != "UNKNOWN_CUSTOMER" {
		t.Errorf("unknown customer without inline features: %v", last)
	}

	// Audience filters on looked-up features.
	cond := func(feature string, op commonv1.ComparisonOperator, v *commonv1.Value) *servingv1.AudienceFilter {
		return &servingv1.AudienceFilter{Kind: &servingv1.AudienceFilter_Condition{Condition: &servingv1.FeatureCondition{Feature: feature, Operator: op, Value: v}}}
	}
	since := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	segments := []struct {
		name   string
		filter *servingv1.AudienceFilter
		match  func(tr map[string]*commonv1.Value) bool
	}{
		{"vip and joined since 2020", &servingv1.AudienceFilter{Kind: &servingv1.AudienceFilter_AllOf{AllOf: &servingv1.AudienceFilterList{Filters: []*servingv1.AudienceFilter{
			cond("vip", commonv1.ComparisonOperator_COMPARISON_OPERATOR_EQ, boolV(true)),
			cond("joined", commonv1.ComparisonOperator_COMPARISON_OPERATOR_GE, timeV(since)),
		}}}}, func(tr map[string]*commonv1.Value) bool {
			return tr["vip"].GetBoolValue() && tr["joined"] != nil && !tr["joined"].GetTimeValue().AsTime().Before(since)
		}},
		// A NULL value is not present, whatever its default.
		{"tier is null", cond("tier", commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NULL, nil), func(tr map[string]*commonv1.Value) bool {
			return tr["tier"] == nil
		}},
		{"spend over 100, not vip", &servingv1.AudienceFilter{Kind: &servingv1.AudienceFilter_AllOf{AllOf: &servingv1.AudienceFilterList{Filters: []*servingv1.AudienceFilter{
			cond("spend", commonv1.ComparisonOperator_COMPARISON_OPERATOR_GT, numV(100)),
			cond("vip", commonv1.ComparisonOperator_COMPARISON_OPERATOR_NE, boolV(true)),
		}}}}, func(tr map[string]*commonv1.Value) bool {
			return tr["spend"] != nil && tr["spend"].GetNumberValue() > 100 && tr["vip"] != nil && !tr["vip"].GetBoolValue()
		}},
	}
	for _, sg := range segments {
		res := scoreAudience(t, in, &servingv1.ScoreAudienceRequest{Model: ref(model), Segment: sg.filter})
		wantIDs := map[string]bool{}
		matched, suppressed := 0, 0
		for i := range n {
			if !sg.match(traits[i]) {
				continue
			}
			matched++
			if id(i) == objectedID {
				suppressed++
				continue
			}
			wantIDs[id(i)] = true
		}
		if len(wantIDs) < 3 {
			t.Fatalf("%s: only %d customers match: a weak test", sg.name, len(wantIDs))
		}
		s := res.summary
		if len(res.rows) != len(wantIDs) || s.GetMatched() != int64(matched) || s.GetSuppressed() != int64(suppressed) {
			t.Errorf("%s: %d rows, summary %v; want %d rows, %d matched, %d suppressed", sg.name, len(res.rows), s, len(wantIDs), matched, suppressed)
		}
		for _, r := range res.rows {
			if !wantIDs[r.GetEntityId()] {
				t.Errorf("%s: customer %s is outside the segment", sg.name, r.GetEntityId())
				continue
			}
			// Scored a moment after Predict: TIME inputs are a little older.
			if u := byUser[r.GetEntityId()]; math.Abs(r.GetProbability()-u.GetProbability()) > 1e-6 {
				t.Errorf("%s: customer %s probability %v, Predict %v", sg.name, r.GetEntityId(), r.GetProbability(), u.GetProbability())
			}
		}
		t.Logf("segment %s: %d customers, %d suppressed", sg.name, len(res.rows), suppressed)
	}
}
