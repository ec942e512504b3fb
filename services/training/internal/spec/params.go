package spec

import (
	"fmt"
	"math"
	"regexp"
	"slices"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
)

// kind is the type of a hyperparameter.
type kind int

const (
	kNumber kind = iota // a real number (number or whole-number values)
	kInt                // a whole number
	kBool               // a bool
	kEnum               // one of a list of strings
	kGamma              // a positive number, "scale" or "auto"
	kName               // a string of 0 to 32 characters of [a-z0-9_]
)

// param describes one hyperparameter of a family.
type param struct {
	name string
	kind kind
	// def is the default; nil means none (the hyperparameter is left out when not given).
	def *commonv1.Value
	// enum lists the allowed strings of kEnum.
	enum []string
	// lo and hi bound numbers; loOpen excludes lo.
	lo, hi float64
	loOpen bool
}

func number(v float64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: v}}
}
func whole(v int64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: v}}
}
func text(v string) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: v}}
}
func flag(v bool) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: v}}
}

var (
	inf          = math.Inf(1)
	pC           = param{name: "c", kind: kNumber, def: number(1), lo: 0, hi: inf, loOpen: true}
	pClassWeight = param{name: "class_weight", kind: kEnum, def: text("none"), enum: []string{"none", "balanced"}}
	pPosWeight   = param{name: "positive_weight", kind: kNumber, lo: 0, hi: inf, loOpen: true}
	pIntercept   = param{name: "fit_intercept", kind: kBool, def: flag(true)}
	pPenalty     = param{name: "penalty", kind: kEnum, def: text("l2"), enum: []string{"l2", "l1"}}
	pLoss        = param{name: "loss", kind: kEnum, def: text("squared_hinge"), enum: []string{"squared_hinge", "hinge"}}
	pKernel      = param{name: "kernel", kind: kEnum, def: text("rbf"), enum: []string{"rbf", "poly", "linear"}}
	pGamma       = param{name: "gamma", kind: kGamma, def: text("scale"), lo: 0, hi: inf, loOpen: true}
	pDegree      = param{name: "degree", kind: kInt, def: whole(3), lo: 1, hi: 20}
	pCoef0       = param{name: "coef0", kind: kNumber, def: number(0), lo: -inf, hi: inf}
	pComponents  = param{name: "components", kind: kInt, def: whole(1000), lo: 1, hi: 100_000}
)

// families lists, per family, its task and hyperparameters (see ModelFamily in the proto).
var families = map[modelv1.ModelFamily]struct {
	task   modelv1.TaskKind
	params []param
}{
	modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION: {modelv1.TaskKind_TASK_KIND_REGRESSION, []param{
		{name: "alpha", kind: kNumber, def: number(0), lo: 0, hi: inf},
		{name: "solver", kind: kEnum, def: text("qr"), enum: []string{"qr", "cholesky"}},
		pIntercept,
	}},
	modelv1.ModelFamily_MODEL_FAMILY_LASSO: {modelv1.TaskKind_TASK_KIND_REGRESSION, []param{
		{name: "alpha", kind: kNumber, def: number(1), lo: 0, hi: inf, loOpen: true},
		pIntercept,
	}},
	modelv1.ModelFamily_MODEL_FAMILY_ELASTIC_NET: {modelv1.TaskKind_TASK_KIND_REGRESSION, []param{
		{name: "alpha", kind: kNumber, def: number(1), lo: 0, hi: inf, loOpen: true},
		{name: "l1_ratio", kind: kNumber, def: number(0.5), lo: 0, hi: 1, loOpen: true},
		pIntercept,
	}},
	modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION: {modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, []param{
		pC, pPenalty, pClassWeight, pPosWeight, pIntercept,
	}},
	modelv1.ModelFamily_MODEL_FAMILY_LINEAR_SVM: {modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, []param{
		pC, pLoss, pClassWeight, pPosWeight, pIntercept,
	}},
	modelv1.ModelFamily_MODEL_FAMILY_KERNEL_SVM: {modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, []param{
		pC, pKernel, pGamma, pDegree, pCoef0, pClassWeight, pPosWeight,
		{name: "cache_mb", kind: kInt, def: whole(200), lo: 1, hi: 1 << 20},
		{name: "shrinking", kind: kBool, def: flag(true)},
	}},
	modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_SVM: {modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, []param{
		pKernel, pGamma, pDegree, pCoef0, pComponents, pC, pLoss, pClassWeight, pPosWeight, pIntercept,
	}},
	modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_LOGISTIC: {modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, []param{
		pKernel, pGamma, pDegree, pCoef0, pComponents, pC, pPenalty, pClassWeight, pPosWeight, pIntercept,
	}},
	// Recommenders. A lambda of 0 would mean recommend's default, so it must be positive.
	modelv1.ModelFamily_MODEL_FAMILY_MF_ALS: {modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT, []param{
		pRank, {name: "lambda", kind: kNumber, def: number(0.1), lo: 0, hi: inf, loOpen: true},
		{name: "iterations", kind: kInt, def: whole(15), lo: 1, hi: 10_000}, pBiased,
	}},
	modelv1.ModelFamily_MODEL_FAMILY_MF_SGD: {modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT, []param{
		pRank, {name: "learning_rate", kind: kNumber, def: number(0.005), lo: 0, hi: inf, loOpen: true},
		{name: "lambda", kind: kNumber, def: number(0.02), lo: 0, hi: inf, loOpen: true},
		pEpochs, pBiased, {name: "init_std", kind: kNumber, def: number(0.1), lo: 0, hi: inf, loOpen: true},
	}},
	modelv1.ModelFamily_MODEL_FAMILY_IMPLICIT_ALS: {modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT, []param{
		pRank, {name: "lambda", kind: kNumber, def: number(0.01), lo: 0, hi: inf, loOpen: true},
		{name: "alpha", kind: kNumber, def: number(40), lo: 0, hi: inf, loOpen: true},
		{name: "iterations", kind: kInt, def: whole(15), lo: 1, hi: 10_000},
		{name: "cg_steps", kind: kInt, def: whole(3), lo: 1, hi: 1000},
	}},
	modelv1.ModelFamily_MODEL_FAMILY_BPR: {modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT, []param{
		pRank, {name: "learning_rate", kind: kNumber, def: number(0.05), lo: 0, hi: inf, loOpen: true},
		{name: "lambda", kind: kNumber, def: number(0.01), lo: 0, hi: inf, loOpen: true},
		pEpochs, {name: "negatives", kind: kInt, def: whole(1), lo: 1, hi: 1000},
	}},
	// GRADIENT_BOOSTED_TREES fits classification and regression (see fits); its objective
	// defaults to the task's (logistic, squared_error).
	modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES: {modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION, []param{
		{name: "trees", kind: kInt, def: whole(500), lo: 1, hi: 100_000},
		{name: "learning_rate", kind: kNumber, def: number(0.05), lo: 0, hi: 1, loOpen: true},
		{name: "max_leaves", kind: kInt, def: whole(31), lo: 2, hi: 4096},
		{name: "max_depth", kind: kInt, def: whole(0), lo: 0, hi: 64},
		{name: "l2", kind: kNumber, def: number(1), lo: 0, hi: inf},
		{name: "min_samples_leaf", kind: kInt, def: whole(20), lo: 1, hi: 1 << 30},
		{name: "min_child_weight", kind: kNumber, def: number(0.001), lo: 0, hi: inf},
		{name: "bins", kind: kInt, def: whole(255), lo: 2, hi: 255},
		{name: "subsample", kind: kNumber, def: number(1), lo: 0, hi: 1, loOpen: true},
		{name: "colsample", kind: kNumber, def: number(1), lo: 0, hi: 1, loOpen: true},
		{name: "early_stopping", kind: kInt, def: whole(20), lo: 0, hi: 100_000},
		{name: "validation_fraction", kind: kNumber, def: number(0.1), lo: 0, hi: 0.5, loOpen: true},
		{name: "objective", kind: kEnum, enum: []string{"logistic", "squared_error", "poisson"}},
	}},
	// BG_NBD_GAMMA_GAMMA is the customer lifetime value family.
	modelv1.ModelFamily_MODEL_FAMILY_BG_NBD_GAMMA_GAMMA: {modelv1.TaskKind_TASK_KIND_CUSTOMER_LIFETIME_VALUE, []param{
		{name: "rfm_prefix", kind: kName, def: text("rfm_")},
		{name: "time_unit", kind: kEnum, def: text("weeks"), enum: []string{"weeks", "days"}},
		{name: "horizon_months", kind: kInt, def: whole(12), lo: 1, hi: 1200},
		{name: "monthly_discount", kind: kNumber, def: number(0.01), lo: 0, hi: 1},
		{name: "gamma_gamma", kind: kBool, def: flag(true)},
	}},
	// POPULARITY fits both recommendation tasks (see fits).
	modelv1.ModelFamily_MODEL_FAMILY_POPULARITY: {modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT, []param{
		{name: "weighting", kind: kEnum, def: text("users"), enum: []string{"users", "value"}},
	}},
}

var (
	pRank   = param{name: "rank", kind: kInt, def: whole(10), lo: 1, hi: 1024}
	pBiased = param{name: "biased", kind: kBool, def: flag(true)}
	pEpochs = param{name: "epochs", kind: kInt, def: whole(20), lo: 1, hi: 10_000}
)

// fits reports whether family f, listed with task listed, fits task t.
func fits(f modelv1.ModelFamily, listed, t modelv1.TaskKind) bool {
	switch f {
	case modelv1.ModelFamily_MODEL_FAMILY_POPULARITY:
		return IsRecommendation(t)
	case modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES:
		return t == modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION || t == modelv1.TaskKind_TASK_KIND_REGRESSION
	}
	return listed == t
}

// fitsTask checks a hyperparameter value that only some tasks take: the boosted trees'
// objective.
func fitsTask(f modelv1.ModelFamily, name string, v *commonv1.Value, t modelv1.TaskKind) error {
	if f != modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES || name != "objective" || t == modelv1.TaskKind_TASK_KIND_UNSPECIFIED {
		return nil
	}
	o := v.GetStringValue()
	if (t == modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION) != (o == "logistic") {
		return fmt.Errorf("objective %q does not fit task %v", o, t)
	}
	return nil
}

func lookupParam(f modelv1.ModelFamily, name string) (param, bool) {
	i := slices.IndexFunc(families[f].params, func(p param) bool { return p.name == name })
	if i < 0 {
		return param{}, false
	}
	return families[f].params[i], true
}

func paramNames(f modelv1.ModelFamily) []string {
	var out []string
	for _, p := range families[f].params {
		out = append(out, p.name)
	}
	return out
}

// check returns v in its canonical form for the parameter (whole numbers as int values,
// numbers as number values), or an error saying what is wrong.
func (p param) check(v *commonv1.Value) (*commonv1.Value, error) {
	switch p.kind {
	case kNumber, kInt, kGamma:
		var x float64
		switch k := v.GetKind().(type) {
		case *commonv1.Value_NumberValue:
			x = k.NumberValue
		case *commonv1.Value_IntValue:
			x = float64(k.IntValue)
		case *commonv1.Value_StringValue:
			if p.kind == kGamma && (k.StringValue == "scale" || k.StringValue == "auto") {
				return v, nil
			}
			if p.kind == kGamma {
				return nil, fmt.Errorf("must be a positive number, \"scale\" or \"auto\"")
			}
			return nil, fmt.Errorf("must be a number")
		default:
			return nil, fmt.Errorf("must be a number")
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("must be a finite number")
		}
		if x < p.lo || x > p.hi || p.loOpen && x == p.lo {
			return nil, fmt.Errorf("%v is out of range %s", x, p.rangeText())
		}
		if p.kind == kInt {
			if x != math.Trunc(x) {
				return nil, fmt.Errorf("%v is not a whole number", x)
			}
			return whole(int64(x)), nil
		}
		return number(x), nil
	case kName:
		s, ok := v.GetKind().(*commonv1.Value_StringValue)
		if !ok || !namePattern.MatchString(s.StringValue) {
			return nil, fmt.Errorf("must be a string of 0 to 32 characters of [a-z0-9_]")
		}
		return v, nil
	case kBool:
		if _, ok := v.GetKind().(*commonv1.Value_BoolValue); !ok {
			return nil, fmt.Errorf("must be true or false")
		}
		return v, nil
	case kEnum:
		s, ok := v.GetKind().(*commonv1.Value_StringValue)
		if !ok || !slices.Contains(p.enum, s.StringValue) {
			return nil, fmt.Errorf("must be one of %q", p.enum)
		}
		return v, nil
	}
	return nil, fmt.Errorf("unknown hyperparameter kind")
}

func (p param) rangeText() string {
	open := "["
	if p.loOpen {
		open = "("
	}
	return fmt.Sprintf("%s%v, %v]", open, p.lo, p.hi)
}

var namePattern = regexp.MustCompile(`^[a-z0-9_]{0,32}$`)

// numeric reports whether the parameter takes ranges.
func (p param) numeric() bool { return p.kind == kNumber || p.kind == kInt || p.kind == kGamma }

// values holds a candidate's resolved hyperparameters.
type values map[string]*commonv1.Value

func (v values) num(name string) float64 {
	switch k := v[name].GetKind().(type) {
	case *commonv1.Value_NumberValue:
		return k.NumberValue
	case *commonv1.Value_IntValue:
		return float64(k.IntValue)
	}
	return 0
}

func (v values) str(name string) string { return v[name].GetStringValue() }

func (v values) has(name string) bool { _, ok := v[name]; return ok }

func (v values) boolean(name string) bool { return v[name].GetBoolValue() }
