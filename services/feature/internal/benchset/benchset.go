// Package benchset is the feature set that the feature service's
// benchmarks measure: 20 columns of a typical marketing model (order and
// view counts and sums over 7, 30 and 90 days, a mean, a max, a distinct
// count, days since the last cart, active days, four traits and an RFM
// group), shared by make bench-feature and the evaluation micro-benchmarks.
package benchset

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
)

// Name is the feature set's name.
const Name = "bench"

// Aggregate returns an aggregate feature over the events named (all when
// none) within window (all time when 0).
func Aggregate(name string, a featurev1.Aggregation, window time.Duration, names ...string) *featurev1.Feature {
	af := &featurev1.AggregateFeature{Aggregation: a}
	if window > 0 {
		af.Window = durationpb.New(window)
	}
	if len(names) > 0 {
		af.Filter = &featurev1.EventFilter{Names: names}
	}
	return &featurev1.Feature{Name: name, Source: &featurev1.Feature_Aggregate{Aggregate: af}}
}

// FeatureSet returns the definition, a new copy each call.
func FeatureSet() *featurev1.FeatureSet {
	day := 24 * time.Hour
	agg := Aggregate
	trait := func(name string, t commonv1.ValueType) *featurev1.Feature {
		return &featurev1.Feature{Name: name, Type: t, MaxAge: durationpb.New(365 * day), Source: &featurev1.Feature_Trait{Trait: &featurev1.TraitFeature{Trait: name}}}
	}
	return &featurev1.FeatureSet{Name: Name, Features: []*featurev1.Feature{
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
	}, RfmGroups: []*featurev1.RfmGroup{{}}}
}
