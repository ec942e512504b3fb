package artifact

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
)

// IsRecommender reports whether a family is a recommender family (factorisation or
// popularity).
func IsRecommender(f modelv1.ModelFamily) bool {
	switch f {
	case modelv1.ModelFamily_MODEL_FAMILY_MF_ALS, modelv1.ModelFamily_MODEL_FAMILY_MF_SGD,
		modelv1.ModelFamily_MODEL_FAMILY_IMPLICIT_ALS, modelv1.ModelFamily_MODEL_FAMILY_BPR,
		modelv1.ModelFamily_MODEL_FAMILY_POPULARITY:
		return true
	}
	return false
}

// EncodeFactors converts a fitted recommender into a ModelArtifact: FactorizationParameters
// for MF_ALS, MF_SGD, IMPLICIT_ALS and BPR, PopularityParameters for POPULARITY (whose Factors
// hold only Popularity). Factor matrices, biases and the seen lists are packed little-endian
// float32 and uint32 bytes. The layout, family, task, output signature and solver report are
// set; the caller sets the rest, as with Encode.
func EncodeFactors(family modelv1.ModelFamily, task modelv1.TaskKind, f *recommend.Factors) (*modelv1.ModelArtifact, error) {
	if f == nil {
		return nil, fmt.Errorf("encode artifact: %w: no factors", ErrInvalid)
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("encode artifact: %w: %v", ErrInvalid, err)
	}
	if task != modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT && task != modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT {
		return nil, fmt.Errorf("encode artifact: %w: a recommender for task %v", ErrInvalid, task)
	}
	a := &modelv1.ModelArtifact{FormatVersion: FormatVersion, Family: family, Task: task,
		Solver:  &modelv1.SolverReport{Converged: f.Converged, Iterations: int32(f.Iterations)},
		Outputs: signature(task, false)}
	pop := &modelv1.PopularityParameters{ItemIds: append([]string(nil), f.Popularity.ItemIDs...),
		Scores: append([]float64(nil), f.Popularity.Scores...)}
	switch family {
	case modelv1.ModelFamily_MODEL_FAMILY_POPULARITY:
		if f.Rank != 0 || len(f.UserIDs) != 0 || len(f.ItemIDs) != 0 {
			return nil, fmt.Errorf("encode artifact: %w: a popularity model with factors", ErrInvalid)
		}
		a.Parameters = &modelv1.ModelArtifact_Popularity{Popularity: pop}
	case modelv1.ModelFamily_MODEL_FAMILY_MF_ALS, modelv1.ModelFamily_MODEL_FAMILY_MF_SGD,
		modelv1.ModelFamily_MODEL_FAMILY_IMPLICIT_ALS, modelv1.ModelFamily_MODEL_FAMILY_BPR:
		a.Parameters = &modelv1.ModelArtifact_Factorization{Factorization: &modelv1.FactorizationParameters{
			Rank:        int32(f.Rank),
			UserIds:     append([]string(nil), f.UserIDs...),
			ItemIds:     append([]string(nil), f.ItemIDs...),
			UserFactors: packF32(f.UserFactors),
			ItemFactors: packF32(f.ItemFactors),
			GlobalBias:  f.GlobalBias,
			UserBiases:  packF32(f.UserBiases),
			ItemBiases:  packF32(f.ItemBiases),
			SeenOffsets: packU32(f.SeenOffsets),
			SeenItems:   packU32(f.SeenItems),
			Popularity:  pop,
			MinRating:   f.MinRating,
			MaxRating:   f.MaxRating,
		}}
	default:
		return nil, fmt.Errorf("encode artifact: %w: %v is not a recommender family", ErrInvalid, family)
	}
	return a, nil
}

// DecodeFactors converts a recommender artifact back into Factors that score exactly as the
// encoded ones. It checks the layout version, the family and the sizes of the packed arrays
// (ErrInvalid), and returns ErrUnsupported for artifacts of feature models.
func DecodeFactors(a *modelv1.ModelArtifact) (*recommend.Factors, error) {
	if a.GetFormatVersion() != FormatVersion {
		return nil, fmt.Errorf("decode artifact: %w: layout version %d, this reader knows %d", ErrInvalid, a.GetFormatVersion(), FormatVersion)
	}
	if !IsRecommender(a.GetFamily()) {
		return nil, fmt.Errorf("decode artifact: %w: %v is not a recommender", ErrUnsupported, a.GetFamily())
	}
	if t := a.GetTask(); t != modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT && t != modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT {
		return nil, fmt.Errorf("decode artifact: %w: a %v for task %v", ErrInvalid, a.GetFamily(), t)
	}
	f := &recommend.Factors{Convergence: ml.Convergence{Converged: a.GetSolver().GetConverged(), Iterations: int(a.GetSolver().GetIterations())}}
	popOf := func(p *modelv1.PopularityParameters) recommend.Popularity {
		return recommend.Popularity{ItemIDs: append([]string(nil), p.GetItemIds()...), Scores: append([]float64(nil), p.GetScores()...)}
	}
	if a.GetFamily() == modelv1.ModelFamily_MODEL_FAMILY_POPULARITY {
		p := a.GetPopularity()
		if p == nil {
			return nil, fmt.Errorf("decode artifact: %w: a POPULARITY model without popularity parameters", ErrInvalid)
		}
		f.Popularity = popOf(p)
	} else {
		fp := a.GetFactorization()
		if fp == nil {
			return nil, fmt.Errorf("decode artifact: %w: a %v without factorisation parameters", ErrInvalid, a.GetFamily())
		}
		var err error
		field := func(name string, b []byte, unpack func([]byte) ([]float32, error)) []float32 {
			if err != nil {
				return nil
			}
			var v []float32
			if v, err = unpack(b); err != nil {
				err = fmt.Errorf("%s: %w", name, err)
			}
			return v
		}
		f.Rank = int(fp.GetRank())
		f.UserIDs = append([]string(nil), fp.GetUserIds()...)
		f.ItemIDs = append([]string(nil), fp.GetItemIds()...)
		f.UserFactors = field("user_factors", fp.GetUserFactors(), unpackF32)
		f.ItemFactors = field("item_factors", fp.GetItemFactors(), unpackF32)
		f.UserBiases = field("user_biases", fp.GetUserBiases(), unpackF32)
		f.ItemBiases = field("item_biases", fp.GetItemBiases(), unpackF32)
		if err != nil {
			return nil, fmt.Errorf("decode artifact: %w: %v", ErrInvalid, err)
		}
		if f.SeenOffsets, err = unpackU32(fp.GetSeenOffsets()); err == nil {
			f.SeenItems, err = unpackU32(fp.GetSeenItems())
		}
		if err != nil {
			return nil, fmt.Errorf("decode artifact: %w: seen lists: %v", ErrInvalid, err)
		}
		f.GlobalBias, f.MinRating, f.MaxRating = fp.GetGlobalBias(), fp.GetMinRating(), fp.GetMaxRating()
		f.Popularity = popOf(fp.GetPopularity())
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("decode artifact: %w: %v", ErrInvalid, err)
	}
	return f, nil
}

func packF32(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func packU32(v []uint32) []byte {
	if len(v) == 0 {
		return nil
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], x)
	}
	return b
}

func unpackF32(b []byte) ([]float32, error) {
	u, err := unpackU32(b)
	if err != nil || u == nil {
		return nil, err
	}
	v := make([]float32, len(u))
	for i, x := range u {
		v[i] = math.Float32frombits(x)
	}
	return v, nil
}

func unpackU32(b []byte) ([]uint32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of 4-byte values", len(b))
	}
	if len(b) == 0 {
		return nil, nil
	}
	v := make([]uint32, len(b)/4)
	for i := range v {
		v[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return v, nil
}

// Recommender is the Scorer of recommender artifacts (factorisation and popularity models).
// Besides scoring (user, item) pairs added with Batch.AddPair, it answers top-k queries for a
// batch of users and predicts single pairs. Serving type-asserts a Scorer to it.
type Recommender interface {
	Scorer
	// Recommend answers a batch of queries, in query order: the users known to the model are
	// scored together in one blocked matrix product, unknown users get the popularity
	// ranking (Recommendation.Fallback). It fails only when ctx is done.
	Recommend(ctx context.Context, queries []recommend.Query) ([]recommend.Recommendation, error)
	// Predict returns the score of one (user, item) pair as Score does; known is false when
	// the model has no factors for the user or the item, and the score is then the fallback
	// (the global and known biases for explicit models; for POPULARITY, the item's
	// popularity, known meaning the item is ranked at all).
	Predict(user, item string) (score float64, known bool)
	// Factors returns the decoded model; it must not be modified.
	Factors() *recommend.Factors
}

// recScorer implements Recommender with a recommend.Scorer.
type recScorer struct {
	info Info
	s    *recommend.Scorer
	pop  map[string]float64 // POPULARITY: item → score
}

// NewRecommender returns the Recommender of fitted factors that were not encoded; it scores
// exactly as NewScorer on EncodeFactors(family, task, f) would.
func NewRecommender(family modelv1.ModelFamily, task modelv1.TaskKind, f *recommend.Factors) (Recommender, error) {
	s, err := recommend.NewScorer(f)
	if err != nil {
		return nil, fmt.Errorf("new scorer: %w: %v", ErrInvalid, err)
	}
	r := &recScorer{info: Info{Family: family, Task: task, index: map[string]int{}}, s: s}
	if family == modelv1.ModelFamily_MODEL_FAMILY_POPULARITY {
		r.pop = make(map[string]float64, len(f.Popularity.ItemIDs))
		for k, id := range f.Popularity.ItemIDs {
			r.pop[id] = f.Popularity.Scores[k]
		}
	}
	return r, nil
}

func newRecommenderScorer(a *modelv1.ModelArtifact) (Scorer, error) {
	f, err := DecodeFactors(a)
	if err != nil {
		return nil, err
	}
	r, err := NewRecommender(a.GetFamily(), a.GetTask(), f)
	if err != nil {
		return nil, err
	}
	rs := r.(*recScorer)
	rs.info.Name, rs.info.Version = a.GetModelName(), a.GetModelVersion()
	return rs, nil
}

// Info implements Scorer.
func (r *recScorer) Info() *Info { return &r.info }

// Factors implements Recommender.
func (r *recScorer) Factors() *recommend.Factors { return r.s.Factors() }

// Predict implements Recommender.
func (r *recScorer) Predict(user, item string) (float64, bool) {
	if r.pop != nil {
		v, ok := r.pop[item]
		return v, ok
	}
	return r.s.Predict(user, item)
}

// Score implements Scorer: each pair added with Batch.AddPair gets the model's score (the
// predicted rating of explicit models, clipped to the rating range; the preference of
// implicit ones), falling back as Predict does for unknown users and items. Rows given as
// feature values or a Table do not fit a recommender.
func (r *recScorer) Score(ctx context.Context, b *Batch, out *Result) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.Table != nil || len(b.values) > 0 {
		return fmt.Errorf("score: a recommender scores (user, item) pairs added with AddPair, not feature rows")
	}
	n := len(b.users)
	out.reset(n, false, false)
	for i := range n {
		out.Scores[i], _ = r.Predict(b.users[i], b.items[i])
	}
	return nil
}

// Recommend implements Recommender.
func (r *recScorer) Recommend(ctx context.Context, qs []recommend.Query) ([]recommend.Recommendation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return r.s.Recommend(qs), nil
}

// unknownPair is the Problem of a pair whose user or item a recommender does not know.
func unknownPair(user, item string, userKnown bool) *commonv1.Problem {
	if !userKnown {
		return &commonv1.Problem{Field: "entity_id", Reason: "UNKNOWN_USER", Description: fmt.Sprintf("the model has no factors for user %q", user)}
	}
	return &commonv1.Problem{Field: "item_id", Reason: "UNKNOWN_ITEM", Description: fmt.Sprintf("the model has no factors for item %q", item)}
}

// PairProblem returns, for a Recommender, why a (user, item) pair cannot be scored from
// factors (an unknown user or item, reasons UNKNOWN_USER and UNKNOWN_ITEM), or nil. It is what
// Evaluate reports as an INVALID row.
func PairProblem(r Recommender, user, item string) *commonv1.Problem {
	if _, known := r.Predict(user, item); known {
		return nil
	}
	rs, ok := r.(*recScorer)
	if !ok || rs.pop != nil {
		return unknownPair(user, item, true)
	}
	_, uok := rs.s.UserIndex(user)
	return unknownPair(user, item, uok)
}
