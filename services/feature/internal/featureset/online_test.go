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
	"github.com/bullseye-ml/bullseye/services/feature/internal/benchset"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
)

// onlineSet has short windows, so that events enter and leave them while
// the test's clock moves, and every kind of column that moves with time.
func onlineSet(t *testing.T) *Set {
	t.Helper()
	agg := benchset.Aggregate
	s, err := Compile(&featurev1.FeatureSet{Name: "online", Features: []*featurev1.Feature{
		agg("orders_1h", featurev1.Aggregation_AGGREGATION_COUNT, time.Hour, "buy"),
		agg("spend_1d", featurev1.Aggregation_AGGREGATION_SUM, 24*time.Hour, "buy"),
		agg("max_3d", featurev1.Aggregation_AGGREGATION_MAX, 72*time.Hour, "buy"),
		agg("mean_all", featurev1.Aggregation_AGGREGATION_MEAN, 0, "buy"),
		agg("items_1d", featurev1.Aggregation_AGGREGATION_DISTINCT_COUNT, 24*time.Hour),
		agg("days_2d", featurev1.Aggregation_AGGREGATION_DISTINCT_DAYS, 48*time.Hour),
		agg("since_view", featurev1.Aggregation_AGGREGATION_DAYS_SINCE_LAST, 0, "view"),
		agg("since_first", featurev1.Aggregation_AGGREGATION_DAYS_SINCE_FIRST, 0),
		{Name: "plan", Type: commonv1.ValueType_VALUE_TYPE_STRING, Source: &featurev1.Feature_Trait{Trait: &featurev1.TraitFeature{Trait: "plan"}}},
	}, RfmGroups: []*featurev1.RfmGroup{
		{Prefix: "c_", Window: durationpb.New(5 * time.Hour), Purchases: &featurev1.EventFilter{Names: []string{"buy"}}},
		{Prefix: "b_", Style: featurev1.RfmStyle_RFM_STYLE_BTYD, Purchases: &featurev1.EventFilter{Names: []string{"buy"}}},
	}}, "feature_set")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestEvalOnlineEqualsEval moves a clock across a customer's records (event
// times, window edges and the ticks either side of them, random instants)
// and checks that EvalOnline, which reuses earlier results, answers exactly
// what a fresh Eval does at every instant.
func TestEvalOnlineEqualsEval(t *testing.T) {
	s := onlineSet(t)
	rng := rand.New(rand.NewPCG(3, 9))
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	hour := int64(time.Hour)
	for c := 0; c < 40; c++ {
		p := profile.New(eventlog.UserKey("c"))
		var marks []int64
		for i := 0; i < 30; i++ {
			at := t0 + rng.Int64N(10*24*hour) - 5*24*hour
			marks = append(marks, at)
			ev := &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_TRACK, EventTime: profile.Timestamp(at), ItemId: []string{"a", "b", "c"}[rng.IntN(3)]}
			switch rng.IntN(4) {
			case 0, 1:
				v := float64(rng.IntN(100))
				ev.Name, ev.Value = "buy", &v
			case 2:
				ev.Name = "view"
			default:
				ev.Type = ingestv1.EventType_EVENT_TYPE_IDENTIFY
				ev.Traits = map[string]*commonv1.Value{"plan": {Kind: &commonv1.Value_StringValue{StringValue: []string{"free", "pro"}[rng.IntN(2)]}}}
			}
			p.Apply(uint64(i+1), ev)
		}
		var nows []int64
		for _, m := range marks {
			for _, w := range []int64{0, hour, 5 * hour, 24 * hour, 48 * hour, 72 * hour} {
				nows = append(nows, m+w-1, m+w, m+w+1, m+w+2)
			}
		}
		for i := 0; i < 200; i++ {
			nows = append(nows, t0+rng.Int64N(20*24*hour)-7*24*hour)
		}
		// Mostly forwards, as a clock goes, with a few steps back.
		sortInt64(nows)
		for i := 0; i < 10; i++ {
			j, k := rng.IntN(len(nows)), rng.IntN(len(nows))
			nows[j], nows[k] = nows[k], nows[j]
		}
		want := make([]Out, len(s.Columns))
		reused := 0
		var memo profile.Memo
		load := func() (*profile.Profile, error) { return p, nil }
		for _, now := range nows {
			before := memo.Load()
			got, err := s.EvalOnline(&memo, load, now)
			if err != nil {
				t.Fatal(err)
			}
			if before != nil && memo.Load() == before {
				reused++
			}
			s.Eval(p, now, want)
			for j := range want {
				if got.Out(j) != want[j] {
					t.Fatalf("customer %d at %s, column %s: online %+v, Eval %+v", c, time.Unix(0, now).UTC(), s.Columns[j].GetName(), got.Out(j), want[j])
				}
			}
		}
		if reused == 0 {
			t.Fatalf("customer %d: no lookup reused an earlier evaluation", c)
		}
	}
}

func sortInt64(xs []int64) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j] < xs[j-1]; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}
