package spec

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/gbt"
	"github.com/bullseye-ml/bullseye/pkg/ml/kernel"
	"github.com/bullseye-ml/bullseye/pkg/ml/linear"
	"github.com/bullseye-ml/bullseye/pkg/ml/logistic"
	"github.com/bullseye-ml/bullseye/pkg/ml/svm"
)

// plattFolds is the number of cross-validation folds Platt scaling is fitted on.
const plattFolds = 5

// Built is a candidate ready to fit.
type Built struct {
	// CV fits the candidate on a cross-validation fold; it gives probabilities only when the
	// search needs them.
	CV ml.Estimator
	// Refit fits the winner on every training row; classifiers always give probabilities.
	Refit ml.Estimator
	// Family is the family fitted: NYSTROM_SVM for a kernel SVM that fell back to Nyström.
	Family modelv1.ModelFamily
	// Fallback is the kernel fallback applied, if any.
	Fallback modelv1.KernelFallback
	// Note says what the fallback did, for the job's messages.
	Note string
	// Err is set when the candidate cannot run (KERNEL_FALLBACK_FAIL).
	Err error
	// Native says the family splits categories natively and routes missing values itself:
	// it is fitted behind the native form of the job's preprocessing (preprocess.Spec.Native).
	Native bool
}

// Build returns the estimators of candidate c for n training rows. needProb says whether
// cross-validation scores probabilities (the selection metric needs them).
func Build(c Candidate, s *trainingv1.TrainingSpec, n int, needProb bool) Built {
	p := values(c.Params)
	seed := Seed(s)
	tol, maxIter := c.Solver.GetTolerance(), int(c.Solver.GetMaxIterations())
	b := Built{Family: c.Family}
	weights := ml.ClassWeights{Balanced: p.str("class_weight") == "balanced"}
	if p.has("positive_weight") {
		weights = ml.ClassWeights{Positive: p.num("positive_weight")}
	}
	noIntercept := p.has("fit_intercept") && !p.boolean("fit_intercept")
	logReg := func() logistic.Regression {
		r := logistic.Regression{C: p.num("c"), Tol: tol, MaxIter: maxIter, NoIntercept: noIntercept, ClassWeights: weights, Seed: seed}
		if p.str("penalty") == "l1" {
			r.Penalty = logistic.L1
		}
		return r
	}
	linSVM := func() svm.Linear {
		l := svm.Linear{C: p.num("c"), Solver: svm.Primal, Tol: tol, MaxIter: maxIter, NoIntercept: noIntercept, ClassWeights: weights, Seed: seed}
		if p.str("loss") == "hinge" {
			l.Loss, l.Solver = svm.Hinge, svm.Dual
		}
		return l
	}
	kern := kernel.Kernel{Gamma: 0, Degree: int(p.num("degree")), Coef0: p.num("coef0")}
	switch p.str("kernel") {
	case "poly":
		kern.Kind = kernel.Poly
	case "linear":
		kern.Kind = kernel.Linear
	default:
		kern.Kind = kernel.RBF
	}
	autoGamma := p.str("gamma") == "auto"
	if p.has("gamma") && p.str("gamma") == "" {
		kern.Gamma = p.num("gamma") // "scale" stays 0, which the solvers resolve
	}
	withGamma := func(build func(k kernel.Kernel) ml.Estimator) ml.Estimator {
		if autoGamma {
			return gammaAuto{kernel: kern, build: build}
		}
		return build(kern)
	}
	nystroem := func(components int, inner ml.Estimator) ml.Estimator {
		return withGamma(func(k kernel.Kernel) ml.Estimator {
			return kernel.NystroemEstimator{Nystroem: kernel.Nystroem{Kernel: k, Components: components, Seed: seed}, Estimator: inner}
		})
	}
	calibrate := func(e ml.Estimator, always bool) (ml.Estimator, ml.Estimator) {
		cal := calibrated{est: e, seed: seed}
		if needProb || always {
			return cal, cal
		}
		return e, cal
	}
	switch c.Family {
	case modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION:
		if a := p.num("alpha"); a > 0 {
			b.CV = linear.Ridge{Alpha: a, NoIntercept: noIntercept}
		} else {
			b.CV = linear.OLS{NoIntercept: noIntercept}
		}
		b.Refit = b.CV
	case modelv1.ModelFamily_MODEL_FAMILY_LASSO:
		b.CV = linear.Lasso{Alpha: p.num("alpha"), Tol: tol, MaxIter: maxIter, NoIntercept: noIntercept}
		b.Refit = b.CV
	case modelv1.ModelFamily_MODEL_FAMILY_ELASTIC_NET:
		b.CV = linear.ElasticNet{Alpha: p.num("alpha"), L1Ratio: p.num("l1_ratio"), Tol: tol, MaxIter: maxIter, NoIntercept: noIntercept}
		b.Refit = b.CV
	case modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION:
		b.CV = logReg()
		b.Refit = b.CV
	case modelv1.ModelFamily_MODEL_FAMILY_LINEAR_SVM:
		b.CV, b.Refit = calibrate(linSVM(), false)
	case modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_SVM:
		b.CV, b.Refit = calibrate(nystroem(int(p.num("components")), linSVM()), false)
	case modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_LOGISTIC:
		b.CV = nystroem(int(p.num("components")), logReg())
		b.Refit = b.CV
	case modelv1.ModelFamily_MODEL_FAMILY_KERNEL_SVM:
		limits := s.GetKernelLimits()
		maxExact := cmp.Or(int(limits.GetMaxExactRows()), DefaultMaxExactRows)
		exact := func(maxRows int) (ml.Estimator, ml.Estimator) {
			k := func(prob bool) ml.Estimator {
				return withGamma(func(k kernel.Kernel) ml.Estimator {
					return svm.Kernel{C: p.num("c"), Kernel: k, Tol: tol, MaxIter: maxIter, CacheMB: int(p.num("cache_mb")),
						NoShrinking: !p.boolean("shrinking"), ClassWeights: weights, Probability: prob, MaxRows: maxRows, Seed: seed}
				})
			}
			return k(needProb), k(true)
		}
		if n <= maxExact {
			b.CV, b.Refit = exact(0)
			break
		}
		b.Fallback = cmp.Or(limits.GetFallback(), modelv1.KernelFallback_KERNEL_FALLBACK_NYSTROM)
		switch b.Fallback {
		case modelv1.KernelFallback_KERNEL_FALLBACK_SUBSAMPLE:
			b.CV, b.Refit = exact(maxExact)
			b.Note = fmt.Sprintf("kernel SVM fitted on a stratified subsample of %d rows: %d training rows exceed max_exact_rows %d", maxExact, n, maxExact)
		case modelv1.KernelFallback_KERNEL_FALLBACK_FAIL:
			b.Err = fmt.Errorf("%d training rows exceed max_exact_rows %d and the fallback is FAIL", n, maxExact)
		default:
			comps := cmp.Or(int(limits.GetNystromComponents()), DefaultNystromComponents)
			inner := svm.Linear{C: p.num("c"), Solver: svm.Primal, Tol: tol, MaxIter: maxIter, ClassWeights: weights, Seed: seed}
			b.CV, b.Refit = calibrate(nystroem(comps, inner), false)
			b.Family = modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_SVM
			b.Note = fmt.Sprintf("kernel SVM fell back to a linear SVM on a Nyström approximation (%d components): %d training rows exceed max_exact_rows %d",
				comps, n, maxExact)
		}
	case modelv1.ModelFamily_MODEL_FAMILY_GRADIENT_BOOSTED_TREES:
		b.CV, b.Err = boostedTrees(p, s.GetTask(), seed)
		b.Refit, b.Native = b.CV, true
	default:
		b.Err = fmt.Errorf("family %v is not supported", c.Family)
	}
	return b
}

// boostedTrees is the GRADIENT_BOOSTED_TREES estimator of resolved hyperparameters p.
func boostedTrees(p values, task modelv1.TaskKind, seed uint64) (ml.Estimator, error) {
	gp := gbt.Params{
		Trees: int(p.num("trees")), LearningRate: p.num("learning_rate"), MaxLeaves: int(p.num("max_leaves")),
		MaxDepth: int(p.num("max_depth")), L2: p.num("l2"), MinSamplesLeaf: int(p.num("min_samples_leaf")),
		MinChildWeight: p.num("min_child_weight"), Bins: int(p.num("bins")), Subsample: p.num("subsample"),
		ColSample: p.num("colsample"), EarlyStopping: int(p.num("early_stopping")),
		ValidationFraction: p.num("validation_fraction"), Seed: seed,
	}
	if gp.L2 == 0 { // gbt reads 0 as its default
		gp.L2 = math.SmallestNonzeroFloat64
	}
	if gp.MinChildWeight == 0 {
		gp.MinChildWeight = math.SmallestNonzeroFloat64
	}
	if gp.EarlyStopping == 0 {
		gp.EarlyStopping = -1
	}
	objective := p.str("objective")
	switch {
	case task == modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION && (objective == "" || objective == "logistic"):
		gp.Objective = gbt.Logistic
	case task == modelv1.TaskKind_TASK_KIND_REGRESSION && (objective == "" || objective == "squared_error"):
		gp.Objective = gbt.SquaredError
	case task == modelv1.TaskKind_TASK_KIND_REGRESSION && objective == "poisson":
		gp.Objective = gbt.Poisson
	default:
		return nil, fmt.Errorf("objective %q does not fit task %v", objective, task)
	}
	return gbt.Estimator{Params: gp}, nil
}

// gammaAuto resolves gamma "auto", 1 / number of features, when it sees the training matrix.
type gammaAuto struct {
	kernel kernel.Kernel
	build  func(kernel.Kernel) ml.Estimator
}

// Fit implements ml.Estimator.
func (g gammaAuto) Fit(ctx context.Context, x *mat.Dense, y []float64) (ml.Model, error) {
	_, d := x.Dims()
	k := g.kernel
	k.Gamma = 1 / float64(max(d, 1))
	return g.build(k).Fit(ctx, x, y)
}

// calibrated fits an SVM and then Platt scaling on out-of-fold decision values, so that the
// model gives probabilities.
type calibrated struct {
	est  ml.Estimator
	seed uint64
}

// Fit implements ml.Estimator.
func (c calibrated) Fit(ctx context.Context, x *mat.Dense, y []float64) (ml.Model, error) {
	m, err := c.est.Fit(ctx, x, y)
	if err != nil {
		return nil, err
	}
	platt, err := svm.Calibrate(ctx, c.est, x, y, plattFolds, c.seed)
	if err != nil {
		return nil, fmt.Errorf("platt scaling: %w", err)
	}
	switch mm := m.(type) {
	case *svm.LinearModel:
		mm.Platt = platt
	case *kernel.NystroemModel:
		inner, ok := mm.Inner.(*svm.LinearModel)
		if !ok {
			return nil, errors.New("platt scaling: the Nyström model's inner model is not an SVM")
		}
		inner.Platt = platt
	default:
		return nil, fmt.Errorf("platt scaling of a %T", m)
	}
	return m, nil
}
