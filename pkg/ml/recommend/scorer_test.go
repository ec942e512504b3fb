package recommend_test

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
)

// randomFactors returns a model of nu users and ni items at the given rank with Gaussian
// factors and biases, and a few seen items per user.
func randomFactors(nu, ni, rank int, seed uint64) *recommend.Factors {
	rng := rand.New(rand.NewPCG(seed, 1))
	f := &recommend.Factors{Rank: rank, GlobalBias: 3.5,
		UserFactors: make([]float32, nu*rank), ItemFactors: make([]float32, ni*rank),
		UserBiases: make([]float32, nu), ItemBiases: make([]float32, ni),
		SeenOffsets: make([]uint32, nu+1)}
	for u := range nu {
		f.UserIDs = append(f.UserIDs, fmt.Sprintf("u%d", u))
		f.UserBiases[u] = float32(rng.NormFloat64() * 0.3)
		seen := map[uint32]bool{}
		for range rng.IntN(min(20, ni)) {
			seen[uint32(rng.IntN(ni))] = true
		}
		for i := range uint32(ni) {
			if seen[i] {
				f.SeenItems = append(f.SeenItems, i)
			}
		}
		f.SeenOffsets[u+1] = uint32(len(f.SeenItems))
	}
	for i := range ni {
		f.ItemIDs = append(f.ItemIDs, fmt.Sprintf("i%d", i))
		f.ItemBiases[i] = float32(rng.NormFloat64() * 0.3)
	}
	for k := range f.UserFactors {
		f.UserFactors[k] = float32(rng.NormFloat64() / math.Sqrt(float64(rank)))
	}
	for k := range f.ItemFactors {
		f.ItemFactors[k] = float32(rng.NormFloat64())
	}
	for i := range min(ni, 50) {
		f.Popularity.ItemIDs = append(f.Popularity.ItemIDs, f.ItemIDs[(i*7)%ni])
		f.Popularity.Scores = append(f.Popularity.Scores, float64(100-i))
	}
	f.Popularity.ItemIDs = append(f.Popularity.ItemIDs, "cold-item")
	f.Popularity.Scores = append(f.Popularity.Scores, 1)
	return f
}

// bruteForce answers q by scoring every item in float64 and sorting.
func bruteForce(f *recommend.Factors, q recommend.Query) recommend.Recommendation {
	u := slices.Index(f.UserIDs, q.User)
	if u < 0 {
		var out recommend.Recommendation
		out.Fallback = true
		for p, id := range f.Popularity.ItemIDs {
			if (len(q.Allowed) > 0 && !slices.Contains(q.Allowed, id)) || slices.Contains(q.Excluded, id) {
				continue
			}
			if len(out.Items) < q.K {
				out.Items = append(out.Items, id)
				out.Scores = append(out.Scores, f.Popularity.Scores[p])
			}
		}
		return out
	}
	type cand struct {
		i int
		s float64
	}
	var cs []cand
	seen := f.Seen(u)
	for i, id := range f.ItemIDs {
		if (len(q.Allowed) > 0 && !slices.Contains(q.Allowed, id)) || slices.Contains(q.Excluded, id) {
			continue
		}
		if !q.IncludeSeen && slices.Contains(seen, uint32(i)) {
			continue
		}
		s := f.GlobalBias + float64(f.UserBiases[u]) + float64(f.ItemBiases[i])
		for p := range f.Rank {
			s += float64(f.UserFactors[u*f.Rank+p]) * float64(f.ItemFactors[i*f.Rank+p])
		}
		cs = append(cs, cand{i, s})
	}
	slices.SortStableFunc(cs, func(a, b cand) int { return cmp.Compare(b.s, a.s) })
	var out recommend.Recommendation
	for _, c := range cs[:min(q.K, len(cs))] {
		out.Items = append(out.Items, f.ItemIDs[c.i])
		out.Scores = append(out.Scores, c.s)
	}
	return out
}

// sameRanking checks that got ranks like want, allowing items whose scores tie within tol to
// swap.
func sameRanking(t *testing.T, what string, got, want recommend.Recommendation, tol float64) {
	t.Helper()
	if len(got.Items) != len(want.Items) || got.Fallback != want.Fallback {
		t.Fatalf("%s: %d items (fallback %v), want %d (fallback %v)", what, len(got.Items), got.Fallback, len(want.Items), want.Fallback)
	}
	for k := range got.Items {
		if math.Abs(got.Scores[k]-want.Scores[k]) > tol {
			t.Fatalf("%s: item %d is %s scored %v, want %s scored %v", what, k, got.Items[k], got.Scores[k], want.Items[k], want.Scores[k])
		}
		if got.Items[k] != want.Items[k] && math.Abs(got.Scores[k]-want.Scores[k]) > tol/10 {
			t.Fatalf("%s: item %d is %s, want %s", what, k, got.Items[k], want.Items[k])
		}
	}
}

func TestScorerMatchesBruteForce(t *testing.T) {
	for _, tc := range []struct{ nu, ni, rank int }{{1, 1, 1}, {7, 33, 3}, {100, 517, 10}, {61, 1000, 64}, {5, 2100, 8}} {
		t.Run(fmt.Sprintf("%dx%d_rank%d", tc.nu, tc.ni, tc.rank), func(t *testing.T) {
			f := randomFactors(tc.nu, tc.ni, tc.rank, uint64(tc.ni))
			s, err := recommend.NewScorer(f)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			var qs []recommend.Query
			for u, id := range f.UserIDs {
				q := recommend.Query{User: id, K: 1 + rng.IntN(12)}
				switch u % 5 {
				case 1:
					q.Excluded = []string{f.ItemIDs[rng.IntN(tc.ni)], f.ItemIDs[rng.IntN(tc.ni)], "no-such-item"}
				case 2:
					for range 1 + rng.IntN(40) {
						q.Allowed = append(q.Allowed, f.ItemIDs[rng.IntN(tc.ni)])
					}
					q.Excluded = q.Allowed[:1]
				case 3:
					q.IncludeSeen = true
					q.K = tc.ni + 5
				}
				qs = append(qs, q)
			}
			qs = append(qs,
				recommend.Query{User: "stranger", K: 5},
				recommend.Query{User: "stranger", K: 3, Allowed: []string{"cold-item", f.ItemIDs[0]}},
				recommend.Query{User: f.UserIDs[0], K: 0})
			batch := s.Recommend(qs)
			for n, q := range qs {
				want := bruteForce(f, q)
				sameRanking(t, fmt.Sprintf("batched query %d", n), batch[n], want, 1e-3)
				sameRanking(t, fmt.Sprintf("single query %d", n), s.RecommendOne(q), want, 1e-3)
			}
		})
	}
}
