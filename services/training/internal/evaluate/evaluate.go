// Package evaluate computes the metrics and curves of a scored data set, in the terms the API
// and marketers use: ROC-AUC, PR-AUC, log loss, Brier score, decisions at a threshold, lift and
// cumulative gains by bin and a calibration table for binary classifiers; RMSE, MAE and R² for
// regression.
package evaluate

import (
	"errors"
	"fmt"
	"math"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/clv"
	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
)

// Options set how metrics are computed.
type Options struct {
	// Threshold is the probability (the score, for models without probabilities) at or
	// above which a row is predicted positive.
	Threshold float64
	// Bins is the number of lift and calibration bins.
	Bins int
	// MaxROCPoints bounds the ROC curve's points.
	MaxROCPoints int
}

// Binary returns the metrics of a binary classifier's scores (larger for the positive class)
// and, when not nil, probabilities, against labels y (0 or 1), and the curves. Metrics that
// cannot be computed (one class only, no probabilities) are left out.
func Binary(y, scores, probs []float64, o Options) ([]*commonv1.Metric, *modelv1.ClassificationCurves) {
	var out []*commonv1.Metric
	add := func(name string, v float64, err error) {
		if err == nil && !math.IsNaN(v) {
			out = append(out, &commonv1.Metric{Name: name, Value: v})
		}
	}
	if len(y) == 0 {
		return nil, nil
	}
	v, err := metrics.ROCAUC(y, scores)
	add("roc_auc", v, err)
	v, err = metrics.AveragePrecision(y, scores)
	add("pr_auc", v, err)
	decision, threshold := scores, 0.0
	if probs != nil {
		v, err = metrics.LogLoss(y, probs)
		add("log_loss", v, err)
		v, err = metrics.Brier(y, probs)
		add("brier", v, err)
		decision, threshold = probs, o.Threshold
	}
	if c, err := metrics.At(y, decision, threshold); err == nil {
		add("accuracy", c.Accuracy(), nil)
		add("precision", c.Precision(), nil)
		add("recall", c.Recall(), nil)
		add("f1", c.F1(), nil)
	}
	curves := &modelv1.ClassificationCurves{Roc: roc(y, decision, o.MaxROCPoints)}
	if g, err := metrics.Gains(y, decision, min(o.Bins, len(y))); err == nil {
		for _, r := range g {
			curves.Lift = append(curves.Lift, &modelv1.LiftBin{
				Bin: int32(r.Group), Rows: int64(r.Rows), Positives: int64(r.Positives), ResponseRate: r.Rate,
				Lift: r.Lift, CumulativeGain: r.CumulativeGain, CumulativeLift: r.CumulativeLift,
				MinProbability: r.MinScore, MaxProbability: r.MaxScore,
			})
		}
	}
	if probs != nil {
		if cal, err := metrics.Calibration(y, probs, o.Bins); err == nil {
			for _, b := range cal {
				curves.Calibration = append(curves.Calibration, &modelv1.CalibrationBin{
					LowerBound: b.Lo, UpperBound: b.Hi, Rows: int64(b.Rows), MeanPredicted: b.MeanPredicted, ObservedRate: b.Observed,
				})
			}
		}
	}
	return out, curves
}

// roc returns the ROC curve of decision values d, at most maxPoints points, or nil when the
// labels hold one class.
func roc(y, d []float64, maxPoints int) []*modelv1.RocPoint {
	pts, err := metrics.ROC(y, d, maxPoints)
	if err != nil {
		return nil
	}
	out := make([]*modelv1.RocPoint, len(pts))
	for i, pt := range pts {
		out[i] = &modelv1.RocPoint{Threshold: pt.Threshold, FalsePositiveRate: pt.FalsePositiveRate, TruePositiveRate: pt.TruePositiveRate}
	}
	return out
}

// Regression returns RMSE, MAE and R² of predictions against targets.
func Regression(y, pred []float64) ([]*commonv1.Metric, error) {
	if len(y) == 0 {
		return nil, errors.New("no labelled rows")
	}
	rmse, _ := metrics.RMSE(y, pred)
	mae, _ := metrics.MAE(y, pred)
	r2, _ := metrics.R2(y, pred)
	return []*commonv1.Metric{{Name: "rmse", Value: rmse}, {Name: "mae", Value: mae}, {Name: "r2", Value: r2}}, nil
}

// Value returns a named metric's value from a list.
func Value(ms []*commonv1.Metric, name string) (float64, bool) {
	for _, m := range ms {
		if m.GetName() == name {
			return m.GetValue(), true
		}
	}
	return 0, false
}

// CLVHoldout compares a CLV model's expected purchases of customers over a holdout period of
// t time units (the model's) with the purchases they made, actual[i] for customers[i]: per
// customer the mean absolute and root mean squared error, and over all of them the actual
// and the expected totals (metrics mae, rmse, holdout_purchases_actual and
// holdout_purchases_predicted). It also returns the expected purchases. It fails without a
// customer.
func CLVHoldout(bg clv.BGNBDParams, customers []clv.Customer, actual []float64, t float64) ([]*commonv1.Metric, []float64, error) {
	if len(customers) == 0 || len(customers) != len(actual) {
		return nil, nil, fmt.Errorf("%d customers with %d holdout counts", len(customers), len(actual))
	}
	expected := make([]float64, len(customers))
	var abs, sq, total, predicted float64
	for i, c := range customers {
		e := bg.ExpectedPurchases(c, t)
		expected[i] = e
		abs += math.Abs(e - actual[i])
		sq += (e - actual[i]) * (e - actual[i])
		total += actual[i]
		predicted += e
	}
	n := float64(len(customers))
	return []*commonv1.Metric{
		{Name: "mae", Value: abs / n},
		{Name: "rmse", Value: math.Sqrt(sq / n)},
		{Name: "holdout_purchases_actual", Value: total},
		{Name: "holdout_purchases_predicted", Value: predicted},
	}, expected, nil
}

// CLVFrequencyBins groups customers by their calibration frequency, 0 to last (the last bin
// holding last and more), with their mean actual and expected holdout purchases; bins
// without a customer are left out.
func CLVFrequencyBins(customers []clv.Customer, actual, expected []float64, last int) []*modelv1.ClvFrequencyBin {
	bins := make([]*modelv1.ClvFrequencyBin, last+1)
	for f := range bins {
		bins[f] = &modelv1.ClvFrequencyBin{Frequency: int32(f), AndMore: f == last}
	}
	for i, c := range customers {
		b := bins[min(int(c.Frequency), last)]
		b.Customers++
		b.MeanActual += actual[i]
		b.MeanPredicted += expected[i]
	}
	var out []*modelv1.ClvFrequencyBin
	for _, b := range bins {
		if b.Customers > 0 {
			b.MeanActual /= float64(b.Customers)
			b.MeanPredicted /= float64(b.Customers)
			out = append(out, b)
		}
	}
	return out
}
