package recommend

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/bullseye-ml/bullseye/pkg/ml"
)

// Factors is a fitted recommender as a plain value. Its fields map one to one onto the
// FactorizationParameters message of bullseye.model.v1 (the float32 and uint32 slices are
// that message's packed little-endian bytes), and Convergence and Objective onto its
// SolverReport. A popularity model has Rank 0, no users, no items and only Popularity.
//
// A user's score for an item is GlobalBias + UserBiases[u] + ItemBiases[i] + the dot product
// of their factor rows, each bias term present only when its slice is non-empty. Build a
// [Scorer] to score; Factors itself does no indexing.
type Factors struct {
	// Rank is the number of latent factors.
	Rank int `json:"rank"`
	// UserIDs and ItemIDs are the known users and items; row u of UserFactors belongs to
	// UserIDs[u], row i of ItemFactors to ItemIDs[i].
	UserIDs []string `json:"user_ids"`
	ItemIDs []string `json:"item_ids"`
	// UserFactors and ItemFactors are row-major, len(UserIDs) × Rank and len(ItemIDs) × Rank.
	UserFactors []float32 `json:"user_factors"`
	ItemFactors []float32 `json:"item_factors"`
	// GlobalBias is the global mean of biased explicit models, else 0.
	GlobalBias float64 `json:"global_bias"`
	// UserBiases and ItemBiases hold one value per user and per item, or are empty.
	UserBiases []float32 `json:"user_biases,omitempty"`
	ItemBiases []float32 `json:"item_biases,omitempty"`
	// SeenOffsets and SeenItems list the items each user had in training, as compressed
	// sparse rows: user u's items are SeenItems[SeenOffsets[u]:SeenOffsets[u+1]], ascending
	// indexes into ItemIDs. SeenOffsets has len(UserIDs) + 1 entries (or none without users).
	SeenOffsets []uint32 `json:"seen_offsets"`
	SeenItems   []uint32 `json:"seen_items"`
	// Popularity is the ranking unknown users get.
	Popularity Popularity `json:"popularity"`
	// MinRating and MaxRating clip the predictions of explicit models; both 0 means no
	// clipping.
	MinRating float64 `json:"min_rating"`
	MaxRating float64 `json:"max_rating"`

	ml.Convergence
	// Objective is the training objective at the end of the fit (see each solver).
	Objective float64 `json:"objective"`
}

// Popularity is items ranked by popularity, the same list for everyone. It maps onto the
// PopularityParameters message.
type Popularity struct {
	// ItemIDs are the items, most popular first.
	ItemIDs []string `json:"item_ids"`
	// Scores are the items' popularity, in the same order, non-increasing.
	Scores []float64 `json:"scores"`
}

// PredictsRatings reports whether the model predicts values (ratings): it has factors or
// biases. A popularity model ranks items but predicts no rating.
func (f *Factors) PredictsRatings() bool {
	return f.Rank > 0 || f.GlobalBias != 0 || len(f.UserBiases) > 0 || len(f.ItemBiases) > 0
}

// HasBiases reports whether the model has a global mean or user or item biases, from which
// it predicts the pairs whose user or item has no factors.
func (f *Factors) HasBiases() bool {
	return f.GlobalBias != 0 || len(f.UserBiases) > 0 || len(f.ItemBiases) > 0
}

// Seen returns the indexes of the items user u had in training.
func (f *Factors) Seen(u int) []uint32 {
	if len(f.SeenOffsets) == 0 {
		return nil
	}
	return f.SeenItems[f.SeenOffsets[u]:f.SeenOffsets[u+1]]
}

// Validate checks that the slices have consistent lengths, the values are finite, the seen
// lists are ascending and in range, and the popularity list is sorted.
func (f *Factors) Validate() error {
	nu, ni := len(f.UserIDs), len(f.ItemIDs)
	switch {
	case f.Rank < 0:
		return fmt.Errorf("factors: rank %d", f.Rank)
	case len(f.UserFactors) != nu*f.Rank || len(f.ItemFactors) != ni*f.Rank:
		return fmt.Errorf("factors: %d user and %d item factor values for %d users, %d items at rank %d",
			len(f.UserFactors), len(f.ItemFactors), nu, ni, f.Rank)
	case len(f.UserBiases) != 0 && len(f.UserBiases) != nu, len(f.ItemBiases) != 0 && len(f.ItemBiases) != ni:
		return fmt.Errorf("factors: %d user and %d item biases for %d users and %d items",
			len(f.UserBiases), len(f.ItemBiases), nu, ni)
	case math.IsNaN(f.GlobalBias) || math.IsInf(f.GlobalBias, 0):
		return fmt.Errorf("factors: global bias %v", f.GlobalBias)
	case f.MinRating > f.MaxRating:
		return fmt.Errorf("factors: min rating %v above max rating %v", f.MinRating, f.MaxRating)
	case len(f.Popularity.ItemIDs) != len(f.Popularity.Scores):
		return fmt.Errorf("factors: %d popular items but %d scores", len(f.Popularity.ItemIDs), len(f.Popularity.Scores))
	}
	for _, s := range [][]float32{f.UserFactors, f.ItemFactors, f.UserBiases, f.ItemBiases} {
		for _, v := range s {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("factors: value %v", v)
			}
		}
	}
	if err := uniqueIDs("user", f.UserIDs); err != nil {
		return err
	}
	if err := uniqueIDs("item", f.ItemIDs); err != nil {
		return err
	}
	if err := uniqueIDs("popular item", f.Popularity.ItemIDs); err != nil {
		return err
	}
	if len(f.SeenOffsets) == 0 {
		if len(f.SeenItems) != 0 {
			return fmt.Errorf("factors: %d seen items without offsets", len(f.SeenItems))
		}
	} else {
		if len(f.SeenOffsets) != nu+1 || f.SeenOffsets[0] != 0 || int(f.SeenOffsets[nu]) != len(f.SeenItems) {
			return fmt.Errorf("factors: %d seen offsets (from %d to %d) for %d users and %d seen items",
				len(f.SeenOffsets), f.SeenOffsets[0], f.SeenOffsets[len(f.SeenOffsets)-1], nu, len(f.SeenItems))
		}
		for u := range nu {
			if f.SeenOffsets[u] > f.SeenOffsets[u+1] {
				return fmt.Errorf("factors: seen offsets decrease at user %d", u)
			}
			seen := f.Seen(u)
			for k, i := range seen {
				if int(i) >= ni || (k > 0 && seen[k-1] >= i) {
					return fmt.Errorf("factors: user %q's seen items are not ascending indexes below %d", f.UserIDs[u], ni)
				}
			}
		}
	}
	for k, s := range f.Popularity.Scores {
		if math.IsNaN(s) || (k > 0 && s > f.Popularity.Scores[k-1]) {
			return fmt.Errorf("factors: popularity scores are not non-increasing at %d", k)
		}
	}
	return nil
}

func uniqueIDs(what string, ids []string) error {
	seen := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		if _, dup := seen[id]; dup {
			return fmt.Errorf("factors: %s id %q appears twice", what, id)
		}
		seen[id] = struct{}{}
	}
	return nil
}

// Weighting is how the popularity of an item is counted.
type Weighting int

const (
	// ByUsers counts the distinct users who have the item.
	ByUsers Weighting = iota
	// ByValue sums the item's values (ratings or event weights).
	ByValue
)

// Popular ranks items by popularity, the same list for every user. It is the baseline
// recommenders are compared with, and the fallback every model uses for unknown users.
type Popular struct {
	Weighting Weighting
}

// Fit implements [Estimator]. The model has only Popularity; it reports convergence after
// one iteration.
func (p Popular) Fit(ctx context.Context, d *Interactions) (*Factors, error) {
	if p.Weighting != ByUsers && p.Weighting != ByValue {
		return nil, fmt.Errorf("popularity: unknown weighting %d", p.Weighting)
	}
	pr, err := newProblem(d)
	if err != nil {
		return nil, fmt.Errorf("popularity: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &Factors{Popularity: pr.popularity(p.Weighting), Convergence: ml.Convergence{Converged: true, Iterations: 1}}, nil
}

// popularity ranks the problem's items, ties in order of first appearance.
func (p *problem) popularity(w Weighting) Popularity {
	n := len(p.itemIDs)
	score := make([]float64, n)
	for i := range n {
		if w == ByValue {
			for _, v := range p.byItem.val[p.byItem.ptr[i]:p.byItem.ptr[i+1]] {
				score[i] += v
			}
		} else {
			score[i] = float64(p.byItem.ptr[i+1] - p.byItem.ptr[i])
		}
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(score[b], score[a]) })
	out := Popularity{ItemIDs: make([]string, n), Scores: make([]float64, n)}
	for k, i := range order {
		out.ItemIDs[k], out.Scores[k] = p.itemIDs[i], score[i]
	}
	return out
}

// factors assembles the fitted model of p from float64 factor rows of width stride, whose
// first column is the bias when biased.
func (p *problem) factors(rank int, x, y []float64, stride int, biased bool, global float64) *Factors {
	nu, ni := len(p.userIDs), len(p.itemIDs)
	f := &Factors{
		Rank: rank, UserIDs: p.userIDs, ItemIDs: p.itemIDs,
		UserFactors: make([]float32, nu*rank), ItemFactors: make([]float32, ni*rank),
		GlobalBias: global, Popularity: p.popularity(ByUsers),
		SeenOffsets: make([]uint32, nu+1), SeenItems: make([]uint32, p.nnz()),
	}
	off := 0
	if biased {
		off = 1
		f.UserBiases, f.ItemBiases = make([]float32, nu), make([]float32, ni)
	}
	copyRows := func(dst []float32, bias []float32, src []float64, n int) {
		for k := range n {
			row := src[k*stride : (k+1)*stride]
			if biased {
				bias[k] = float32(row[0])
			}
			for c, v := range row[off:] {
				dst[k*rank+c] = float32(v)
			}
		}
	}
	copyRows(f.UserFactors, f.UserBiases, x, nu)
	copyRows(f.ItemFactors, f.ItemBiases, y, ni)
	for u := range nu {
		f.SeenOffsets[u+1] = uint32(p.byUser.ptr[u+1])
	}
	for k, i := range p.byUser.idx {
		f.SeenItems[k] = uint32(i)
	}
	return f
}
