package report_test

import (
	"strings"
	"testing"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/report"
)

// clvVersion is a CDNOW-like customer lifetime value version with its evaluation by
// calibration frequency.
func clvVersion() *modelv1.ModelVersion {
	mv := &modelv1.ModelVersion{
		ModelName: "cdnow-clv", Version: 1,
		Family: modelv1.ModelFamily_MODEL_FAMILY_BG_NBD_GAMMA_GAMMA, Task: modelv1.TaskKind_TASK_KIND_CUSTOMER_LIFETIME_VALUE,
		SelectionMetric: "mae", SelectionDirection: modelv1.MetricDirection_METRIC_DIRECTION_MINIMIZE,
		TestMetrics: []*commonv1.Metric{{Name: "mae", Value: 0.8165}, {Name: "holdout_purchases_actual", Value: 19684},
			{Name: "holdout_purchases_predicted", Value: 16622.93}},
		ClvParameters: &modelv1.ClvParameters{TimeUnitDays: 7, BgNbd: &modelv1.BgNbdParameters{R: 0.2507, Alpha: 4.765, A: 0.746, B: 2.216}},
		ClvEvaluation: &modelv1.ClvEvaluation{HoldoutUnits: 39},
	}
	for f, b := range [][3]float64{{14000, 0.24, 0.21}, {4000, 0.7, 0.6}, {2000, 1.2, 1.0}, {1200, 1.7, 1.5}, {800, 2.2, 1.9}, {500, 2.6, 2.4}, {400, 3.1, 2.8}, {670, 5.5, 4.6}} {
		mv.ClvEvaluation.FrequencyBins = append(mv.ClvEvaluation.FrequencyBins, &modelv1.ClvFrequencyBin{
			Frequency: int32(f), AndMore: f == 7, Customers: int64(b[0]), MeanActual: b[1], MeanPredicted: b[2]})
	}
	return mv
}

func TestCLVReport(t *testing.T) {
	curve := &report.RepeatCurve{Unit: "weeks", Calibration: 39, Customers: 23570}
	for w := 1; w <= 78; w++ {
		curve.Times = append(curve.Times, float64(w))
		curve.Actual = append(curve.Actual, 600*float64(w))
		curve.Expected = append(curve.Expected, 580*float64(w))
	}
	_, imgs := parse(t, write(t, clvVersion(), report.WithRepeatCurve(curve)))
	checkFigures(t, imgs, []string{"fig-repeat-purchases", "fig-frequency-vs-holdout"}, 640, 480)
	if a := imgs[0].alt; !strings.Contains(a, "Cumulative repeat purchases (n = 23,570 customers)") {
		t.Errorf("title %q", a)
	}
	imgs = imgs[1:]
	if c := imgs[0].caption; !strings.Contains(c, "repeat purchases they made in the calibration period") {
		t.Errorf("caption %q", c)
	}
	if a := imgs[0].alt; !strings.Contains(a, "n = 23,570") {
		t.Errorf("title %q", a)
	}
	mv := clvVersion()
	mv.ClvEvaluation = nil
	if _, imgs := parse(t, write(t, mv)); len(imgs) != 0 {
		t.Errorf("%d images without an evaluation", len(imgs))
	}
}
