package featureset

import (
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
)

// benchSet is a 20-column feature set like the service benchmark's.
func benchSet(b testing.TB) *Set {
	day := 24 * time.Hour
	agg := func(name string, a featurev1.Aggregation, window time.Duration, names ...string) *featurev1.Feature {
		af := &featurev1.AggregateFeature{Aggregation: a}
		if window > 0 {
			af.Window = durationpb.New(window)
		}
		if len(names) > 0 {
			af.Filter = &featurev1.EventFilter{Names: names}
		}
		return &featurev1.Feature{Name: name, Source: &featurev1.Feature_Aggregate{Aggregate: af}}
	}
	trait := func(name string, t commonv1.ValueType) *featurev1.Feature {
		return &featurev1.Feature{Name: name, Type: t, Source: &featurev1.Feature_Trait{Trait: &featurev1.TraitFeature{Trait: name}}}
	}
	s, err := Compile(&featurev1.FeatureSet{Name: "bench", Features: []*featurev1.Feature{
		agg("orders_7d", featurev1.Aggregation_AGGREGATION_COUNT, 7*day, "Order Completed"),
		agg("orders_30d", featurev1.Aggregation_AGGREGATION_COUNT, 30*day, "Order Completed"),
		agg("orders_90d", featurev1.Aggregation_AGGREGATION_COUNT, 90*day, "Order Completed"),
		agg("spend_30d", featurev1.Aggregation_AGGREGATION_SUM, 30*day, "Order Completed"),
		agg("spend_90d", featurev1.Aggregation_AGGREGATION_SUM, 90*day, "Order Completed"),
		agg("mean_order", featurev1.Aggregation_AGGREGATION_MEAN, 0, "Order Completed"),
		agg("max_order", featurev1.Aggregation_AGGREGATION_MAX, 0, "Order Completed"),
		agg("views_7d", featurev1.Aggregation_AGGREGATION_COUNT, 7*day, "Product Viewed"),
		agg("views_30d", featurev1.Aggregation_AGGREGATION_COUNT, 30*day, "Product Viewed"),
		agg("items_viewed", featurev1.Aggregation_AGGREGATION_DISTINCT_COUNT, 0, "Product Viewed"),
		agg("days_since_cart", featurev1.Aggregation_AGGREGATION_DAYS_SINCE_LAST, 0, "Added To Cart"),
		agg("active_days_30d", featurev1.Aggregation_AGGREGATION_DISTINCT_DAYS, 30*day),
		trait("age", commonv1.ValueType_VALUE_TYPE_INT),
		trait("plan", commonv1.ValueType_VALUE_TYPE_STRING),
		trait("country", commonv1.ValueType_VALUE_TYPE_STRING),
		trait("score", commonv1.ValueType_VALUE_TYPE_NUMBER),
	}, RfmGroups: []*featurev1.RfmGroup{{}}}, "feature_set")
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchProfile(rng *rand.Rand, now time.Time) *profile.Profile {
	p := profile.New(eventlog.UserKey("c"))
	names := []string{"Order Completed", "Product Viewed", "Product Viewed", "Added To Cart"}
	p.Apply(1, &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_IDENTIFY, EventTime: profile.Timestamp(now.Add(-time.Hour).UnixNano()), Traits: map[string]*commonv1.Value{
		"age": {Kind: &commonv1.Value_IntValue{IntValue: 40}}, "plan": {Kind: &commonv1.Value_StringValue{StringValue: "pro"}},
		"country": {Kind: &commonv1.Value_StringValue{StringValue: "PT"}}, "score": {Kind: &commonv1.Value_NumberValue{NumberValue: 0.5}},
	}})
	for i := 0; i < 19; i++ {
		v := 10.0
		// Decoded names are separate strings, as after reading a profile.
		name := string([]byte(names[rng.IntN(len(names))]))
		p.Apply(uint64(i+2), &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_TRACK, Name: name, ItemId: "item", Value: &v,
			EventTime: profile.Timestamp(now.Add(-time.Duration(rng.Float64() * float64(120*24*time.Hour))).UnixNano())})
	}
	return p
}

func BenchmarkEval64(b *testing.B) {
	s := benchSet(b)
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	ps := make([]*profile.Profile, 64)
	for i := range ps {
		ps[i] = benchProfile(rng, now)
	}
	out := make([]Out, len(s.Columns))
	at := now.UnixNano()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, p := range ps {
			s.Eval(p, at, out)
		}
	}
}
