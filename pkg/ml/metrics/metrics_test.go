package metrics_test

import (
	"errors"
	"math"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9 }

func TestRanking(t *testing.T) {
	for _, tc := range []struct {
		name    string
		y, s    []float64
		auc, ap float64
	}{
		{
			name: "scikit-learn docs example",
			y:    []float64{0, 0, 1, 1}, s: []float64{0.1, 0.4, 0.35, 0.8},
			// AUC: of the 4 (pos, neg) pairs, (0.35 > 0.1), (0.8 > 0.1), (0.8 > 0.4) are
			// ordered: 3/4. AP: sorted 0.8+ 0.4− 0.35+ 0.1−: recall steps 0.5 at precision 1
			// and 0.5 at precision 2/3: 0.5 + 1/3.
			auc: 0.75, ap: 0.5 + 1.0/3,
		},
		{
			name: "ties count one half",
			y:    []float64{0, 1, 0, 1}, s: []float64{0.5, 0.5, 0.2, 0.9},
			// Pairs: (0.5 vs 0.5) = ½, (0.5 > 0.2), (0.9 > 0.5), (0.9 > 0.2): 3.5/4.
			// AP: thresholds 0.9 (tp 1, fp 0: R ½, P 1), 0.5 (tp 2, fp 1: R 1, P 2/3),
			// 0.2 (no recall gain): ½·1 + ½·2/3.
			auc: 3.5 / 4, ap: 0.5 + 1.0/3,
		},
		{
			name: "tied positive and negative at the top",
			y:    []float64{1, 0, 1}, s: []float64{0.5, 0.5, 0.2},
			// Pairs: (0.5 vs 0.5) = ½, (0.2 < 0.5) = 0: ½/2. AP: 0.5 (tp 1, fp 1: R ½, P ½),
			// 0.2 (tp 2, fp 1: R 1, P 2/3): ½·½ + ½·2/3.
			auc: 0.25, ap: 0.25 + 1.0/3,
		},
		{
			name: "perfect",
			y:    []float64{0, 0, 1}, s: []float64{-3, -2, 7},
			auc: 1, ap: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auc, err := metrics.ROCAUC(tc.y, tc.s)
			if err != nil || !near(auc, tc.auc) {
				t.Errorf("ROCAUC = %v, %v; want %v", auc, err, tc.auc)
			}
			ap, err := metrics.AveragePrecision(tc.y, tc.s)
			if err != nil || !near(ap, tc.ap) {
				t.Errorf("AveragePrecision = %v, %v; want %v", ap, err, tc.ap)
			}
		})
	}
	if _, err := metrics.ROCAUC([]float64{1, 1}, []float64{0.2, 0.3}); !errors.Is(err, metrics.ErrOneClass) {
		t.Errorf("ROCAUC of one class: err = %v, want ErrOneClass", err)
	}
	if _, err := metrics.ROCAUC([]float64{1, 0}, []float64{0.2}); err == nil {
		t.Error("ROCAUC with mismatched lengths: no error")
	}
}

func TestROC(t *testing.T) {
	// Ties at 0.5 make one point; the first point lies above every score.
	y := []float64{1, 0, 1, 0, 1}
	s := []float64{0.9, 0.5, 0.5, 0.2, 0.1}
	want := []metrics.ROCPoint{
		{Threshold: math.Nextafter(0.9, math.Inf(1))},
		{Threshold: 0.9, TruePositiveRate: 1.0 / 3},
		{Threshold: 0.5, FalsePositiveRate: 0.5, TruePositiveRate: 2.0 / 3},
		{Threshold: 0.2, FalsePositiveRate: 1, TruePositiveRate: 2.0 / 3},
		{Threshold: 0.1, FalsePositiveRate: 1, TruePositiveRate: 1},
	}
	for _, tc := range []struct {
		name      string
		maxPoints int
		want      []metrics.ROCPoint
	}{
		{"every point", 0, want},
		{"room for every point", len(want), want},
		{"thinned, the ends kept", 3, []metrics.ROCPoint{want[0], want[2], want[4]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := metrics.ROC(y, s, tc.maxPoints)
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("ROC = %v, %v; want %v", got, err, tc.want)
			}
			for i := range got {
				if got[i].Threshold != tc.want[i].Threshold || !near(got[i].FalsePositiveRate, tc.want[i].FalsePositiveRate) ||
					!near(got[i].TruePositiveRate, tc.want[i].TruePositiveRate) {
					t.Errorf("point %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
	if _, err := metrics.ROC([]float64{0, 0}, []float64{0.2, 0.3}, 0); !errors.Is(err, metrics.ErrOneClass) {
		t.Errorf("ROC of one class: err = %v, want ErrOneClass", err)
	}
	if _, err := metrics.ROC(nil, nil, 0); err == nil {
		t.Error("ROC of no rows: no error")
	}
}

func TestProbabilityMetrics(t *testing.T) {
	// −(ln 0.8 + ln 0.7)/2 = (0.223144 + 0.356675)/2.
	ll, err := metrics.LogLoss([]float64{1, 0}, []float64{0.8, 0.3})
	if want := -(math.Log(0.8) + math.Log(0.7)) / 2; err != nil || !near(ll, want) {
		t.Errorf("LogLoss = %v, %v; want %v", ll, err, want)
	}
	// Clipping keeps a confident mistake finite: −ln(1e-15)/1.
	ll, _ = metrics.LogLoss([]float64{1}, []float64{0})
	if want := -math.Log(1e-15); !near(ll, want) {
		t.Errorf("LogLoss of p = 0 for a positive = %v, want %v", ll, want)
	}
	// ((0.9−1)² + (0.2−0)² + (0.6−1)²)/3 = (0.01 + 0.04 + 0.16)/3 = 0.07.
	b, err := metrics.Brier([]float64{1, 0, 1}, []float64{0.9, 0.2, 0.6})
	if err != nil || !near(b, 0.07) {
		t.Errorf("Brier = %v, %v; want 0.07", b, err)
	}
}

func TestThreshold(t *testing.T) {
	// Decisions at 0.5: [1 0 1 0 1] against labels [1 1 0 0 1]: TP rows 0, 4; FN row 1;
	// FP row 2; TN row 3.
	c, err := metrics.At([]float64{1, 1, 0, 0, 1}, []float64{0.9, 0.4, 0.6, 0.1, 0.5}, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if want := (metrics.Confusion{TP: 2, FP: 1, TN: 1, FN: 1}); c != want {
		t.Fatalf("confusion = %+v, want %+v", c, want)
	}
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"accuracy (2+1)/5", c.Accuracy(), 0.6},
		{"precision 2/(2+1)", c.Precision(), 2.0 / 3},
		{"recall 2/(2+1)", c.Recall(), 2.0 / 3},
		{"F1 2·2/(2·2+1+1)", c.F1(), 2.0 / 3},
		{"precision with no positive decision", metrics.Confusion{FN: 3, TN: 1}.Precision(), 0},
	} {
		if !near(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestGains(t *testing.T) {
	// Scores 10..1 in row order; 4 positives of 10 (base rate 0.4); groups of 2 rows.
	y := []float64{1, 1, 0, 1, 0, 0, 1, 0, 0, 0}
	s := []float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}
	rows, err := metrics.Gains(y, s, 5)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		pos                         int
		lift, cumRows, gain, cumLft float64
	}{
		{2, 1 / 0.4, 0.2, 0.5, 0.5 / 0.2},     // rate 2/2
		{1, 0.5 / 0.4, 0.4, 0.75, 0.75 / 0.4}, // rate 1/2
		{0, 0, 0.6, 0.75, 0.75 / 0.6},
		{1, 0.5 / 0.4, 0.8, 1, 1 / 0.8},
		{0, 0, 1, 1, 1},
	}
	for g, w := range want {
		r := rows[g]
		if r.Group != g+1 || r.Rows != 2 || r.Positives != w.pos || !near(r.Lift, w.lift) ||
			!near(r.CumulativeRows, w.cumRows) || !near(r.CumulativeGain, w.gain) || !near(r.CumulativeLift, w.cumLft) {
			t.Errorf("group %d = %+v, want %+v", g+1, r, w)
		}
	}
	if rows[0].MaxScore != 10 || rows[0].MinScore != 9 {
		t.Errorf("group 1 scores [%v, %v], want [9, 10]", rows[0].MinScore, rows[0].MaxScore)
	}
	// Deciles of 25 rows: sizes floor((g+1)·25/10) − floor(g·25/10) = 2,3,2,3,2,3,2,3,2,3.
	y25, s25 := make([]float64, 25), make([]float64, 25)
	y25[0] = 1
	for i := range s25 {
		s25[i] = float64(-i)
	}
	rows, _ = metrics.Gains(y25, s25, 10)
	for g, n := range []int{2, 3, 2, 3, 2, 3, 2, 3, 2, 3} {
		if rows[g].Rows != n {
			t.Errorf("decile %d has %d rows, want %d", g+1, rows[g].Rows, n)
		}
	}
}

func TestCalibration(t *testing.T) {
	p := []float64{0.05, 0.15, 0.12, 0.55, 0.95, 0.91, 1}
	y := []float64{0, 0, 1, 1, 1, 0, 1}
	bins, err := metrics.Calibration(y, p, 2)
	if err != nil {
		t.Fatal(err)
	}
	// [0, 0.5): 0.05, 0.15, 0.12 with one positive; [0.5, 1]: 0.55, 0.95, 0.91, 1 with three.
	want := []metrics.CalibrationBin{
		{Lo: 0, Hi: 0.5, Rows: 3, MeanPredicted: (0.05 + 0.15 + 0.12) / 3, Observed: 1.0 / 3},
		{Lo: 0.5, Hi: 1, Rows: 4, MeanPredicted: (0.55 + 0.95 + 0.91 + 1) / 4, Observed: 3.0 / 4},
	}
	for i, w := range want {
		g := bins[i]
		if g.Rows != w.Rows || !near(g.Lo, w.Lo) || !near(g.Hi, w.Hi) || !near(g.MeanPredicted, w.MeanPredicted) || !near(g.Observed, w.Observed) {
			t.Errorf("bin %d = %+v, want %+v", i, g, w)
		}
	}
	bins, _ = metrics.Calibration(y, p, 10)
	if bins[3].Rows != 0 || bins[3].Observed != 0 {
		t.Errorf("empty bin = %+v, want zero rows", bins[3])
	}
	if _, err := metrics.Calibration([]float64{1}, []float64{1.5}, 2); err == nil {
		t.Error("probability 1.5: no error")
	}
}

func TestRegression(t *testing.T) {
	// scikit-learn's documented example: y = [3, −0.5, 2, 7], prediction [2.5, 0, 2, 8].
	y := []float64{3, -0.5, 2, 7}
	p := []float64{2.5, 0, 2, 8}
	// Squared errors 0.25, 0.25, 0, 1: MSE 0.375. Absolute errors 0.5, 0.5, 0, 1: MAE 0.5.
	// Mean y 2.875; SS_tot = 0.125² + 3.375² + 0.875² + 4.125² = 29.1875; R² = 1 − 1.5/29.1875
	// = 0.948608137… (scikit-learn's docs: 0.948...).
	rmse, _ := metrics.RMSE(y, p)
	mae, _ := metrics.MAE(y, p)
	r2, _ := metrics.R2(y, p)
	if !near(rmse, math.Sqrt(0.375)) || !near(mae, 0.5) || !near(r2, 1-1.5/29.1875) {
		t.Errorf("RMSE, MAE, R² = %v, %v, %v; want %v, 0.5, %v", rmse, mae, r2, math.Sqrt(0.375), 1-1.5/29.1875)
	}
	if r2, _ := metrics.R2([]float64{2, 2}, []float64{2, 2}); r2 != 1 {
		t.Errorf("R² of a perfect constant prediction = %v, want 1", r2)
	}
}

func TestMeanStd(t *testing.T) {
	for _, tc := range []struct {
		name      string
		v         []float64
		mean, std float64
	}{
		{"population deviation", []float64{2, 4, 4, 4, 5, 5, 7, 9}, 5, 2},
		{"one value", []float64{3}, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if mean, std := metrics.MeanStd(tc.v); !near(mean, tc.mean) || !near(std, tc.std) {
				t.Errorf("MeanStd = %v, %v; want %v, %v", mean, std, tc.mean, tc.std)
			}
		})
	}
	if mean, std := metrics.MeanStd(nil); !math.IsNaN(mean) || !math.IsNaN(std) {
		t.Errorf("MeanStd of nothing = %v, %v; want NaN, NaN", mean, std)
	}
}

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		name   string
		higher bool
		proba  bool
	}{
		{"roc_auc", true, false}, {"pr_auc", true, false}, {"log_loss", false, true},
		{"brier", false, true}, {"f1", true, false}, {"rmse", false, false}, {"r2", true, false},
	} {
		m, err := metrics.Lookup(tc.name)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", tc.name, err)
		}
		if m.HigherIsBetter != tc.higher || m.NeedsProbability != tc.proba {
			t.Errorf("%s: higher %v proba %v, want %v %v", tc.name, m.HigherIsBetter, m.NeedsProbability, tc.higher, tc.proba)
		}
	}
	if _, err := metrics.Lookup("nope"); err == nil {
		t.Error("Lookup of an unknown metric: no error")
	}
	// Threshold metrics decide at a score of 0.
	f1, _ := metrics.Lookup("f1")
	got, _ := f1.Score([]float64{1, 0, 1}, []float64{0.3, -1, -0.2})
	if !near(got, 2.0/3) { // TP 1, FN 1, FP 0: 2/(2+1)
		t.Errorf("f1 at 0 = %v, want 2/3", got)
	}
}
