package gbt

import (
	"math"
	"slices"
)

// Categorical splits follow LightGBM's defaults: up to maxOneHot categories are split one
// against the rest; more are ordered by g / (h + catSmooth) among those with at least
// minCatRows rows, and a prefix of at most maxCatSet of them, from either end, goes left,
// with catL2 added to λ.
const (
	maxOneHot  = 4
	catSmooth  = 10
	minCatRows = 10
	maxCatSet  = 32
	catL2      = 10
)

// split is a candidate split of a node: rows whose bin goes left by goesLeft form the left
// child.
type split struct {
	gain        float64
	col         int
	categorical bool
	bin         uint8     // numeric: bins up to bin go left
	defaultLeft bool      // numeric: where missing values go
	cats        [4]uint64 // categorical: the bins that go left (missingBin among them)
	left, right stat
}

func (s *split) goesLeft(b uint8) bool {
	if s.categorical {
		return s.cats[b>>6]&(1<<(b&63)) != 0
	}
	if b == missingBin {
		return s.defaultLeft
	}
	return b <= s.bin
}

// router returns, for every bin, 1 if it goes left and 0 if it goes right.
func (s *split) router() [256]uint8 {
	var r [256]uint8
	for b := range r {
		if s.goesLeft(uint8(b)) {
			r[b] = 1
		}
	}
	return r
}

// splitRules are the bounds a split's children must meet.
type splitRules struct {
	l2             float64
	minSamplesLeaf int
	minChildWeight float64
}

func (r *splitRules) admits(s stat) bool {
	return s.n >= max(r.minSamplesLeaf, 1) && s.h >= r.minChildWeight
}

func leafScore(s stat, l2 float64) float64 { return s.g * s.g / (s.h + l2) }

// gain is the decrease of the regularised loss (times two) when total splits into l and r.
func gain(l, r, total stat, l2 float64) float64 {
	return leafScore(l, l2) + leafScore(r, l2) - leafScore(total, l2)
}

// bestSplit finds the best split of a node with the given stats over the columns cols of
// its histogram. It returns a split with gain 0 when none improves the loss.
func bestSplit(h histogram, cols []int, data *binned, total stat, rules *splitRules) split {
	best := split{}
	for _, j := range cols {
		var s split
		if data.binners[j].categorical {
			s = bestCategorical(data.column(h, j), total, rules)
		} else {
			s = bestNumeric(data.column(h, j), total, rules)
		}
		if s.gain > best.gain {
			s.col = j
			best = s
		}
	}
	return best
}

// bestNumeric finds the best split of a numeric column's histogram hc, whose last bin
// holds the missing values.
func bestNumeric(hc []stat, total stat, rules *splitRules) split {
	best := split{}
	bins := len(hc) - 1
	miss := hc[bins]
	consider := func(b int, l stat, defaultLeft bool) {
		r := total.sub(l)
		if !rules.admits(l) || !rules.admits(r) {
			return
		}
		if g := gain(l, r, total, rules.l2); g > best.gain {
			best = split{gain: g, bin: uint8(b), defaultLeft: defaultLeft, left: l, right: r}
		}
	}
	var acc stat
	for b := range bins {
		acc = acc.add(hc[b])
		if miss.n == 0 {
			consider(b, acc, acc.n >= total.n-acc.n)
			continue
		}
		consider(b, acc, false)
		consider(b, acc.add(miss), true)
	}
	return best
}

// bestCategorical finds the best split of a categorical column's histogram hc, whose
// bins are the category codes and whose last bin holds the missing values.
func bestCategorical(hc []stat, total stat, rules *splitRules) split {
	missing := len(hc) - 1
	var present []int
	for b := range hc {
		if hc[b].n > 0 {
			present = append(present, b)
		}
	}
	if len(present) < 2 {
		return split{}
	}
	best := split{categorical: true}
	consider := func(l stat, set []int, l2 float64) {
		r := total.sub(l)
		if !rules.admits(l) || !rules.admits(r) {
			return
		}
		if g := gain(l, r, total, l2); g > best.gain {
			best = split{gain: g, categorical: true, left: l, right: r}
			for _, b := range set {
				if b == missing {
					b = missingBin
				}
				best.cats[b>>6] |= 1 << (b & 63)
			}
		}
	}
	if len(present) <= maxOneHot {
		for _, b := range present {
			consider(hc[b], []int{b}, rules.l2)
		}
		return best
	}
	var used []int
	for _, b := range present {
		if hc[b].n >= minCatRows {
			used = append(used, b)
		}
	}
	key := func(b int) float64 { return hc[b].g / (hc[b].h + catSmooth) }
	slices.SortStableFunc(used, func(a, b int) int {
		ka, kb := key(a), key(b)
		switch {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return a - b
	})
	steps := min(maxCatSet, (len(used)+1)/2)
	l2 := rules.l2 + catL2
	for _, order := range [2][]int{used, reversed(used)} {
		var acc stat
		for i := 0; i < steps && i < len(order)-1; i++ {
			acc = acc.add(hc[order[i]])
			consider(acc, order[:i+1], l2)
		}
	}
	return best
}

func reversed(s []int) []int {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

// leafValue is the Newton step −G / (H + λ).
func leafValue(s stat, l2 float64) float64 {
	v := -s.g / (s.h + l2)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}
