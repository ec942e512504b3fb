// Package gbt fits gradient-boosted decision trees on histograms, as LightGBM, XGBoost's
// "hist" method and scikit-learn's HistGradientBoosting do.
//
// Inputs are quantile-binned once on the training rows (at most 255 bins a numeric column,
// plus one bin for missing values); categorical columns hold category codes and split
// natively, by ordering their categories by gradient statistics (LightGBM's method), so no
// one-hot encoding is needed. A missing value (NaN) learns its default direction at every
// split. Trees grow leaf-wise, always splitting the leaf with the largest gain, bounded by
// MaxLeaves and MaxDepth; a child's histogram is the parent's less its sibling's. Each tree
// is a Newton step on the objective (logistic, squared error or Poisson) with an L2 penalty
// on leaf values, shrunk by the learning rate; rows and columns may be subsampled per tree,
// and early stopping watches a validation part of the training rows only.
//
// A fitted [Ensemble] keeps its trees as flat node arrays and scores a batch tree by tree
// over all its rows; [Ensemble.Contributions] gives exact TreeSHAP attributions (Lundberg,
// Erion and Lee 2018, Algorithm 2). Fitting is deterministic for a seed.
package gbt

import (
	"errors"
	"fmt"
	"math"
)

// Objective is the loss that boosting minimises.
type Objective int

const (
	// Logistic is the binary log-loss; margins are log-odds and labels 0 or 1.
	Logistic Objective = iota
	// SquaredError is ½(y − f)²; margins are predictions.
	SquaredError
	// Poisson is the Poisson deviance with a log link, for counts; margins are log means.
	Poisson
)

// String names the objective as the API does.
func (o Objective) String() string {
	switch o {
	case Logistic:
		return "logistic"
	case SquaredError:
		return "squared_error"
	case Poisson:
		return "poisson"
	}
	return fmt.Sprintf("Objective(%d)", int(o))
}

// MaxBins is the largest number of bins of a numeric column, and one more than the largest
// category code a categorical column may use; the bin after them holds missing values.
const MaxBins = 255

const missingBin = MaxBins

// Params configures boosting. The zero value of each field means its documented default.
type Params struct {
	Objective Objective
	// Trees is the largest number of boosting rounds; 0 means 500. With early stopping the
	// ensemble keeps the rounds up to the best validation loss.
	Trees int
	// LearningRate shrinks each tree; 0 means 0.05.
	LearningRate float64
	// MaxLeaves bounds the leaves of a tree; 0 means 31.
	MaxLeaves int
	// MaxDepth bounds the depth of a tree (the root is at depth 0); 0 means no bound.
	MaxDepth int
	// L2 is λ, the penalty on squared leaf values; 0 means 1. Use a tiny value for none.
	L2 float64
	// MinSamplesLeaf is the fewest training rows a leaf may hold; 0 means 20.
	MinSamplesLeaf int
	// MinChildWeight is the smallest hessian sum a leaf may hold; 0 means 1e-3.
	MinChildWeight float64
	// Bins is the number of bins of a numeric column, 2 to MaxBins; 0 means MaxBins.
	Bins int
	// Subsample is the fraction of rows each tree is fitted on (without replacement); 0 means 1.
	Subsample float64
	// ColSample is the fraction of columns each tree may split on; 0 means 1.
	ColSample float64
	// EarlyStopping is the number of rounds without a better validation loss after which
	// boosting stops; 0 means 20, and a negative value turns early stopping off.
	EarlyStopping int
	// ValidationFraction is the share of the training rows held out for early stopping
	// (stratified by label for Logistic); 0 means 0.1.
	ValidationFraction float64
	// Categorical marks the columns that hold category codes (0 to MaxBins−1, NaN when
	// missing); the others are numeric.
	Categorical []bool
	// Threads is the number of goroutines that build histograms; 0 means GOMAXPROCS.
	Threads int
	// Seed drives row and column sampling and the validation split.
	Seed uint64
}

func (p Params) withDefaults() Params {
	if p.Trees == 0 {
		p.Trees = 500
	}
	if p.LearningRate == 0 {
		p.LearningRate = 0.05
	}
	if p.MaxLeaves == 0 {
		p.MaxLeaves = 31
	}
	if p.L2 == 0 {
		p.L2 = 1
	}
	if p.MinSamplesLeaf == 0 {
		p.MinSamplesLeaf = 20
	}
	if p.MinChildWeight == 0 {
		p.MinChildWeight = 1e-3
	}
	if p.Bins == 0 {
		p.Bins = MaxBins
	}
	if p.Subsample == 0 {
		p.Subsample = 1
	}
	if p.ColSample == 0 {
		p.ColSample = 1
	}
	if p.EarlyStopping == 0 {
		p.EarlyStopping = 20
	}
	if p.ValidationFraction == 0 {
		p.ValidationFraction = 0.1
	}
	return p
}

// Validate reports every parameter out of its range, naming it.
func (p Params) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	check(p.Objective >= Logistic && p.Objective <= Poisson, "objective: unknown objective %d", int(p.Objective))
	check(p.Trees >= 0 && p.Trees <= 100_000, "trees: %d is not between 1 and 100000", p.Trees)
	check(finite(p.LearningRate) && p.LearningRate >= 0 && p.LearningRate <= 1, "learning_rate: %g is not in (0, 1]", p.LearningRate)
	check(p.MaxLeaves == 0 || (p.MaxLeaves >= 2 && p.MaxLeaves <= 4096), "max_leaves: %d is not between 2 and 4096", p.MaxLeaves)
	check(p.MaxDepth >= 0 && p.MaxDepth <= 64, "max_depth: %d is not between 0 (no bound) and 64", p.MaxDepth)
	check(finite(p.L2) && p.L2 >= 0, "l2: %g is not a finite number ≥ 0", p.L2)
	check(p.MinSamplesLeaf >= 0, "min_samples_leaf: %d is negative", p.MinSamplesLeaf)
	check(finite(p.MinChildWeight) && p.MinChildWeight >= 0, "min_child_weight: %g is not a finite number ≥ 0", p.MinChildWeight)
	check(p.Bins == 0 || (p.Bins >= 2 && p.Bins <= MaxBins), "bins: %d is not between 2 and %d", p.Bins, MaxBins)
	check(finite(p.Subsample) && p.Subsample >= 0 && p.Subsample <= 1, "subsample: %g is not in (0, 1]", p.Subsample)
	check(finite(p.ColSample) && p.ColSample >= 0 && p.ColSample <= 1, "colsample: %g is not in (0, 1]", p.ColSample)
	check(finite(p.ValidationFraction) && p.ValidationFraction >= 0 && p.ValidationFraction < 1, "validation_fraction: %g is not in (0, 1)", p.ValidationFraction)
	check(p.Threads >= 0, "threads: %d is negative", p.Threads)
	return errors.Join(errs...)
}
