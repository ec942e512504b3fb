package metrics

import (
	"errors"
	"fmt"
	"math"
)

// ErrNoRelevant is returned by the top-k metrics of one list when it has no relevant item.
var ErrNoRelevant = errors.New("no relevant item")

// TopK holds the ranking metrics of one recommendation list at cut-off K, with binary
// relevance. Only the first K recommended items count, and a recommended item counts once
// even if the list repeats it.
type TopK struct {
	// K is the cut-off; Hits is the number of relevant items among the first K.
	K    int `json:"k"`
	Hits int `json:"hits"`
	// Precision is Hits / K, whatever the list's length (a shorter list is padded with
	// misses).
	Precision float64 `json:"precision"`
	// Recall is Hits over the number of relevant items.
	Recall float64 `json:"recall"`
	// NDCG is DCG / IDCG with DCG = Σ_{i<K, item i relevant} 1 / log₂(i + 2), positions i
	// counted from 0, and IDCG the DCG of a list that ranks min(K, relevant) relevant items
	// first.
	NDCG float64 `json:"ndcg"`
	// AP is the average precision at K: Σ_{i<K, item i relevant} Precision@(i+1) divided by
	// min(K, relevant), as in ml_metrics' apk. Its mean over lists is MAP@K.
	AP float64 `json:"ap"`
	// ReciprocalRank is 1 / (i + 1) for the first relevant position i < K, and 0 when there
	// is none. Its mean over lists is MRR@K.
	ReciprocalRank float64 `json:"reciprocal_rank"`
}

// RankAt computes the top-k metrics of one ranked list against the relevant items. Duplicates
// in relevant count once.
func RankAt[T comparable](ranked, relevant []T, k int) (TopK, error) {
	if k < 1 {
		return TopK{}, fmt.Errorf("top-k metrics: k = %d, want at least 1", k)
	}
	rel := make(map[T]bool, len(relevant))
	for _, v := range relevant {
		rel[v] = false // false: not yet found in the ranked list
	}
	if len(rel) == 0 {
		return TopK{}, fmt.Errorf("top-k metrics: %w", ErrNoRelevant)
	}
	m := TopK{K: k}
	var dcg, sumPrec float64
	for i, v := range ranked[:min(k, len(ranked))] {
		found, ok := rel[v]
		if !ok || found {
			continue
		}
		rel[v] = true
		m.Hits++
		dcg += 1 / math.Log2(float64(i+2))
		sumPrec += float64(m.Hits) / float64(i+1)
		if m.Hits == 1 {
			m.ReciprocalRank = 1 / float64(i+1)
		}
	}
	var idcg float64
	ideal := min(k, len(rel))
	for i := range ideal {
		idcg += 1 / math.Log2(float64(i+2))
	}
	m.Precision = float64(m.Hits) / float64(k)
	m.Recall = float64(m.Hits) / float64(len(rel))
	m.NDCG = dcg / idcg
	m.AP = sumPrec / float64(ideal)
	return m, nil
}

// TopKSummary holds the mean top-k metrics of many recommendation lists (one per user).
type TopKSummary struct {
	K int `json:"k"`
	// Lists counts the lists averaged: those with at least one relevant item. Skipped
	// counts the others, which do not enter the means.
	Lists   int `json:"lists"`
	Skipped int `json:"skipped"`
	// Precision, Recall, NDCG, MAP and MRR are the means of the lists' TopK fields
	// (MAP of AP, MRR of ReciprocalRank).
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	NDCG      float64 `json:"ndcg"`
	MAP       float64 `json:"map"`
	MRR       float64 `json:"mrr"`
	// Coverage is the catalogue coverage: the share of the catalogue's items that appear
	// in the first K items of any list, skipped lists included.
	Coverage float64 `json:"coverage"`
}

// MeanTopK averages the top-k metrics over lists: ranked[u] is user u's recommendation list
// and relevant[u] the items that count as hits for u. Users without a relevant item are
// skipped (and counted in Skipped). catalogue is the number of items that could have been
// recommended, for Coverage.
func MeanTopK[T comparable](ranked, relevant [][]T, k, catalogue int) (TopKSummary, error) {
	if len(ranked) != len(relevant) {
		return TopKSummary{}, fmt.Errorf("top-k metrics: %d ranked lists but %d relevant sets", len(ranked), len(relevant))
	}
	if k < 1 {
		return TopKSummary{}, fmt.Errorf("top-k metrics: k = %d, want at least 1", k)
	}
	s := TopKSummary{K: k}
	for u := range ranked {
		m, err := RankAt(ranked[u], relevant[u], k)
		if errors.Is(err, ErrNoRelevant) {
			s.Skipped++
			continue
		}
		if err != nil {
			return TopKSummary{}, err
		}
		s.Lists++
		s.Precision += m.Precision
		s.Recall += m.Recall
		s.NDCG += m.NDCG
		s.MAP += m.AP
		s.MRR += m.ReciprocalRank
	}
	if s.Lists == 0 {
		return TopKSummary{}, fmt.Errorf("top-k metrics: %w in any list", ErrNoRelevant)
	}
	n := float64(s.Lists)
	s.Precision /= n
	s.Recall /= n
	s.NDCG /= n
	s.MAP /= n
	s.MRR /= n
	cov, err := CatalogueCoverage(ranked, k, catalogue)
	if err != nil {
		return TopKSummary{}, err
	}
	s.Coverage = cov
	return s, nil
}

// CatalogueCoverage returns the number of distinct items among the first k items of the
// lists, over catalogue, the number of items that could have been recommended.
func CatalogueCoverage[T comparable](ranked [][]T, k, catalogue int) (float64, error) {
	if k < 1 || catalogue < 1 {
		return 0, fmt.Errorf("catalogue coverage: k = %d and catalogue = %d, want both at least 1", k, catalogue)
	}
	seen := make(map[T]struct{})
	for _, l := range ranked {
		for _, v := range l[:min(k, len(l))] {
			seen[v] = struct{}{}
		}
	}
	if len(seen) > catalogue {
		return 0, fmt.Errorf("catalogue coverage: %d distinct items recommended from a catalogue of %d", len(seen), catalogue)
	}
	return float64(len(seen)) / float64(catalogue), nil
}
