package metrics

import (
	"fmt"
	"slices"
)

// Metric is a metric chosen by name, as model selection uses it.
type Metric struct {
	// Name is the metric's name, as scikit-learn's scorer names: "roc_auc",
	// "average_precision", "log_loss", "brier", "accuracy", "precision", "recall", "f1",
	// "rmse", "mae", "r2".
	Name string
	// HigherIsBetter is false for losses and errors.
	HigherIsBetter bool
	// NeedsProbability is true when Score takes probabilities rather than raw scores.
	NeedsProbability bool
	// Score computes the metric from labels (or targets) and the model's scores, or
	// probabilities when NeedsProbability. Threshold metrics decide positive at a score of 0
	// (a probability of one half for a logistic model).
	Score func(y, s []float64) (float64, error)
}

// Better reports whether metric value a is better than b.
func (m Metric) Better(a, b float64) bool {
	if m.HigherIsBetter {
		return a > b
	}
	return a < b
}

func threshold(f func(Confusion) float64) func(y, s []float64) (float64, error) {
	return func(y, s []float64) (float64, error) {
		c, err := At(y, s, 0)
		if err != nil {
			return 0, err
		}
		return f(c), nil
	}
}

// named lists the metrics that Lookup knows; it is never modified.
var named = []Metric{
	{Name: "roc_auc", HigherIsBetter: true, Score: ROCAUC},
	{Name: "average_precision", HigherIsBetter: true, Score: AveragePrecision},
	{Name: "log_loss", NeedsProbability: true, Score: LogLoss},
	{Name: "brier", NeedsProbability: true, Score: Brier},
	{Name: "accuracy", HigherIsBetter: true, Score: threshold(Confusion.Accuracy)},
	{Name: "precision", HigherIsBetter: true, Score: threshold(Confusion.Precision)},
	{Name: "recall", HigherIsBetter: true, Score: threshold(Confusion.Recall)},
	{Name: "f1", HigherIsBetter: true, Score: threshold(Confusion.F1)},
	{Name: "rmse", Score: RMSE},
	{Name: "mae", Score: MAE},
	{Name: "r2", HigherIsBetter: true, Score: R2},
}

// Lookup returns the metric with the given name ("pr_auc" is accepted for
// "average_precision").
func Lookup(name string) (Metric, error) {
	if name == "pr_auc" {
		name = "average_precision"
	}
	i := slices.IndexFunc(named, func(m Metric) bool { return m.Name == name })
	if i < 0 {
		return Metric{}, fmt.Errorf("unknown metric %q", name)
	}
	return named[i], nil
}
