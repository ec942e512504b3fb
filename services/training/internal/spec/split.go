package spec

import (
	"cmp"
	"fmt"
	"slices"

	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/selection"
)

// Splitter returns the cross-validation splitter of the training rows, given their labels
// (0/1 for classification), entity ids and cutoff times (seconds), and the strategy chosen.
// The default strategy is stratified for classification (grouped by entity as well when an
// entity has several rows) and shuffled k-fold otherwise (grouped likewise).
func Splitter(s *trainingv1.TrainingSpec, y []float64, groups []string, times []float64) (selection.Splitter, trainingv1.FoldStrategy) {
	k := Folds(s)
	seed := Seed(s)
	strategy := s.GetCrossValidation().GetStrategy()
	if strategy == trainingv1.FoldStrategy_FOLD_STRATEGY_UNSPECIFIED {
		repeated := len(unique(groups)) < len(groups)
		switch {
		case s.GetTask() == modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION && repeated:
			strategy = trainingv1.FoldStrategy_FOLD_STRATEGY_STRATIFIED_GROUPED
		case s.GetTask() == modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION:
			strategy = trainingv1.FoldStrategy_FOLD_STRATEGY_STRATIFIED
		case repeated:
			strategy = trainingv1.FoldStrategy_FOLD_STRATEGY_GROUPED
		default:
			strategy = trainingv1.FoldStrategy_FOLD_STRATEGY_K_FOLD
		}
	}
	switch strategy {
	case trainingv1.FoldStrategy_FOLD_STRATEGY_STRATIFIED:
		return selection.StratifiedKFold{K: k, Labels: y, Seed: seed}, strategy
	case trainingv1.FoldStrategy_FOLD_STRATEGY_GROUPED:
		return selection.GroupKFold{K: k, Groups: groups}, strategy
	case trainingv1.FoldStrategy_FOLD_STRATEGY_STRATIFIED_GROUPED:
		return StratifiedGroupKFold{K: k, Labels: y, Groups: groups}, strategy
	case trainingv1.FoldStrategy_FOLD_STRATEGY_TIME_SERIES:
		gap := s.GetCrossValidation().GetTimeGap().AsDuration().Seconds()
		return gapSplit{inner: selection.TimeSplit{K: k, Times: times}, times: times, gap: gap}, strategy
	}
	return selection.KFold{K: k, Shuffle: true, Seed: seed}, trainingv1.FoldStrategy_FOLD_STRATEGY_K_FOLD
}

func unique(v []string) map[string]bool {
	m := make(map[string]bool, len(v))
	for _, s := range v {
		m[s] = true
	}
	return m
}

// StratifiedGroupKFold keeps each entity's rows in one fold and the folds' positive shares as
// close as grouping allows: groups, those with the most positives first (then the largest,
// then by id), go to the fold with the fewest positives so far (then the fewest rows).
type StratifiedGroupKFold struct {
	// K is the number of folds.
	K int
	// Labels are the rows' classes, 0 or 1.
	Labels []float64
	// Groups are the rows' entities.
	Groups []string
}

// Split implements selection.Splitter.
func (s StratifiedGroupKFold) Split(n int) ([]selection.Fold, error) {
	if len(s.Groups) != n || len(s.Labels) != n {
		return nil, fmt.Errorf("stratified group k-fold: %d groups and %d labels for %d rows", len(s.Groups), len(s.Labels), n)
	}
	type group struct {
		rows, pos int
	}
	gs := map[string]*group{}
	for i, g := range s.Groups {
		if gs[g] == nil {
			gs[g] = &group{}
		}
		gs[g].rows++
		if s.Labels[i] != 0 {
			gs[g].pos++
		}
	}
	if s.K < 2 || s.K > len(gs) {
		return nil, fmt.Errorf("stratified group k-fold: %d folds for %d groups", s.K, len(gs))
	}
	names := make([]string, 0, len(gs))
	for g := range gs {
		names = append(names, g)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(gs[b].pos, gs[a].pos), cmp.Compare(gs[b].rows, gs[a].rows), cmp.Compare(a, b))
	})
	pos, rows := make([]int, s.K), make([]int, s.K)
	fold := map[string]int{}
	for _, g := range names {
		best := 0
		for f := 1; f < s.K; f++ {
			if pos[f] < pos[best] || pos[f] == pos[best] && rows[f] < rows[best] {
				best = f
			}
		}
		fold[g] = best
		pos[best] += gs[g].pos
		rows[best] += gs[g].rows
	}
	folds := make([]selection.Fold, s.K)
	for i, g := range s.Groups {
		for f := range folds {
			if f == fold[g] {
				folds[f].Test = append(folds[f].Test, i)
			} else {
				folds[f].Train = append(folds[f].Train, i)
			}
		}
	}
	return folds, nil
}

// gapSplit removes from each fold's training rows those within gap seconds before the fold's
// first validation time.
type gapSplit struct {
	inner selection.Splitter
	times []float64
	gap   float64
}

// Split implements selection.Splitter.
func (g gapSplit) Split(n int) ([]selection.Fold, error) {
	folds, err := g.inner.Split(n)
	if err != nil || g.gap <= 0 {
		return folds, err
	}
	for f := range folds {
		first := g.times[folds[f].Test[0]]
		for _, i := range folds[f].Test {
			first = min(first, g.times[i])
		}
		folds[f].Train = slices.DeleteFunc(folds[f].Train, func(i int) bool { return g.times[i] > first-g.gap })
		if len(folds[f].Train) == 0 {
			return nil, fmt.Errorf("time split: the gap leaves fold %d without training rows", f+1)
		}
	}
	return folds, nil
}
