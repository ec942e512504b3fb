package evaluate_test

import (
	"math"
	"testing"

	"go.uber.org/goleak"

	"github.com/bullseye-ml/bullseye/services/training/internal/evaluate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestBinary checks every metric and curve on six rows computed by hand.
func TestBinary(t *testing.T) {
	y := []float64{1, 0, 1, 1, 0, 0}
	p := []float64{0.9, 0.8, 0.7, 0.3, 0.2, 0.1}
	ms, curves := evaluate.Binary(y, p, p, evaluate.Options{Threshold: 0.5, Bins: 2, MaxROCPoints: 100})
	logLoss := -(math.Log(0.9) + math.Log(0.7) + math.Log(0.3) + math.Log(0.2) + math.Log(0.8) + math.Log(0.9)) / 6
	// Average precision: positives at ranks 1, 3, 4 → (1 + 2/3 + 3/4) / 3.
	want := map[string]float64{
		"roc_auc": 7.0 / 9, "pr_auc": (1 + 2.0/3 + 3.0/4) / 3, "log_loss": logLoss, "brier": 1.28 / 6,
		"accuracy": 4.0 / 6, "precision": 2.0 / 3, "recall": 2.0 / 3, "f1": 2.0 / 3,
	}
	if len(ms) != len(want) {
		t.Errorf("%d metrics, want %d", len(ms), len(want))
	}
	for _, m := range ms {
		if w, ok := want[m.GetName()]; !ok || !near(m.GetValue(), w) {
			t.Errorf("%s = %v, want %v", m.GetName(), m.GetValue(), w)
		}
	}
	roc := [][2]float64{{0, 0}, {0, 1.0 / 3}, {1.0 / 3, 1.0 / 3}, {1.0 / 3, 2.0 / 3}, {1.0 / 3, 1}, {2.0 / 3, 1}, {1, 1}}
	if len(curves.GetRoc()) != len(roc) {
		t.Fatalf("%d ROC points, want %d", len(curves.GetRoc()), len(roc))
	}
	for i, pt := range curves.GetRoc() {
		if !near(pt.GetFalsePositiveRate(), roc[i][0]) || !near(pt.GetTruePositiveRate(), roc[i][1]) {
			t.Errorf("ROC point %d = (%v, %v), want %v", i, pt.GetFalsePositiveRate(), pt.GetTruePositiveRate(), roc[i])
		}
	}
	if th := curves.GetRoc()[1].GetThreshold(); th != 0.9 {
		t.Errorf("second ROC point's threshold %v, want 0.9", th)
	}
	lift := curves.GetLift()
	if len(lift) != 2 || lift[0].GetPositives() != 2 || !near(lift[0].GetLift(), 4.0/3) || !near(lift[0].GetCumulativeGain(), 2.0/3) ||
		lift[0].GetMaxProbability() != 0.9 || lift[0].GetMinProbability() != 0.7 || !near(lift[1].GetCumulativeGain(), 1) || !near(lift[1].GetCumulativeLift(), 1) {
		t.Errorf("lift = %v", lift)
	}
	cal := curves.GetCalibration()
	if len(cal) != 2 || !near(cal[0].GetMeanPredicted(), 0.2) || !near(cal[0].GetObservedRate(), 1.0/3) ||
		!near(cal[1].GetMeanPredicted(), 0.8) || !near(cal[1].GetObservedRate(), 2.0/3) || cal[1].GetUpperBound() != 1 {
		t.Errorf("calibration = %v", cal)
	}

	// Without probabilities: no probability metrics, decisions at score 0.
	ms, curves = evaluate.Binary(y, []float64{2, 1, 0.5, -1, -2, -3}, nil, evaluate.Options{Threshold: 0.5, Bins: 2, MaxROCPoints: 3})
	for _, m := range ms {
		if m.GetName() == "log_loss" || m.GetName() == "brier" {
			t.Errorf("%s without probabilities", m.GetName())
		}
		if m.GetName() == "roc_auc" && !near(m.GetValue(), 7.0/9) {
			t.Errorf("roc_auc of scores = %v", m.GetValue())
		}
	}
	if len(curves.GetRoc()) != 3 || curves.GetCalibration() != nil {
		t.Errorf("thinned ROC %d points (want 3), calibration %v", len(curves.GetRoc()), curves.GetCalibration())
	}
}

func TestRegression(t *testing.T) {
	ms, err := evaluate.Regression([]float64{1, 2, 3}, []float64{1, 2, 5})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"rmse": math.Sqrt(4.0 / 3), "mae": 2.0 / 3, "r2": -1}
	for _, m := range ms {
		if !near(m.GetValue(), want[m.GetName()]) {
			t.Errorf("%s = %v, want %v", m.GetName(), m.GetValue(), want[m.GetName()])
		}
	}
}
