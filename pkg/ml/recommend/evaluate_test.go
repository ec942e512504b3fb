package recommend_test

import (
	"math"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
)

// handModel is a rank-1 model without biases: users u1 = 1 and u2 = −1, items a = 4, b = 3,
// c = 2, d = 1; u1 has seen a, u2 has seen d; popularity a, b, c, d.
func handModel() *recommend.Factors {
	return &recommend.Factors{
		Rank:    1,
		UserIDs: []string{"u1", "u2"}, ItemIDs: []string{"a", "b", "c", "d"},
		UserFactors: []float32{1, -1}, ItemFactors: []float32{4, 3, 2, 1},
		SeenOffsets: []uint32{0, 1, 2}, SeenItems: []uint32{0, 3},
		Popularity: recommend.Popularity{ItemIDs: []string{"a", "b", "c", "d"}, Scores: []float64{4, 3, 2, 1}},
	}
}

func TestEvaluateByHand(t *testing.T) {
	s, err := recommend.NewScorer(handModel())
	if err != nil {
		t.Fatal(err)
	}
	test, err := recommend.NewInteractions([]recommend.Interaction{
		{User: "u1", Item: "c", Value: 1},
		{User: "u2", Item: "a", Value: 1}, {User: "u2", Item: "b", Value: 1},
		{User: "u3", Item: "x", Value: 1}, // unknown user and item
	})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := recommend.Evaluate(s, test, recommend.EvalOptions{K: []int{2}, Ratings: true})
	if err != nil {
		t.Fatal(err)
	}
	l3 := 1 / math.Log2(3)
	// Lists of 2, seen items excluded:
	//   u1: scores b 3, c 2, d 1 (a seen): [b c]; relevant {c}: hit at position 1.
	//       P ½, R 1, NDCG (1/log₂3)/1, AP (½)/min(2, 1) = ½, RR ½.
	//   u2: scores c −2, b −3, a −4 (d seen): [c b]; relevant {a, b}: hit b at position 1.
	//       P ½, R ½, NDCG (1/log₂3)/(1 + 1/log₂3), AP (½)/2, RR ½.
	//   u3: unknown, popularity [a b]; relevant {x}, which the model cannot recommend: no hit.
	// Coverage: {b, c, a} of the catalogue a b c d: 3/4.
	// Predictions: u1·c = 2 (value 1: error 1), u2·a = −4 (−5), u2·b = −3 (−4), u3·x falls
	// back to the global bias 0 (−1): RMSE √((1 + 25 + 16 + 1)/4), MAE (1 + 5 + 4 + 1)/4.
	want := map[string]float64{
		"precision_at_2":          (0.5 + 0.5 + 0) / 3,
		"recall_at_2":             (1 + 0.5 + 0) / 3,
		"ndcg_at_2":               (l3 + l3/(1+l3) + 0) / 3,
		"map_at_2":                (0.5 + 0.25 + 0) / 3,
		"mrr_at_2":                (0.5 + 0.5 + 0) / 3,
		"catalogue_coverage_at_2": 0.75,
		"rmse":                    math.Sqrt(43.0 / 4),
		"mae":                     11.0 / 4,
	}
	for name, w := range want {
		if got, ok := ev.Metrics[name]; !ok || math.Abs(got-w) > 1e-12 {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
	if len(ev.Metrics) != len(want) {
		t.Errorf("metrics %v, want exactly %d", ev.Metrics, len(want))
	}
	if ev.Rows != 4 || ev.Known != 3 || ev.Users != 3 || ev.Fallback != 1 {
		t.Errorf("rows %d known %d users %d fallback %d, want 4 3 3 1", ev.Rows, ev.Known, ev.Users, ev.Fallback)
	}

	// A relevance threshold of 2 leaves no relevant pair: an error without ratings.
	if _, err := recommend.Evaluate(s, test, recommend.EvalOptions{Threshold: 2}); err == nil {
		t.Error("no relevant pair: no error")
	}
}

func TestPredictFallbacks(t *testing.T) {
	f := handModel()
	f.GlobalBias, f.UserBiases, f.ItemBiases = 3, []float32{0.5, -0.5}, []float32{0.1, 0.2, 0.3, 0.4}
	f.MinRating, f.MaxRating = 1, 5
	s, err := recommend.NewScorer(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, item string
		want       float64
		known      bool
	}{
		{"u1", "b", 5, true},      // 3 + 0.5 + 0.2 + 1·3 = 6.7, clipped to 5
		{"u2", "a", 1, true},      // 3 − 0.5 + 0.1 − 4 = −1.4, clipped to 1
		{"u2", "d", 1.9, true},    // 3 − 0.5 + 0.4 − 1
		{"u1", "zzz", 3.5, false}, // global and user bias
		{"nobody", "c", 3.3, false},
		{"nobody", "zzz", 3, false},
	} {
		got, known := s.Predict(tc.user, tc.item)
		if math.Abs(got-tc.want) > 1e-6 || known != tc.known {
			t.Errorf("Predict(%s, %s) = %v, %v; want %v, %v", tc.user, tc.item, got, known, tc.want, tc.known)
		}
	}
}

func TestFactorsValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(f *recommend.Factors)
	}{
		{"factor length", func(f *recommend.Factors) { f.ItemFactors = f.ItemFactors[:3] }},
		{"bias length", func(f *recommend.Factors) { f.UserBiases = []float32{1} }},
		{"duplicate item", func(f *recommend.Factors) { f.ItemIDs[1] = "a" }},
		{"seen offsets", func(f *recommend.Factors) { f.SeenOffsets = []uint32{0, 2} }},
		{"seen not ascending", func(f *recommend.Factors) { f.SeenOffsets, f.SeenItems = []uint32{0, 2, 2}, []uint32{3, 1} }},
		{"seen out of range", func(f *recommend.Factors) { f.SeenItems[1] = 4 }},
		{"popularity order", func(f *recommend.Factors) { f.Popularity.Scores[2] = 9 }},
		{"popularity lengths", func(f *recommend.Factors) { f.Popularity.Scores = f.Popularity.Scores[:1] }},
		{"NaN factor", func(f *recommend.Factors) { f.UserFactors[0] = float32(math.NaN()) }},
		{"rating range", func(f *recommend.Factors) { f.MinRating = 6; f.MaxRating = 5 }},
	} {
		f := handModel()
		tc.change(f)
		if _, err := recommend.NewScorer(f); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// TestPopularityModel checks a popularity-only model: every user gets the popularity list,
// filtered.
func TestPopularityModel(t *testing.T) {
	s, err := recommend.NewScorer(&recommend.Factors{Popularity: recommend.Popularity{
		ItemIDs: []string{"p", "q", "r"}, Scores: []float64{3, 2, 1}}})
	if err != nil {
		t.Fatal(err)
	}
	got := s.Recommend([]recommend.Query{{User: "anyone", K: 2, Excluded: []string{"p"}}})[0]
	if !got.Fallback || len(got.Items) != 2 || got.Items[0] != "q" || got.Items[1] != "r" || got.Scores[0] != 2 {
		t.Errorf("got %+v, want q r from the popularity list", got)
	}
}
