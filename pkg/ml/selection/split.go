// Package selection chooses a model honestly: cross-validation splitters (k-fold, stratified,
// grouped by customer, time-ordered), candidates from grids or random draws over
// hyperparameters and model families, a search that fits preprocessing and every candidate on
// each training fold only (folds and candidates in parallel, deterministic for a seed), a
// leaderboard with the mean and standard deviation of a named metric per candidate, and the
// refit of the winner on all rows.
package selection

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
)

// Fold is one train/test split of row indices, each ascending.
type Fold struct {
	Train []int `json:"train"`
	Test  []int `json:"test"`
}

// Splitter splits n rows into cross-validation folds.
type Splitter interface {
	Split(n int) ([]Fold, error)
}

func checkK(k, n int) error {
	if k < 2 {
		return fmt.Errorf("need at least 2 folds, got %d", k)
	}
	if k > n {
		return fmt.Errorf("%d folds for %d rows", k, n)
	}
	return nil
}

// foldsFrom turns a fold assignment into folds.
func foldsFrom(assign []int, k int) []Fold {
	folds := make([]Fold, k)
	for i, a := range assign {
		for f := range folds {
			if f == a {
				folds[f].Test = append(folds[f].Test, i)
			} else {
				folds[f].Train = append(folds[f].Train, i)
			}
		}
	}
	return folds
}

// KFold splits rows into K folds of nearly equal size, in row order or, with Shuffle,
// after a permutation drawn from Seed.
type KFold struct {
	K       int
	Shuffle bool
	Seed    uint64
}

// Split implements [Splitter].
func (s KFold) Split(n int) ([]Fold, error) {
	if err := checkK(s.K, n); err != nil {
		return nil, fmt.Errorf("k-fold: %w", err)
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	if s.Shuffle {
		rng := rand.New(rand.NewPCG(s.Seed, 0x6b66))
		rng.Shuffle(n, func(a, b int) { order[a], order[b] = order[b], order[a] })
	}
	assign := make([]int, n)
	for pos, i := range order {
		assign[i] = pos * s.K / n
	}
	return foldsFrom(assign, s.K), nil
}

// StratifiedKFold splits rows into K folds that keep each class's share: the rows of each
// class, shuffled with Seed, are dealt to the folds in turn.
type StratifiedKFold struct {
	K      int
	Labels []float64
	Seed   uint64
}

// Split implements [Splitter].
func (s StratifiedKFold) Split(n int) ([]Fold, error) {
	if err := checkK(s.K, n); err != nil {
		return nil, fmt.Errorf("stratified k-fold: %w", err)
	}
	if len(s.Labels) != n {
		return nil, fmt.Errorf("stratified k-fold: %d labels for %d rows", len(s.Labels), n)
	}
	classes := map[float64][]int{}
	for i, v := range s.Labels {
		classes[v] = append(classes[v], i)
	}
	keys := make([]float64, 0, len(classes))
	for v := range classes {
		keys = append(keys, v)
	}
	slices.Sort(keys)
	rng := rand.New(rand.NewPCG(s.Seed, 0x736b))
	assign := make([]int, n)
	next := 0
	for _, v := range keys {
		idx := classes[v]
		rng.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
		for _, i := range idx {
			assign[i] = next % s.K
			next++
		}
	}
	return foldsFrom(assign, s.K), nil
}

// GroupKFold splits rows so that all rows of a group (a customer) are in the same fold:
// groups, largest first (ties by name), go to the fold with the fewest rows so far.
type GroupKFold struct {
	K      int
	Groups []string
}

// Split implements [Splitter].
func (s GroupKFold) Split(n int) ([]Fold, error) {
	if len(s.Groups) != n {
		return nil, fmt.Errorf("group k-fold: %d groups for %d rows", len(s.Groups), n)
	}
	size := map[string]int{}
	for _, g := range s.Groups {
		size[g]++
	}
	if err := checkK(s.K, len(size)); err != nil {
		return nil, fmt.Errorf("group k-fold over %d groups: %w", len(size), err)
	}
	names := make([]string, 0, len(size))
	for g := range size {
		names = append(names, g)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(size[b], size[a]), cmp.Compare(a, b))
	})
	load := make([]int, s.K)
	fold := make(map[string]int, len(names))
	for _, g := range names {
		f := 0
		for k := range load {
			if load[k] < load[f] {
				f = k
			}
		}
		fold[g] = f
		load[f] += size[g]
	}
	assign := make([]int, n)
	for i, g := range s.Groups {
		assign[i] = fold[g]
	}
	return foldsFrom(assign, s.K), nil
}

// TimeSplit is forward-chaining validation for time-ordered rows: rows sorted by Times are
// cut into K+1 consecutive blocks, and fold f trains on blocks 0..f and tests on block f+1,
// so that no fold trains on the future of its test rows. Rows with equal times stay in the
// same block.
type TimeSplit struct {
	K     int
	Times []float64
}

// Split implements [Splitter].
func (s TimeSplit) Split(n int) ([]Fold, error) {
	if len(s.Times) != n {
		return nil, fmt.Errorf("time split: %d times for %d rows", len(s.Times), n)
	}
	if s.K < 1 || s.K+1 > n {
		return nil, fmt.Errorf("time split: %d folds for %d rows", s.K, n)
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(s.Times[a], s.Times[b]) })
	// Block boundaries, moved forward past equal times.
	bounds := make([]int, s.K+2)
	for b := 1; b <= s.K; b++ {
		p := max(b*n/(s.K+1), bounds[b-1])
		for p > 0 && p < n && s.Times[order[p]] == s.Times[order[p-1]] {
			p++
		}
		bounds[b] = p
	}
	bounds[s.K+1] = n
	folds := make([]Fold, 0, s.K)
	for f := range s.K {
		train := slices.Clone(order[:bounds[f+1]])
		test := slices.Clone(order[bounds[f+1]:bounds[f+2]])
		if len(train) == 0 || len(test) == 0 {
			return nil, errors.New("time split: too many equal times for this many folds")
		}
		slices.Sort(train)
		slices.Sort(test)
		folds = append(folds, Fold{Train: train, Test: test})
	}
	return folds, nil
}
