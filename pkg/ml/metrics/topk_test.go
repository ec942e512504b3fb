package metrics_test

import (
	"errors"
	"math"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
)

func TestRankAt(t *testing.T) {
	// 1/log₂(i+2) for positions i = 0..3: 1, 0.6309297536, 0.5, 0.4306765581.
	l3, l5 := 1/math.Log2(3), 1/math.Log2(5)
	for _, tc := range []struct {
		name     string
		ranked   []string
		relevant []string
		k        int
		want     metrics.TopK
	}{
		{
			name:   "one hit in the top 3",
			ranked: []string{"a", "b", "c", "d", "e"}, relevant: []string{"b", "d", "f"}, k: 3,
			// Top 3 = a b c: one hit (b, position 1). Precision 1/3, recall 1/3.
			// DCG = 1/log₂3; IDCG over min(3, 3) = 3 positions = 1 + 1/log₂3 + ½.
			// AP = P@2 / min(3, 3) = (1/2)/3. RR = 1/2.
			want: metrics.TopK{K: 3, Hits: 1, Precision: 1.0 / 3, Recall: 1.0 / 3,
				NDCG: l3 / (1 + l3 + 0.5), AP: 0.5 / 3, ReciprocalRank: 0.5},
		},
		{
			name:   "two hits in the top 5",
			ranked: []string{"a", "b", "c", "d", "e"}, relevant: []string{"b", "d", "f"}, k: 5,
			// Hits b (position 1) and d (position 3). Precision 2/5, recall 2/3.
			// DCG = 1/log₂3 + 1/log₂5; IDCG as above (3 relevant items).
			// AP = (P@2 + P@4) / 3 = (1/2 + 2/4) / 3 = 1/3. RR = 1/2.
			want: metrics.TopK{K: 5, Hits: 2, Precision: 2.0 / 5, Recall: 2.0 / 3,
				NDCG: (l3 + l5) / (1 + l3 + 0.5), AP: 1.0 / 3, ReciprocalRank: 0.5},
		},
		{
			name:   "a list shorter than k",
			ranked: []string{"x", "y"}, relevant: []string{"y"}, k: 10,
			// One hit at position 1; precision divides by k: 1/10. IDCG = 1 (one relevant).
			// AP = P@2 / min(10, 1) = 1/2.
			want: metrics.TopK{K: 10, Hits: 1, Precision: 0.1, Recall: 1,
				NDCG: l3, AP: 0.5, ReciprocalRank: 0.5},
		},
		{
			name:   "a repeated item counts once",
			ranked: []string{"b", "b", "a"}, relevant: []string{"a", "b", "b"}, k: 3,
			// Hits b (position 0) and a (position 2); the second b is not a hit, and the
			// relevant set is {a, b}. DCG = 1 + ½; IDCG = 1 + 1/log₂3.
			// AP = (P@1 + P@3) / 2 = (1 + 2/3) / 2.
			want: metrics.TopK{K: 3, Hits: 2, Precision: 2.0 / 3, Recall: 1,
				NDCG: 1.5 / (1 + l3), AP: (1 + 2.0/3) / 2, ReciprocalRank: 1},
		},
		{
			name:   "no hit",
			ranked: []string{"a", "c"}, relevant: []string{"b"}, k: 2,
			want: metrics.TopK{K: 2},
		},
		{
			name:   "perfect",
			ranked: []string{"a", "b", "z"}, relevant: []string{"b", "a"}, k: 2,
			want: metrics.TopK{K: 2, Hits: 2, Precision: 1, Recall: 1, NDCG: 1, AP: 1,
				ReciprocalRank: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := metrics.RankAt(tc.ranked, tc.relevant, tc.k)
			if err != nil {
				t.Fatal(err)
			}
			w := tc.want
			if got.K != w.K || got.Hits != w.Hits || !near(got.Precision, w.Precision) ||
				!near(got.Recall, w.Recall) || !near(got.NDCG, w.NDCG) || !near(got.AP, w.AP) ||
				!near(got.ReciprocalRank, w.ReciprocalRank) {
				t.Errorf("got %+v\nwant %+v", got, w)
			}
		})
	}
	if _, err := metrics.RankAt([]int{1}, nil, 1); !errors.Is(err, metrics.ErrNoRelevant) {
		t.Errorf("no relevant item: err = %v, want ErrNoRelevant", err)
	}
	if _, err := metrics.RankAt([]int{1}, []int{1}, 0); err == nil {
		t.Error("k = 0: no error")
	}
}

func TestMeanTopK(t *testing.T) {
	ranked := [][]int{
		{1, 2, 3, 4}, // relevant {2, 9}
		{5, 1, 6},    // relevant {5}
		{7, 8, 1},    // no relevant item: skipped, but counts for coverage
	}
	relevant := [][]int{{2, 9}, {5}, nil}
	got, err := metrics.MeanTopK(ranked, relevant, 2, 20)
	if err != nil {
		t.Fatal(err)
	}
	l3 := 1 / math.Log2(3)
	// User 0, top 2 = 1 2: hit at position 1. P = 1/2, R = 1/2, NDCG = (1/log₂3)/(1 + 1/log₂3),
	// AP = P@2 / min(2, 2) = (1/2)/2, RR = 1/2.
	// User 1, top 2 = 5 1: hit at position 0. P = 1/2, R = 1, NDCG = 1, AP = 1, RR = 1.
	// Coverage: top 2 of every list = {1, 2, 5, 7, 8}: 5 of 20 items.
	want := metrics.TopKSummary{K: 2, Lists: 2, Skipped: 1,
		Precision: (0.5 + 0.5) / 2, Recall: (0.5 + 1) / 2, NDCG: (l3/(1+l3) + 1) / 2,
		MAP: (0.25 + 1) / 2, MRR: (0.5 + 1) / 2, Coverage: 5.0 / 20}
	if got.K != want.K || got.Lists != want.Lists || got.Skipped != want.Skipped ||
		!near(got.Precision, want.Precision) || !near(got.Recall, want.Recall) ||
		!near(got.NDCG, want.NDCG) || !near(got.MAP, want.MAP) || !near(got.MRR, want.MRR) ||
		!near(got.Coverage, want.Coverage) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}

	for _, tc := range []struct {
		name     string
		ranked   [][]int
		relevant [][]int
		k, cat   int
	}{
		{"lengths differ", [][]int{{1}}, nil, 1, 5},
		{"no list has a relevant item", [][]int{{1}}, [][]int{nil}, 1, 5},
		{"k = 0", [][]int{{1}}, [][]int{{1}}, 0, 5},
		{"more items than the catalogue", [][]int{{1, 2}}, [][]int{{1}}, 2, 1},
	} {
		if _, err := metrics.MeanTopK(tc.ranked, tc.relevant, tc.k, tc.cat); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}
