package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/services/training/internal/dataset"
	"github.com/bullseye-ml/bullseye/services/training/internal/evaluate"
	"github.com/bullseye-ml/bullseye/services/training/internal/spec"
)

// evaluateRecommender evaluates a recommender on (user, item) pairs: inline rows (entity_id,
// item_id and, to count in the metrics, a numeric label) or an interactions export, whose
// partition is chosen by its split as in training (a random split without a seed takes the
// version's search seed). Each pair is scored. A pair whose user or item has no factors
// (cold) is predicted from the biases of an explicit model that has them (the global mean
// plus the known user's or item's bias), counted in rows_cold and in the metrics; without
// biases (implicit models, unbiased factors) it is INVALID. Labelled pairs give rmse, mae
// and r2 (explicit models that predict ratings: not popularity) and, over the labelled pairs
// as each user's held-out items, the ranking metrics at each options.ranking_k, each user's
// list excluding the items the user had in training.
func (s *Server) evaluateRecommender(ctx context.Context, req *trainingv1.EvaluateRequest, mv *modelv1.ModelVersion, rec artifact.Recommender) (*trainingv1.EvaluateResponse, error) {
	if req.GetData() != nil && req.GetData().GetInteractions() == nil {
		return nil, fault.Invalid("data.training_set", "%s is a recommender: evaluate it on interactions or inline (entity_id, item_id) rows", mv.GetModelName())
	}
	var (
		users, items []string
		labels       []*commonv1.Value
	)
	if req.GetData() == nil {
		for i, r := range req.GetRows() {
			if r.GetEntityId() == "" || r.GetItemId() == "" {
				return nil, fault.Invalid(fmt.Sprintf("rows[%d]", i), "a recommender's row needs an entity_id (the user) and an item_id")
			}
			users, items, labels = append(users, r.GetEntityId()), append(items, r.GetItemId()), append(labels, r.GetLabel())
		}
	} else {
		is := req.GetData().GetInteractions()
		all, testRows, err := dataset.LoadInteractionsSpec(ctx, s.features, is, spec.TestExport(is), nil)
		if err != nil {
			if errors.Is(err, fault.ErrInvalid) {
				err = fault.Invalid("data.interactions", "%v", err)
			}
			return nil, err
		}
		seed := mv.GetLineage().GetSeed()
		if seed == 0 {
			seed = spec.DefaultSeed
		}
		train, test, err := dataset.SplitInteractions(all, is, seed, testRows)
		if err != nil {
			return nil, fault.Invalid("data.interactions.split", "%v", err)
		}
		var d *recommend.Interactions
		switch req.GetPartition() {
		case trainingv1.DataPartition_DATA_PARTITION_TRAIN:
			d = train
		case trainingv1.DataPartition_DATA_PARTITION_ALL:
			d = all.Prune(int(is.GetMinUserInteractions()), int(is.GetMinItemInteractions()))
		default:
			d = test
			if is.GetSplit() == nil {
				d = train
			}
		}
		if d.Len() > maxInlineRows && !req.GetOmitScores() {
			return nil, fault.Invalid("omit_scores", "%d pairs would be scored: set omit_scores to get metrics only", d.Len())
		}
		for r := range d.Len() {
			users, items = append(users, d.UserIDs[d.Users[r]]), append(items, d.ItemIDs[d.Items[r]])
			labels = append(labels, &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: d.Values[r]}})
		}
	}
	b := artifact.NewBatch(rec.Info())
	for k := range users {
		b.AddPair(users[k], items[k])
	}
	var out artifact.Result
	if err := rec.Score(ctx, b, &out); err != nil {
		return nil, err
	}
	resp := &trainingv1.EvaluateResponse{ModelName: mv.GetModelName(), ModelVersion: mv.GetVersion(), RowsScored: int64(len(out.Scores))}
	explicit := rec.Info().Task == modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT
	fromBiases := explicit && rec.Factors().HasBiases()
	var y, pred []float64
	var rows []recommend.Interaction
	for i, score := range out.Scores {
		problem := artifact.PairProblem(rec, users[i], items[i])
		cold := problem != nil && fromBiases
		if cold {
			// The scorer's fallback: the global mean and the known bias.
			problem = nil
			resp.RowsCold++
		}
		if problem != nil {
			resp.RowsInvalid++
		}
		if !req.GetOmitScores() {
			r := &trainingv1.ScoredRow{Index: int64(i), EntityId: users[i], ItemId: items[i], Label: labels[i],
				Status: trainingv1.ScoredRowStatus_SCORED_ROW_STATUS_OK, Score: score, FromBiases: cold}
			if problem != nil {
				r.Status, r.Problem, r.Score = trainingv1.ScoredRowStatus_SCORED_ROW_STATUS_INVALID, problem, 0
			}
			resp.Scores = append(resp.Scores, r)
		}
		v, ok := numeric(labels[i])
		if !ok {
			continue
		}
		// Every labelled pair is a held-out item for the ranking metrics (an unknown user
		// gets the popularity fallback there, as in training); only scored ones count for
		// the rating errors.
		rows = append(rows, recommend.Interaction{User: users[i], Item: items[i], Value: v})
		if problem == nil && !math.IsNaN(score) {
			y, pred = append(y, v), append(pred, score)
		}
	}
	resp.RowsScored -= resp.RowsInvalid
	resp.RowsLabelled = int64(len(y))
	if explicit && rec.Factors().PredictsRatings() && len(y) > 0 {
		ms, err := evaluate.Regression(y, pred)
		if err != nil {
			return nil, err
		}
		resp.Metrics = append(resp.Metrics, ms...)
	}
	if len(rows) > 0 {
		test, err := recommend.NewInteractions(rows)
		if err != nil {
			return nil, fault.Invalid("rows", "%v", err)
		}
		sc, err := recommend.NewScorer(rec.Factors())
		if err != nil {
			return nil, err
		}
		var ks []int
		for _, k := range req.GetOptions().GetRankingK() {
			ks = append(ks, int(k))
		}
		if len(ks) == 0 {
			ks = []int{10}
		}
		ev, err := recommend.Evaluate(sc, test, recommend.EvalOptions{K: ks})
		if err == nil {
			for _, name := range spec.RecMetrics(modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT, ks) {
				if v, ok := ev.Metrics[name]; ok {
					resp.Metrics = append(resp.Metrics, &commonv1.Metric{Name: name, Value: v})
				}
			}
		}
	}
	return resp, nil
}

// numeric returns a label as a number.
func numeric(v *commonv1.Value) (float64, bool) {
	switch k := v.GetKind().(type) {
	case *commonv1.Value_NumberValue:
		return k.NumberValue, !math.IsNaN(k.NumberValue)
	case *commonv1.Value_IntValue:
		return float64(k.IntValue), true
	case *commonv1.Value_BoolValue:
		if k.BoolValue {
			return 1, true
		}
		return 0, true
	case *commonv1.Value_StringValue:
		x, err := strconv.ParseFloat(k.StringValue, 64)
		return x, err == nil
	}
	return 0, false
}
