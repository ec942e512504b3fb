// Package metrics scores predictions: ranking (ROC-AUC and the ROC curve, average precision),
// probability quality (log loss, Brier score, calibration table), decisions at a threshold
// (accuracy, precision, recall, F1), the marketer's lift and cumulative gains by decile, and
// regression errors (RMSE, MAE, R²); MeanStd summarises a metric over folds.
//
// Labels are 0 (negative) and 1 (positive); any non-zero label counts as positive. Scores are
// larger for the positive class. Definitions follow scikit-learn where it has the metric.
package metrics

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// ErrOneClass is returned by ranking metrics when the labels hold a single class.
var ErrOneClass = errors.New("labels hold a single class")

func checkLen(y, s []float64) error {
	if len(y) != len(s) {
		return fmt.Errorf("%d labels but %d scores", len(y), len(s))
	}
	if len(y) == 0 {
		return errors.New("no rows")
	}
	return nil
}

// order returns the row indices sorted by decreasing score (stable: ties keep row order).
func order(s []float64) []int {
	idx := make([]int, len(s))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case s[a] > s[b]:
			return -1
		case s[a] < s[b]:
			return 1
		}
		return 0
	})
	return idx
}

// ROCAUC returns the area under the ROC curve: the probability that a random positive
// scores above a random negative, counting ties as one half (the Mann-Whitney statistic with
// averaged ranks).
func ROCAUC(y, score []float64) (float64, error) {
	if err := checkLen(y, score); err != nil {
		return 0, fmt.Errorf("roc auc: %w", err)
	}
	idx := order(score)
	var pos, neg, rankSum float64
	// Walk groups of tied scores from the highest; ranks count from the lowest score (1..n).
	n := len(idx)
	for i := 0; i < n; {
		j := i
		for j < n && score[idx[j]] == score[idx[i]] {
			j++
		}
		// Positions i..j-1 from the top are ranks n-j+1..n-i from the bottom.
		avg := float64(2*n-i-j+1) / 2
		for k := i; k < j; k++ {
			if y[idx[k]] != 0 {
				pos++
				rankSum += avg
			} else {
				neg++
			}
		}
		i = j
	}
	if pos == 0 || neg == 0 {
		return 0, fmt.Errorf("roc auc: %w", ErrOneClass)
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg), nil
}

// ROCPoint is one point of a ROC curve: the rates of the rows scored at or above Threshold.
type ROCPoint struct {
	Threshold         float64
	FalsePositiveRate float64
	TruePositiveRate  float64
}

// ROC returns the ROC curve by decreasing threshold, from (0, 0) at a threshold above every
// score to (1, 1), one point per distinct score, thinned evenly to at most maxPoints points
// with both ends kept (maxPoints below 2 keeps every point).
func ROC(y, score []float64, maxPoints int) ([]ROCPoint, error) {
	if err := checkLen(y, score); err != nil {
		return nil, fmt.Errorf("roc: %w", err)
	}
	var pos, neg float64
	for _, v := range y {
		if v != 0 {
			pos++
		} else {
			neg++
		}
	}
	if pos == 0 || neg == 0 {
		return nil, fmt.Errorf("roc: %w", ErrOneClass)
	}
	idx := order(score)
	pts := []ROCPoint{{Threshold: math.Nextafter(score[idx[0]], math.Inf(1))}}
	var tp, fp float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && score[idx[j]] == score[idx[i]] {
			if y[idx[j]] != 0 {
				tp++
			} else {
				fp++
			}
			j++
		}
		pts = append(pts, ROCPoint{Threshold: score[idx[i]], FalsePositiveRate: fp / neg, TruePositiveRate: tp / pos})
		i = j
	}
	if maxPoints >= 2 && len(pts) > maxPoints {
		thin := make([]ROCPoint, 0, maxPoints)
		for k := range maxPoints {
			thin = append(thin, pts[k*(len(pts)-1)/(maxPoints-1)])
		}
		pts = thin
	}
	return pts, nil
}

// AveragePrecision returns the area under the precision-recall curve as scikit-learn's
// average_precision_score: Σ (R_k − R_{k−1}) P_k over the distinct score thresholds from the
// highest, without interpolation.
func AveragePrecision(y, score []float64) (float64, error) {
	if err := checkLen(y, score); err != nil {
		return 0, fmt.Errorf("average precision: %w", err)
	}
	idx := order(score)
	var totalPos float64
	for _, v := range y {
		if v != 0 {
			totalPos++
		}
	}
	if totalPos == 0 {
		return 0, fmt.Errorf("average precision: %w", ErrOneClass)
	}
	var tp, fp, ap, prevRecall float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && score[idx[j]] == score[idx[i]] {
			if y[idx[j]] != 0 {
				tp++
			} else {
				fp++
			}
			j++
		}
		recall := tp / totalPos
		ap += (recall - prevRecall) * tp / (tp + fp)
		prevRecall = recall
		i = j
	}
	return ap, nil
}

// LogLoss returns the mean negative log-likelihood of probabilities p, each clipped to
// [1e-15, 1 − 1e-15].
func LogLoss(y, p []float64) (float64, error) {
	if err := checkLen(y, p); err != nil {
		return 0, fmt.Errorf("log loss: %w", err)
	}
	const eps = 1e-15
	var s float64
	for i, v := range p {
		v = math.Min(math.Max(v, eps), 1-eps)
		if y[i] != 0 {
			s -= math.Log(v)
		} else {
			s -= math.Log1p(-v)
		}
	}
	return s / float64(len(p)), nil
}

// Brier returns the mean squared difference between probabilities p and labels.
func Brier(y, p []float64) (float64, error) {
	if err := checkLen(y, p); err != nil {
		return 0, fmt.Errorf("brier: %w", err)
	}
	var s float64
	for i, v := range p {
		d := v - label(y[i])
		s += d * d
	}
	return s / float64(len(p)), nil
}

func label(v float64) float64 {
	if v != 0 {
		return 1
	}
	return 0
}

// Confusion counts decisions at a threshold: a row is predicted positive when its score
// is at least the threshold.
type Confusion struct {
	TP, FP, TN, FN int
}

// At returns the confusion counts of scores at threshold.
func At(y, score []float64, threshold float64) (Confusion, error) {
	if err := checkLen(y, score); err != nil {
		return Confusion{}, fmt.Errorf("confusion: %w", err)
	}
	var c Confusion
	for i, s := range score {
		switch pos, pred := y[i] != 0, s >= threshold; {
		case pos && pred:
			c.TP++
		case pos:
			c.FN++
		case pred:
			c.FP++
		default:
			c.TN++
		}
	}
	return c, nil
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Accuracy is the fraction of correct decisions.
func (c Confusion) Accuracy() float64 { return ratio(c.TP+c.TN, c.TP+c.TN+c.FP+c.FN) }

// Precision is TP / (TP + FP), 0 when nothing is predicted positive (as scikit-learn's
// zero_division=0).
func (c Confusion) Precision() float64 { return ratio(c.TP, c.TP+c.FP) }

// Recall is TP / (TP + FN), 0 when there is no positive.
func (c Confusion) Recall() float64 { return ratio(c.TP, c.TP+c.FN) }

// F1 is the harmonic mean of precision and recall: 2TP / (2TP + FP + FN).
func (c Confusion) F1() float64 { return ratio(2*c.TP, 2*c.TP+c.FP+c.FN) }

// GainsRow is one quantile group of a lift and gains table.
type GainsRow struct {
	// Group counts from 1 (the highest scores).
	Group int `json:"group"`
	// Rows and Positives count the group's rows and positives.
	Rows      int `json:"rows"`
	Positives int `json:"positives"`
	// MinScore and MaxScore bound the group's scores.
	MinScore float64 `json:"min_score"`
	MaxScore float64 `json:"max_score"`
	// Rate is the group's positive rate; Lift is Rate over the overall positive rate.
	Rate float64 `json:"rate"`
	Lift float64 `json:"lift"`
	// CumulativeRows is the fraction of all rows in groups 1..Group; CumulativeGain the
	// fraction of all positives found there; CumulativeLift their ratio.
	CumulativeRows float64 `json:"cumulative_rows"`
	CumulativeGain float64 `json:"cumulative_gain"`
	CumulativeLift float64 `json:"cumulative_lift"`
}

// Gains returns the lift and cumulative gains table over groups of equal size (deciles for
// groups = 10): rows sorted by decreasing score, group g holding sorted positions
// [g·n/groups, (g+1)·n/groups). Tied scores are kept in row order.
func Gains(y, score []float64, groups int) ([]GainsRow, error) {
	if err := checkLen(y, score); err != nil {
		return nil, fmt.Errorf("gains: %w", err)
	}
	n := len(y)
	if groups < 1 || groups > n {
		return nil, fmt.Errorf("gains: %d groups for %d rows", groups, n)
	}
	idx := order(score)
	var totalPos int
	for _, v := range y {
		if v != 0 {
			totalPos++
		}
	}
	if totalPos == 0 {
		return nil, fmt.Errorf("gains: %w", ErrOneClass)
	}
	base := float64(totalPos) / float64(n)
	rows := make([]GainsRow, groups)
	cumRows, cumPos := 0, 0
	for g := range groups {
		lo, hi := g*n/groups, (g+1)*n/groups
		r := GainsRow{Group: g + 1, Rows: hi - lo, MaxScore: score[idx[lo]], MinScore: score[idx[hi-1]]}
		for _, i := range idx[lo:hi] {
			if y[i] != 0 {
				r.Positives++
			}
		}
		cumRows += r.Rows
		cumPos += r.Positives
		r.Rate = ratio(r.Positives, r.Rows)
		r.Lift = r.Rate / base
		r.CumulativeRows = float64(cumRows) / float64(n)
		r.CumulativeGain = float64(cumPos) / float64(totalPos)
		r.CumulativeLift = r.CumulativeGain / r.CumulativeRows
		rows[g] = r
	}
	return rows, nil
}

// CalibrationBin is one bin of a calibration table.
type CalibrationBin struct {
	// Lo and Hi bound the bin's probabilities: [Lo, Hi), the last bin including 1.
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
	// Rows counts the predictions in the bin; MeanPredicted is their mean probability and
	// Observed their positive rate (both 0 for an empty bin).
	Rows          int     `json:"rows"`
	MeanPredicted float64 `json:"mean_predicted"`
	Observed      float64 `json:"observed"`
}

// Calibration returns a calibration table of probabilities p over bins of equal width on
// [0, 1]. Empty bins are kept, with Rows 0.
func Calibration(y, p []float64, bins int) ([]CalibrationBin, error) {
	if err := checkLen(y, p); err != nil {
		return nil, fmt.Errorf("calibration: %w", err)
	}
	if bins < 1 {
		return nil, fmt.Errorf("calibration: %d bins", bins)
	}
	out := make([]CalibrationBin, bins)
	pos := make([]float64, bins)
	for b := range out {
		out[b].Lo = float64(b) / float64(bins)
		out[b].Hi = float64(b+1) / float64(bins)
	}
	for i, v := range p {
		if v < 0 || v > 1 || math.IsNaN(v) {
			return nil, fmt.Errorf("calibration: probability %v outside [0, 1]", v)
		}
		b := min(int(v*float64(bins)), bins-1)
		out[b].Rows++
		out[b].MeanPredicted += v
		pos[b] += label(y[i])
	}
	for b := range out {
		if out[b].Rows > 0 {
			out[b].MeanPredicted /= float64(out[b].Rows)
			out[b].Observed = pos[b] / float64(out[b].Rows)
		}
	}
	return out, nil
}

// RMSE returns the root mean squared error.
func RMSE(y, pred []float64) (float64, error) {
	if err := checkLen(y, pred); err != nil {
		return 0, fmt.Errorf("rmse: %w", err)
	}
	var s float64
	for i, v := range pred {
		s += (v - y[i]) * (v - y[i])
	}
	return math.Sqrt(s / float64(len(y))), nil
}

// MAE returns the mean absolute error.
func MAE(y, pred []float64) (float64, error) {
	if err := checkLen(y, pred); err != nil {
		return 0, fmt.Errorf("mae: %w", err)
	}
	var s float64
	for i, v := range pred {
		s += math.Abs(v - y[i])
	}
	return s / float64(len(y)), nil
}

// R2 returns the coefficient of determination 1 − SS_res / SS_tot. When y is constant it
// returns 1 for a perfect prediction and 0 otherwise, as scikit-learn.
func R2(y, pred []float64) (float64, error) {
	if err := checkLen(y, pred); err != nil {
		return 0, fmt.Errorf("r2: %w", err)
	}
	var mu float64
	for _, v := range y {
		mu += v
	}
	mu /= float64(len(y))
	var res, tot float64
	for i, v := range pred {
		res += (y[i] - v) * (y[i] - v)
		tot += (y[i] - mu) * (y[i] - mu)
	}
	if tot == 0 {
		if res == 0 {
			return 1, nil
		}
		return 0, nil
	}
	return 1 - res/tot, nil
}

// MeanStd returns the mean and the population standard deviation of v (NaN for both when v
// is empty): a metric's summary over cross-validation folds.
func MeanStd(v []float64) (mean, std float64) {
	var sum float64
	for _, x := range v {
		sum += x
	}
	mean = sum / float64(len(v))
	var ss float64
	for _, x := range v {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(v)))
}
