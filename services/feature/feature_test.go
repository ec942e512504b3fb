package feature_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/testenv"
)

// binary is the feature service binary the process tests run.
var binary string

func TestMain(m *testing.M) {
	var bins embeddedtest.Binaries
	var err error
	if binary, err = bins.Path("bullseye-feature"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	bins.Remove()
	if code == 0 {
		if err := goleak.Find(embeddedtest.GoleakOptions()...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func days(n float64) time.Duration { return time.Duration(n * float64(24*time.Hour)) }

func agg(name string, a featurev1.Aggregation, window time.Duration, f func(*featurev1.AggregateFeature)) *featurev1.Feature {
	af := &featurev1.AggregateFeature{Aggregation: a}
	if window > 0 {
		af.Window = durationpb.New(window)
	}
	if f != nil {
		f(af)
	}
	return &featurev1.Feature{Name: name, Source: &featurev1.Feature_Aggregate{Aggregate: af}}
}

func orders() *featurev1.EventFilter {
	return &featurev1.EventFilter{Names: []string{"Order Completed"}}
}

func value(v *commonv1.Value) any {
	switch k := v.GetKind().(type) {
	case *commonv1.Value_NumberValue:
		return k.NumberValue
	case *commonv1.Value_IntValue:
		return k.IntValue
	case *commonv1.Value_StringValue:
		return k.StringValue
	case *commonv1.Value_BoolValue:
		return k.BoolValue
	case *commonv1.Value_TimeValue:
		return k.TimeValue.AsTime()
	}
	return nil
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func fixedCutoff(t time.Time) *featurev1.CutoffSpec {
	return &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_FixedTime{FixedTime: timestamppb.New(t)}}
}

// TestLeakage places events and trait updates one tick (1 ns) before, at
// and one tick after a cutoff, and at the edges of a window: features see
// only what is strictly before the cutoff and at or after the window's
// start, and the outcome label only what is at or after the cutoff.
func TestLeakage(t *testing.T) {
	env := testenv.New(t)
	svc := env.Start(env.Config())
	cut := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	tick := time.Nanosecond
	week := 7 * 24 * time.Hour
	env.MustPublish(
		testenv.Track("c1", "m-before", "Order Completed", cut.Add(-tick), testenv.F(1), "", nil),
		testenv.Track("c1", "m-at", "Order Completed", cut, testenv.F(10), "", nil),
		testenv.Track("c1", "m-after", "Order Completed", cut.Add(tick), testenv.F(100), "", nil),
		testenv.Track("c1", "m-window-start", "Order Completed", cut.Add(-week), testenv.F(1000), "", nil),
		testenv.Track("c1", "m-window-out", "Order Completed", cut.Add(-week-tick), testenv.F(10000), "", nil),
		testenv.Identify("c1", "t-before", cut.Add(-tick), map[string]*commonv1.Value{"plan": testenv.Str("before")}),
		testenv.Identify("c1", "t-at", cut, map[string]*commonv1.Value{"plan": testenv.Str("at")}),
		testenv.Track("c1", "m-horizon-end", "Order Completed", cut.Add(week-tick), testenv.F(100000), "", nil),
		testenv.Track("c1", "m-horizon-out", "Order Completed", cut.Add(week), testenv.F(1000000), "", nil),
	)
	testenv.ApplyReady(t, svc.Client, &featurev1.FeatureSet{
		Name: "leakage",
		Features: []*featurev1.Feature{
			agg("orders", featurev1.Aggregation_AGGREGATION_COUNT, 0, func(a *featurev1.AggregateFeature) { a.Filter = orders() }),
			agg("spend", featurev1.Aggregation_AGGREGATION_SUM, 0, nil),
			agg("spend_7d", featurev1.Aggregation_AGGREGATION_SUM, week, nil),
			agg("seconds_since_last", featurev1.Aggregation_AGGREGATION_DAYS_SINCE_LAST, 0, nil),
			{Name: "plan", Type: commonv1.ValueType_VALUE_TYPE_STRING, Source: &featurev1.Feature_Trait{Trait: &featurev1.TraitFeature{Trait: "plan"}}},
		},
	})
	ts, err := testenv.Build(ctxT(t, 30*time.Second), svc.Client, &featurev1.BuildTrainingSetRequest{Spec: &featurev1.TrainingSetSpec{
		FeatureSet: &featurev1.FeatureSetRef{Name: "leakage"},
		Label: &featurev1.LabelSpec{Source: &featurev1.LabelSpec_Outcome{Outcome: &featurev1.OutcomeLabel{
			Filter: orders(), Horizon: durationpb.New(week), Aggregation: featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_SUM,
		}}},
		Cutoff: fixedCutoff(cut),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts.Rows) != 1 {
		t.Fatalf("got %d rows, want 1", len(ts.Rows))
	}
	r := ts.Rows[0]
	got := []any{value(r.Features[0]), value(r.Features[1]), value(r.Features[2]), value(r.Features[3]), value(r.Features[4]), value(r.Label)}
	want := []any{
		int64(3),                           // window-out, window-start, before
		float64(10000 + 1000 + 1),          // the same three
		float64(1000 + 1),                  // [cut-7d, cut): window-start and before
		float64(1) / float64(24*time.Hour), // one nanosecond, in days
		"before",
		float64(10 + 100 + 100000), // [cut, cut+7d): at, after, horizon-end
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("column %d = %v, want %v (all: %v)", i, got[i], want[i], got)
		}
	}
	if !r.GetCutoffTime().AsTime().Equal(cut) {
		t.Errorf("cutoff_time = %v, want %v", r.GetCutoffTime().AsTime(), cut)
	}
}

// TestTriggerCutoff makes one row per trigger: the trigger and anything at
// its instant are not features, and the trigger itself is not its outcome.
func TestTriggerCutoff(t *testing.T) {
	env := testenv.New(t)
	svc := env.Start(env.Config())
	t0 := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	env.MustPublish(
		testenv.Track("u", "v1", "Product Viewed", t0, nil, "", nil),
		testenv.Track("u", "x1", "Campaign Exposed", t0.Add(time.Hour), nil, "", nil),
		testenv.Track("u", "v2", "Product Viewed", t0.Add(time.Hour), nil, "", nil),
		testenv.Track("u", "r1", "Campaign Exposed", t0.Add(2*time.Hour), nil, "", nil),
		testenv.Track("u", "x2", "Campaign Exposed", t0.Add(48*time.Hour), nil, "", nil),
	)
	testenv.ApplyReady(t, svc.Client, &featurev1.FeatureSet{Name: "trig", Features: []*featurev1.Feature{
		agg("views", featurev1.Aggregation_AGGREGATION_COUNT, 0, func(a *featurev1.AggregateFeature) {
			a.Filter = &featurev1.EventFilter{Names: []string{"Product Viewed"}}
		}),
	}})
	ts, err := testenv.Build(ctxT(t, 30*time.Second), svc.Client, &featurev1.BuildTrainingSetRequest{Spec: &featurev1.TrainingSetSpec{
		FeatureSet: &featurev1.FeatureSetRef{Name: "trig"},
		Label: &featurev1.LabelSpec{Source: &featurev1.LabelSpec_Outcome{Outcome: &featurev1.OutcomeLabel{
			Filter: &featurev1.EventFilter{Names: []string{"Campaign Exposed", "Product Viewed"}}, Horizon: durationpb.New(3 * time.Hour),
			Aggregation: featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_COUNT,
		}}},
		Cutoff: &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_Trigger{Trigger: &featurev1.TriggerCutoff{
			Filter: &featurev1.EventFilter{Names: []string{"Campaign Exposed"}}, EndTime: timestamppb.New(t0.Add(24 * time.Hour)),
		}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		trigger       string
		views, events any
	}
	var got []row
	for _, r := range ts.Rows {
		got = append(got, row{r.GetTriggerMessageId(), value(r.Features[0]), value(r.Label)})
	}
	want := []row{
		{"x1", int64(1), int64(2)}, // v1 before; v2 and r1 after (x1 itself not)
		{"r1", int64(2), int64(0)}, // v1 and v2 before; nothing after but itself
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rows = %v, want %v", got, want)
	}
}

// windowedFeatures is the feature set of the aggregate tests.
func windowedFeatures() *featurev1.FeatureSet {
	return &featurev1.FeatureSet{
		Name: "windowed",
		Features: []*featurev1.Feature{
			agg("orders_7d", featurev1.Aggregation_AGGREGATION_COUNT, days(7), func(a *featurev1.AggregateFeature) { a.Filter = orders() }),
			agg("spend_30d", featurev1.Aggregation_AGGREGATION_SUM, days(30), func(a *featurev1.AggregateFeature) { a.Filter = orders() }),
			agg("spend_mean", featurev1.Aggregation_AGGREGATION_MEAN, 0, func(a *featurev1.AggregateFeature) { a.Filter = orders() }),
			agg("max_order", featurev1.Aggregation_AGGREGATION_MAX, 0, func(a *featurev1.AggregateFeature) { a.Filter = orders() }),
			agg("min_order_30d", featurev1.Aggregation_AGGREGATION_MIN, days(30), func(a *featurev1.AggregateFeature) { a.Filter = orders() }),
			agg("items", featurev1.Aggregation_AGGREGATION_DISTINCT_COUNT, 0, nil),
			agg("days_since_last_order", featurev1.Aggregation_AGGREGATION_DAYS_SINCE_LAST, 0, func(a *featurev1.AggregateFeature) { a.Filter = orders() }),
			agg("days_since_first_order", featurev1.Aggregation_AGGREGATION_DAYS_SINCE_FIRST, 0, func(a *featurev1.AggregateFeature) { a.Filter = orders() }),
			agg("active_days_tokyo", featurev1.Aggregation_AGGREGATION_DISTINCT_DAYS, 0, func(a *featurev1.AggregateFeature) { a.TimeZone = "Asia/Tokyo" }),
			agg("active_days_utc", featurev1.Aggregation_AGGREGATION_DISTINCT_DAYS, 0, nil),
			agg("big_orders", featurev1.Aggregation_AGGREGATION_COUNT, 0, func(a *featurev1.AggregateFeature) {
				a.Filter = &featurev1.EventFilter{Names: []string{"Order Completed"}, Conditions: []*featurev1.FieldCondition{{
					Field: "value", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_GE, Values: []*commonv1.Value{testenv.Int(50)},
				}}}
			}),
			agg("book_views", featurev1.Aggregation_AGGREGATION_COUNT, 0, func(a *featurev1.AggregateFeature) {
				a.Filter = &featurev1.EventFilter{Names: []string{"Product Viewed"}, Conditions: []*featurev1.FieldCondition{{
					Field: "properties.category", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_IN, Values: []*commonv1.Value{testenv.Str("books")},
				}}}
			}),
			{Name: "plan", Type: commonv1.ValueType_VALUE_TYPE_STRING, MaxAge: durationpb.New(time.Hour),
				Source: &featurev1.Feature_Trait{Trait: &featurev1.TraitFeature{Trait: "plan"}}},
			{Name: "age", Type: commonv1.ValueType_VALUE_TYPE_INT, DefaultValue: testenv.Int(-1),
				Source: &featurev1.Feature_Trait{Trait: &featurev1.TraitFeature{Trait: "age"}}},
		},
	}
}

// history publishes the aggregate tests' events of one customer, placed
// relative to c.
func history(env *testenv.Env, user string, c time.Time) {
	cat := func(s string) map[string]*commonv1.Value {
		return map[string]*commonv1.Value{"category": testenv.Str(s)}
	}
	env.MustPublish(
		testenv.Track(user, user+"-e1", "Order Completed", c.Add(-days(40)), testenv.F(100), "A", nil),
		testenv.Track(user, user+"-e2", "Order Completed", c.Add(-days(20)), testenv.F(20), "B", nil),
		testenv.Track(user, user+"-e3", "Order Completed", c.Add(-days(5)), testenv.F(60), "A", nil),
		testenv.Track(user, user+"-e6", "Product Viewed", c.Add(-days(5)-2*time.Hour), nil, "D", cat("music")),
		testenv.Track(user, user+"-e4", "Product Viewed", c.Add(-time.Hour), nil, "C", cat("books")),
		testenv.Track(user, user+"-e5", "Order Completed", c.Add(time.Hour), testenv.F(999), "E", nil),
		testenv.Identify(user, user+"-t1", c.Add(-2*time.Hour), map[string]*commonv1.Value{"plan": testenv.Str("gold")}),
	)
}

// distinctDays counts the distinct calendar days in loc of the times.
func distinctDays(loc *time.Location, ts ...time.Time) int64 {
	seen := map[string]bool{}
	for _, t := range ts {
		seen[t.In(loc).Format("2006-01-02")] = true
	}
	return int64(len(seen))
}

// TestWindowedAggregates checks every aggregation, windows, filters and
// time zones against values computed by hand, in a training row and
// online, and the online statuses and update times.
func TestWindowedAggregates(t *testing.T) {
	env := testenv.New(t)
	svc := env.Start(env.Config())
	c := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	history(env, "fixed", c)
	now := time.Now()
	history(env, "live", now)
	env.MustPublish(testenv.Identify("fresh", "fresh-t1", now.Add(-10*time.Minute), map[string]*commonv1.Value{"plan": testenv.Str("free")}))
	testenv.ApplyReady(t, svc.Client, windowedFeatures())

	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	expect := func(c time.Time) []any {
		before := []time.Time{c.Add(-days(40)), c.Add(-days(20)), c.Add(-days(5)), c.Add(-days(5) - 2*time.Hour), c.Add(-time.Hour)}
		return []any{
			int64(1),         // orders_7d: e3
			float64(20 + 60), // spend_30d: e2, e3
			float64(180) / 3, // spend_mean: e1, e2, e3
			float64(100),     // max_order
			float64(20),      // min_order_30d
			int64(4),         // items: A, B, D, C
			float64(5),       // days_since_last_order
			float64(40),      // days_since_first_order
			distinctDays(tokyo, before...),
			distinctDays(time.UTC, before...),
			int64(2), // big_orders: e1, e3
			int64(1), // book_views: e4
			"gold",
			int64(-1), // age: never set, the default
		}
	}
	ts, err := testenv.Build(ctxT(t, 30*time.Second), svc.Client, &featurev1.BuildTrainingSetRequest{Spec: &featurev1.TrainingSetSpec{
		FeatureSet: &featurev1.FeatureSetRef{Name: "windowed"},
		Label:      &featurev1.LabelSpec{Source: &featurev1.LabelSpec_Trait{Trait: &featurev1.TraitLabel{Trait: "plan"}}},
		Cutoff:     fixedCutoff(c),
		Entities:   &featurev1.EntityFilter{Entities: []*commonv1.EntityKey{{Id: "fixed"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts.Rows) != 1 {
		t.Fatalf("got %d rows, want 1", len(ts.Rows))
	}
	if got, want := distinctDays(tokyo, c.Add(-days(5)), c.Add(-days(5)-2*time.Hour)), int64(1); got != want {
		t.Fatalf("the test's Tokyo days are wrong: %d", got)
	}
	want := expect(c)
	for i, col := range ts.Header.Columns {
		if got := value(ts.Rows[0].Features[i]); got != want[i] {
			t.Errorf("training %s = %v, want %v", col.GetName(), got, want[i])
		}
	}

	resp := onlineBothWays(t, svc.Client, &featurev1.GetOnlineFeaturesRequest{
		FeatureSet: &featurev1.FeatureSetRef{Name: "windowed"},
		Entities:   []*commonv1.EntityKey{{Id: "live"}, {Id: "nobody"}, {Id: "fresh"}},
	})
	live := resp.GetResults()[0]
	want = expect(now)
	for i, name := range resp.GetFeatureNames() {
		v := live.GetValues()[i]
		got := value(v.GetValue())
		switch name {
		case "days_since_last_order", "days_since_first_order":
			if f, ok := got.(float64); !ok || math.Abs(f-want[i].(float64)) > 0.01 {
				t.Errorf("online %s = %v, want about %v", name, got, want[i])
			}
		default:
			if got != want[i] {
				t.Errorf("online %s = %v, want %v", name, got, want[i])
			}
		}
		wantStatus := featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_PRESENT
		switch name {
		case "plan":
			wantStatus = featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_STALE // set 2h ago, max age 1h
		case "age":
			wantStatus = featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_NULL
		}
		if v.GetStatus() != wantStatus {
			t.Errorf("online %s status = %v, want %v", name, v.GetStatus(), wantStatus)
		}
	}
	// orders_7d last changed at e3 (e2 left the window 13 days ago).
	if got, want := live.GetValues()[0].GetUpdateTime().AsTime(), now.Add(-days(5)); !got.Equal(want) {
		t.Errorf("orders_7d update_time = %v, want %v", got, want)
	}
	if !live.GetFound() || live.GetConsent() != commonv1.ConsentState_CONSENT_STATE_UNSPECIFIED {
		t.Errorf("live found %v consent %v", live.GetFound(), live.GetConsent())
	}
	nobody := resp.GetResults()[1]
	if nobody.GetFound() {
		t.Error("an unknown customer is found")
	}
	for i, v := range nobody.GetValues() {
		if v.GetStatus() != featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_NOT_FOUND {
			t.Errorf("unknown customer %s status %v", resp.GetFeatureNames()[i], v.GetStatus())
		}
	}
	if got := value(nobody.GetValues()[13].GetValue()); got != int64(-1) {
		t.Errorf("unknown customer's age = %v, want the default -1", got)
	}
	fresh := resp.GetResults()[2]
	if st := fresh.GetValues()[12].GetStatus(); st != featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_PRESENT {
		t.Errorf("fresh plan status = %v, want PRESENT", st)
	}
	if got := value(fresh.GetValues()[0].GetValue()); got != int64(0) {
		t.Errorf("fresh orders_7d = %v, want 0 (a known customer with no order)", got)
	}
}

// columnValue is entry i of a packed column as value gives it (nil when
// null).
func columnValue(fc *featurev1.FeatureValueColumn, i int) any {
	if fc.GetIsNull()[i] {
		return nil
	}
	switch fc.GetType() {
	case commonv1.ValueType_VALUE_TYPE_NUMBER:
		return fc.GetNumberValues()[i]
	case commonv1.ValueType_VALUE_TYPE_STRING:
		return fc.GetStringValues()[i]
	case commonv1.ValueType_VALUE_TYPE_BOOL:
		return fc.GetIntValues()[i] == 1
	case commonv1.ValueType_VALUE_TYPE_TIME:
		return time.Unix(0, fc.GetIntValues()[i]).UTC()
	}
	return fc.GetIntValues()[i]
}

// onlineBothWays asks for the same features in both layouts and fails
// unless the columns say exactly what the rows do (values that move with
// time within 0.01 day, the time between the calls). It returns the rows.
func onlineBothWays(t *testing.T, c featurev1.FeatureServiceClient, req *featurev1.GetOnlineFeaturesRequest) *featurev1.GetOnlineFeaturesResponse {
	t.Helper()
	req = proto.Clone(req).(*featurev1.GetOnlineFeaturesRequest)
	req.Layout = featurev1.OnlineLayout_ONLINE_LAYOUT_ROWS
	rows, err := c.GetOnlineFeatures(ctxT(t, 10*time.Second), req)
	if err != nil {
		t.Fatal(err)
	}
	req.Layout = featurev1.OnlineLayout_ONLINE_LAYOUT_COLUMNS
	cols, err := c.GetOnlineFeatures(ctxT(t, 10*time.Second), req)
	if err != nil {
		t.Fatal(err)
	}
	if rows.GetColumns() != nil || len(cols.GetResults()) != 0 {
		t.Fatalf("rows layout has columns %v / columns layout has %d rows", rows.GetColumns(), len(cols.GetResults()))
	}
	oc := cols.GetColumns()
	if len(oc.GetFound()) != len(rows.GetResults()) || len(oc.GetConsent()) != len(rows.GetResults()) || len(oc.GetFeatures()) != len(rows.GetFeatureNames()) {
		t.Fatalf("columns of %d entities and %d features for %d rows of %d values", len(oc.GetFound()), len(oc.GetFeatures()), len(rows.GetResults()), len(rows.GetFeatureNames()))
	}
	for i, r := range rows.GetResults() {
		if oc.GetFound()[i] != r.GetFound() || oc.GetConsent()[i] != r.GetConsent() {
			t.Errorf("entity %d: columns found %v consent %v, rows %v %v", i, oc.GetFound()[i], oc.GetConsent()[i], r.GetFound(), r.GetConsent())
		}
		for j, fv := range r.GetValues() {
			fc := oc.GetFeatures()[j]
			name := rows.GetFeatureNames()[j]
			if fc.GetStatus()[i] != fv.GetStatus() {
				t.Errorf("entity %d %s: columns status %v, rows %v", i, name, fc.GetStatus()[i], fv.GetStatus())
			}
			wantUpdate := int64(0)
			if fv.GetUpdateTime() != nil {
				wantUpdate = fv.GetUpdateTime().AsTime().UnixNano()
			}
			if got := fc.GetUpdateUnixNanos()[i]; got != wantUpdate {
				t.Errorf("entity %d %s: columns update %d, rows %d", i, name, got, wantUpdate)
			}
			got, want := columnValue(fc, i), value(fv.GetValue())
			if g, ok := got.(float64); ok && strings.HasPrefix(name, "days_since") {
				if w, ok := want.(float64); ok && math.Abs(g-w) < 0.01 {
					continue
				}
			}
			if got != want {
				t.Errorf("entity %d %s: columns %v (%T), rows %v (%T)", i, name, got, got, want, want)
			}
		}
	}
	return rows
}
