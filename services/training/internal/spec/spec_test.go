package spec_test

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bullseye-ml/bullseye/pkg/fault"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/kernel"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
	"github.com/bullseye-ml/bullseye/pkg/ml/selection"
	"github.com/bullseye-ml/bullseye/pkg/ml/svm"
	"github.com/bullseye-ml/bullseye/services/training/internal/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func num(x float64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: x}}
}
func str(s string) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
}

func list(vs ...*commonv1.Value) *trainingv1.HyperparameterDomain {
	return &trainingv1.HyperparameterDomain{Domain: &trainingv1.HyperparameterDomain_Values{Values: &trainingv1.HyperparameterValues{Values: vs}}}
}

func rng(lo, hi float64, scale trainingv1.RangeScale, points int32, integer bool) *trainingv1.HyperparameterDomain {
	return &trainingv1.HyperparameterDomain{Domain: &trainingv1.HyperparameterDomain_Range{Range: &trainingv1.HyperparameterRange{
		Min: lo, Max: hi, Scale: scale, GridPoints: points, Integer: integer}}}
}

func base(cands ...*trainingv1.CandidateSpec) *trainingv1.TrainingSpec {
	return &trainingv1.TrainingSpec{
		ModelName: "m",
		Task:      modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION,
		Data: &trainingv1.DataSpec{Source: &trainingv1.DataSpec_TrainingSet{TrainingSet: &featurev1.TrainingSetSpec{
			FeatureSet: &featurev1.FeatureSetRef{Name: "fs"},
			Label:      &featurev1.LabelSpec{Source: &featurev1.LabelSpec_Trait{Trait: &featurev1.TraitLabel{Trait: "y"}}},
			Cutoff:     &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_Rolling{Rolling: &featurev1.RollingCutoff{}}},
		}}},
		Candidates: cands,
	}
}

func params(c spec.Candidate) string {
	var out []string
	for _, k := range []string{"c", "gamma", "kernel", "penalty"} {
		if v, ok := c.Params[k]; ok {
			switch x := v.GetKind().(type) {
			case *commonv1.Value_NumberValue:
				out = append(out, fmt.Sprintf("%s=%g", k, x.NumberValue))
			case *commonv1.Value_StringValue:
				out = append(out, fmt.Sprintf("%s=%s", k, x.StringValue))
			}
		}
	}
	return fmt.Sprint(out)
}

func TestExpandGrid(t *testing.T) {
	s := base(
		&trainingv1.CandidateSpec{Family: modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION, Hyperparameters: map[string]*trainingv1.HyperparameterDomain{
			"c":       rng(0.01, 1, trainingv1.RangeScale_RANGE_SCALE_LOG, 3, false),
			"penalty": list(str("l2"), str("l1")),
		}},
		&trainingv1.CandidateSpec{Family: modelv1.ModelFamily_MODEL_FAMILY_KERNEL_SVM},
	)
	cands, v := spec.Expand(s, "spec")
	if len(v) > 0 {
		t.Fatal(v)
	}
	var got []string
	for _, c := range cands {
		got = append(got, fmt.Sprintf("%d %v %s", c.Index, c.Family, params(c)))
	}
	want := []string{
		"1 MODEL_FAMILY_LOGISTIC_REGRESSION [c=0.01 penalty=l2]",
		"2 MODEL_FAMILY_LOGISTIC_REGRESSION [c=0.01 penalty=l1]",
		"3 MODEL_FAMILY_LOGISTIC_REGRESSION [c=0.1 penalty=l2]",
		"4 MODEL_FAMILY_LOGISTIC_REGRESSION [c=0.1 penalty=l1]",
		"5 MODEL_FAMILY_LOGISTIC_REGRESSION [c=1 penalty=l2]",
		"6 MODEL_FAMILY_LOGISTIC_REGRESSION [c=1 penalty=l1]",
		"7 MODEL_FAMILY_KERNEL_SVM [c=1 gamma=scale kernel=rbf]",
	}
	// Log-spaced points are exact at the ends only.
	for i := range got {
		got[i] = fmt.Sprintf("%.40s", got[i])
		want[i] = fmt.Sprintf("%.40s", want[i])
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("candidates:\n%v\nwant\n%v", got, want)
	}
	if c := cands[2].Params["c"].GetNumberValue(); c < 0.0999 || c > 0.1001 {
		t.Errorf("middle log point = %v, want 0.1", c)
	}
	// Defaults are filled in.
	if cands[6].Params["cache_mb"].GetIntValue() != 200 || !cands[6].Params["shrinking"].GetBoolValue() || cands[0].Params["class_weight"].GetStringValue() != "none" {
		t.Errorf("defaults = %v", cands[6].Params)
	}
}

func TestExpandRandom(t *testing.T) {
	s := base(&trainingv1.CandidateSpec{Family: modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_SVM, Hyperparameters: map[string]*trainingv1.HyperparameterDomain{
		"c":          rng(0.1, 10, trainingv1.RangeScale_RANGE_SCALE_LOG, 0, false),
		"components": rng(10, 20, trainingv1.RangeScale_RANGE_SCALE_LINEAR, 0, true),
		"kernel":     list(str("rbf"), str("poly")),
	}})
	s.Search = &trainingv1.SearchSpec{Method: trainingv1.SearchMethod_SEARCH_METHOD_RANDOM, NIter: 25, Seed: 3}
	a, v := spec.Expand(s, "spec")
	if len(v) > 0 {
		t.Fatal(v)
	}
	b, _ := spec.Expand(s, "spec")
	if len(a) != 25 || !reflect.DeepEqual(a, b) {
		t.Fatalf("%d candidates; the same seed gives the same draws: %v", len(a), reflect.DeepEqual(a, b))
	}
	kernels := map[string]bool{}
	for _, c := range a {
		if x := c.Params["c"].GetNumberValue(); x < 0.1 || x > 10 {
			t.Errorf("c = %v outside [0.1, 10]", x)
		}
		if n := c.Params["components"].GetIntValue(); n < 10 || n > 20 {
			t.Errorf("components = %v, want a whole number in [10, 20]", c.Params["components"])
		}
		kernels[c.Params["kernel"].GetStringValue()] = true
	}
	if len(kernels) != 2 {
		t.Errorf("kernels drawn: %v", kernels)
	}
	s.Search.Seed = 4
	if c, _ := spec.Expand(s, "spec"); reflect.DeepEqual(c, a) {
		t.Error("another seed gives the same draws")
	}
}

// recSpec turns s into an explicit-feedback recommender spec trained by MF_ALS.
func recSpec(s *trainingv1.TrainingSpec, task modelv1.TaskKind) {
	s.Task = task
	s.Data = &trainingv1.DataSpec{Source: &trainingv1.DataSpec_Interactions{Interactions: &trainingv1.InteractionsSpec{
		Export: &featurev1.ExportInteractionsRequest{Mode: &featurev1.ExportInteractionsRequest_Explicit{Explicit: &featurev1.ExplicitFeedback{
			EventNames: []string{"Product Rated"}, RatingProperty: "rating"}}},
		MinUserInteractions: 5,
		Split:               &trainingv1.InteractionSplit{Method: &trainingv1.InteractionSplit_Random{Random: &trainingv1.RandomSplit{TestFraction: 0.2}}},
	}}}
	s.Candidates = []*trainingv1.CandidateSpec{{Family: modelv1.ModelFamily_MODEL_FAMILY_MF_ALS,
		Hyperparameters: map[string]*trainingv1.HyperparameterDomain{"rank": list(num(5), num(10)), "biased": list(&commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: true}})}}}
}

func TestValidate(t *testing.T) {
	lr := func(hp map[string]*trainingv1.HyperparameterDomain) *trainingv1.CandidateSpec {
		return &trainingv1.CandidateSpec{Family: modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION, Hyperparameters: hp}
	}
	tests := []struct {
		name   string
		change func(s *trainingv1.TrainingSpec)
		fields []string
	}{
		{"valid", func(*trainingv1.TrainingSpec) {}, nil},
		{"recommendation task on a training set", func(s *trainingv1.TrainingSpec) { s.Task = modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT },
			[]string{"spec.data.training_set", "spec.candidates[0].family"}},
		{"recommender", func(s *trainingv1.TrainingSpec) { recSpec(s, modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT) }, nil},
		{"implicit recommender", func(s *trainingv1.TrainingSpec) {
			recSpec(s, modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT)
			s.Data.GetInteractions().Export.Mode = &featurev1.ExportInteractionsRequest_Implicit{Implicit: &featurev1.ImplicitFeedback{EventWeights: map[string]float64{"Viewed": 1}}}
			s.Candidates = []*trainingv1.CandidateSpec{{Family: modelv1.ModelFamily_MODEL_FAMILY_IMPLICIT_ALS,
				Hyperparameters: map[string]*trainingv1.HyperparameterDomain{"alpha": list(num(10), num(40))}}, {Family: modelv1.ModelFamily_MODEL_FAMILY_POPULARITY}}
		}, nil},
		{"recommender errors", func(s *trainingv1.TrainingSpec) {
			recSpec(s, modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT)
			s.Data.GetInteractions().Split = &trainingv1.InteractionSplit{Method: &trainingv1.InteractionSplit_Random{Random: &trainingv1.RandomSplit{TestFraction: 1}}}
			s.Data.GetInteractions().Export.GetExplicit().RatingProperty = ""
			s.Selection = &trainingv1.SelectionSpec{Metric: "rmse"}
			s.Candidates[0].Hyperparameters = map[string]*trainingv1.HyperparameterDomain{"rank": list(num(0)), "c": list(num(1))}
		}, []string{"spec.data.interactions.split.random.test_fraction", "spec.data.interactions.export.explicit.rating_property",
			"spec.selection.metric", "spec.candidates[0].family"}},
		{"recommender metric", func(s *trainingv1.TrainingSpec) {
			recSpec(s, modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT)
			s.Selection = &trainingv1.SelectionSpec{Metric: "ndcg_at_0"}
			s.Candidates[0].Hyperparameters = map[string]*trainingv1.HyperparameterDomain{"rank": list(num(0)), "alpha": list(num(1))}
		}, []string{"spec.selection.metric", `spec.candidates[0].hyperparameters["rank"].values.values[0]`, `spec.candidates[0].hyperparameters["alpha"]`}},
		{"penalty not in the list", func(s *trainingv1.TrainingSpec) {
			s.Candidates[0] = lr(map[string]*trainingv1.HyperparameterDomain{"penalty": list(str("l3"))})
		}, []string{`spec.candidates[0].hyperparameters["penalty"].values.values[0]`}},
		{"range without grid points", func(s *trainingv1.TrainingSpec) {
			s.Candidates[0] = lr(map[string]*trainingv1.HyperparameterDomain{"c": rng(0.1, 1, 0, 0, false)})
		}, []string{`spec.candidates[0].hyperparameters["c"].range.grid_points`}},
		{"log range from 0", func(s *trainingv1.TrainingSpec) {
			s.Candidates[0] = lr(map[string]*trainingv1.HyperparameterDomain{"c": rng(0, 1, trainingv1.RangeScale_RANGE_SCALE_LOG, 3, false)})
		}, []string{`spec.candidates[0].hyperparameters["c"].range.min`}},
		{"range of a string hyperparameter", func(s *trainingv1.TrainingSpec) {
			s.Candidates[0] = lr(map[string]*trainingv1.HyperparameterDomain{"penalty": rng(0, 1, 0, 2, false)})
		}, []string{`spec.candidates[0].hyperparameters["penalty"].range`}},
		{"contrary direction", func(s *trainingv1.TrainingSpec) {
			s.Selection = &trainingv1.SelectionSpec{Metric: "log_loss", Direction: modelv1.MetricDirection_METRIC_DIRECTION_MAXIMIZE}
		}, []string{"spec.selection.direction"}},
		{"time gap without time series", func(s *trainingv1.TrainingSpec) {
			s.CrossValidation = &trainingv1.CrossValidationSpec{TimeGap: nil, Strategy: trainingv1.FoldStrategy_FOLD_STRATEGY_STRATIFIED}
			s.Task = modelv1.TaskKind_TASK_KIND_REGRESSION
			s.Candidates[0].Family = modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION
			s.Candidates[0].Hyperparameters = nil
		}, []string{"spec.cross_validation.strategy"}},
		{"bad train filter", func(s *trainingv1.TrainingSpec) {
			s.Data.TrainFilter = &trainingv1.RowNumberFilter{Modulus: 4, Remainders: []int64{4}}
		}, []string{"spec.data.train_filter.remainders[0]"}},
		{"median for categories", func(s *trainingv1.TrainingSpec) {
			s.Preprocessing = &trainingv1.PreprocessingSpec{CategoricalImputation: trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_MEDIAN}
		}, []string{"spec.preprocessing.categorical_imputation"}},
		{"boosted trees", func(s *trainingv1.TrainingSpec) {
			s.Candidates[0] = &trainingv1.CandidateSpec{Family: modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES,
				Hyperparameters: map[string]*trainingv1.HyperparameterDomain{"max_leaves": list(num(15), num(63)), "learning_rate": rng(0.01, 0.1, trainingv1.RangeScale_RANGE_SCALE_LOG, 3, false)}}
		}, nil},
		{"boosted trees out of range", func(s *trainingv1.TrainingSpec) {
			s.Candidates[0] = &trainingv1.CandidateSpec{Family: modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES,
				Hyperparameters: map[string]*trainingv1.HyperparameterDomain{"max_leaves": list(num(1)), "learning_rate": list(num(0)),
					"bins": list(num(256)), "objective": list(str("poisson")), "subsample": list(num(1.5))}}
		}, []string{`spec.candidates[0].hyperparameters["max_leaves"].values.values[0]`, `spec.candidates[0].hyperparameters["learning_rate"].values.values[0]`,
			`spec.candidates[0].hyperparameters["bins"].values.values[0]`, `spec.candidates[0].hyperparameters["objective"].values.values[0]`,
			`spec.candidates[0].hyperparameters["subsample"].values.values[0]`}},
		{"boosted trees for regression", func(s *trainingv1.TrainingSpec) {
			s.Task = modelv1.TaskKind_TASK_KIND_REGRESSION
			s.Candidates[0] = &trainingv1.CandidateSpec{Family: modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES,
				Hyperparameters: map[string]*trainingv1.HyperparameterDomain{"objective": list(str("poisson"), str("squared_error"))}}
		}, nil},
		{"threshold 1", func(s *trainingv1.TrainingSpec) {
			s.Evaluation = &trainingv1.EvaluationOptions{Threshold: 1}
		}, []string{"spec.evaluation.threshold"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base(lr(map[string]*trainingv1.HyperparameterDomain{"c": list(num(1))}))
			tc.change(s)
			var got []string
			for _, v := range spec.Validate(s, "spec") {
				got = append(got, v.Field)
			}
			for _, f := range tc.fields {
				if !slices.Contains(got, f) {
					t.Errorf("violations %q lack %s", got, f)
				}
			}
			if len(tc.fields) == 0 && len(got) > 0 {
				t.Errorf("violations %q, want none", got)
			}
		})
	}
}

// TestBuildKernelFallback checks what a kernel SVM becomes beyond max_exact_rows.
func TestBuildKernelFallback(t *testing.T) {
	s := base(&trainingv1.CandidateSpec{Family: modelv1.ModelFamily_MODEL_FAMILY_KERNEL_SVM})
	cands, _ := spec.Expand(s, "spec")
	c := cands[0]
	if b := spec.Build(c, s, 1000, false); b.Family != modelv1.ModelFamily_MODEL_FAMILY_KERNEL_SVM || b.Fallback != 0 || b.Note != "" {
		t.Errorf("small data: %+v", b)
	} else if k, ok := b.CV.(svm.Kernel); !ok || k.Probability || !b.Refit.(svm.Kernel).Probability {
		t.Errorf("small data: CV %T without probabilities and a refit with them expected", b.CV)
	}
	s.KernelLimits = &trainingv1.KernelLimits{MaxExactRows: 500, NystromComponents: 64}
	b := spec.Build(c, s, 1000, false)
	if b.Family != modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_SVM || b.Fallback != modelv1.KernelFallback_KERNEL_FALLBACK_NYSTROM || b.Note == "" {
		t.Errorf("Nyström fallback: %+v", b)
	}
	if ne, ok := b.CV.(kernel.NystroemEstimator); !ok || ne.Nystroem.Components != 64 {
		t.Errorf("Nyström fallback estimator: %#v", b.CV)
	}
	s.KernelLimits.Fallback = modelv1.KernelFallback_KERNEL_FALLBACK_SUBSAMPLE
	if b := spec.Build(c, s, 1000, false); b.Family != modelv1.ModelFamily_MODEL_FAMILY_KERNEL_SVM || b.CV.(svm.Kernel).MaxRows != 500 {
		t.Errorf("subsample fallback: %+v", b)
	}
	s.KernelLimits.Fallback = modelv1.KernelFallback_KERNEL_FALLBACK_FAIL
	if b := spec.Build(c, s, 1000, false); b.Err == nil {
		t.Errorf("fail fallback: no error")
	}
}

func TestStratifiedGroupKFold(t *testing.T) {
	var groups []string
	var y []float64
	for g := range 30 {
		for r := range 1 + g%4 {
			groups = append(groups, fmt.Sprintf("g%02d", g))
			y = append(y, float64((g+r)%3/2))
		}
	}
	folds, err := spec.StratifiedGroupKFold{K: 3, Labels: y, Groups: groups}.Split(len(y))
	if err != nil {
		t.Fatal(err)
	}
	where := map[string]int{}
	var pos []int
	for f, fold := range folds {
		p := 0
		for _, i := range fold.Test {
			if w, ok := where[groups[i]]; ok && w != f {
				t.Fatalf("group %s in folds %d and %d", groups[i], w, f)
			}
			where[groups[i]] = f
			p += int(y[i])
		}
		pos = append(pos, p)
		if len(fold.Train)+len(fold.Test) != len(y) {
			t.Errorf("fold %d covers %d rows of %d", f, len(fold.Train)+len(fold.Test), len(y))
		}
	}
	if slices.Max(pos)-slices.Min(pos) > 1 {
		t.Errorf("positives per fold %v, want them balanced", pos)
	}
}

func TestSplitterDefaults(t *testing.T) {
	s := base()
	y := []float64{0, 1, 0, 1, 0, 1, 0, 1, 0, 1}
	unique := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	repeated := []string{"a", "a", "b", "b", "c", "c", "d", "d", "e", "e"}
	if _, st := spec.Splitter(s, y, unique, nil); st != trainingv1.FoldStrategy_FOLD_STRATEGY_STRATIFIED {
		t.Errorf("classification, one row per entity: %v", st)
	}
	if sp, st := spec.Splitter(s, y, repeated, nil); st != trainingv1.FoldStrategy_FOLD_STRATEGY_STRATIFIED_GROUPED {
		t.Errorf("classification, repeated entities: %v", st)
	} else if _, ok := sp.(spec.StratifiedGroupKFold); !ok {
		t.Errorf("splitter %T", sp)
	}
	s.Task = modelv1.TaskKind_TASK_KIND_REGRESSION
	if sp, st := spec.Splitter(s, y, unique, nil); st != trainingv1.FoldStrategy_FOLD_STRATEGY_K_FOLD {
		t.Errorf("regression: %v", st)
	} else if kf, ok := sp.(selection.KFold); !ok || !kf.Shuffle || kf.Seed != spec.DefaultSeed {
		t.Errorf("regression splitter %#v", sp)
	}
}

func TestPreprocessing(t *testing.T) {
	missing := false
	p := &trainingv1.PreprocessingSpec{
		NumericImputation: trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_MEAN,
		MissingIndicators: &missing,
		OneHot:            &trainingv1.OneHotOptions{MinCount: 5, DropUnseenBucket: true},
		Hashing:           &trainingv1.HashingOptions{CardinalityThreshold: 50, Buckets: 64},
		Columns: map[string]*trainingv1.ColumnOptions{
			"spend": {LogTransform: true, Scaling: trainingv1.Scaling_SCALING_NONE},
			"city":  {Encoding: modelv1.ColumnEncoding_COLUMN_ENCODING_HASHING, HashBuckets: 16, LogTransform: true},
			"gone":  {Imputation: trainingv1.ImputationStrategy_IMPUTATION_STRATEGY_MEDIAN},
		},
	}
	got, notes := spec.Preprocessing(p, []spec.Column{
		{Name: "spend", Type: commonv1.ValueType_VALUE_TYPE_NUMBER},
		{Name: "city", Type: commonv1.ValueType_VALUE_TYPE_STRING},
	})
	want := map[string]preprocess.Options{
		"spend": {Impute: preprocess.ImputeMean, Indicator: preprocess.IndicatorNever, Log1p: true, NoStandardize: true,
			MinFrequency: 5, Unseen: preprocess.UnseenIgnore, MaxOneHot: 50, HashBuckets: 64},
		"city": {Impute: preprocess.ImputeAuto, Indicator: preprocess.IndicatorNever, Encoding: preprocess.EncodingHash,
			MinFrequency: 5, Unseen: preprocess.UnseenIgnore, MaxOneHot: 50, HashBuckets: 16},
	}
	if !reflect.DeepEqual(got.Columns, want) {
		t.Errorf("options:\n%+v\nwant\n%+v", got.Columns, want)
	}
	// A log transform of a category and an unknown column are reported.
	if len(notes) != 2 {
		t.Errorf("notes = %q, want 2", notes)
	}
}

// clvBase is a valid customer lifetime value spec: an outcome label counting purchase days
// in the holdout, one BG_NBD_GAMMA_GAMMA candidate.
func clvBase() *trainingv1.TrainingSpec {
	s := base(&trainingv1.CandidateSpec{Family: modelv1.ModelFamily_MODEL_FAMILY_BG_NBD_GAMMA_GAMMA})
	s.Task = modelv1.TaskKind_TASK_KIND_CUSTOMER_LIFETIME_VALUE
	s.GetData().GetTrainingSet().Label = &featurev1.LabelSpec{Source: &featurev1.LabelSpec_Outcome{Outcome: &featurev1.OutcomeLabel{
		Filter: &featurev1.EventFilter{Names: []string{"Order Completed"}}, Horizon: durationpb.New(273 * 24 * time.Hour),
		Aggregation: featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_DISTINCT_DAYS}}}
	return s
}

func TestValidateCLV(t *testing.T) {
	if v := spec.Validate(clvBase(), "spec"); len(v) > 0 {
		t.Fatalf("a valid CLV spec: %v", v)
	}
	cands, _ := spec.Expand(clvBase(), "spec")
	c := spec.CLVCandidate(cands[0])
	if c.UnitDays != 7 || c.Horizon.Months != 12 || c.Horizon.MonthlyDiscount != 0.01 || !c.GammaGamma || c.Inputs.Frequency != "rfm_frequency" {
		t.Errorf("defaults %+v", c)
	}
	if d := spec.HoldoutDays(clvBase()); d != 273 {
		t.Errorf("holdout %v days, want 273", d)
	}
	for _, tc := range []struct {
		name   string
		change func(s *trainingv1.TrainingSpec)
		field  string
	}{
		{"trait label", func(s *trainingv1.TrainingSpec) {
			s.GetData().GetTrainingSet().Label = &featurev1.LabelSpec{Source: &featurev1.LabelSpec_Trait{Trait: &featurev1.TraitLabel{Trait: "y"}}}
		}, "spec.data.training_set.label"},
		{"any aggregation", func(s *trainingv1.TrainingSpec) {
			s.GetData().GetTrainingSet().GetLabel().GetOutcome().Aggregation = featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_ANY
		}, "spec.data.training_set.label.outcome.aggregation"},
		{"two candidates", func(s *trainingv1.TrainingSpec) { s.Candidates = append(s.Candidates, s.Candidates[0]) }, "spec.candidates"},
		{"cross-validation", func(s *trainingv1.TrainingSpec) { s.CrossValidation = &trainingv1.CrossValidationSpec{} }, "spec.cross_validation"},
		{"a classifier family", func(s *trainingv1.TrainingSpec) {
			s.Candidates[0].Family = modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION
		}, "spec.candidates[0].family"},
		{"an unknown time unit", func(s *trainingv1.TrainingSpec) {
			s.Candidates[0].Hyperparameters = map[string]*trainingv1.HyperparameterDomain{"time_unit": list(str("months"))}
		}, `spec.candidates[0].hyperparameters["time_unit"].values.values[0]`},
		{"a bad prefix", func(s *trainingv1.TrainingSpec) {
			s.Candidates[0].Hyperparameters = map[string]*trainingv1.HyperparameterDomain{"rfm_prefix": list(str("RFM-"))}
		}, `spec.candidates[0].hyperparameters["rfm_prefix"].values.values[0]`},
		{"a negative discount", func(s *trainingv1.TrainingSpec) {
			s.Candidates[0].Hyperparameters = map[string]*trainingv1.HyperparameterDomain{"monthly_discount": list(num(-0.1))}
		}, `spec.candidates[0].hyperparameters["monthly_discount"].values.values[0]`},
		{"the BTYD family for a classifier", func(s *trainingv1.TrainingSpec) {
			s.Task = modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION
		}, "spec.candidates[0].family"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := clvBase()
			tc.change(s)
			v := spec.Validate(s, "spec")
			if !slices.ContainsFunc(v, func(x fault.Violation) bool { return x.Field == tc.field }) {
				t.Errorf("violations %v, want one of %s", v, tc.field)
			}
		})
	}
}
