package featureset

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func purchases(t *testing.T, at ...struct {
	when  time.Time
	value float64
}) *profile.Profile {
	p := profile.New(eventlog.UserKey("c"))
	for i, a := range at {
		v := a.value
		p.Apply(uint64(i+1), &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_TRACK, Name: DefaultPurchaseEvent, Value: &v, EventTime: profile.Timestamp(a.when.UnixNano())})
	}
	return p
}

// TestRFMByHand checks both RFM styles on a history worked out by hand:
// purchases of 10 and 5 on Jan 1 (one purchase day), 20 on Jan 4, 30 on
// Jan 11, and 99 on the cutoff day (not counted), cutoff Jan 21.
func TestRFMByHand(t *testing.T) {
	d := func(day, hour int) time.Time { return time.Date(2024, 1, day, hour, 0, 0, 0, time.UTC) }
	type buy = struct {
		when  time.Time
		value float64
	}
	p := purchases(t, buy{d(1, 9), 10}, buy{d(1, 18), 5}, buy{d(4, 12), 20}, buy{d(11, 0), 30}, buy{d(21, 0), 99})
	cutoff := d(21, 0).UnixNano()
	set, err := Compile(&featurev1.FeatureSet{Name: "rfm", RfmGroups: []*featurev1.RfmGroup{
		{Prefix: "c_"},
		{Prefix: "b_", Style: featurev1.RfmStyle_RFM_STYLE_BTYD},
	}}, "feature_set")
	if err != nil {
		t.Fatal(err)
	}
	out := make([]Out, len(set.Columns))
	set.Eval(p, cutoff, out)
	want := map[string]profile.Value{
		"c_recency_days":         profile.NumberValue(10),              // Jan 11 to Jan 21
		"c_frequency":            profile.IntValue(4),                  // four purchases
		"c_monetary_total":       profile.NumberValue(65),              // 10 + 5 + 20 + 30
		"c_monetary_mean":        profile.NumberValue(65.0 / 4),        //
		"b_frequency":            profile.IntValue(2),                  // purchase days Jan 1, 4, 11
		"b_recency_days":         profile.NumberValue(10),              // Jan 1 to Jan 11
		"b_age_days":             profile.NumberValue(20),              // Jan 1 to Jan 21
		"b_monetary_mean":        profile.NumberValue(65.0 / 3),        // day totals 15, 20, 30
		"b_monetary_mean_repeat": profile.NumberValue((20 + 30) / 2.0), // after the first day
	}
	for i, c := range set.Columns {
		if got := out[i].Value; got != want[c.GetName()] {
			t.Errorf("%s = %+v, want %+v", c.GetName(), got, want[c.GetName()])
		}
	}
	set.Eval(p, d(1, 0).UnixNano(), out)
	for i, c := range set.Columns {
		if !out[i].Value.IsNull() {
			t.Errorf("before any purchase %s = %+v, want null", c.GetName(), out[i].Value)
		}
	}
}
