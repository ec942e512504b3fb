package selection

import (
	"fmt"
	"maps"
	"slices"

	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/gbt"
	"github.com/bullseye-ml/bullseye/pkg/ml/kernel"
	"github.com/bullseye-ml/bullseye/pkg/ml/linear"
	"github.com/bullseye-ml/bullseye/pkg/ml/logistic"
	"github.com/bullseye-ml/bullseye/pkg/ml/svm"
)

// FamilyOptions are settings shared by the standard families.
type FamilyOptions struct {
	// Seed seeds the solvers that draw random numbers.
	Seed uint64
	// MaxKernelRows bounds the exact kernel SVM families: with more training rows they fit a
	// stratified subsample (and their leaderboard row says so); 0 means 20,000.
	MaxKernelRows int
}

// Families returns the standard model families by name. Their hyperparameters, all
// optional, are:
//
//	logistic_l2, logistic_l1      C
//	linear_svm                    C, hinge (1 for the hinge loss, else squared hinge)
//	kernel_svm_rbf                C, gamma (0: "scale")
//	kernel_svm_poly               C, gamma, degree, coef0
//	nystroem_logistic, nystroem_svm  C, gamma, components
//	ols; ridge (alpha); lasso (alpha); elastic_net (alpha, l1_ratio)
//	boosted_trees                 trees, learning_rate, max_leaves, max_depth, l2,
//	                              min_samples_leaf, subsample, colsample (a native family)
//
// An unknown hyperparameter name is an error.
func Families(o FamilyOptions) map[string]Family {
	maxRows := o.MaxKernelRows
	if maxRows == 0 {
		maxRows = 20_000
	}
	fam := func(name string, allowed []string, build func(Params) ml.Estimator) Family {
		return Family{Name: name, New: func(p Params) (ml.Estimator, error) {
			for k := range p {
				if !slices.Contains(allowed, k) {
					return nil, fmt.Errorf("family %s has no hyperparameter %q (it has %v)", name, k, allowed)
				}
			}
			return build(p), nil
		}}
	}
	rbf := func(p Params) kernel.Kernel { return kernel.Kernel{Kind: kernel.RBF, Gamma: p["gamma"]} }
	fams := []Family{
		fam("logistic_l2", []string{"C"}, func(p Params) ml.Estimator {
			return logistic.Regression{C: p["C"], Seed: o.Seed}
		}),
		fam("logistic_l1", []string{"C"}, func(p Params) ml.Estimator {
			return logistic.Regression{C: p["C"], Penalty: logistic.L1, Seed: o.Seed}
		}),
		fam("linear_svm", []string{"C", "hinge"}, func(p Params) ml.Estimator {
			l := svm.Linear{C: p["C"], Solver: svm.Primal, Seed: o.Seed}
			if p["hinge"] == 1 {
				l.Loss, l.Solver = svm.Hinge, svm.Dual
			}
			return l
		}),
		fam("kernel_svm_rbf", []string{"C", "gamma"}, func(p Params) ml.Estimator {
			return svm.Kernel{C: p["C"], Kernel: rbf(p), MaxRows: maxRows, Seed: o.Seed}
		}),
		fam("kernel_svm_poly", []string{"C", "gamma", "degree", "coef0"}, func(p Params) ml.Estimator {
			k := kernel.Kernel{Kind: kernel.Poly, Gamma: p["gamma"], Degree: int(p["degree"]), Coef0: p["coef0"]}
			return svm.Kernel{C: p["C"], Kernel: k, MaxRows: maxRows, Seed: o.Seed}
		}),
		fam("nystroem_logistic", []string{"C", "gamma", "components"}, func(p Params) ml.Estimator {
			return kernel.NystroemEstimator{
				Nystroem:  kernel.Nystroem{Kernel: rbf(p), Components: int(p["components"]), Seed: o.Seed},
				Estimator: logistic.Regression{C: p["C"]},
			}
		}),
		fam("nystroem_svm", []string{"C", "gamma", "components"}, func(p Params) ml.Estimator {
			return kernel.NystroemEstimator{
				Nystroem:  kernel.Nystroem{Kernel: rbf(p), Components: int(p["components"]), Seed: o.Seed},
				Estimator: svm.Linear{C: p["C"], Solver: svm.Primal},
			}
		}),
		fam("ols", nil, func(Params) ml.Estimator { return linear.OLS{} }),
		fam("ridge", []string{"alpha"}, func(p Params) ml.Estimator { return linear.Ridge{Alpha: p["alpha"]} }),
		fam("lasso", []string{"alpha"}, func(p Params) ml.Estimator { return linear.Lasso{Alpha: p["alpha"]} }),
		fam("elastic_net", []string{"alpha", "l1_ratio"}, func(p Params) ml.Estimator {
			return linear.ElasticNet{Alpha: p["alpha"], L1Ratio: p["l1_ratio"]}
		}),
		native(fam("boosted_trees", []string{"trees", "learning_rate", "max_leaves", "max_depth", "l2", "min_samples_leaf", "subsample", "colsample"},
			func(p Params) ml.Estimator {
				return gbt.Estimator{Params: gbt.Params{Trees: int(p["trees"]), LearningRate: p["learning_rate"], MaxLeaves: int(p["max_leaves"]),
					MaxDepth: int(p["max_depth"]), L2: p["l2"], MinSamplesLeaf: int(p["min_samples_leaf"]), Subsample: p["subsample"],
					ColSample: p["colsample"], Seed: o.Seed}}
			})),
	}
	out := make(map[string]Family, len(fams))
	for _, f := range fams {
		out[f.Name] = f
	}
	return out
}

func native(f Family) Family {
	f.Native = true
	return f
}

// FamilyNames returns the names of the standard families, sorted.
func FamilyNames() []string {
	return slices.Sorted(maps.Keys(Families(FamilyOptions{})))
}
