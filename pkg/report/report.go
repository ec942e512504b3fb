// Package report writes the HTML report of a registered model version: one self-contained
// file (inline CSS, plots embedded as PNG data URIs) that can be opened anywhere or mailed.
//
// The report has a header (model name, version, family, task, selection metric, data
// lineage), the metrics table (test, cross-validation and, when given, evaluation), the
// hyperparameters, the cross-validation leaderboard with each candidate's per-fold results,
// and plots made with gonum/plot:
//
//   - binary classifiers: the ROC curve (with the random diagonal and the AUC in the legend),
//     cumulative gains by decile (with the random and perfect baselines), lift by decile
//     (bars, with the cumulative lift), and the calibration plot (mean predicted probability
//     against observed rate per bin, with the perfect-calibration line), followed by the
//     lift and calibration tables. The curves come from ModelVersion.test_curves, or, for a
//     version without a test split, from an evaluation given with [WithEvaluation].
//   - regressions: predicted against actual (a scatter with the identity line) and the
//     residuals against the predictions (with the zero line and the mean residual per
//     bin). The registry keeps no per-row predictions, so these need the scored, labelled
//     rows of an Evaluate call ([WithEvaluation]) or plain slices ([WithPredictions]); at
//     most a few thousand rows are drawn ([WithMaxPoints]), a seeded random subsample of
//     the rest. Without rows the report says so where the plots would be.
//   - recommenders: no plots; the metrics and the leaderboard.
//
// The output is deterministic: the same inputs and options give the same bytes (pass
// [WithGeneratedAt] to fix the generation time shown in the footer).
package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
)

// Default sizes and limits.
const (
	// DefaultWidth and DefaultHeight are the plots' size in pixels.
	DefaultWidth  = 640
	DefaultHeight = 480
	// DefaultMaxPoints is the most rows a regression scatter draws.
	DefaultMaxPoints = 3000
)

// Figure is one rendered plot of a report.
type Figure struct {
	// Name is a stable identifier: "roc", "gains", "lift", "calibration",
	// "predicted-vs-actual", "residuals" or "frequency-vs-holdout". It is the figure's id in the HTML and a good
	// file name stem.
	Name string
	// Title is the plot's title, also the image's alt text.
	Title string
	// Caption says in a sentence how to read the plot (and what was left out of it).
	Caption string
	// PNG is the encoded image, Width × Height pixels.
	PNG []byte
	// Width and Height are the image's size in pixels.
	Width, Height int
}

// Option configures a report.
type Option func(*options)

type options struct {
	eval      *trainingv1.EvaluateResponse
	predicted []float64
	actual    []float64
	hasPreds  bool
	target    string
	unit      string
	maxPoints int
	width     int
	height    int
	generated time.Time
	seed      uint64
	repeat    *RepeatCurve
}

// WithEvaluation adds the result of an Evaluate call on the version: its labelled, scored
// rows give a regression its predicted-vs-actual and residual plots, its metrics form the
// "Evaluation" column of the metrics table, and its curves stand in for the version's
// test curves when the version has none (a classifier trained without a test split).
// Rows that are not OK or carry no numeric label are skipped.
func WithEvaluation(ev *trainingv1.EvaluateResponse) Option {
	return func(o *options) { o.eval = ev }
}

// RepeatCurve is a customer lifetime value model's cumulative repeat purchases of a cohort,
// actual against expected, at regular times from the cohort's start (Fader and Hardie's
// tracking plot).
type RepeatCurve struct {
	// Unit names the time unit of Times, e.g. "weeks".
	Unit string
	// Times are the times of the points, in Unit from the cohort's start.
	Times []float64
	// Actual and Expected are the cumulative repeat purchases of the cohort up to each time.
	Actual, Expected []float64
	// Calibration is the end of the calibration period, in Unit from the start: the fit saw
	// what came before it.
	Calibration float64
	// Customers is the size of the cohort.
	Customers int
}

// WithRepeatCurve adds a customer lifetime value model's cumulative repeat-purchase curve.
func WithRepeatCurve(c *RepeatCurve) Option {
	return func(o *options) { o.repeat = c }
}

// WithPredictions gives a regression's predictions and true values directly, the same
// length, in place of an evaluation's rows. Non-finite pairs are skipped.
func WithPredictions(predicted, actual []float64) Option {
	return func(o *options) {
		o.predicted, o.actual, o.hasPreds = predicted, actual, true
	}
}

// WithTarget names a regression's target and its unit for the axes, e.g. ("spend in the
// next 39 weeks", "USD"). By default the name is the label's name from the lineage (or
// "target") and the unit is described from the label's definition (an outcome's
// aggregation and field), or "label units".
func WithTarget(name, unit string) Option {
	return func(o *options) { o.target, o.unit = name, unit }
}

// WithMaxPoints sets the most rows a regression scatter draws; 0 or less means
// [DefaultMaxPoints].
func WithMaxPoints(n int) Option {
	return func(o *options) { o.maxPoints = n }
}

// WithImageSize sets the plots' size in pixels; values below 200 × 150 are raised to
// that. The default is [DefaultWidth] × [DefaultHeight].
func WithImageSize(width, height int) Option {
	return func(o *options) { o.width, o.height = width, height }
}

// WithGeneratedAt sets the generation time shown in the report's footer; the default is
// the time of the call. A zero time leaves the footer's time out.
func WithGeneratedAt(t time.Time) Option {
	return func(o *options) { o.generated = t }
}

func newOptions(opts []Option) (*options, error) {
	o := &options{generated: time.Now(), seed: 1}
	for _, f := range opts {
		f(o)
	}
	if o.maxPoints <= 0 {
		o.maxPoints = DefaultMaxPoints
	}
	if o.width == 0 && o.height == 0 {
		o.width, o.height = DefaultWidth, DefaultHeight
	}
	o.width, o.height = max(o.width, 200), max(o.height, 150)
	if o.hasPreds && len(o.predicted) != len(o.actual) {
		return nil, fmt.Errorf("report: %d predictions but %d actual values", len(o.predicted), len(o.actual))
	}
	return o, nil
}

// TrainingData returns the data spec mv was trained from, which its lineage carries when the
// training service trained it; nil when the lineage carries none, or another trainer's.
func TrainingData(mv *modelv1.ModelVersion) *trainingv1.DataSpec {
	d := &trainingv1.DataSpec{}
	if mv.GetLineage().GetData().UnmarshalTo(d) != nil {
		return nil
	}
	return d
}

// Write writes the HTML report of mv to w. It fails on a nil version, on inconsistent
// options and when w fails; missing parts of the version (no test split, no leaderboard, no
// evaluation rows for a regression) are reported in the page rather than as errors.
func Write(w io.Writer, mv *modelv1.ModelVersion, opts ...Option) error {
	if mv == nil {
		return errors.New("report: nil model version")
	}
	o, err := newOptions(opts)
	if err != nil {
		return err
	}
	figs, notes, err := figures(mv, o)
	if err != nil {
		return err
	}
	pg := buildPage(mv, o, figs, notes)
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, pg); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if _, err := buf.WriteTo(w); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// Figures renders the plots Write would embed, in the same order, without the page around
// them: for saving the PNGs on their own.
func Figures(mv *modelv1.ModelVersion, opts ...Option) ([]Figure, error) {
	if mv == nil {
		return nil, errors.New("report: nil model version")
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	figs, _, err := figures(mv, o)
	return figs, err
}

// figures renders the plots for the version's task and returns notes for what could not
// be drawn.
func figures(mv *modelv1.ModelVersion, o *options) ([]Figure, []string, error) {
	switch mv.GetTask() {
	case modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION:
		curves, src := classificationCurves(mv, o)
		if curves == nil {
			return nil, []string{"No curves: the version has no test split and no evaluation was given, so there is no ROC curve, gains, lift or calibration plot."}, nil
		}
		return classifierFigures(mv, curves, src, o)
	case modelv1.TaskKind_TASK_KIND_REGRESSION:
		pred, act, total := regressionRows(o)
		if len(pred) == 0 {
			return nil, []string{"No predicted-vs-actual or residual plot: the registry keeps no per-row predictions; pass the labelled rows of an evaluation (report.WithEvaluation) to draw them."}, nil
		}
		return regressionFigures(mv, pred, act, total, o)
	case modelv1.TaskKind_TASK_KIND_CUSTOMER_LIFETIME_VALUE:
		return clvFigures(mv, o)
	}
	return nil, nil, nil
}

// classificationCurves returns the curves to plot and where they come from.
func classificationCurves(mv *modelv1.ModelVersion, o *options) (*modelv1.ClassificationCurves, string) {
	if c := mv.GetTestCurves(); len(c.GetRoc()) > 0 || len(c.GetLift()) > 0 || len(c.GetCalibration()) > 0 {
		return c, "test set"
	}
	if c := o.eval.GetCurves(); len(c.GetRoc()) > 0 || len(c.GetLift()) > 0 || len(c.GetCalibration()) > 0 {
		return c, "evaluation"
	}
	return nil, ""
}

// regressionRows returns the finite (predicted, actual) pairs to plot and the number of
// rows they came from.
func regressionRows(o *options) (pred, act []float64, total int) {
	if o.hasPreds {
		for i := range o.predicted {
			p, a := o.predicted[i], o.actual[i]
			if finite(p) && finite(a) {
				pred, act = append(pred, p), append(act, a)
			}
		}
		return pred, act, len(o.predicted)
	}
	for _, r := range o.eval.GetScores() {
		if r.GetStatus() != trainingv1.ScoredRowStatus_SCORED_ROW_STATUS_OK {
			continue
		}
		a, ok := numeric(r.GetLabel())
		if !ok || !finite(r.GetScore()) || !finite(a) {
			continue
		}
		pred, act = append(pred, r.GetScore()), append(act, a)
	}
	return pred, act, len(o.eval.GetScores())
}

// numeric returns a label's value as a number (numbers, integers, bools as 0/1).
func numeric(v *commonv1.Value) (float64, bool) {
	switch k := v.GetKind().(type) {
	case *commonv1.Value_NumberValue:
		return k.NumberValue, true
	case *commonv1.Value_IntValue:
		return float64(k.IntValue), true
	case *commonv1.Value_BoolValue:
		if k.BoolValue {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
