package feature_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/datasets"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/testenv"
)

// purchase is one row of CDNOW_master.txt.
type purchase struct {
	customer string
	day      time.Time
	cds      int64
	dollars  float64
}

func readCDNOW(t *testing.T) (digest string, rows []purchase) {
	raw, err := os.ReadFile(datasets.Require(t, "CDNOW_master.txt"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	header := true
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if header {
			header = false
			continue
		}
		if len(f) != 4 {
			t.Fatalf("bad CDNOW line %q", sc.Text())
		}
		day, err := time.Parse("20060102", f[1])
		if err != nil {
			t.Fatal(err)
		}
		cds, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		dollars, err := strconv.ParseFloat(f[3], 64)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, purchase{customer: f[0], day: day, cds: cds, dollars: dollars})
	}
	return hex.EncodeToString(sum[:]), rows
}

// btyd is a customer's calibration summary and holdout spend, computed
// directly from the file.
type btyd struct {
	frequency                          int64
	recency, age, mean, meanRepeat, ho float64
}

func cdnowExpected(rows []purchase, cutoff, horizonEnd time.Time) map[string]*btyd {
	dayTotals := map[string]map[time.Time]float64{}
	holdout := map[string]float64{}
	for _, r := range rows {
		switch {
		case r.day.Before(cutoff):
			if dayTotals[r.customer] == nil {
				dayTotals[r.customer] = map[time.Time]float64{}
			}
			dayTotals[r.customer][r.day] += r.dollars
		case r.day.Before(horizonEnd):
			holdout[r.customer] += r.dollars
		}
	}
	out := map[string]*btyd{}
	for c, totals := range dayTotals {
		var ds []time.Time
		sum := 0.0
		for d, v := range totals {
			ds = append(ds, d)
			sum += v
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i].Before(ds[j]) })
		b := &btyd{
			frequency: int64(len(ds) - 1),
			recency:   ds[len(ds)-1].Sub(ds[0]).Hours() / 24,
			age:       cutoff.Sub(ds[0]).Hours() / 24,
			mean:      sum / float64(len(ds)),
			ho:        holdout[c],
		}
		if b.frequency > 0 {
			b.meanRepeat = (sum - totals[ds[0]]) / float64(b.frequency)
		}
		out[c] = b
	}
	return out
}

// TestCDNOW imports the CDNOW purchase log as purchase events and checks
// the BTYD summary at the cutoff 1997-10-01T00:00Z (so 1997-09-30 counts)
// and the label "spend in the following 39 weeks" against values computed
// directly from the file, for every customer.
func TestCDNOW(t *testing.T) {
	digest, rows := readCDNOW(t)
	env := testenv.New(t)
	svc := env.Start(env.Config())
	importID := "imp-" + digest[:16]
	pub := env.Publisher()
	for i, r := range rows {
		if err := pub.Publish(&ingestv1.StoredEvent{
			Type:       ingestv1.EventType_EVENT_TYPE_TRACK,
			MessageId:  importID + "-" + strconv.Itoa(i),
			UserId:     r.customer,
			Name:       "Order Completed",
			Value:      testenv.F(r.dollars),
			Currency:   "USD",
			Properties: map[string]*commonv1.Value{"number_of_cds": testenv.Int(r.cds)},
			EventTime:  timestamppb.New(r.day),
			ReceivedAt: timestamppb.Now(),
			Source:     ingestv1.EventSource_EVENT_SOURCE_IMPORT,
			ImportId:   importID,
			RowNumber:  int64(i),
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pub.Flush(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	testenv.ApplyReady(t, svc.Client, &featurev1.FeatureSet{
		Name:      "cdnow",
		RfmGroups: []*featurev1.RfmGroup{{Prefix: "btyd_", Style: featurev1.RfmStyle_RFM_STYLE_BTYD}},
	})
	cutoff := time.Date(1997, 10, 1, 0, 0, 0, 0, time.UTC)
	horizon := 39 * 7 * 24 * time.Hour
	ts, err := testenv.Build(ctxT(t, 2*time.Minute), svc.Client, &featurev1.BuildTrainingSetRequest{
		Spec: &featurev1.TrainingSetSpec{
			FeatureSet: &featurev1.FeatureSetRef{Name: "cdnow"},
			Label: &featurev1.LabelSpec{Name: "spend_39w", Source: &featurev1.LabelSpec_Outcome{Outcome: &featurev1.OutcomeLabel{
				Filter:      &featurev1.EventFilter{Names: []string{"Order Completed"}},
				Horizon:     durationpb.New(horizon),
				Aggregation: featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_SUM,
			}}},
			Cutoff: fixedCutoff(cutoff),
		},
		RowsPerMessage: 5000,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := cdnowExpected(rows, cutoff, cutoff.Add(horizon))
	if len(want) != 23570 || len(ts.Rows) != len(want) {
		t.Fatalf("got %d rows, want one per customer: %d (the file has 23,570)", len(ts.Rows), len(want))
	}
	names := []string{}
	for _, c := range ts.Header.GetColumns() {
		names = append(names, c.GetName())
	}
	if got := strings.Join(names, ","); got != "btyd_frequency,btyd_recency_days,btyd_age_days,btyd_monetary_mean,btyd_monetary_mean_repeat" {
		t.Fatalf("columns %s", got)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	bad := 0
	for _, r := range ts.Rows {
		w := want[r.GetEntity().GetId()]
		if w == nil {
			t.Fatalf("unexpected customer %q", r.GetEntity().GetId())
		}
		f := r.GetFeatures()
		ok := value(f[0]) == w.frequency &&
			near(value(f[1]).(float64), w.recency) &&
			near(value(f[2]).(float64), w.age) &&
			near(value(f[3]).(float64), w.mean) &&
			near(value(f[4]).(float64), w.meanRepeat) &&
			near(value(r.GetLabel()).(float64), w.ho)
		if !ok {
			bad++
			if bad <= 5 {
				t.Errorf("customer %s: got %v label %v, want %+v", r.GetEntity().GetId(), f, r.GetLabel(), *w)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d customers differ from the file", bad, len(ts.Rows))
	}
	if got := ts.Rows[0].GetEntity().GetId(); got != "00001" {
		t.Errorf("first row is customer %q, want 00001 (entity order)", got)
	}
}
