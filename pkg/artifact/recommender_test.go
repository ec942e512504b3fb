package artifact_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/pkg/ml/synth"
)

// roundTrip encodes f, serialises and parses the artifact, and loads it with NewScorer.
func roundTrip(t *testing.T, family modelv1.ModelFamily, task modelv1.TaskKind, f *recommend.Factors) artifact.Recommender {
	t.Helper()
	a, err := artifact.EncodeFactors(family, task, f)
	if err != nil {
		t.Fatalf("EncodeFactors: %v", err)
	}
	a.ModelName, a.ModelVersion = "recs", 3
	b, sha, err := artifact.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	back, err := artifact.Unmarshal(b, sha)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := artifact.NewScorer(back)
	if err != nil {
		t.Fatalf("NewScorer: %v", err)
	}
	r, ok := sc.(artifact.Recommender)
	if !ok {
		t.Fatalf("the scorer of a %v is a %T, not a Recommender", family, sc)
	}
	if in := r.Info(); in.Name != "recs" || in.Version != 3 || in.Family != family || in.Task != task || len(in.Inputs) != 0 {
		t.Errorf("Info = %+v", in)
	}
	return r
}

func TestRecommenderRoundTrip(t *testing.T) {
	ctx := context.Background()
	cfg := synth.Config{Users: 120, Items: 200, Ratings: 6000, Rank: 4, Round: true, Seed: 7}
	data, err := synth.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	train, test, err := data.Interactions.SplitRandom(0.2, 1)
	if err != nil {
		t.Fatal(err)
	}
	explicit, implicit := modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT, modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT
	cases := []struct {
		family modelv1.ModelFamily
		task   modelv1.TaskKind
		est    recommend.Estimator
	}{
		{modelv1.ModelFamily_MODEL_FAMILY_MF_ALS, explicit, recommend.ALS{Rank: 4, Iterations: 5, Seed: 1}},
		{modelv1.ModelFamily_MODEL_FAMILY_MF_SGD, explicit, recommend.SGD{Rank: 4, Epochs: 5, Seed: 1}},
		{modelv1.ModelFamily_MODEL_FAMILY_IMPLICIT_ALS, implicit, recommend.ImplicitALS{Rank: 4, Iterations: 3, Seed: 1}},
		{modelv1.ModelFamily_MODEL_FAMILY_BPR, implicit, recommend.BPR{Rank: 4, Epochs: 3, Seed: 1}},
		{modelv1.ModelFamily_MODEL_FAMILY_POPULARITY, implicit, recommend.Popular{}},
	}
	for _, tc := range cases {
		t.Run(tc.family.String(), func(t *testing.T) {
			f, err := tc.est.Fit(ctx, train)
			if err != nil {
				t.Fatal(err)
			}
			if tc.task == explicit {
				f.MinRating, f.MaxRating = 1, 5
			}
			orig, err := recommend.NewScorer(f)
			if err != nil {
				t.Fatal(err)
			}
			r := roundTrip(t, tc.family, tc.task, f)
			if g := r.Factors(); g.Rank != f.Rank || !slices.Equal(g.UserFactors, f.UserFactors) || !slices.Equal(g.ItemFactors, f.ItemFactors) ||
				!slices.Equal(g.UserBiases, f.UserBiases) || !slices.Equal(g.ItemBiases, f.ItemBiases) || g.GlobalBias != f.GlobalBias ||
				!slices.Equal(g.SeenOffsets, f.SeenOffsets) || !slices.Equal(g.SeenItems, f.SeenItems) ||
				!slices.Equal(g.Popularity.ItemIDs, f.Popularity.ItemIDs) || !slices.Equal(g.Popularity.Scores, f.Popularity.Scores) ||
				g.Converged != f.Converged || g.Iterations != f.Iterations {
				t.Fatal("the decoded factors differ from the encoded ones")
			}

			// Pair scores: every test pair plus unknown users and items, through Score.
			b := artifact.NewBatch(r.Info())
			var users, items []string
			for k := range test.Len() {
				users = append(users, test.UserIDs[test.Users[k]])
				items = append(items, test.ItemIDs[test.Items[k]])
			}
			users, items = append(users, "nobody", test.UserIDs[0]), append(items, test.ItemIDs[0], "no-such-item")
			for k := range users {
				b.AddPair(users[k], items[k])
			}
			var out artifact.Result
			if err := r.Score(ctx, b, &out); err != nil {
				t.Fatal(err)
			}
			if len(out.Scores) != len(users) {
				t.Fatalf("%d scores for %d pairs", len(out.Scores), len(users))
			}
			for k := range users {
				want, wantKnown := orig.Predict(users[k], items[k])
				if tc.family == modelv1.ModelFamily_MODEL_FAMILY_POPULARITY {
					i := slices.Index(f.Popularity.ItemIDs, items[k])
					want, wantKnown = 0, i >= 0
					if wantKnown {
						want = f.Popularity.Scores[i]
					}
				}
				got, known := r.Predict(users[k], items[k])
				if out.Scores[k] != want || got != want || known != wantKnown || out.Problems[k] != nil || math.IsNaN(got) {
					t.Fatalf("pair (%s, %s): Score %v, Predict %v (known %v), want %v (known %v)", users[k], items[k], out.Scores[k], got, known, want, wantKnown)
				}
				if p := artifact.PairProblem(r, users[k], items[k]); (p == nil) != wantKnown {
					t.Fatalf("pair (%s, %s): problem %v, known %v", users[k], items[k], p, wantKnown)
				}
			}

			// Top-k for a batch of users, with filters: identical to the original scorer's.
			var qs []recommend.Query
			for u, id := range test.UserIDs {
				q := recommend.Query{User: id, K: 10}
				if u%3 == 1 {
					q.Excluded = test.ItemIDs[:20]
				}
				if u%5 == 2 {
					q.Allowed = test.ItemIDs[10:60]
				}
				qs = append(qs, q)
			}
			qs = append(qs, recommend.Query{User: "nobody", K: 5})
			got, err := r.Recommend(ctx, qs)
			if err != nil {
				t.Fatal(err)
			}
			want := orig.Recommend(qs)
			for q := range qs {
				if !slices.Equal(got[q].Items, want[q].Items) || !slices.Equal(got[q].Scores, want[q].Scores) || got[q].Fallback != want[q].Fallback {
					t.Fatalf("query %d: got %v %v, want %v %v", q, got[q].Items, got[q].Scores, want[q].Items, want[q].Scores)
				}
			}
			if last := got[len(got)-1]; !last.Fallback || len(last.Items) != 5 {
				t.Errorf("unknown user: %+v, want 5 popular items", last)
			}
		})
	}
}

func TestRecommenderArtifactErrors(t *testing.T) {
	f, err := recommend.ALS{Rank: 2, Iterations: 2, Seed: 1}.Fit(context.Background(), mustInteractions(t))
	if err != nil {
		t.Fatal(err)
	}
	explicit := modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT
	als := modelv1.ModelFamily_MODEL_FAMILY_MF_ALS
	good, err := artifact.EncodeFactors(als, explicit, f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := artifact.EncodeFactors(modelv1.ModelFamily_MODEL_FAMILY_POPULARITY, explicit, f); !errors.Is(err, artifact.ErrInvalid) {
		t.Errorf("popularity with factors: %v, want ErrInvalid", err)
	}
	if _, err := artifact.EncodeFactors(als, modelv1.TaskKind_TASK_KIND_REGRESSION, f); !errors.Is(err, artifact.ErrInvalid) {
		t.Errorf("regression task: %v, want ErrInvalid", err)
	}
	if _, err := artifact.Decode(good); !errors.Is(err, artifact.ErrUnsupported) {
		t.Errorf("Decode of a factorisation artifact: %v, want ErrUnsupported", err)
	}
	tests := []struct {
		name   string
		change func(a *modelv1.ModelArtifact)
	}{
		{"layout", func(a *modelv1.ModelArtifact) { a.FormatVersion = 2 }},
		{"ragged factors", func(a *modelv1.ModelArtifact) {
			a.GetFactorization().UserFactors = a.GetFactorization().UserFactors[1:]
		}},
		{"short factors", func(a *modelv1.ModelArtifact) {
			a.GetFactorization().ItemFactors = a.GetFactorization().ItemFactors[4:]
		}},
		{"seen out of range", func(a *modelv1.ModelArtifact) { a.GetFactorization().SeenItems[0] = 0xff }},
		{"no parameters", func(a *modelv1.ModelArtifact) { a.Parameters = nil }},
		{"feature task", func(a *modelv1.ModelArtifact) { a.Task = modelv1.TaskKind_TASK_KIND_REGRESSION }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := artifact.EncodeFactors(als, explicit, f)
			tc.change(a)
			if _, err := artifact.NewScorer(a); !errors.Is(err, artifact.ErrInvalid) {
				t.Errorf("NewScorer: %v, want ErrInvalid", err)
			}
		})
	}
}

func mustInteractions(t *testing.T) *recommend.Interactions {
	t.Helper()
	d, err := recommend.NewInteractions([]recommend.Interaction{
		{User: "a", Item: "x", Value: 4}, {User: "a", Item: "y", Value: 2},
		{User: "b", Item: "x", Value: 5}, {User: "b", Item: "z", Value: 1},
		{User: "c", Item: "y", Value: 3}, {User: "c", Item: "z", Value: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}
