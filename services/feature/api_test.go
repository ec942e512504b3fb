package feature_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/catalog"
	"github.com/bullseye-ml/bullseye/services/feature/internal/testenv"
)

func trait(name, t string, typ commonv1.ValueType) *featurev1.Feature {
	return &featurev1.Feature{Name: name, Type: typ, Source: &featurev1.Feature_Trait{Trait: &featurev1.TraitFeature{Trait: t}}}
}

// violations returns the field paths of an INVALID_ARGUMENT error.
func violations(t *testing.T, err error) []string {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("error %v, want INVALID_ARGUMENT", err)
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	return fields
}

// TestApplyFeatureSetValidation checks that each kind of mistake is
// refused with a violation naming the field.
func TestApplyFeatureSetValidation(t *testing.T) {
	env := testenv.New(t)
	svc := env.Start(env.Config())
	count := func(f func(*featurev1.AggregateFeature)) *featurev1.Feature {
		return agg("n", featurev1.Aggregation_AGGREGATION_COUNT, 0, f)
	}
	unknown := &featurev1.FeatureSet{Name: "unknown-field", Features: []*featurev1.Feature{count(nil)}}
	unknown.Features[0].ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
	tests := []struct {
		name string
		fs   *featurev1.FeatureSet
		want string
	}{
		{"bad name", &featurev1.FeatureSet{Name: "Bad Name", Features: []*featurev1.Feature{count(nil)}}, "feature_set.name"},
		{"no features", &featurev1.FeatureSet{Name: "empty"}, "feature_set.features"},
		{"duplicate name", &featurev1.FeatureSet{Name: "dup", Features: []*featurev1.Feature{count(nil), count(nil)}}, "feature_set.features[1].name"},
		{"bad feature name", &featurev1.FeatureSet{Name: "x", Features: []*featurev1.Feature{agg("Orders", featurev1.Aggregation_AGGREGATION_COUNT, 0, nil)}}, "feature_set.features[0].name"},
		{"negative window", &featurev1.FeatureSet{Name: "x", Features: []*featurev1.Feature{count(func(a *featurev1.AggregateFeature) { a.Window = durationpb.New(-time.Hour) })}}, "feature_set.features[0].aggregate.window"},
		{"zero window", &featurev1.FeatureSet{Name: "x", Features: []*featurev1.Feature{count(func(a *featurev1.AggregateFeature) { a.Window = &durationpb.Duration{} })}}, "feature_set.features[0].aggregate.window"},
		{"fractional window", &featurev1.FeatureSet{Name: "x", Features: []*featurev1.Feature{count(func(a *featurev1.AggregateFeature) { a.Window = durationpb.New(1500 * time.Millisecond) })}}, "feature_set.features[0].aggregate.window"},
		{"window over 10 years", &featurev1.FeatureSet{Name: "x", Features: []*featurev1.Feature{count(func(a *featurev1.AggregateFeature) { a.Window = durationpb.New(11 * 365 * 24 * time.Hour) })}}, "feature_set.features[0].aggregate.window"},
		{"trait without type", &featurev1.FeatureSet{Name: "x", Features: []*featurev1.Feature{trait("age", "age", 0)}}, "feature_set.features[0].type"},
		{"trait without name", &featurev1.FeatureSet{Name: "x", Features: []*featurev1.Feature{trait("age", "", commonv1.ValueType_VALUE_TYPE_INT)}}, "feature_set.features[0].trait.trait"},
		{"no source", &featurev1.FeatureSet{Name: "x", Features: []*featurev1.Feature{{Name: "n"}}}, "feature_set.features[0].source"},
		{"no aggregation", &featurev1.FeatureSet{Name: "x", Features: []*featurev1.Feature{agg("n", 0, 0, nil)}}, "feature_set.features[0].aggregate.aggregation"},
		{"unknown field path", &featurev1.FeatureSet{Name: "x", Features: []*featurev1.Feature{agg("n", featurev1.Aggregation_AGGREGATION_SUM, 0, func(a *featurev1.AggregateFeature) { a.Field = "price" })}}, "feature_set.features[0].aggregate.field"},
		{"sum of a string field", &featurev1.FeatureSet{Name: "x", Features: []*featurev1.Feature{agg("n", featurev1.Aggregation_AGGREGATION_SUM, 0, func(a *featurev1.AggregateFeature) { a.Field = "item_id" })}}, "feature_set.features[0].aggregate.field"},
		{"type disagrees", &featurev1.FeatureSet{Name: "x", Features: []*featurev1.Feature{{Name: "n", Type: commonv1.ValueType_VALUE_TYPE_STRING, Source: &featurev1.Feature_Aggregate{Aggregate: &featurev1.AggregateFeature{Aggregation: featurev1.Aggregation_AGGREGATION_COUNT}}}}}, "feature_set.features[0].type"},
		{"unknown time zone", &featurev1.FeatureSet{Name: "x", Features: []*featurev1.Feature{agg("n", featurev1.Aggregation_AGGREGATION_DISTINCT_DAYS, 0, func(a *featurev1.AggregateFeature) { a.TimeZone = "Mars/Olympus" })}}, "feature_set.features[0].aggregate.time_zone"},
		{"IN without values", &featurev1.FeatureSet{Name: "x", Features: []*featurev1.Feature{count(func(a *featurev1.AggregateFeature) {
			a.Filter = &featurev1.EventFilter{Conditions: []*featurev1.FieldCondition{{Field: "item_id", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_IN}}}
		})}}, "feature_set.features[0].aggregate.filter.conditions[0].values"},
		{"unknown filter field", &featurev1.FeatureSet{Name: "x", Features: []*featurev1.Feature{count(func(a *featurev1.AggregateFeature) {
			a.Filter = &featurev1.EventFilter{Conditions: []*featurev1.FieldCondition{{Field: "sku", Operator: commonv1.ComparisonOperator_COMPARISON_OPERATOR_IS_NOT_NULL}}}
		})}}, "feature_set.features[0].aggregate.filter.conditions[0].field"},
		{"RFM column clashes", &featurev1.FeatureSet{Name: "x", Features: []*featurev1.Feature{agg("rfm_frequency", featurev1.Aggregation_AGGREGATION_COUNT, 0, nil)}, RfmGroups: []*featurev1.RfmGroup{{}}}, "feature_set.rfm_groups[0].prefix"},
		{"unknown fields", unknown, "feature_set.features[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.Client.ApplyFeatureSet(ctxT(t, 5*time.Second), &featurev1.ApplyFeatureSetRequest{FeatureSet: tt.fs})
			if got := violations(t, err); !slices.Contains(got, tt.want) {
				t.Errorf("violations %v, want one on %s (error %v)", got, tt.want, err)
			}
		})
	}
}

// TestFeatureSetVersions checks immutable numbered versions, no new version
// for an unchanged definition, compare-and-set under concurrent applies,
// validate_only, and listing.
func TestFeatureSetVersions(t *testing.T) {
	env := testenv.New(t)
	svc := env.Start(env.Config())
	ctx := ctxT(t, 30*time.Second)
	def := func(desc string) *featurev1.FeatureSet {
		return &featurev1.FeatureSet{Name: "versions", Description: desc, Features: []*featurev1.Feature{trait("plan", "plan", commonv1.ValueType_VALUE_TYPE_STRING)}}
	}
	apply := func(fs *featurev1.FeatureSet, validateOnly bool) *featurev1.ApplyFeatureSetResponse {
		t.Helper()
		resp, err := svc.Client.ApplyFeatureSet(ctx, &featurev1.ApplyFeatureSetRequest{FeatureSet: fs, ValidateOnly: validateOnly})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := apply(def("v1"), true); r.GetFeatureSet().GetVersion() != 0 || len(r.GetFeatureSet().GetColumns()) != 1 {
		t.Errorf("validate_only answered %v", r)
	}
	if _, err := svc.Client.GetFeatureSet(ctx, &featurev1.GetFeatureSetRequest{FeatureSet: &featurev1.FeatureSetRef{Name: "versions"}}); status.Code(err) != codes.NotFound {
		t.Fatalf("after validate_only GetFeatureSet = %v, want NOT_FOUND", err)
	}
	if r := apply(def("v1"), false); r.GetFeatureSet().GetVersion() != 1 || r.GetUnchanged() {
		t.Errorf("first apply = version %d unchanged %v", r.GetFeatureSet().GetVersion(), r.GetUnchanged())
	}
	if r := apply(def("v1"), false); r.GetFeatureSet().GetVersion() != 1 || !r.GetUnchanged() {
		t.Errorf("same definition = version %d unchanged %v, want 1 and true", r.GetFeatureSet().GetVersion(), r.GetUnchanged())
	}
	var wg sync.WaitGroup
	versions := make([]int64, 6)
	for i := range versions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := svc.Client.ApplyFeatureSet(ctx, &featurev1.ApplyFeatureSetRequest{FeatureSet: def("concurrent " + strconv.Itoa(i))})
			if err != nil {
				t.Error(err)
				return
			}
			versions[i] = r.GetFeatureSet().GetVersion()
		}()
	}
	wg.Wait()
	slices.Sort(versions)
	if fmt.Sprint(versions) != "[2 3 4 5 6 7]" {
		t.Errorf("concurrent applies got versions %v, want 2 to 7 once each", versions)
	}
	stored, err := env.Cli.Get(ctx, catalog.VersionKey("versions", 1))
	if err != nil || len(stored.Kvs) != 1 {
		t.Fatalf("version 1 in etcd: %v %v", stored, err)
	}
	v1 := &featurev1.FeatureSet{}
	if err := proto.Unmarshal(stored.Kvs[0].Value, v1); err != nil || v1.GetDescription() != "v1" || stored.Kvs[0].Version != 1 {
		t.Errorf("version 1 as stored: %v (written %d times), %v", v1, stored.Kvs[0].Version, err)
	}
	got, err := svc.Client.GetFeatureSet(ctx, &featurev1.GetFeatureSetRequest{FeatureSet: &featurev1.FeatureSetRef{Name: "versions"}})
	if err != nil || got.GetFeatureSet().GetVersion() != 7 {
		t.Errorf("latest = %v, %v", got.GetFeatureSet().GetVersion(), err)
	}
	if _, err := svc.Client.GetFeatureSet(ctx, &featurev1.GetFeatureSetRequest{FeatureSet: &featurev1.FeatureSetRef{Name: "versions", Version: 8}}); status.Code(err) != codes.NotFound {
		t.Errorf("version 8: %v, want NOT_FOUND", err)
	}
	var listed []int64
	token := ""
	for {
		page, err := svc.Client.ListFeatureSets(ctx, &featurev1.ListFeatureSetsRequest{AllVersions: true, PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, fs := range page.GetFeatureSets() {
			listed = append(listed, fs.GetVersion())
		}
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	if fmt.Sprint(listed) != "[7 6 5 4 3 2 1]" {
		t.Errorf("listed versions %v", listed)
	}
}

// TestOnlineErrors checks whole-request errors of GetOnlineFeatures.
func TestOnlineErrors(t *testing.T) {
	env := testenv.New(t)
	cfg := env.Config()
	cfg.MaxEntities = 2
	svc := env.Start(cfg)
	testenv.ApplyReady(t, svc.Client, crashFeatures())
	crash := &featurev1.FeatureSetRef{Name: "crash"}
	tests := []struct {
		name  string
		req   *featurev1.GetOnlineFeaturesRequest
		want  codes.Code
		field string // the violation an INVALID_ARGUMENT names
	}{
		{"unknown feature set", &featurev1.GetOnlineFeaturesRequest{FeatureSet: &featurev1.FeatureSetRef{Name: "nope"}}, codes.NotFound, ""},
		{"unknown version", &featurev1.GetOnlineFeaturesRequest{FeatureSet: &featurev1.FeatureSetRef{Name: "crash", Version: 9}}, codes.NotFound, ""},
		{"unknown column", &featurev1.GetOnlineFeaturesRequest{FeatureSet: crash, FeatureNames: []string{"spend", "nope"}}, codes.InvalidArgument, "feature_names[1]"},
		{"too many entities", &featurev1.GetOnlineFeaturesRequest{FeatureSet: crash, Entities: []*commonv1.EntityKey{{Id: "a"}, {Id: "b"}, {Id: "c"}}}, codes.InvalidArgument, "entities"},
		{"bad entity type", &featurev1.GetOnlineFeaturesRequest{FeatureSet: crash, Entities: []*commonv1.EntityKey{{Id: "a"}, {Id: "b", EntityType: "store"}}}, codes.InvalidArgument, "entities[1].entity_type"},
		{"empty id", &featurev1.GetOnlineFeaturesRequest{FeatureSet: crash, Entities: []*commonv1.EntityKey{{Id: "a"}, {EntityType: "anonymous"}}}, codes.InvalidArgument, "entities[1].id"},
		{"no name", &featurev1.GetOnlineFeaturesRequest{}, codes.InvalidArgument, "feature_set.name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.Client.GetOnlineFeatures(ctxT(t, 5*time.Second), tt.req)
			if status.Code(err) != tt.want {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if tt.field != "" {
				if got := violations(t, err); len(got) != 1 || got[0] != tt.field {
					t.Errorf("violations %q, want [%s]: %v", got, tt.field, err)
				}
			}
		})
	}
	resp, err := svc.Client.GetOnlineFeatures(ctxT(t, 5*time.Second), &featurev1.GetOnlineFeaturesRequest{
		FeatureSet: &featurev1.FeatureSetRef{Name: "crash"}, FeatureNames: []string{"spend", "orders"}, Entities: []*commonv1.EntityKey{{Id: "a"}},
	})
	if err != nil || fmt.Sprint(resp.GetFeatureNames()) != "[spend orders]" || resp.GetFeatureSet().GetVersion() != 1 {
		t.Errorf("column selection: %v %v", resp, err)
	}
}

// TestLongEntityIDs sends ids past the shared bound (up to 1 MiB), which
// once became NATS subjects past the server's control line: the server
// closed the service's connection for good. Each is INVALID_ARGUMENT
// naming the field and the limit, and afterwards a customer whose events
// arrive later is still materialised and looked up.
func TestLongEntityIDs(t *testing.T) {
	env := testenv.New(t)
	svc := env.Start(env.Config())
	testenv.ApplyReady(t, svc.Client, crashFeatures())
	crash := &featurev1.FeatureSetRef{Name: "crash"}
	for _, n := range []int{fault.MaxIDBytes + 1, 1000, 3000, 5000, 1 << 20} {
		_, err := svc.Client.GetOnlineFeatures(ctxT(t, 5*time.Second), &featurev1.GetOnlineFeaturesRequest{
			FeatureSet: crash, Entities: []*commonv1.EntityKey{{Id: "ok"}, {Id: strings.Repeat("x", n)}},
		})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("%d-byte id: %v, want INVALID_ARGUMENT", n, err)
		}
		if got := violations(t, err); len(got) != 1 || got[0] != "entities[1].id" {
			t.Errorf("%d-byte id: violations %q, want [entities[1].id]", n, got)
		}
		if !strings.Contains(err.Error(), "the limit is 256 bytes") || len(err.Error()) > 300 {
			t.Errorf("%d-byte id: message %q, want the limit and no echo of the id", n, err)
		}
	}
	if st := env.NC.Status(); st != nats.CONNECTED {
		t.Fatalf("test connection %v", st)
	}
	env.MustPublish(testenv.Track("late", "late-1", "Order Completed", time.Now().Add(-time.Minute), testenv.F(4), "", nil))
	env.WaitApplied(30 * time.Second)
	resp, err := svc.Client.GetOnlineFeatures(ctxT(t, 5*time.Second), &featurev1.GetOnlineFeaturesRequest{
		FeatureSet: crash, Entities: []*commonv1.EntityKey{{Id: "late"}},
	})
	if err != nil {
		t.Fatalf("canary lookup after long ids: %v", err)
	}
	if got := value(resp.GetResults()[0].GetValues()[0].GetValue()); got != int64(1) {
		t.Errorf("canary orders = %v, want 1: %v", got, resp.GetResults()[0])
	}
	if st, err := testenv.Health(svc.Addr); err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health %v %v after long ids", st, err)
	}
}

// TestConcurrentLookups runs many lookups at once, of different sizes and
// in both layouts, and checks each answer against the customers' totals:
// replies are built in reused storage, and no reply may carry another's
// values.
func TestConcurrentLookups(t *testing.T) {
	env := testenv.New(t)
	svc := env.Start(env.Config())
	testenv.ApplyReady(t, svc.Client, crashFeatures())
	want := stream(t, env, func() {})
	env.WaitApplied(time.Minute)
	const callers, calls = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			for range calls {
				req := &featurev1.GetOnlineFeaturesRequest{FeatureSet: &featurev1.FeatureSetRef{Name: "crash"}, Layout: featurev1.OnlineLayout(1 + rng.IntN(2))}
				for range 1 + rng.IntN(40) {
					req.Entities = append(req.Entities, &commonv1.EntityKey{Id: fmt.Sprintf("cust-%03d", rng.IntN(crashCustomers+10))})
				}
				resp, err := svc.Client.GetOnlineFeatures(ctxT(t, 10*time.Second), req)
				if err != nil {
					errs <- err
					return
				}
				for i, e := range req.GetEntities() {
					w, known := want[e.GetId()]
					var found bool
					var count, sum any
					if oc := resp.GetColumns(); oc != nil {
						found, count, sum = oc.GetFound()[i], columnValue(oc.GetFeatures()[0], i), columnValue(oc.GetFeatures()[1], i)
					} else {
						r := resp.GetResults()[i]
						found, count, sum = r.GetFound(), value(r.GetValues()[0].GetValue()), value(r.GetValues()[1].GetValue())
						if r.GetEntity().GetId() != e.GetId() {
							errs <- fmt.Errorf("row %d is of %s, want %s", i, r.GetEntity().GetId(), e.GetId())
							return
						}
					}
					if found != known || (known && (count != w.count || sum != w.sum)) {
						errs <- fmt.Errorf("%s (%v layout, entity %d of %d): found %v, orders %v, spend %v; want %v, %d, %v",
							e.GetId(), req.GetLayout(), i, len(req.GetEntities()), found, count, sum, known, w.count, w.sum)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestExportInteractions checks implicit (summed weights) and explicit
// (latest rating) interactions, ordered by user then item.
func TestExportInteractions(t *testing.T) {
	env := testenv.New(t)
	svc := env.Start(env.Config())
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	rating := func(r float64) map[string]*commonv1.Value {
		return map[string]*commonv1.Value{"rating": testenv.Num(r)}
	}
	env.MustPublish(
		testenv.Track("u1", "1", "Product Viewed", t0, nil, "A", nil),
		testenv.Track("u1", "2", "Added To Cart", t0.Add(time.Hour), nil, "A", nil),
		testenv.Track("u1", "3", "Order Completed", t0.Add(2*time.Hour), testenv.F(9), "B", nil),
		testenv.Track("u1", "4", "Page Viewed", t0.Add(3*time.Hour), nil, "C", nil),
		testenv.Track("u2", "5", "Product Viewed", t0, nil, "A", nil),
		testenv.Track("u2", "6", "Product Viewed", t0.Add(time.Minute), nil, "A", nil),
		testenv.Track("u1", "7", "Product Rated", t0, nil, "A", rating(3)),
		testenv.Track("u1", "8", "Product Rated", t0.Add(time.Hour), nil, "A", rating(5)),
		testenv.Track("u2", "9", "Product Rated", t0, nil, "B", rating(1)),
	)
	export := func(req *featurev1.ExportInteractionsRequest) []string {
		stream, err := svc.Client.ExportInteractions(ctxT(t, 30*time.Second), req)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for {
			m, err := stream.Recv()
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range m.GetInteractions() {
				out = append(out, fmt.Sprintf("%s/%s=%v(%d)@%s", it.GetUserId(), it.GetItemId(), it.GetValue(), it.GetEventCount(), it.GetTime().AsTime().Format("15:04")))
			}
		}
	}
	got := export(&featurev1.ExportInteractionsRequest{Mode: &featurev1.ExportInteractionsRequest_Implicit{Implicit: &featurev1.ImplicitFeedback{
		EventWeights: map[string]float64{"Product Viewed": 1, "Added To Cart": 3, "Order Completed": 5},
	}}})
	if want := "[u1/A=4(2)@01:00 u1/B=5(1)@02:00 u2/A=2(2)@00:01]"; fmt.Sprint(got) != want {
		t.Errorf("implicit = %v, want %s", got, want)
	}
	got = export(&featurev1.ExportInteractionsRequest{Mode: &featurev1.ExportInteractionsRequest_Explicit{Explicit: &featurev1.ExplicitFeedback{
		EventNames: []string{"Product Rated"}, RatingProperty: "rating",
	}}})
	if want := "[u1/A=5(2)@01:00 u2/B=1(1)@00:00]"; fmt.Sprint(got) != want {
		t.Errorf("explicit = %v, want %s", got, want)
	}
	_, err := svc.Client.ExportInteractions(ctxT(t, 5*time.Second), &featurev1.ExportInteractionsRequest{})
	if err == nil {
		stream, _ := svc.Client.ExportInteractions(ctxT(t, 5*time.Second), &featurev1.ExportInteractionsRequest{})
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("no mode: %v, want INVALID_ARGUMENT", err)
	}
}

// TestSelectFeatures ranks a planted signal above noise and suggests
// dropping a constant, a redundant copy and pure noise.
func TestSelectFeatures(t *testing.T) {
	env := testenv.New(t)
	svc := env.Start(env.Config())
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var recs []*ingestv1.StoredEvent
	for i := 0; i < 600; i++ {
		signal := rng.NormFloat64()
		y := signal+0.5*rng.NormFloat64() > 0
		cat := "low"
		if signal > 0.3 {
			cat = "high"
		}
		recs = append(recs, testenv.Identify(fmt.Sprintf("s%03d", i), fmt.Sprintf("m%d", i), t0, map[string]*commonv1.Value{
			"signal": testenv.Num(signal), "copy": testenv.Num(2*signal + 1), "noise": testenv.Num(rng.Float64()),
			"constant": testenv.Num(7), "tier": testenv.Str(cat), "y": {Kind: &commonv1.Value_BoolValue{BoolValue: y}},
		}))
	}
	env.MustPublish(recs...)
	testenv.ApplyReady(t, svc.Client, &featurev1.FeatureSet{Name: "select", Features: []*featurev1.Feature{
		trait("noise", "noise", commonv1.ValueType_VALUE_TYPE_NUMBER),
		trait("signal", "signal", commonv1.ValueType_VALUE_TYPE_NUMBER),
		trait("constant", "constant", commonv1.ValueType_VALUE_TYPE_NUMBER),
		trait("copy", "copy", commonv1.ValueType_VALUE_TYPE_NUMBER),
		trait("tier", "tier", commonv1.ValueType_VALUE_TYPE_STRING),
	}})
	resp, err := svc.Client.SelectFeatures(ctxT(t, 60*time.Second), &featurev1.SelectFeaturesRequest{Spec: &featurev1.TrainingSetSpec{
		FeatureSet: &featurev1.FeatureSetRef{Name: "select"},
		Label:      &featurev1.LabelSpec{Source: &featurev1.LabelSpec_Trait{Trait: &featurev1.TraitLabel{Trait: "y"}}},
		Cutoff:     fixedCutoff(t0.Add(time.Hour)),
		Split:      &featurev1.SplitSpec{Method: &featurev1.SplitSpec_EntityHash{EntityHash: &featurev1.EntityHashSplit{TestFraction: 0.25, Seed: 7}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetLabelType() != commonv1.ValueType_VALUE_TYPE_BOOL || resp.GetRowsUsed() < 350 || resp.GetRowsUsed() > 550 {
		t.Errorf("label type %v, rows used %d (about 450 TRAIN rows expected)", resp.GetLabelType(), resp.GetRowsUsed())
	}
	rank := map[string]int32{}
	scores := map[string]map[featurev1.SelectionMethod]*featurev1.MethodScore{}
	for _, f := range resp.GetFeatures() {
		rank[f.GetName()] = f.GetRank()
		scores[f.GetName()] = map[featurev1.SelectionMethod]*featurev1.MethodScore{}
		for _, s := range f.GetScores() {
			scores[f.GetName()][s.GetMethod()] = s
		}
	}
	best := min(rank["signal"], rank["copy"])
	if best != 1 || rank["noise"] < 3 {
		t.Errorf("ranks %v: want signal or copy first, noise behind tier", rank)
	}
	mi := func(n string) float64 {
		return scores[n][featurev1.SelectionMethod_SELECTION_METHOD_MUTUAL_INFORMATION].GetScore()
	}
	if !(mi("signal") > 5*mi("noise")) {
		t.Errorf("mutual information signal %v noise %v", mi("signal"), mi("noise"))
	}
	if s := scores["signal"][featurev1.SelectionMethod_SELECTION_METHOD_CHI_SQUARED]; s.GetApplicable() {
		t.Errorf("chi-squared applies to a feature with negative values: %v", s)
	}
	if s := scores["tier"][featurev1.SelectionMethod_SELECTION_METHOD_CHI_SQUARED]; !s.GetApplicable() || s.GetPValue() > 1e-6 {
		t.Errorf("chi-squared of tier: %v", s)
	}
	if s := scores["signal"][featurev1.SelectionMethod_SELECTION_METHOD_L1_PATH].GetScore() + scores["copy"][featurev1.SelectionMethod_SELECTION_METHOD_L1_PATH].GetScore(); s < 1 {
		t.Errorf("neither signal nor its copy enters the L1 path first: %v", s)
	}
	drops := map[string]featurev1.DropReason{}
	for _, d := range resp.GetSuggestedDrops() {
		drops[d.GetName()] = d.GetReason()
	}
	redundant := "copy"
	if rank["copy"] < rank["signal"] {
		redundant = "signal"
	}
	if drops["constant"] != featurev1.DropReason_DROP_REASON_LOW_VARIANCE || drops[redundant] != featurev1.DropReason_DROP_REASON_REDUNDANT {
		t.Errorf("drops %v, want constant LOW_VARIANCE and %s REDUNDANT", drops, redundant)
	}
	names := make([]string, 0, len(rank))
	for n := range rank {
		names = append(names, n)
	}
	sort.Strings(names)
	if fmt.Sprint(names) != "[constant copy noise signal tier]" {
		t.Errorf("features %v", names)
	}
}
