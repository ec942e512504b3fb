package trainer

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/clv"
	"github.com/bullseye-ml/bullseye/services/training/internal/featuretest"
)

const holdoutDays = 273

// btyd is a table of n customers' BTYD summaries at a cutoff (times in whole days, as the
// feature service gives them) and their purchase days in the holdout period after it, drawn
// from a BG/NBD process with uniform spend; every tenth customer has no purchase at all (null
// values).
func btyd(n int) *featuretest.Table {
	rng := rand.New(rand.NewPCG(11, 3))
	t := &featuretest.Table{Columns: []*featurev1.FeatureColumn{
		{Name: "rfm_frequency", Type: commonv1.ValueType_VALUE_TYPE_INT},
		{Name: "rfm_recency_days", Type: commonv1.ValueType_VALUE_TYPE_NUMBER},
		{Name: "rfm_age_days", Type: commonv1.ValueType_VALUE_TYPE_NUMBER},
		{Name: "rfm_monetary_mean_repeat", Type: commonv1.ValueType_VALUE_TYPE_NUMBER},
		{Name: "holdout", Type: commonv1.ValueType_VALUE_TYPE_INT},
	}}
	for i := range n {
		if i%10 == 9 {
			t.Rows = append(t.Rows, []*commonv1.Value{nil, nil, nil, nil, integer(0)})
			continue
		}
		age := float64(190 + rng.IntN(84))
		lambda := rng.ExpFloat64() / 25
		p := 0.05 + 0.4*rng.Float64()
		days := map[float64]bool{0: true}
		alive, at := true, 0.0
		holdout := map[float64]bool{}
		for alive {
			at += rng.ExpFloat64() / lambda
			if at >= age+holdoutDays {
				break
			}
			d := math.Floor(at)
			if at < age {
				days[d] = true
			} else {
				holdout[d] = true
			}
			alive = rng.Float64() >= p
		}
		x := len(days) - 1
		last := 0.0
		for d := range days {
			last = max(last, d)
		}
		m := 0.0
		if x > 0 {
			m = 10 + 30*rng.Float64()
		}
		t.Rows = append(t.Rows, []*commonv1.Value{integer(int64(x)), num(last), num(age), num(m), integer(int64(len(holdout)))})
	}
	return t
}

func integer(x int64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: x}}
}

// clvSpec is a CLV job on the BTYD table, in weeks, its label the holdout purchases.
func clvSpec(model string) *trainingv1.TrainingSpec {
	return &trainingv1.TrainingSpec{
		ModelName: model,
		Task:      modelv1.TaskKind_TASK_KIND_CUSTOMER_LIFETIME_VALUE,
		Data: &trainingv1.DataSpec{Source: &trainingv1.DataSpec_TrainingSet{TrainingSet: &featurev1.TrainingSetSpec{
			FeatureSet: &featurev1.FeatureSetRef{Name: "synth"},
			Label: &featurev1.LabelSpec{Name: "holdout", Source: &featurev1.LabelSpec_Outcome{Outcome: &featurev1.OutcomeLabel{
				Filter:      &featurev1.EventFilter{Names: []string{"Order Completed"}},
				Horizon:     durationpb.New(holdoutDays * 24 * time.Hour),
				Aggregation: featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_DISTINCT_DAYS,
			}}},
			FeatureNames: []string{"rfm_frequency", "rfm_recency_days", "rfm_age_days", "rfm_monetary_mean_repeat"},
			Cutoff:       &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_FixedTime{FixedTime: timestamppb.New(time.Date(1997, 10, 1, 0, 0, 0, 0, time.UTC))}},
		}}},
		Candidates: []*trainingv1.CandidateSpec{{Family: modelv1.ModelFamily_MODEL_FAMILY_BG_NBD_GAMMA_GAMMA}},
	}
}

// summaryOf converts the table's customers with purchases to clv.Customers in weeks, and
// returns their holdout purchases.
func summaryOf(t *featuretest.Table) ([]clv.Customer, []float64) {
	var cs []clv.Customer
	var holdout []float64
	for _, r := range t.Rows {
		if r[0] == nil {
			continue
		}
		cs = append(cs, clv.Customer{Frequency: float64(r[0].GetIntValue()), Recency: r[1].GetNumberValue() / 7,
			T: r[2].GetNumberValue() / 7, Monetary: r[3].GetNumberValue()})
		holdout = append(holdout, float64(r[4].GetIntValue()))
	}
	return cs, holdout
}

// TestRunCLV: a CLV job fits BG/NBD and Gamma-Gamma to the customers with purchases, exactly
// as pkg/ml/clv does on the same summary in weeks, evaluates the expected against the actual
// holdout purchases, and registers the version with its parameters, inputs and outputs.
func TestRunCLV(t *testing.T) {
	table := btyd(3000)
	s := newStand(t, table)
	out, rep, err := s.run(t, "job-clv", clvSpec("clv"))
	if err != nil {
		t.Fatal(err)
	}
	want := []trainingv1.JobStage{trainingv1.JobStage_JOB_STAGE_LOADING_DATA, trainingv1.JobStage_JOB_STAGE_REFITTING,
		trainingv1.JobStage_JOB_STAGE_EVALUATING, trainingv1.JobStage_JOB_STAGE_REGISTERING}
	if !slices.Equal(rep.stages, want) {
		t.Errorf("stages %v, want %v", rep.stages, want)
	}
	for _, code := range []string{"CUSTOMERS_WITHOUT_PURCHASES", "CLV_FITTED", "CLV_HOLDOUT", "MODEL_REGISTERED"} {
		if !slices.Contains(rep.codes(), code) {
			t.Errorf("messages %v, want %s", rep.codes(), code)
		}
	}
	customers, holdout := summaryOf(table)
	bg, err := clv.FitBGNBD(customers)
	if err != nil {
		t.Fatal(err)
	}
	gg, err := clv.FitGammaGamma(customers)
	if err != nil {
		t.Fatal(err)
	}
	v := out.Version
	p := v.GetClvParameters()
	if v.GetTask() != modelv1.TaskKind_TASK_KIND_CUSTOMER_LIFETIME_VALUE || v.GetFamily() != modelv1.ModelFamily_MODEL_FAMILY_BG_NBD_GAMMA_GAMMA || p == nil {
		t.Fatalf("registered %v %v with parameters %v", v.GetTask(), v.GetFamily(), p)
	}
	b := p.GetBgNbd()
	if b.GetR() != bg.R || b.GetAlpha() != bg.Alpha || b.GetA() != bg.A || b.GetB() != bg.B || b.GetLogLikelihood() != bg.LogLik ||
		b.GetCustomers() != int64(len(customers)) || b.GetRStdErr() != bg.StdErr.R {
		t.Errorf("BG/NBD %v, want %+v", b, bg)
	}
	g := p.GetGammaGamma()
	if g.GetP() != gg.P || g.GetQ() != gg.Q || g.GetGamma() != gg.Gamma || g.GetCustomers() != int64(gg.Customers) {
		t.Errorf("Gamma-Gamma %v, want %+v", g, gg)
	}
	if p.GetTimeUnitDays() != 7 || p.GetHorizonMonths() != 12 || p.GetMonthlyDiscount() != 0.01 || p.GetUnitsPerMonth() != clv.WeeksPerMonth ||
		p.GetInputs().GetAgeDays() != "rfm_age_days" {
		t.Errorf("parameters %v", p)
	}

	var abs, actual, predicted float64
	for i, c := range customers {
		e := bg.ExpectedPurchases(c, holdoutDays/7.0)
		abs += math.Abs(e - holdout[i])
		actual += holdout[i]
		predicted += e
	}
	metric := func(name string) float64 {
		for _, m := range v.GetTestMetrics() {
			if m.GetName() == name {
				return m.GetValue()
			}
		}
		t.Errorf("no metric %s in %v", name, v.GetTestMetrics())
		return math.NaN()
	}
	for _, w := range []struct {
		name string
		want float64
	}{
		{"mae", abs / float64(len(customers))},
		{"holdout_purchases_actual", actual},
		{"holdout_purchases_predicted", predicted},
		{"bg_nbd_log_likelihood", bg.LogLik},
		{"gamma_gamma_log_likelihood", gg.LogLik},
	} {
		if got := metric(w.name); math.Abs(got-w.want) > 1e-9*math.Max(1, math.Abs(w.want)) {
			t.Errorf("%s %v, want %v", w.name, got, w.want)
		}
	}
	ev := v.GetClvEvaluation()
	var binned int64
	var binActual, binPredicted float64
	for i, b := range ev.GetFrequencyBins() {
		binned += b.GetCustomers()
		binActual += b.GetMeanActual() * float64(b.GetCustomers())
		binPredicted += b.GetMeanPredicted() * float64(b.GetCustomers())
		if b.GetAndMore() != (b.GetFrequency() == 7) || (i > 0 && b.GetFrequency() <= ev.GetFrequencyBins()[i-1].GetFrequency()) {
			t.Errorf("bin %d: %v", i, b)
		}
	}
	if ev.GetHoldoutUnits() != holdoutDays/7.0 || binned != int64(len(customers)) || math.Abs(binActual-actual) > 1e-6 || math.Abs(binPredicted-predicted) > 1e-6 {
		t.Errorf("evaluation by frequency %v: %d customers, %v actual, %v predicted; want %d, %v, %v", ev, binned, binActual, binPredicted,
			len(customers), actual, predicted)
	}
	if r := predicted / actual; r < 0.8 || r > 1.25 {
		t.Errorf("predicted %v holdout purchases against %v actual", predicted, actual)
	}
	var outs []string
	for _, o := range v.GetOutputs().GetOutputs() {
		outs = append(outs, o.GetName())
	}
	if got := strings.Join(outs, ","); got != "score,expected_purchases,p_alive,expected_order_value,clv" {
		t.Errorf("outputs %s", got)
	}
	if v.GetLineage().GetTrainRows() != int64(len(customers)) {
		t.Errorf("lineage train rows %d, want %d", v.GetLineage().GetTrainRows(), len(customers))
	}

	// Days and no Gamma-Gamma.
	days := clvSpec("clv-days")
	days.Candidates[0].Hyperparameters = map[string]*trainingv1.HyperparameterDomain{
		"time_unit":   {Domain: &trainingv1.HyperparameterDomain_Values{Values: &trainingv1.HyperparameterValues{Values: []*commonv1.Value{str("days")}}}},
		"gamma_gamma": {Domain: &trainingv1.HyperparameterDomain_Values{Values: &trainingv1.HyperparameterValues{Values: []*commonv1.Value{{Kind: &commonv1.Value_BoolValue{}}}}}},
	}
	out, _, err = s.run(t, "job-clv-days", days)
	if err != nil {
		t.Fatal(err)
	}
	p = out.Version.GetClvParameters()
	if p.GetTimeUnitDays() != 1 || p.GetGammaGamma() != nil || p.GetUnitsPerMonth() != clv.DaysPerMonth {
		t.Errorf("in days without Gamma-Gamma: %v", p)
	}
	// BG/NBD's alpha scales with the time unit, r, a and b do not.
	if got := p.GetBgNbd().GetAlpha() / 7; math.Abs(got-bg.Alpha)/bg.Alpha > 1e-3 || math.Abs(p.GetBgNbd().GetR()-bg.R)/bg.R > 1e-3 {
		t.Errorf("in days alpha/7 %v r %v, in weeks alpha %v r %v", got, p.GetBgNbd().GetR(), bg.Alpha, bg.R)
	}
}

// TestRunCLVRefusesBadCustomers: a customer with a negative value, a zero age, a recency
// beyond the age or a missing value fails the job with INVALID_DATA naming the customer and
// the column, and registers nothing.
func TestRunCLVRefusesBadCustomers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		col   int
		v     *commonv1.Value
		words string
	}{
		{"negative frequency", 0, integer(-1), `"rfm_frequency" is -1, want ≥ 0`},
		{"negative monetary", 3, num(-2), `"rfm_monetary_mean_repeat" is -2, want ≥ 0`},
		{"zero age", 2, num(0), `"rfm_age_days" is 0`},
		{"recency beyond age", 1, num(400), `"rfm_recency_days" is 400, want ≤ the age`},
		{"missing recency", 1, nil, `"rfm_recency_days" is missing`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := btyd(200)
			table.Rows[5][tc.col] = tc.v
			s := newStand(t, table)
			_, _, err := s.run(t, "job-bad", clvSpec("clv-bad"))
			if reason(err) != ReasonInvalidData || !strings.Contains(err.Error(), `customer "c-000005"`) || !strings.Contains(err.Error(), tc.words) {
				t.Fatalf("%v, want %s naming customer c-000005 and %s", err, ReasonInvalidData, tc.words)
			}
			if _, err := s.registry.Version(context.Background(), "clv-bad", 1); err == nil {
				t.Error("a version was registered")
			}
		})
	}
}
