package features_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/features"
	"github.com/bullseye-ml/bullseye/services/serving/internal/testenv"
)

// binaries gives the feature service binary the environment runs.
var binaries embeddedtest.Binaries

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(embeddedtest.GoleakOptions(), goleak.Cleanup(func(code int) {
		binaries.Remove()
		os.Exit(code)
	}))...)
}

// TestLookupSaysWhatTheRowsLayoutSays: a Lookup, made in the columns layout and split into
// calls of at most MaxEntities customers, gives for every customer and column the found flag,
// consent, status and value (kind included: BOOL, TIME; defaults of NOT_FOUND and NULL cells;
// nothing where there is neither) that one call in the rows layout gives, also when the same
// Lookup is filled again with fewer customers and other columns. A bad column name is
// ErrLookup.
func TestLookupSaysWhatTheRowsLayoutSays(t *testing.T) {
	env := testenv.New(t, &binaries)
	defer env.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const set = "cols"
	id := func(i int) string { return fmt.Sprintf("cols-%d", i) }
	at := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	p := env.Publisher()
	const n = 23
	for i := range n {
		tr := map[string]*commonv1.Value{}
		if i%3 != 1 {
			tr["spend"] = &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: float64(i) * 1.25}}
		}
		if i%4 != 2 {
			tr["visits"] = &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: int64(i - 10)}}
		}
		if i%5 != 3 {
			tr["tier"] = &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: []string{"gold", "silver", ""}[i%3]}}
		}
		if i%6 != 4 {
			tr["vip"] = &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: i%2 == 0}}
		}
		if i%7 != 5 {
			ts := time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC).Add(time.Duration(i) * 1000 * time.Hour)
			tr["joined"] = &commonv1.Value{Kind: &commonv1.Value_TimeValue{TimeValue: timestamppb.New(ts)}}
		}
		if err := p.Publish(testenv.Identify(id(i), id(i), at, tr, "", 0)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	trait := func(name string, typ commonv1.ValueType, def *commonv1.Value) *featurev1.Feature {
		return &featurev1.Feature{Name: name, Type: typ, DefaultValue: def, Source: &featurev1.Feature_Trait{Trait: &featurev1.TraitFeature{Trait: name}}}
	}
	visits := trait("visits", commonv1.ValueType_VALUE_TYPE_INT, &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: -1}})
	visits.MaxAge = durationpb.New(time.Hour) // set long ago: STALE
	if _, err := env.ApplyReady(ctx, &featurev1.FeatureSet{Name: set, Features: []*featurev1.Feature{
		trait("spend", commonv1.ValueType_VALUE_TYPE_NUMBER, nil),
		visits,
		trait("tier", commonv1.ValueType_VALUE_TYPE_STRING, &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: "none"}}),
		trait("vip", commonv1.ValueType_VALUE_TYPE_BOOL, &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: true}}),
		trait("joined", commonv1.ValueType_VALUE_TYPE_TIME, &commonv1.Value{Kind: &commonv1.Value_TimeValue{TimeValue: timestamppb.New(time.Unix(-1, 5))}}),
	}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(testenv.Consent(id(2), "cols-objects", commonv1.ConsentState_CONSENT_STATE_OBJECTED)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := env.Forget(ctx, id(9), "cols-erasure"); err != nil {
		t.Fatal(err)
	}
	if err := env.WaitConsent(ctx, set, id(2), commonv1.ConsentState_CONSENT_STATE_OBJECTED); err != nil {
		t.Fatal(err)
	}
	if err := env.WaitConsent(ctx, set, id(9), commonv1.ConsentState_CONSENT_STATE_ERASED); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	m, err := features.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	c := features.New(env.Feature, features.WithMaxEntities(4), features.WithMetrics(m))
	s, err := c.Resolve(ctx, set, 0)
	if err != nil {
		t.Fatal(err)
	}
	var l features.Lookup
	check := func(names, ids []string) {
		t.Helper()
		before := testenv.Counter(t, reg, "bullseye_serving_feature_lookups_total", map[string]string{"feature_set": set})
		if err := c.Lookup(ctx, s, names, ids, &l); err != nil {
			t.Fatal(err)
		}
		calls := testenv.Counter(t, reg, "bullseye_serving_feature_lookups_total", map[string]string{"feature_set": set}) - before
		if want := (len(ids) + 3) / 4; calls != float64(want) {
			t.Errorf("%d customers looked up in %v calls, want %d", len(ids), calls, want)
		}
		ents := make([]*commonv1.EntityKey, len(ids))
		for i, x := range ids {
			ents[i] = &commonv1.EntityKey{Id: x}
		}
		rows, err := env.Feature.GetOnlineFeatures(ctx, &featurev1.GetOnlineFeaturesRequest{
			FeatureSet: &featurev1.FeatureSetRef{Name: set}, Entities: ents, FeatureNames: names, Layout: featurev1.OnlineLayout_ONLINE_LAYOUT_ROWS})
		if err != nil {
			t.Fatal(err)
		}
		if l.Len() != len(ids) || len(rows.GetResults()) != len(ids) {
			t.Fatalf("lookup of %d customers: %d, rows layout %d", len(ids), l.Len(), len(rows.GetResults()))
		}
		for i, r := range rows.GetResults() {
			if l.Found(i) != r.GetFound() || l.Consent(i) != r.GetConsent() {
				t.Errorf("%s: found %v consent %v, rows layout %v %v", ids[i], l.Found(i), l.Consent(i), r.GetFound(), r.GetConsent())
			}
			for j, fv := range r.GetValues() {
				want := fv.GetValue()
				if want.GetKind() == nil {
					want = nil
				}
				got := l.Value(i, j)
				if l.Status(i, j) != fv.GetStatus() || !proto.Equal(got, want) || (got == nil) != (want == nil) {
					t.Errorf("%s %s: %v %v, rows layout %v %v", ids[i], names[j], l.Status(i, j), got, fv.GetStatus(), want)
				}
				st := fv.GetStatus()
				present := (st == featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_PRESENT || st == featurev1.FeatureValueStatus_FEATURE_VALUE_STATUS_STALE) && want != nil
				if l.Present(i, j) != present {
					t.Errorf("%s %s: present %v, rows layout %v (%v)", ids[i], names[j], l.Present(i, j), present, st)
				}
			}
		}
	}
	all := []string{"spend", "visits", "tier", "vip", "joined"}
	var ids []string
	for i := n - 1; i >= 0; i-- {
		ids = append(ids, id(i))
		if i == 11 {
			ids = append(ids, "cols-nobody", "cols-nobody-either")
		}
	}
	check(all, ids)
	// The same Lookup again: one call, fewer customers, other columns in another order.
	check([]string{"joined", "tier", "vip"}, []string{id(9), id(5), "cols-nobody", id(2)})
	check(all, ids[3:9])

	// Every kind of cell came up.
	seen := map[featurev1.FeatureValueStatus]bool{}
	if err := c.Lookup(ctx, s, all, ids, &l); err != nil {
		t.Fatal(err)
	}
	for i := range l.Len() {
		for j := range all {
			seen[l.Status(i, j)] = true
		}
	}
	if len(seen) != 4 {
		t.Errorf("statuses seen: %v, want PRESENT, STALE, NULL and NOT_FOUND", seen)
	}

	if err := c.Lookup(ctx, s, []string{"spend", "shoe_size"}, ids[:2], &l); !errors.Is(err, features.ErrLookup) {
		t.Errorf("a lookup of an unknown column: %v, want ErrLookup", err)
	}
	if l.Len() != 0 {
		t.Errorf("a failed lookup leaves %d customers", l.Len())
	}
}
