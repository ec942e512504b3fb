package report

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/values"
)

var familyNames = map[modelv1.ModelFamily]string{
	modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION:      "Linear regression",
	modelv1.ModelFamily_MODEL_FAMILY_LASSO:                  "Lasso",
	modelv1.ModelFamily_MODEL_FAMILY_ELASTIC_NET:            "Elastic net",
	modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION:    "Logistic regression",
	modelv1.ModelFamily_MODEL_FAMILY_LINEAR_SVM:             "Linear SVM",
	modelv1.ModelFamily_MODEL_FAMILY_KERNEL_SVM:             "Kernel SVM",
	modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_SVM:            "Nyström SVM",
	modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_LOGISTIC:       "Nyström logistic regression",
	modelv1.ModelFamily_MODEL_FAMILY_MF_ALS:                 "Matrix factorisation (ALS)",
	modelv1.ModelFamily_MODEL_FAMILY_MF_SGD:                 "Matrix factorisation (SGD)",
	modelv1.ModelFamily_MODEL_FAMILY_IMPLICIT_ALS:           "Implicit ALS",
	modelv1.ModelFamily_MODEL_FAMILY_BPR:                    "Bayesian personalised ranking",
	modelv1.ModelFamily_MODEL_FAMILY_POPULARITY:             "Popularity",
	modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES: "Gradient-boosted trees",
}

func familyName(f modelv1.ModelFamily) string {
	if s, ok := familyNames[f]; ok {
		return s
	}
	return enumWords(f.String(), "MODEL_FAMILY_")
}

func taskName(t modelv1.TaskKind) string {
	switch t {
	case modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION:
		return "Binary classification"
	case modelv1.TaskKind_TASK_KIND_REGRESSION:
		return "Regression"
	case modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT:
		return "Recommendation (explicit ratings)"
	case modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT:
		return "Recommendation (implicit feedback)"
	}
	return enumWords(t.String(), "TASK_KIND_")
}

func fallbackName(f modelv1.KernelFallback) string {
	switch f {
	case modelv1.KernelFallback_KERNEL_FALLBACK_NYSTROM:
		return "Nyström approximation"
	case modelv1.KernelFallback_KERNEL_FALLBACK_SUBSAMPLE:
		return "subsample"
	case modelv1.KernelFallback_KERNEL_FALLBACK_FAIL:
		return "failed"
	}
	return ""
}

// enumWords turns "PREFIX_SOME_VALUE" into "Some value".
func enumWords(s, prefix string) string {
	s = strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(s, prefix), "_", " "))
	if s == "" {
		return "unspecified"
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

var metricNames = map[string]string{
	"roc_auc":            "ROC AUC",
	"pr_auc":             "PR AUC (average precision)",
	"average_precision":  "Average precision",
	"log_loss":           "Log loss",
	"brier":              "Brier score",
	"accuracy":           "Accuracy",
	"precision":          "Precision",
	"recall":             "Recall",
	"f1":                 "F1",
	"rmse":               "RMSE",
	"mae":                "MAE",
	"r2":                 "R²",
	"mrr":                "MRR",
	"catalogue_coverage": "Catalogue coverage",
}

var rankingNames = map[string]string{
	"precision_at_":          "Precision@",
	"recall_at_":             "Recall@",
	"ndcg_at_":               "NDCG@",
	"map_at_":                "MAP@",
	"catalogue_coverage_at_": "Catalogue coverage@",
	"hit_rate_at_":           "Hit rate@",
}

// metricName returns a metric's name for people ("roc_auc" → "ROC AUC").
func metricName(code string) string {
	if s, ok := metricNames[code]; ok {
		return s
	}
	for prefix, s := range rankingNames {
		if k, ok := strings.CutPrefix(code, prefix); ok {
			if _, err := strconv.Atoi(k); err == nil {
				return s + k
			}
		}
	}
	return enumWords(strings.ToUpper(code), "")
}

// lowerIsBetter reports whether a metric is a loss or an error.
func lowerIsBetter(code string) bool {
	switch code {
	case "log_loss", "brier", "rmse", "mae":
		return true
	}
	return false
}

func directionText(mv *modelv1.ModelVersion) string {
	switch mv.GetSelectionDirection() {
	case modelv1.MetricDirection_METRIC_DIRECTION_MAXIMIZE:
		return "higher is better"
	case modelv1.MetricDirection_METRIC_DIRECTION_MINIMIZE:
		return "lower is better"
	}
	if lowerIsBetter(mv.GetSelectionMetric()) {
		return "lower is better"
	}
	return "higher is better"
}

// formatMetric prints a metric value with four decimals.
func formatMetric(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return fmt.Sprintf("%.4f", v)
}

// formatMeanSD prints a mean ± standard deviation with four decimals.
func formatMeanSD(mean, sd float64) string {
	return formatMetric(mean) + " ± " + formatMetric(sd)
}

// formatInt prints an integer with thousands separators.
func formatInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return formatGoTime(ts.AsTime())
}

func formatGoTime(t time.Time) string {
	t = t.UTC()
	if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
		return t.Format("2006-01-02") + " 00:00 UTC"
	}
	return t.Format("2006-01-02 15:04:05 UTC")
}

// formatFitTime prints a duration for a fit: "85 ms", "1.24 s", "2 min 05 s".
func formatFitTime(d *durationpb.Duration) string {
	if d == nil {
		return "—"
	}
	t := d.AsDuration()
	switch {
	case t < time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(t)/float64(time.Millisecond))
	case t < time.Second:
		return fmt.Sprintf("%.0f ms", float64(t)/float64(time.Millisecond))
	case t < time.Minute:
		return fmt.Sprintf("%.2f s", t.Seconds())
	}
	t = t.Round(time.Second)
	return fmt.Sprintf("%d min %02d s", int(t.Minutes()), int(t.Seconds())%60)
}

// formatHorizon prints a horizon in weeks, days or hours when it is a whole number of them.
func formatHorizon(d *durationpb.Duration) string {
	t := d.AsDuration()
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case t <= 0:
		return t.String()
	case t%(7*24*time.Hour) == 0:
		return plural(int64(t/(7*24*time.Hour)), "week")
	case t%(24*time.Hour) == 0:
		return plural(int64(t/(24*time.Hour)), "day")
	case t%time.Hour == 0:
		return plural(int64(t/time.Hour), "hour")
	}
	return t.String()
}

// formatValue prints a common Value, times as the report prints them.
func formatValue(v *commonv1.Value) string {
	if ts := v.GetTimeValue(); ts != nil {
		return formatTime(ts)
	}
	return values.String(v)
}

// formatParams prints hyperparameters as "a=1, b=x", sorted by name.
func formatParams(m map[string]*commonv1.Value) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + formatValue(m[k])
	}
	return strings.Join(parts, ", ")
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	switch len(q) {
	case 0:
		return ""
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func eventsText(f *featurev1.EventFilter) string {
	s := "any event"
	if names := f.GetNames(); len(names) > 0 {
		s = quoteList(names) + " events"
	}
	if n := len(f.GetConditions()); n > 0 {
		s += fmt.Sprintf(" (%d field condition", n)
		if n > 1 {
			s += "s"
		}
		s += ")"
	}
	return s
}

// labelText describes a training set's label.
func labelText(l *featurev1.LabelSpec) string {
	name := labelName(l)
	switch {
	case l.GetTrait() != nil:
		t := l.GetTrait()
		s := fmt.Sprintf("%s = trait %q", name, t.GetTrait())
		if pv := t.GetPositiveValues(); len(pv) > 0 {
			vals := make([]string, len(pv))
			for i, v := range pv {
				vals[i] = formatValue(v)
			}
			s += ", positive when " + quoteList(vals)
		}
		if at := t.GetAsOfTime(); at != nil {
			s += " as of " + formatTime(at)
		}
		return s
	case l.GetOutcome() != nil:
		o := l.GetOutcome()
		events := eventsText(o.GetFilter())
		var what string
		switch o.GetAggregation() {
		case featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_COUNT:
			what = "number of " + events
		case featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_SUM:
			what = fmt.Sprintf("sum of %s over %s", fieldName(o), events)
		case featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_DISTINCT_DAYS:
			what = "days with " + events
		default:
			what = "whether any of " + events + " happens"
		}
		return fmt.Sprintf("%s = %s within %s after the cutoff", name, what, formatHorizon(o.GetHorizon()))
	}
	return name
}

func labelName(l *featurev1.LabelSpec) string {
	if l.GetName() != "" {
		return l.GetName()
	}
	return "label"
}

func fieldName(o *featurev1.OutcomeLabel) string {
	if o.GetField() != "" {
		return o.GetField()
	}
	return "value"
}

func cutoffText(c *featurev1.CutoffSpec) string {
	switch {
	case c.GetFixedTime() != nil:
		return "fixed at " + formatTime(c.GetFixedTime())
	case c.GetTrigger() != nil:
		t := c.GetTrigger()
		s := "at each of " + eventsText(t.GetFilter())
		switch t.GetSelection() {
		case featurev1.TriggerSelection_TRIGGER_SELECTION_FIRST:
			s = "at each customer's first of " + eventsText(t.GetFilter())
		case featurev1.TriggerSelection_TRIGGER_SELECTION_LAST:
			s = "at each customer's last of " + eventsText(t.GetFilter())
		}
		return s
	case c.GetRolling() != nil:
		r := c.GetRolling()
		return fmt.Sprintf("every %s from %s to %s", formatHorizon(r.GetStep()), formatTime(r.GetStartTime()), formatTime(r.GetEndTime()))
	}
	return ""
}

func int64List(v []int64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatInt(x, 10)
	}
	return strings.Join(s, ", ")
}

func splitText(s *featurev1.SplitSpec) string {
	switch {
	case s.GetEntityHash() != nil:
		h := s.GetEntityHash()
		return fmt.Sprintf("%s%% of customers by a hash of their id (seed %d)", strconv.FormatFloat(100*h.GetTestFraction(), 'f', -1, 64), h.GetSeed())
	case s.GetTime() != nil:
		return "rows cut off at or after " + formatTime(s.GetTime().GetTestStartTime())
	case s.GetRowNumber() != nil:
		r := s.GetRowNumber()
		return fmt.Sprintf("import rows whose number mod %d is in {%s}", r.GetModulus(), int64List(r.GetTestRemainders()))
	}
	return "none (cross-validation only)"
}

func interactionsText(in *trainingv1.InteractionsSpec) string {
	ex := in.GetExport()
	var s string
	switch {
	case ex.GetExplicit() != nil:
		s = fmt.Sprintf("ratings from %s (property %q)", quoteList(ex.GetExplicit().GetEventNames()), ex.GetExplicit().GetRatingProperty())
	case ex.GetImplicit() != nil:
		w := ex.GetImplicit().GetEventWeights()
		names := make([]string, 0, len(w))
		for k := range w {
			names = append(names, k)
		}
		slices.Sort(names)
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = fmt.Sprintf("%q × %s", n, strconv.FormatFloat(w[n], 'g', -1, 64))
		}
		s = "weighted events: " + strings.Join(parts, ", ")
	default:
		s = "interactions"
	}
	if m := in.GetMinUserInteractions(); m > 0 {
		s += fmt.Sprintf("; users with at least %d interactions", m)
	}
	if m := in.GetMinItemInteractions(); m > 0 {
		s += fmt.Sprintf("; items with at least %d interactions", m)
	}
	return s
}

func interactionSplitText(sp *trainingv1.InteractionSplit) string {
	switch {
	case sp.GetRandom() != nil:
		return fmt.Sprintf("%s%% of interactions at random (seed %d)", strconv.FormatFloat(100*sp.GetRandom().GetTestFraction(), 'f', -1, 64), sp.GetRandom().GetSeed())
	case sp.GetTestStartTime() != nil:
		return "interactions at or after " + formatTime(sp.GetTestStartTime())
	case sp.GetLastPerUser() != nil:
		return fmt.Sprintf("each user's latest %d interactions", sp.GetLastPerUser().GetN())
	}
	return "none (cross-validation only)"
}

// targetName returns a regression target's name and unit for plot axes.
func targetName(mv *modelv1.ModelVersion, o *options) (name, unit string) {
	name, unit = o.target, o.unit
	label := TrainingData(mv).GetTrainingSet().GetLabel()
	if name == "" {
		name = label.GetName()
	}
	if unit == "" {
		if oc := label.GetOutcome(); oc != nil {
			switch oc.GetAggregation() {
			case featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_SUM:
				unit = "sum of " + fieldName(oc)
			case featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_COUNT:
				unit = "events"
			case featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_DISTINCT_DAYS:
				unit = "days"
			}
		}
		if unit == "" {
			unit = "label units"
		}
	}
	return name, unit
}
