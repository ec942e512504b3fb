// Package recommend loads recommender artifacts (matrix factorisation and popularity) for
// serving and answers the recommender rows of a batch in one pass: the batch's known users are
// scored against every item in one blocked matrix product with a per-user top-k
// (pkg/ml/recommend's Scorer); unknown users get the popularity ranking, marked as a fallback.
//
// pkg/artifact does not convert FactorizationParameters yet; Factors does it here, from the
// message's documented layout (little-endian float32 and uint32 arrays), until it does.
package recommend

import (
	"context"
	"fmt"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	mlrec "github.com/bullseye-ml/bullseye/pkg/ml/recommend"
)

// Query is what one user's recommendation asks for.
type Query struct {
	// K is the number of items wanted.
	K int
	// IncludeSeen keeps items the user interacted with in training.
	IncludeSeen bool
	// Allowed, when not empty, is the only items that may be recommended.
	Allowed []string
	// Excluded are never recommended.
	Excluded []string
}

// Item is one recommended item.
type Item struct {
	// ID is the item's id.
	ID string
	// Score is the model's score of the item for the user.
	Score float64
}

// Result is one user's recommendation.
type Result struct {
	// Items are the recommended items, best first.
	Items []Item
	// Fallback is true when the model does not know the user and Items is its popularity
	// ranking.
	Fallback bool
}

// Model is a loaded recommender. It is safe for concurrent use.
type Model struct {
	scorer *mlrec.Scorer
	rank   int
	pop    map[string]float64
}

// IsRecommender reports whether a task is a recommendation task.
func IsRecommender(t modelv1.TaskKind) bool {
	return t == modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT || t == modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT
}

// New loads a recommender artifact.
func New(a *modelv1.ModelArtifact) (*Model, error) {
	f, err := Factors(a)
	if err != nil {
		return nil, err
	}
	s, err := mlrec.NewScorer(f)
	if err != nil {
		return nil, fmt.Errorf("loading %s version %d: %w: %v", a.GetModelName(), a.GetModelVersion(), artifact.ErrInvalid, err)
	}
	m := &Model{scorer: s, rank: f.Rank, pop: make(map[string]float64, len(f.Popularity.ItemIDs))}
	for i, id := range f.Popularity.ItemIDs {
		m.pop[id] = f.Popularity.Scores[i]
	}
	return m, nil
}

// Factors converts a recommender artifact's parameters to pkg/ml's Factors.
func Factors(a *modelv1.ModelArtifact) (*mlrec.Factors, error) {
	f, err := artifact.DecodeFactors(a)
	if err != nil {
		return nil, fmt.Errorf("loading %s version %d: %w", a.GetModelName(), a.GetModelVersion(), err)
	}
	return f, nil
}

// Recommend answers queries[i] for users[i] into out[i]: the batch's known users in one
// blocked product (one user alone: one matrix-vector product), the unknown ones from the
// popularity ranking.
func (m *Model) Recommend(ctx context.Context, users []string, queries []*Query, out []Result) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	qs := make([]mlrec.Query, len(users))
	for i, u := range users {
		q := queries[i]
		qs[i] = mlrec.Query{User: u, K: q.K, Allowed: q.Allowed, Excluded: q.Excluded, IncludeSeen: q.IncludeSeen}
	}
	var recs []mlrec.Recommendation
	if len(qs) == 1 {
		recs = []mlrec.Recommendation{m.scorer.RecommendOne(qs[0])}
	} else {
		recs = m.scorer.Recommend(qs)
	}
	for i, r := range recs {
		items := make([]Item, len(r.Items))
		for k, id := range r.Items {
			items[k] = Item{ID: id, Score: r.Scores[k]}
		}
		out[i] = Result{Items: items, Fallback: r.Fallback}
	}
	return nil
}

// Score scores the pairs (users[i], items[i]) into scores[i]: a factorisation model's
// predicted rating or preference (its biases alone for a user it does not know), a popularity
// model's popularity of the item. known[i] is false when the model does not know the item.
func (m *Model) Score(ctx context.Context, users, items []string, scores []float64, known []bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, it := range items {
		if m.rank == 0 {
			scores[i], known[i] = m.pop[it]
			continue
		}
		idx, ok := m.scorer.ItemIndex(it)
		if !ok || idx >= len(m.scorer.Factors().ItemIDs) {
			known[i] = false
			continue
		}
		scores[i], _ = m.scorer.Predict(users[i], it)
		known[i] = true
	}
	return nil
}
