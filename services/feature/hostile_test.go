package feature_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/fault/hostile"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/testenv"
)

const svcPrefix = "/bullseye.feature.v1.FeatureService/"

func one(m proto.Message) []proto.Message { return []proto.Message{m} }

// hostileTable is a table of bad inputs for every public RPC of the
// feature service.
func hostileTable() hostile.Table {
	crash := &featurev1.FeatureSetRef{Name: "crash"}
	ents := func(ids ...string) []*commonv1.EntityKey {
		out := make([]*commonv1.EntityKey, len(ids))
		for i, id := range ids {
			out[i] = &commonv1.EntityKey{Id: id}
		}
		return out
	}
	many := make([]string, 10000)
	for i := range many {
		many[i] = "f"
	}
	spec := func(mut func(*featurev1.TrainingSetSpec)) *featurev1.TrainingSetSpec {
		s := &featurev1.TrainingSetSpec{
			FeatureSet: crash,
			Label:      &featurev1.LabelSpec{Name: "y", Source: &featurev1.LabelSpec_Outcome{Outcome: &featurev1.OutcomeLabel{Filter: orders(), Horizon: durationpb.New(time.Hour)}}},
			Cutoff:     fixedCutoff(time.Now()),
		}
		mut(s)
		return s
	}
	set := func(mut func(*featurev1.FeatureSet)) *featurev1.FeatureSet {
		fs := crashFeatures()
		mut(fs)
		return fs
	}
	explicit := func(names []string, prop string) *featurev1.ExportInteractionsRequest {
		return &featurev1.ExportInteractionsRequest{Mode: &featurev1.ExportInteractionsRequest_Explicit{Explicit: &featurev1.ExplicitFeedback{EventNames: names, RatingProperty: prop}}}
	}
	inv := codes.InvalidArgument
	return hostile.Table{
		svcPrefix + "ApplyFeatureSet": {
			{Name: "empty", Requests: one(&featurev1.ApplyFeatureSetRequest{}), Code: inv, Field: "feature_set"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB name", Requests: one(&featurev1.ApplyFeatureSetRequest{FeatureSet: set(func(fs *featurev1.FeatureSet) { fs.Name = hostile.MB1 })}), Code: inv, Field: "feature_set.name"},
			{Name: "invalid UTF-8 name", Requests: one(&featurev1.ApplyFeatureSetRequest{FeatureSet: set(func(fs *featurev1.FeatureSet) { fs.Name = hostile.InvalidUTF8 })}), Code: inv, Field: "feature_set.name"},
			{Name: "10 kB feature name", Requests: one(&featurev1.ApplyFeatureSetRequest{FeatureSet: set(func(fs *featurev1.FeatureSet) { fs.Features[0].Name = hostile.KB10 })}), Code: inv, Field: "feature_set.features[0].name"},
			{Name: "invalid UTF-8 event name", Requests: one(&featurev1.ApplyFeatureSetRequest{FeatureSet: set(func(fs *featurev1.FeatureSet) {
				fs.Features[0].GetAggregate().Filter.Names = []string{hostile.InvalidUTF8}
			})}), Code: inv, Field: "feature_set.features[0].aggregate.filter.names[0]"},
			{Name: "1 MiB event name", Requests: one(&featurev1.ApplyFeatureSetRequest{FeatureSet: set(func(fs *featurev1.FeatureSet) {
				fs.Features[0].GetAggregate().Filter.Names = []string{hostile.MB1}
			})}), Code: inv, Field: "feature_set.features[0].aggregate.filter.names[0]"},
			{Name: "10,000 event names", Requests: one(&featurev1.ApplyFeatureSetRequest{FeatureSet: set(func(fs *featurev1.FeatureSet) {
				fs.Features[0].GetAggregate().Filter.Names = append(many[:0:0], append(many, "x")...)
			})}), Code: inv, Field: "feature_set.features[0].aggregate.filter.names"},
			{Name: "bad aggregation enum", Requests: one(&featurev1.ApplyFeatureSetRequest{FeatureSet: set(func(fs *featurev1.FeatureSet) {
				fs.Features[0].GetAggregate().Aggregation = 999
			})}), Code: inv, Field: "feature_set.features[0].aggregate.aggregation"},
			{Name: "negative window", Requests: one(&featurev1.ApplyFeatureSetRequest{FeatureSet: set(func(fs *featurev1.FeatureSet) {
				fs.Features[0].GetAggregate().Window = durationpb.New(-time.Hour)
			})}), Code: inv, Field: "feature_set.features[0].aggregate.window"},
		},
		svcPrefix + "GetFeatureSet": {
			{Name: "empty", Requests: one(&featurev1.GetFeatureSetRequest{}), Code: inv, Field: "feature_set.name"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB name", Requests: one(&featurev1.GetFeatureSetRequest{FeatureSet: &featurev1.FeatureSetRef{Name: hostile.MB1}}), Code: inv, Field: "feature_set.name"},
			{Name: "invalid UTF-8 name", Requests: one(&featurev1.GetFeatureSetRequest{FeatureSet: &featurev1.FeatureSetRef{Name: hostile.InvalidUTF8}}), Code: inv, Field: "feature_set.name"},
			{Name: "negative version", Requests: one(&featurev1.GetFeatureSetRequest{FeatureSet: &featurev1.FeatureSetRef{Name: "crash", Version: -1}}), Code: inv, Field: "feature_set.version"},
			{Name: "unknown", Requests: one(&featurev1.GetFeatureSetRequest{FeatureSet: &featurev1.FeatureSetRef{Name: "nope"}}), Code: codes.NotFound},
		},
		svcPrefix + "ListFeatureSets": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "bogus page token", Requests: one(&featurev1.ListFeatureSetsRequest{PageToken: "bogus"}), Code: inv, Field: "page_token"},
			{Name: "1 MiB page token", Requests: one(&featurev1.ListFeatureSetsRequest{PageToken: hostile.MB1}), Code: inv, Field: "page_token"},
			{Name: "negative page size", Requests: one(&featurev1.ListFeatureSetsRequest{PageSize: -1}), Code: inv, Field: "page_size"},
			{Name: "1 MiB prefix", Requests: one(&featurev1.ListFeatureSetsRequest{NamePrefix: hostile.MB1}), Code: inv, Field: "name_prefix"},
			{Name: "invalid UTF-8 prefix", Requests: one(&featurev1.ListFeatureSetsRequest{NamePrefix: hostile.InvalidUTF8}), Code: inv, Field: "name_prefix"},
		},
		svcPrefix + "GetOnlineFeatures": {
			{Name: "empty", Requests: one(&featurev1.GetOnlineFeaturesRequest{}), Code: inv, Field: "feature_set.name"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "3,000-byte id", Requests: one(&featurev1.GetOnlineFeaturesRequest{FeatureSet: crash, Entities: ents("a", strings.Repeat("x", 3000))}), Code: inv, Field: "entities[1].id"},
			{Name: "1 MiB id", Requests: one(&featurev1.GetOnlineFeaturesRequest{FeatureSet: crash, Entities: ents(hostile.MB1)}), Code: inv, Field: "entities[0].id"},
			{Name: "invalid UTF-8 id", Requests: one(&featurev1.GetOnlineFeaturesRequest{FeatureSet: crash, Entities: ents("a", hostile.InvalidUTF8)}), Code: inv, Field: "entities[1].id"},
			{Name: "empty id", Requests: one(&featurev1.GetOnlineFeaturesRequest{FeatureSet: crash, Entities: ents("")}), Code: inv, Field: "entities[0].id"},
			{Name: "10,000 feature names", Requests: one(&featurev1.GetOnlineFeaturesRequest{FeatureSet: crash, Entities: ents("a"), FeatureNames: many}), Code: inv, Field: "feature_names"},
			{Name: "1 MiB feature name", Requests: one(&featurev1.GetOnlineFeaturesRequest{FeatureSet: crash, Entities: ents("a"), FeatureNames: []string{hostile.MB1}}), Code: inv, Field: "feature_names[0]"},
			{Name: "bad layout enum", Requests: one(&featurev1.GetOnlineFeaturesRequest{FeatureSet: crash, Entities: ents("a"), Layout: 99}), Code: inv, Field: "layout"},
			{Name: "1 MiB feature set name", Requests: one(&featurev1.GetOnlineFeaturesRequest{FeatureSet: &featurev1.FeatureSetRef{Name: hostile.MB1}}), Code: inv, Field: "feature_set.name"},
		},
		svcPrefix + "BuildTrainingSet": {
			{Name: "empty", Requests: one(&featurev1.BuildTrainingSetRequest{}), Code: inv, Field: "spec"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB feature set name", Requests: one(&featurev1.BuildTrainingSetRequest{Spec: spec(func(s *featurev1.TrainingSetSpec) { s.FeatureSet = &featurev1.FeatureSetRef{Name: hostile.MB1} })}), Code: inv, Field: "spec.feature_set.name"},
			{Name: "10,000 feature names", Requests: one(&featurev1.BuildTrainingSetRequest{Spec: spec(func(s *featurev1.TrainingSetSpec) { s.FeatureNames = many })}), Code: inv, Field: "spec.feature_names"},
			{Name: "invalid UTF-8 label name", Requests: one(&featurev1.BuildTrainingSetRequest{Spec: spec(func(s *featurev1.TrainingSetSpec) { s.Label.Name = hostile.InvalidUTF8 })}), Code: inv, Field: "spec.label.name"},
			{Name: "bad order enum", Requests: one(&featurev1.BuildTrainingSetRequest{Spec: spec(func(*featurev1.TrainingSetSpec) {}), Order: 77}), Code: inv, Field: "order"},
			{Name: "negative rows per message", Requests: one(&featurev1.BuildTrainingSetRequest{Spec: spec(func(*featurev1.TrainingSetSpec) {}), RowsPerMessage: -1}), Code: inv, Field: "rows_per_message"},
			{Name: "time out of range", Requests: one(&featurev1.BuildTrainingSetRequest{Spec: spec(func(s *featurev1.TrainingSetSpec) {
				s.Cutoff = &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_FixedTime{FixedTime: &timestamppb.Timestamp{Seconds: math.MaxInt64}}}
			})}), Code: inv, Field: "spec.cutoff.fixed_time"},
		},
		svcPrefix + "ExportInteractions": {
			{Name: "empty", Requests: one(&featurev1.ExportInteractionsRequest{}), Code: inv, Field: "mode"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB event name", Requests: one(explicit([]string{hostile.MB1}, "rating")), Code: inv, Field: "explicit.event_names[0]"},
			{Name: "invalid UTF-8 property", Requests: one(explicit([]string{"Rated"}, hostile.InvalidUTF8)), Code: inv, Field: "explicit.rating_property"},
			{Name: "10,001 event names", Requests: one(explicit(append(many[:0:0], append(many, "x")...), "rating")), Code: inv, Field: "explicit.event_names"},
			{Name: "NaN weight", Requests: one(&featurev1.ExportInteractionsRequest{Mode: &featurev1.ExportInteractionsRequest_Implicit{Implicit: &featurev1.ImplicitFeedback{EventWeights: map[string]float64{"View": math.NaN()}}}}), Code: inv, Field: "implicit.event_weights[View]"},
			{Name: "Inf weight", Requests: one(&featurev1.ExportInteractionsRequest{Mode: &featurev1.ExportInteractionsRequest_Implicit{Implicit: &featurev1.ImplicitFeedback{EventWeights: map[string]float64{"View": math.Inf(1)}}}}), Code: inv, Field: "implicit.event_weights[View]"},
			{Name: "end before start", Requests: one(&featurev1.ExportInteractionsRequest{Mode: explicit([]string{"Rated"}, "rating").Mode, StartTime: timestamppb.New(time.Now()), EndTime: timestamppb.New(time.Now().Add(-time.Hour))}), Code: inv, Field: "end_time"},
		},
		svcPrefix + "ListEntities": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "negative page size", Requests: one(&featurev1.ListEntitiesRequest{PageSize: -5}), Code: inv, Field: "page_size"},
			{Name: "huge page size", Requests: one(&featurev1.ListEntitiesRequest{PageSize: math.MaxInt32}), Code: inv, Field: "page_size"},
		},
		svcPrefix + "SelectFeatures": {
			{Name: "empty", Requests: one(&featurev1.SelectFeaturesRequest{}), Code: inv, Field: "spec"},
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "NaN min variance", Requests: one(&featurev1.SelectFeaturesRequest{Spec: spec(func(*featurev1.TrainingSetSpec) {}), MinVariance: math.NaN()}), Code: inv, Field: "min_variance"},
			{Name: "negative bins", Requests: one(&featurev1.SelectFeaturesRequest{Spec: spec(func(*featurev1.TrainingSetSpec) {}), Bins: -3}), Code: inv, Field: "bins"},
			{Name: "bad method enum", Requests: one(&featurev1.SelectFeaturesRequest{Spec: spec(func(*featurev1.TrainingSetSpec) {}), Methods: []featurev1.SelectionMethod{42}}), Code: inv, Field: "methods[0]"},
		},
		svcPrefix + "VerifyMaterialization": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "negative max entities", Requests: one(&featurev1.VerifyMaterializationRequest{MaxEntities: -1}), Code: inv, Field: "max_entities"},
			{Name: "huge max entities", Requests: one(&featurev1.VerifyMaterializationRequest{MaxEntities: math.MaxInt32}), Code: inv, Field: "max_entities"},
		},
	}
}

// TestHostileInputs sends every public RPC its table of bad inputs, each
// answered with its code and field, and checks after each method that the
// service still answers a lookup of a customer whose events arrived after
// the bad calls.
func TestHostileInputs(t *testing.T) {
	env := testenv.New(t)
	svc := env.Start(env.Config())
	testenv.ApplyReady(t, svc.Client, crashFeatures())
	table := hostileTable()
	hostile.Cover(t, table, &featurev1.FeatureService_ServiceDesc)
	n := 0
	calls := hostile.Run(t, svc.Conn, hostile.Streams(&featurev1.FeatureService_ServiceDesc), table, func(t *testing.T) {
		n++
		canary(t, env, svc, n)
	})
	t.Logf("%d hostile calls", calls)
}

// canary publishes an order of a new customer and looks it up.
func canary(t *testing.T, env *testenv.Env, svc *testenv.Service, n int) {
	t.Helper()
	id := "canary-" + strings.Repeat("c", n%5) + string(rune('a'+n%26))
	env.MustPublish(testenv.Track(id, "canary-"+id+time.Now().Format(time.RFC3339Nano), "Order Completed", time.Now().Add(-time.Minute), testenv.F(1), "", nil))
	env.WaitApplied(30 * time.Second)
	resp, err := svc.Client.GetOnlineFeatures(ctxT(t, 10*time.Second), &featurev1.GetOnlineFeaturesRequest{FeatureSet: &featurev1.FeatureSetRef{Name: "crash"}, Entities: []*commonv1.EntityKey{{Id: id}}})
	if err != nil {
		t.Fatalf("canary lookup: %v", err)
	}
	if got := value(resp.GetResults()[0].GetValues()[0].GetValue()); got == nil || got.(int64) < 1 {
		t.Fatalf("canary orders = %v", got)
	}
}
