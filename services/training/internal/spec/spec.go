// Package spec checks training specs and turns them into what a job runs: the candidate
// models with their estimators (kernel fallbacks applied), the cross-validation splitter, the
// selection metric and the preprocessing.
package spec

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
	"github.com/bullseye-ml/bullseye/pkg/registry"
)

// Defaults and limits of a training spec.
const (
	DefaultFolds             = 5
	MaxFolds                 = 20
	DefaultSeed              = 42
	DefaultMaxCandidates     = 500
	DefaultNIter             = 10
	DefaultMaxExactRows      = 20_000
	DefaultNystromComponents = 1000
	DefaultThreshold         = 0.5
	DefaultBins              = 10
	DefaultMaxROCPoints      = 200
	DefaultCardinality       = 1000
	DefaultHashBuckets       = 1024
	maxDescription           = 16 << 10
	maxLabels                = 32
	maxLabelLen              = 63
	maxSplitNames            = 32
)

// Seed returns the spec's seed (SearchSpec.seed, 0 meaning DefaultSeed).
func Seed(s *trainingv1.TrainingSpec) uint64 {
	return cmp.Or(s.GetSearch().GetSeed(), DefaultSeed)
}

// Folds returns the number of cross-validation folds; 1 without cross-validation (NoCV), the
// one fit of each candidate on the training rows.
func Folds(s *trainingv1.TrainingSpec) int {
	if NoCV(s) {
		return 1
	}
	return cmp.Or(int(s.GetCrossValidation().GetFolds()), DefaultFolds)
}

// NoCV reports whether the spec asks for no cross-validation (cross_validation.folds set to
// 0): each candidate is fitted once on the training rows and scored on the test rows.
func NoCV(s *trainingv1.TrainingSpec) bool {
	f := s.GetCrossValidation()
	return f != nil && f.Folds != nil && f.GetFolds() == 0
}

// Metric returns the selection metric: its API name (e.g. "pr_auc") and its definition.
func Metric(s *trainingv1.TrainingSpec) (string, metrics.Metric) {
	name := s.GetSelection().GetMetric()
	if name == "" {
		switch s.GetTask() {
		case modelv1.TaskKind_TASK_KIND_REGRESSION, modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT:
			name = "rmse"
		case modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT:
			name = "ndcg_at_10"
		case modelv1.TaskKind_TASK_KIND_CUSTOMER_LIFETIME_VALUE:
			name = "mae"
		default:
			name = "roc_auc"
		}
	}
	if IsRecommendation(s.GetTask()) {
		higher, _ := recMetric(name)
		return name, metrics.Metric{Name: name, HigherIsBetter: higher}
	}
	m, _ := metrics.Lookup(name)
	return name, m
}

// APIMetricName returns the API's name of a metric of package metrics.
func APIMetricName(name string) string {
	if name == "average_precision" {
		return "pr_auc"
	}
	return name
}

// MetricsName returns package metrics' name of an API metric, the inverse of APIMetricName:
// the name a fold's metrics (selection.Progress.Metrics) carry it under.
func MetricsName(api string) string {
	if api == "pr_auc" {
		return "average_precision"
	}
	return api
}

// classificationMetrics and regressionMetrics are the metrics each task is scored by.
var (
	classificationMetrics = []string{"roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "precision", "recall", "f1"}
	regressionMetrics     = []string{"rmse", "mae", "r2"}
)

// TaskMetrics returns the metrics cross-validation reports for a task.
func TaskMetrics(task modelv1.TaskKind) []string {
	switch task {
	case modelv1.TaskKind_TASK_KIND_REGRESSION:
		return regressionMetrics
	case modelv1.TaskKind_TASK_KIND_CUSTOMER_LIFETIME_VALUE:
		return []string{"mae", "rmse"}
	}
	return classificationMetrics
}

// Evaluation returns the evaluation options with defaults resolved.
func Evaluation(o *trainingv1.EvaluationOptions) (threshold float64, bins, rocPoints int) {
	threshold = o.GetThreshold()
	if threshold == 0 {
		threshold = DefaultThreshold
	}
	return threshold, cmp.Or(int(o.GetBins()), DefaultBins), cmp.Or(int(o.GetMaxRocPoints()), DefaultMaxROCPoints)
}

// Validate checks a training spec and returns every violation, with field paths under
// prefix (e.g. "spec").
func Validate(s *trainingv1.TrainingSpec, prefix string) fault.Violations {
	var v fault.Violations
	f := func(name string) string { return prefix + "." + name }
	if s == nil {
		v.Add(prefix, "required")
		return v
	}
	if !registry.ValidName(s.GetModelName()) {
		v.Add(f("model_name"), "must be 1 to 63 characters of [a-z0-9-], starting with a letter")
	}
	if len(s.GetDescription()) > maxDescription {
		v.Add(f("description"), "at most %d bytes", maxDescription)
	}
	switch s.GetTask() {
	case modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, modelv1.TaskKind_TASK_KIND_REGRESSION:
		if s.GetData().GetInteractions() != nil {
			v.Add(f("data.interactions"), "interactions train recommenders; %v needs a training_set", s.GetTask())
		}
	case modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT, modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT:
		if s.GetData().GetTrainingSet() != nil {
			v.Add(f("data.training_set"), "%v trains on interactions, not a training set", s.GetTask())
		}
		validateInteractionsTask(&v, s, f("data.interactions.export"))
	case modelv1.TaskKind_TASK_KIND_CUSTOMER_LIFETIME_VALUE:
		validateCLV(&v, s, f)
	case modelv1.TaskKind_TASK_KIND_UNSPECIFIED:
		v.Add(f("task"), "required")
	default:
		v.Add(f("task"), "unknown task %v", s.GetTask())
	}
	validateData(&v, s.GetData(), f("data"))
	validatePreprocessing(&v, s.GetPreprocessing(), f("preprocessing"))
	if len(s.GetCandidates()) == 0 {
		v.Add(f("candidates"), "at least one candidate family is required")
	}
	if s.GetSearch().GetNIter() < 0 || s.GetSearch().GetNIter() > 10_000 {
		v.Add(f("search.n_iter"), "must be 0 to 10,000")
	}
	if s.GetSearch().GetMaxCandidates() < 0 {
		v.Add(f("search.max_candidates"), "must not be negative")
	}
	switch s.GetSearch().GetMethod() {
	case trainingv1.SearchMethod_SEARCH_METHOD_UNSPECIFIED, trainingv1.SearchMethod_SEARCH_METHOD_GRID, trainingv1.SearchMethod_SEARCH_METHOD_RANDOM:
	default:
		v.Add(f("search.method"), "unknown method %v", s.GetSearch().GetMethod())
	}
	if len(s.GetCandidates()) > DefaultMaxCandidates {
		v.Add(f("candidates"), "has %d candidate specs; the limit is %d", len(s.GetCandidates()), DefaultMaxCandidates)
		return v
	}
	cands, cv := Expand(s, prefix)
	v = append(v, cv...)
	if maxC := cmp.Or(int(s.GetSearch().GetMaxCandidates()), DefaultMaxCandidates); len(cv) == 0 && len(cands) > maxC {
		v.Add(f("search.max_candidates"), "the search has %d candidates, more than %d", len(cands), maxC)
	}
	cvs := s.GetCrossValidation()
	if n := cvs.GetFolds(); n != 0 && (n < 2 || n > MaxFolds) {
		v.Add(f("cross_validation.folds"), "must be 2 to %d, or 0 for no cross-validation (unset means %d)", MaxFolds, DefaultFolds)
	}
	if NoCV(s) {
		validateNoCV(&v, s, f("cross_validation"))
	}
	if cvs.GetStrategy() < 0 || cvs.GetStrategy() > trainingv1.FoldStrategy_FOLD_STRATEGY_TIME_SERIES {
		v.Add(f("cross_validation.strategy"), "unknown strategy %v", cvs.GetStrategy())
	}
	if gap := cvs.GetTimeGap(); gap != nil {
		if gap.CheckValid() != nil || gap.AsDuration() < 0 {
			v.Add(f("cross_validation.time_gap"), "must be a valid, non-negative duration")
		} else if cvs.GetStrategy() != trainingv1.FoldStrategy_FOLD_STRATEGY_TIME_SERIES {
			v.Add(f("cross_validation.time_gap"), "applies to the TIME_SERIES strategy only")
		}
	}
	if strat := cvs.GetStrategy(); s.GetTask() == modelv1.TaskKind_TASK_KIND_REGRESSION &&
		(strat == trainingv1.FoldStrategy_FOLD_STRATEGY_STRATIFIED || strat == trainingv1.FoldStrategy_FOLD_STRATEGY_STRATIFIED_GROUPED) {
		v.Add(f("cross_validation.strategy"), "stratified folds need a classification task")
	}
	validateSelection(&v, s, f("selection"))
	if s.GetSolver().GetTolerance() < 0 || math.IsNaN(s.GetSolver().GetTolerance()) {
		v.Add(f("solver.tolerance"), "must not be negative")
	}
	if s.GetSolver().GetMaxIterations() < 0 {
		v.Add(f("solver.max_iterations"), "must not be negative")
	}
	fs := s.GetFeatureSelection()
	if fs.GetMaxFeatures() < 0 {
		v.Add(f("feature_selection.max_features"), "must not be negative")
	}
	if fs.GetMinVariance() < 0 {
		v.Add(f("feature_selection.min_variance"), "must not be negative")
	}
	if c := fs.GetMaxCorrelation(); c < 0 || c > 1 {
		v.Add(f("feature_selection.max_correlation"), "must be 0 to 1")
	}
	if fs.GetMaxRows() < 0 {
		v.Add(f("feature_selection.max_rows"), "must not be negative")
	}
	kl := s.GetKernelLimits()
	if kl.GetMaxExactRows() < 0 {
		v.Add(f("kernel_limits.max_exact_rows"), "must not be negative")
	}
	if kl.GetNystromComponents() < 0 {
		v.Add(f("kernel_limits.nystrom_components"), "must not be negative")
	}
	if kl.GetFallback() < 0 || kl.GetFallback() > modelv1.KernelFallback_KERNEL_FALLBACK_FAIL {
		v.Add(f("kernel_limits.fallback"), "unknown fallback %v", kl.GetFallback())
	}
	validateEvaluation(&v, s.GetEvaluation(), f("evaluation"))
	if s.GetResources().GetParallelism() < 0 {
		v.Add(f("resources.parallelism"), "must not be negative")
	}
	if t := s.GetResources().GetTimeout(); t != nil && (t.CheckValid() != nil || t.AsDuration() <= 0) {
		v.Add(f("resources.timeout"), "must be a valid, positive duration")
	}
	ValidateLabels(&v, s.GetLabels(), f("labels"))
	return v
}

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// ValidRequestID reports whether id is a request id: 1 to 128 characters of [A-Za-z0-9._:-].
func ValidRequestID(id string) bool { return requestIDRE.MatchString(id) }

// ValidateLabels checks the labels a registered version carries: at most 32, keys of 1 to
// 63 characters and values of at most 63.
func ValidateLabels(v *fault.Violations, labels map[string]string, field string) {
	if len(labels) > maxLabels {
		v.Add(field, "at most %d labels", maxLabels)
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if k == "" || len(k) > maxLabelLen || len(labels[k]) > maxLabelLen {
			v.Add(fmt.Sprintf("%s[%s]", field, key(k)), "keys of 1 to %d characters and values of at most %d", maxLabelLen, maxLabelLen)
		}
	}
}

// validateNoCV checks a spec without cross-validation: the test rows it is scored on must
// exist, and the fold options mean nothing.
func validateNoCV(v *fault.Violations, s *trainingv1.TrainingSpec, field string) {
	if s.GetCrossValidation().GetStrategy() != trainingv1.FoldStrategy_FOLD_STRATEGY_UNSPECIFIED {
		v.Add(field+".strategy", "folds 0 means no cross-validation: leave strategy unset")
	}
	if s.GetCrossValidation().GetTimeGap() != nil {
		v.Add(field+".time_gap", "folds 0 means no cross-validation: leave time_gap unset")
	}
	switch d := s.GetData(); {
	case d.GetTrainingSet() != nil && d.GetTrainingSet().GetSplit() == nil && d.GetImportSplit() == nil:
		v.Add(field+".folds", "folds 0 scores each candidate on the test rows: set data.training_set.split or data.import_split")
	case d.GetInteractions() != nil && d.GetInteractions().GetSplit() == nil:
		v.Add(field+".folds", "folds 0 scores each candidate on the test interactions: set data.interactions.split")
	}
}

// ValidateEvaluation checks evaluation options.
func ValidateEvaluation(o *trainingv1.EvaluationOptions, field string) fault.Violations {
	var v fault.Violations
	validateEvaluation(&v, o, field)
	return v
}

func validateEvaluation(v *fault.Violations, o *trainingv1.EvaluationOptions, field string) {
	if t := o.GetThreshold(); t < 0 || t >= 1 || math.IsNaN(t) {
		v.Add(field+".threshold", "must be at least 0 and below 1")
	}
	if b := o.GetBins(); b < 0 || b > 100 {
		v.Add(field+".bins", "must be 0 to 100")
	}
	if p := o.GetMaxRocPoints(); p < 0 || p == 1 || p > 100_000 {
		v.Add(field+".max_roc_points", "must be 0 or 2 to 100,000")
	}
	for i, k := range o.GetRankingK() {
		if k < 1 {
			v.Add(fmt.Sprintf("%s.ranking_k[%d]", field, i), "must be positive")
		}
	}
}

// ValidateData checks a data spec.
func ValidateData(d *trainingv1.DataSpec, field string) fault.Violations {
	var v fault.Violations
	validateData(&v, d, field)
	return v
}

func validateData(v *fault.Violations, d *trainingv1.DataSpec, field string) {
	switch src := d.GetSource().(type) {
	case *trainingv1.DataSpec_TrainingSet:
		ts := src.TrainingSet
		if ts.GetFeatureSet().GetName() == "" {
			v.Add(field+".training_set.feature_set.name", "required")
		}
		if ts.GetFeatureSet().GetVersion() < 0 {
			v.Add(field+".training_set.feature_set.version", "must not be negative")
		}
		if ts.GetLabel().GetSource() == nil {
			v.Add(field+".training_set.label", "required: a trait or an outcome")
		}
		if ts.GetCutoff().GetCutoff() == nil {
			v.Add(field+".training_set.cutoff", "required")
		}
	case *trainingv1.DataSpec_Interactions:
		validateInteractions(v, src.Interactions, field+".interactions")
	default:
		v.Add(field, "required: a training_set or interactions")
	}
	if is := d.GetImportSplit(); is != nil {
		switch {
		case d.GetTrainingSet() == nil:
			v.Add(field+".import_split", "splits a training set by import; interactions are split by interactions.split")
		case d.GetTrainingSet().GetSplit() != nil:
			v.Add(field+".import_split", "replaces training_set.split: leave that unset")
		}
		ids := is.GetTestImportIds()
		if len(ids) == 0 {
			v.Add(field+".import_split.test_import_ids", "at least one import id is required")
		}
		if v.CheckLen(field+".import_split.test_import_ids", len(ids), maxSplitNames) {
			for i, id := range ids {
				v.CheckID(fmt.Sprintf("%s.import_split.test_import_ids[%d]", field, i), id)
			}
		}
	}
	if tf := d.GetTrainFilter(); tf != nil {
		if tf.GetModulus() < 2 {
			v.Add(field+".train_filter.modulus", "must be at least 2")
		}
		if len(tf.GetRemainders()) == 0 {
			v.Add(field+".train_filter.remainders", "at least one remainder is required")
		}
		for i, r := range tf.GetRemainders() {
			if r < 0 || r >= tf.GetModulus() {
				v.Add(fmt.Sprintf("%s.train_filter.remainders[%d]", field, i), "must be 0 to modulus - 1")
			}
		}
	}
}

func validatePreprocessing(v *fault.Violations, p *trainingv1.PreprocessingSpec, field string) {
	switch p.GetNumericImputation() {
	case trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_UNSPECIFIED, trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_MEDIAN,
		trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_MEAN, trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_MOST_FREQUENT,
		trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_CONSTANT:
	default:
		v.Add(field+".numeric_imputation", "unknown strategy %v", p.GetNumericImputation())
	}
	switch p.GetCategoricalImputation() {
	case trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_UNSPECIFIED, trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_MOST_FREQUENT,
		trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_CONSTANT:
	default:
		v.Add(field+".categorical_imputation", "must be MOST_FREQUENT or CONSTANT for categorical columns")
	}
	if p.GetScaling() < 0 || p.GetScaling() > trainingv1.Scaling_SCALING_NONE {
		v.Add(field+".scaling", "unknown scaling %v", p.GetScaling())
	}
	if p.GetOneHot().GetMinCount() < 0 {
		v.Add(field+".one_hot.min_count", "must not be negative")
	}
	if p.GetOneHot().GetMaxCategories() < 0 {
		v.Add(field+".one_hot.max_categories", "must not be negative")
	}
	if p.GetHashing().GetCardinalityThreshold() < 0 {
		v.Add(field+".hashing.cardinality_threshold", "must not be negative")
	}
	if b := p.GetHashing().GetBuckets(); b < 0 || b > 1<<20 {
		v.Add(field+".hashing.buckets", "must be 0 to 1,048,576")
	}
	for i, c := range p.GetExcludedColumns() {
		if c == "" {
			v.Add(fmt.Sprintf("%s.excluded_columns[%d]", field, i), "must not be empty")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.GetColumns())) {
		c := p.GetColumns()[name]
		cf := fmt.Sprintf("%s.columns[%s]", field, key(name))
		if name == "" {
			v.Add(cf, "a column name must not be empty")
		}
		if c.GetImputation() < 0 || c.GetImputation() > trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_CONSTANT {
			v.Add(cf+".imputation", "unknown strategy %v", c.GetImputation())
		}
		if c.GetEncoding() < 0 || c.GetEncoding() > modelv1.ColumnEncoding_COLUMN_ENCODING_HASHING {
			v.Add(cf+".encoding", "unknown encoding %v", c.GetEncoding())
		}
		if b := c.GetHashBuckets(); b < 0 || b > 1<<20 {
			v.Add(cf+".hash_buckets", "must be 0 to 1,048,576")
		}
		if c.GetScaling() < 0 || c.GetScaling() > trainingv1.Scaling_SCALING_NONE {
			v.Add(cf+".scaling", "unknown scaling %v", c.GetScaling())
		}
		if fv := c.GetFillValue(); fv != nil {
			if _, ok := fv.GetKind().(*commonv1.Value_TimeValue); ok {
				v.Add(cf+".fill_value", "must be a number, a bool or a string")
			}
		}
	}
}

func validateSelection(v *fault.Violations, s *trainingv1.TrainingSpec, field string) {
	if IsRecommendation(s.GetTask()) {
		validateRecSelection(v, s, field)
		return
	}
	name, m := Metric(s)
	allowed := TaskMetrics(s.GetTask())
	if !slices.Contains(allowed, name) {
		v.Add(field+".metric", "%s does not rank %v models; use one of %q", fault.Quote(name), s.GetTask(), allowed)
		return
	}
	switch d := s.GetSelection().GetDirection(); {
	case d == modelv1.MetricDirection_METRIC_DIRECTION_UNSPECIFIED:
	case d == modelv1.MetricDirection_METRIC_DIRECTION_MAXIMIZE && !m.HigherIsBetter,
		d == modelv1.MetricDirection_METRIC_DIRECTION_MINIMIZE && m.HigherIsBetter:
		v.Add(field+".direction", "%s is better %s; the opposite direction is not supported", name, directionWord(m.HigherIsBetter))
	case d != modelv1.MetricDirection_METRIC_DIRECTION_MAXIMIZE && d != modelv1.MetricDirection_METRIC_DIRECTION_MINIMIZE:
		v.Add(field+".direction", "unknown direction %v", d)
	}
}

func directionWord(higher bool) string {
	if higher {
		return "larger"
	}
	return "smaller"
}

// Direction returns the selection metric's direction.
func Direction(s *trainingv1.TrainingSpec) modelv1.MetricDirection {
	if _, m := Metric(s); m.HigherIsBetter {
		return modelv1.MetricDirection_METRIC_DIRECTION_MAXIMIZE
	}
	return modelv1.MetricDirection_METRIC_DIRECTION_MINIMIZE
}

// Candidate is one family with one setting of its hyperparameters.
type Candidate struct {
	// Index is the candidate's 1-based index in the search.
	Index int
	// Spec is the index of the CandidateSpec it comes from.
	Spec int
	// Family is the family asked for.
	Family modelv1.ModelFamily
	// Label is the CandidateSpec's label.
	Label string
	// Params are the hyperparameters, defaults filled in.
	Params map[string]*commonv1.Value
	// Solver is the candidate's solver options, falling back to the spec's.
	Solver *trainingv1.SolverOptions
}

// Expand returns the candidates of a spec: for each CandidateSpec, every combination of its
// listed values (grid search) or n_iter random draws (random search, seeded by the spec's
// seed), defaults filled in. It reports invalid families and hyperparameters.
func Expand(s *trainingv1.TrainingSpec, prefix string) ([]Candidate, fault.Violations) {
	var v fault.Violations
	var out []Candidate
	random := s.GetSearch().GetMethod() == trainingv1.SearchMethod_SEARCH_METHOD_RANDOM
	nIter := cmp.Or(int(s.GetSearch().GetNIter()), DefaultNIter)
	for ci, cs := range s.GetCandidates() {
		field := fmt.Sprintf("%s.candidates[%d]", prefix, ci)
		fam, ok := families[cs.GetFamily()]
		if !ok {
			if cs.GetFamily() == modelv1.ModelFamily_MODEL_FAMILY_UNSPECIFIED {
				v.Add(field+".family", "required")
			} else {
				v.Add(field+".family", "%v is not supported by this training service yet", cs.GetFamily())
			}
			continue
		}
		if s.GetTask() != modelv1.TaskKind_TASK_KIND_UNSPECIFIED && !fits(cs.GetFamily(), fam.task, s.GetTask()) {
			v.Add(field+".family", "%v does not fit task %v", cs.GetFamily(), s.GetTask())
			continue
		}
		if t := cs.GetSolver().GetTolerance(); t < 0 || math.IsNaN(t) {
			v.Add(field+".solver.tolerance", "must not be negative")
		}
		if cs.GetSolver().GetMaxIterations() < 0 {
			v.Add(field+".solver.max_iterations", "must not be negative")
		}
		// Each hyperparameter's domain as a list of values (grid) or a sampler (random).
		names := slices.Sorted(maps.Keys(cs.GetHyperparameters()))
		lists := map[string][]*commonv1.Value{}
		ranges := map[string]*trainingv1.HyperparameterRange{}
		bad := false
		for _, name := range names {
			hf := fmt.Sprintf("%s.hyperparameters[%s]", field, key(name))
			p, ok := lookupParam(cs.GetFamily(), name)
			if !ok {
				v.Add(hf, "%v has no hyperparameter %s; it has %q", cs.GetFamily(), fault.Quote(name), paramNames(cs.GetFamily()))
				bad = true
				continue
			}
			switch d := cs.GetHyperparameters()[name].GetDomain().(type) {
			case *trainingv1.HyperparameterDomain_Values:
				if len(d.Values.GetValues()) == 0 {
					v.Add(hf+".values", "at least one value is required")
					bad = true
				}
				for i, val := range d.Values.GetValues() {
					c, err := p.check(val)
					if err == nil {
						err = fitsTask(cs.GetFamily(), name, c, s.GetTask())
					}
					if err != nil {
						v.Add(fmt.Sprintf("%s.values.values[%d]", hf, i), "%v", err)
						bad = true
						continue
					}
					lists[name] = append(lists[name], c)
				}
			case *trainingv1.HyperparameterDomain_Range:
				r := d.Range
				switch {
				case !p.numeric():
					v.Add(hf+".range", "%s takes values, not a range", name)
				case math.IsNaN(r.GetMin()) || math.IsNaN(r.GetMax()) || r.GetMax() < r.GetMin():
					v.Add(hf+".range", "max must be at least min")
				case r.GetScale() == trainingv1.RangeScale_RANGE_SCALE_LOG && r.GetMin() <= 0:
					v.Add(hf+".range.min", "a log-scale range needs a positive min")
				case !random && r.GetGridPoints() < 2:
					v.Add(hf+".range.grid_points", "grid search over a range needs at least 2 grid_points")
				default:
					for _, x := range []float64{r.GetMin(), r.GetMax()} {
						if _, err := p.check(number(roundIf(x, r.GetInteger() || p.kind == kInt))); err != nil {
							v.Add(hf+".range", "%v", err)
							bad = true
							break
						}
					}
					ranges[name] = r
					if !random {
						for _, x := range gridPoints(r) {
							c, _ := p.check(number(roundIf(x, r.GetInteger() || p.kind == kInt)))
							lists[name] = append(lists[name], c)
						}
					}
					continue
				}
				bad = true
			default:
				v.Add(hf, "set values or range")
				bad = true
			}
		}
		if bad {
			continue
		}
		solver := &trainingv1.SolverOptions{
			Tolerance:     cmp.Or(cs.GetSolver().GetTolerance(), s.GetSolver().GetTolerance()),
			MaxIterations: cmp.Or(cs.GetSolver().GetMaxIterations(), s.GetSolver().GetMaxIterations()),
		}
		add := func(set map[string]*commonv1.Value) {
			params := map[string]*commonv1.Value{}
			for _, p := range fam.params {
				if p.def != nil {
					params[p.name] = p.def
				}
			}
			maps.Copy(params, set)
			out = append(out, Candidate{Index: len(out) + 1, Spec: ci, Family: cs.GetFamily(), Label: cs.GetLabel(), Params: params, Solver: solver})
		}
		if random && len(names) > 0 {
			rng := rand.New(rand.NewPCG(Seed(s), uint64(ci)+1))
			for range nIter {
				set := map[string]*commonv1.Value{}
				for _, name := range names {
					if r, ok := ranges[name]; ok {
						p, _ := lookupParam(cs.GetFamily(), name)
						set[name], _ = p.check(number(roundIf(sample(rng, r), r.GetInteger() || p.kind == kInt)))
					} else {
						l := lists[name]
						set[name] = l[rng.IntN(len(l))]
					}
				}
				add(set)
			}
			continue
		}
		// The grid, hyperparameters in name order, the last varying fastest.
		sets := []map[string]*commonv1.Value{{}}
		for _, name := range names {
			var next []map[string]*commonv1.Value
			for _, set := range sets {
				for _, val := range lists[name] {
					c := maps.Clone(set)
					c[name] = val
					next = append(next, c)
				}
			}
			sets = next
		}
		for _, set := range sets {
			add(set)
		}
	}
	return out, v
}

func roundIf(x float64, integer bool) float64 {
	if integer {
		return math.Round(x)
	}
	return x
}

// gridPoints returns a range's grid_points evenly spread points on its scale, ends included.
func gridPoints(r *trainingv1.HyperparameterRange) []float64 {
	n := int(r.GetGridPoints())
	out := make([]float64, n)
	for i := range n {
		t := float64(i) / float64(n-1)
		if r.GetScale() == trainingv1.RangeScale_RANGE_SCALE_LOG {
			out[i] = math.Exp(math.Log(r.GetMin()) + t*(math.Log(r.GetMax())-math.Log(r.GetMin())))
		} else {
			out[i] = r.GetMin() + t*(r.GetMax()-r.GetMin())
		}
	}
	out[0], out[n-1] = r.GetMin(), r.GetMax()
	return out
}

// sample draws a value of a range on its scale.
func sample(rng *rand.Rand, r *trainingv1.HyperparameterRange) float64 {
	u := rng.Float64()
	if r.GetScale() == trainingv1.RangeScale_RANGE_SCALE_LOG {
		return math.Exp(math.Log(r.GetMin()) + u*(math.Log(r.GetMax())-math.Log(r.GetMin())))
	}
	return r.GetMin() + u*(r.GetMax()-r.GetMin())
}

// key shows a map key of the spec in a field path: quoted, and cut when it is long, so that
// a violation never repeats a caller's long or broken key whole.
func key(k string) string { return fault.Quote(k) }
