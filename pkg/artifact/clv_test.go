package artifact_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/clv"
)

// btydDays draws n customers' BTYD summaries, times in whole days over a 273-day calibration
// period, from a BG/NBD process with Gamma-distributed spend.
func btydDays(seed uint64, n int) (freq, rec, age, mon []float64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	const period = 273
	for range n {
		first := float64(rng.IntN(84))
		T := period - first
		lambda := rng.ExpFloat64() / 30 // purchases a day
		p := 0.1 + 0.5*rng.Float64()
		t, x, last := 0.0, 0, 0.0
		for {
			t += rng.ExpFloat64() / lambda
			if t > T {
				break
			}
			x++
			last = math.Floor(t)
			if rng.Float64() < p {
				break
			}
		}
		m := 0.0
		if x > 0 {
			m = 5 + 40*rng.Float64()
		}
		freq, rec, age, mon = append(freq, float64(x)), append(rec, last), append(age, T), append(mon, m)
	}
	return freq, rec, age, mon
}

func fitCLV(t *testing.T) (*artifact.CLVModel, [4][]float64) {
	t.Helper()
	freq, rec, age, mon := btydDays(3, 2000)
	m := &artifact.CLVModel{Inputs: artifact.BTYDInputs("rfm_"), TimeUnitDays: 7,
		Horizon: clv.Horizon{Months: 12, MonthlyDiscount: 0.01, UnitsPerMonth: clv.WeeksPerMonth}}
	customers := make([]clv.Customer, len(freq))
	for i := range freq {
		customers[i] = m.Customer("", freq[i], rec[i], age[i], mon[i])
	}
	bg, err := clv.FitBGNBD(customers)
	if err != nil {
		t.Fatal(err)
	}
	gg, err := clv.FitGammaGamma(customers)
	if err != nil {
		t.Fatal(err)
	}
	m.BGNBD, m.GammaGamma = bg, gg
	return m, [4][]float64{freq, rec, age, mon}
}

func TestRoundTripCLV(t *testing.T) {
	m, _ := fitCLV(t)
	a, err := artifact.EncodeCLV(m)
	if err != nil {
		t.Fatal(err)
	}
	a.ModelName, a.ModelVersion = "cdnow-clv", 2
	b, sha, err := artifact.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	back, err := artifact.Unmarshal(b, sha)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(a, back) {
		t.Fatal("the artifact changed through Marshal and Unmarshal")
	}
	got, err := artifact.DecodeCLV(back)
	if err != nil {
		t.Fatal(err)
	}
	if got.BGNBD.BGNBDParams != m.BGNBD.BGNBDParams || got.BGNBD.StdErr != m.BGNBD.StdErr ||
		got.BGNBD.LogLik != m.BGNBD.LogLik || got.BGNBD.Customers != m.BGNBD.Customers ||
		got.GammaGamma.GammaGammaParams != m.GammaGamma.GammaGammaParams || got.GammaGamma.StdErr != m.GammaGamma.StdErr ||
		got.GammaGamma.LogLik != m.GammaGamma.LogLik || got.GammaGamma.Customers != m.GammaGamma.Customers || got.Inputs != m.Inputs ||
		got.TimeUnitDays != m.TimeUnitDays || got.Horizon != m.Horizon {
		t.Errorf("decoded\n%+v %+v\nwant\n%+v %+v", got.BGNBD, got.GammaGamma, m.BGNBD, m.GammaGamma)
	}
	var names []string
	for _, in := range a.GetInputs() {
		names = append(names, in.GetName())
		if in.GetMissing() != modelv1.MissingPolicy_MISSING_POLICY_REQUIRED {
			t.Errorf("input %s: missing policy %v, want REQUIRED", in.GetName(), in.GetMissing())
		}
	}
	if got, want := strings.Join(names, ","), "rfm_frequency,rfm_recency_days,rfm_age_days,rfm_monetary_mean_repeat"; got != want {
		t.Errorf("inputs %s, want %s", got, want)
	}
	var outs []string
	for _, o := range artifact.Outputs(a, false).GetOutputs() {
		outs = append(outs, o.GetName())
	}
	if got, want := strings.Join(outs, ","), "score,expected_purchases,p_alive,expected_order_value,clv"; got != want {
		t.Errorf("outputs %s, want %s", got, want)
	}
	if _, err := artifact.Decode(a); !errors.Is(err, artifact.ErrUnsupported) {
		t.Errorf("Decode of a CLV artifact: %v, want ErrUnsupported", err)
	}

	for _, tc := range []struct {
		name   string
		change func(a *modelv1.ModelArtifact)
	}{
		{"no parameters", func(a *modelv1.ModelArtifact) { a.Parameters = nil }},
		{"zero time unit", func(a *modelv1.ModelArtifact) { a.GetClv().TimeUnitDays = 0 }},
		{"negative r", func(a *modelv1.ModelArtifact) { a.GetClv().GetBgNbd().R = -1 }},
		{"zero horizon", func(a *modelv1.ModelArtifact) { a.GetClv().HorizonMonths = 0 }},
		{"renamed input", func(a *modelv1.ModelArtifact) { a.Inputs[2].Name = "age" }},
		{"string input", func(a *modelv1.ModelArtifact) { a.Inputs[3].Type = commonv1.ValueType_VALUE_TYPE_STRING }},
		{"three inputs", func(a *modelv1.ModelArtifact) { a.Inputs = a.Inputs[:3] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := proto.Clone(a).(*modelv1.ModelArtifact)
			tc.change(bad)
			if _, err := artifact.NewScorer(bad); !errors.Is(err, artifact.ErrInvalid) {
				t.Errorf("NewScorer: %v, want ErrInvalid", err)
			}
		})
	}
}

var nilTime time.Time

func TestScoreCLV(t *testing.T) {
	ctx := context.Background()
	m, data := fitCLV(t)
	a, err := artifact.EncodeCLV(m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := artifact.NewScorer(a)
	if err != nil {
		t.Fatal(err)
	}
	if s.Info().Task != modelv1.TaskKind_TASK_KIND_CUSTOMER_LIFETIME_VALUE {
		t.Errorf("task %v", s.Info().Task)
	}
	b := artifact.NewBatch(s.Info())
	n := 300
	for i := range n {
		row := b.Add(nilTime)
		row[0], row[1], row[2], row[3] = integer(int64(data[0][i])), num(data[1][i]), num(data[2][i]), num(data[3][i])
	}
	var res artifact.Result
	if err := s.Score(ctx, b, &res); err != nil {
		t.Fatal(err)
	}
	horizon := 12 * clv.WeeksPerMonth
	for i := range n {
		if res.Problems[i] != nil {
			t.Fatalf("row %d: %v", i, res.Problems[i])
		}
		c := clv.Customer{Frequency: data[0][i], Recency: data[1][i] / 7, T: data[2][i] / 7, Monetary: data[3][i]}
		value, err := clv.CLV(m.BGNBD.BGNBDParams, m.GammaGamma.GammaGammaParams, c, m.Horizon)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []struct {
			name string
			got  float64
			want float64
		}{
			{"expected_purchases", res.Outputs[artifact.OutputExpectedPurchases][i], m.BGNBD.ExpectedPurchases(c, horizon)},
			{"p_alive", res.Outputs[artifact.OutputPAlive][i], m.BGNBD.ProbAlive(c)},
			{"expected_order_value", res.Outputs[artifact.OutputExpectedOrderValue][i], m.GammaGamma.ExpectedAverageValue(c)},
			{"clv", res.Outputs[artifact.OutputCLV][i], value},
			{"score", res.Scores[i], value},
		} {
			if w.got != w.want {
				t.Errorf("row %d %s: got %v, want %v", i, w.name, w.got, w.want)
			}
		}
	}

	// The same rows as a columnar table score the same.
	tb := &ml.Table{}
	for k, name := range []string{"rfm_frequency", "rfm_recency_days", "rfm_age_days", "rfm_monetary_mean_repeat"} {
		tb.Columns = append(tb.Columns, ml.NumericColumn(name, data[k][:n]))
	}
	var res2 artifact.Result
	if err := s.Score(ctx, &artifact.Batch{Table: tb}, &res2); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if res2.Scores[i] != res.Scores[i] || res2.Outputs[artifact.OutputPAlive][i] != res.Outputs[artifact.OutputPAlive][i] {
			t.Fatalf("row %d: table %v, rows %v", i, res2.Scores[i], res.Scores[i])
		}
	}

	// Without Gamma-Gamma: expected purchases are the score, no value outputs.
	m.GammaGamma = nil
	a2, err := artifact.EncodeCLV(m)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := artifact.NewScorer(a2)
	if err != nil {
		t.Fatal(err)
	}
	b2 := artifact.NewBatch(s2.Info())
	copy(b2.Add(nilTime), b.Row(0))
	if err := s2.Score(ctx, b2, &res); err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Outputs[artifact.OutputCLV]; ok || res.Scores[0] != res.Outputs[artifact.OutputExpectedPurchases][0] {
		t.Errorf("without Gamma-Gamma: score %v, outputs %v", res.Scores[0], res.Outputs)
	}
	if len(a2.GetOutputs().GetOutputs()) != 3 {
		t.Errorf("without Gamma-Gamma the signature is %v", a2.GetOutputs())
	}
}

func TestScoreCLVBadRows(t *testing.T) {
	ctx := context.Background()
	m, _ := fitCLV(t)
	a, err := artifact.EncodeCLV(m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := artifact.NewScorer(a)
	if err != nil {
		t.Fatal(err)
	}
	good := []*commonv1.Value{integer(2), num(30), num(100), num(20)}
	for _, tc := range []struct {
		name   string
		k      int
		v      *commonv1.Value
		field  string
		reason string
	}{
		{"negative frequency", 0, integer(-1), "features.rfm_frequency", "OUT_OF_RANGE"},
		{"fractional frequency", 0, num(1.5), "features.rfm_frequency", "OUT_OF_RANGE"},
		{"negative recency", 1, num(-3), "features.rfm_recency_days", "OUT_OF_RANGE"},
		{"recency beyond age", 1, num(101), "features.rfm_recency_days", "OUT_OF_RANGE"},
		{"zero age", 2, num(0), "features.rfm_age_days", "OUT_OF_RANGE"},
		{"negative monetary", 3, num(-5), "features.rfm_monetary_mean_repeat", "OUT_OF_RANGE"},
		{"missing age", 2, nil, "features.rfm_age_days", "MISSING_INPUT"},
		{"infinite monetary", 3, num(math.Inf(1)), "features.rfm_monetary_mean_repeat", "NOT_FINITE"},
		{"string recency", 1, &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: "3"}}, "features.rfm_recency_days", "WRONG_TYPE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := artifact.NewBatch(s.Info())
			copy(b.Add(nilTime), good)
			bad := b.Add(nilTime)
			copy(bad, good)
			bad[tc.k] = tc.v
			copy(b.Add(nilTime), good)
			var res artifact.Result
			if err := s.Score(ctx, b, &res); err != nil {
				t.Fatal(err)
			}
			p := res.Problems[1]
			if p.GetField() != tc.field || p.GetReason() != tc.reason {
				t.Fatalf("problem %v, want field %s reason %s", p, tc.field, tc.reason)
			}
			if !math.IsNaN(res.Scores[1]) || !math.IsNaN(res.Outputs[artifact.OutputCLV][1]) {
				t.Errorf("bad row scored %v", res.Scores[1])
			}
			for _, i := range []int{0, 2} {
				if res.Problems[i] != nil || math.IsNaN(res.Scores[i]) {
					t.Errorf("neighbour %d: %v %v", i, res.Problems[i], res.Scores[i])
				}
			}
		})
	}
}
