package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/services/training/internal/dataset"
	"github.com/bullseye-ml/bullseye/services/training/internal/evaluate"
	"github.com/bullseye-ml/bullseye/services/training/internal/spec"
)

// Evaluate implements TrainingService.
func (s *Server) Evaluate(ctx context.Context, req *trainingv1.EvaluateRequest) (*trainingv1.EvaluateResponse, error) {
	var v fault.Violations
	checkRef(&v, "model", req.GetModel())
	v.CheckMessage("data", req.GetData())
	checkTimes(&v, "data", req.GetData())
	v.CheckMessage("options", req.GetOptions())
	if len(req.GetRows()) <= maxInlineRows {
		for i, r := range req.GetRows() {
			if len(v) > fault.MaxReported {
				break
			}
			f := fmt.Sprintf("rows[%d]", i)
			v.CheckMessage(f, r)
			checkText(&v, f+".entity_id", r.GetEntityId(), fault.MaxIDBytes)
			checkText(&v, f+".item_id", r.GetItemId(), fault.MaxIDBytes)
		}
	}
	switch {
	case len(req.GetRows()) > 0 && req.GetData() != nil:
		v.Add("rows", "give rows or data, not both")
	case len(req.GetRows()) == 0 && req.GetData() == nil:
		v.Add("rows", "give rows or data")
	case len(req.GetRows()) > maxInlineRows:
		v.Add("rows", "at most %d rows", maxInlineRows)
	case req.GetData() != nil:
		v = append(v, spec.ValidateData(req.GetData(), "data")...)
	}
	if p := req.GetPartition(); p < 0 || p > trainingv1.DataPartition_DATA_PARTITION_ALL {
		v.Add("partition", "unknown partition %v", p)
	}
	v = append(v, spec.ValidateEvaluation(req.GetOptions(), "options")...)
	if err := v.Err(); err != nil {
		return nil, statuses.Status(ctx, s.logger, "Evaluate", err)
	}
	mv, _, err := s.registry.Resolve(ctx, req.GetModel())
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "Evaluate", err)
	}
	sc, err := s.scorer(ctx, mv)
	if err != nil {
		return nil, statuses.Status(ctx, s.logger, "Evaluate", err)
	}
	if rec, ok := sc.(artifact.Recommender); ok {
		resp, err := s.evaluateRecommender(ctx, req, mv, rec)
		if err != nil {
			return nil, statuses.Status(ctx, s.logger, "Evaluate", err)
		}
		return resp, nil
	}
	if req.GetData() != nil && req.GetData().GetInteractions() != nil {
		return nil, statuses.Status(ctx, s.logger, "Evaluate", fault.Invalid("data.interactions", "%s is not a recommender: evaluate it on a training_set", mv.GetModelName()))
	}
	if c, ok := sc.(artifact.CLVScorer); ok {
		resp, err := s.evaluateCLV(ctx, req, mv, c)
		if err != nil {
			return nil, statuses.Status(ctx, s.logger, "Evaluate", err)
		}
		return resp, nil
	}
	info := sc.Info()
	var classes *dataset.Classes
	classify := info.Task == modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION
	if classify {
		classes = &dataset.Classes{Positive: info.Classification.GetPositiveLabel(), Negative: info.Classification.GetNegativeLabel()}
	}

	var (
		batch    *artifact.Batch
		labels   []*commonv1.Value
		entities []string
	)
	if req.GetData() == nil {
		batch = artifact.NewBatch(info)
		batch.Now = time.Now()
		for _, r := range req.GetRows() {
			batch.AddMap(r.GetFeatures(), time.Time{})
			labels = append(labels, r.GetLabel())
			entities = append(entities, r.GetEntityId())
		}
	} else {
		d, err := dataset.Load(ctx, s.features, req.GetData().GetTrainingSet(), nil)
		if errors.Is(err, fault.ErrInvalid) {
			err = fault.Invalid("data.training_set", "%v", err)
		}
		if err != nil {
			return nil, statuses.Status(ctx, s.logger, "Evaluate", err)
		}
		if is := req.GetData().GetImportSplit(); is != nil {
			if err := d.SplitByImport(is); err != nil {
				return nil, statuses.Status(ctx, s.logger, "Evaluate", fault.Invalid("data.import_split", "%v", err))
			}
		}
		rows, err := evaluationRows(d, req)
		if err != nil {
			return nil, statuses.Status(ctx, s.logger, "Evaluate", err)
		}
		for _, i := range rows {
			labels = append(labels, d.Labels[i])
			entities = append(entities, d.Entities[i])
		}
		batch = &artifact.Batch{Table: d.Table.Subset(rows)}
	}
	var out artifact.Result
	if err := sc.Score(ctx, batch, &out); err != nil {
		if ctx.Err() != nil {
			return nil, statuses.Status(ctx, s.logger, "Evaluate", ctx.Err())
		}
		return nil, statuses.Status(ctx, s.logger, "Evaluate", &fault.Coded{Kind: fault.ErrFailedPrecondition, Reason: "DATA_DOES_NOT_FIT_MODEL",
			Message: fmt.Sprintf("the rows do not fit %s version %d: %v", mv.GetModelName(), mv.GetVersion(), err)})
	}

	resp := &trainingv1.EvaluateResponse{ModelName: mv.GetModelName(), ModelVersion: mv.GetVersion(), RowsScored: int64(len(out.Scores))}
	var y, scores, probs []float64
	for i, score := range out.Scores {
		if out.Problems[i] != nil {
			resp.RowsInvalid++
		}
		if !req.GetOmitScores() {
			r := &trainingv1.ScoredRow{Index: int64(i), EntityId: entities[i], Label: labels[i],
				Status: trainingv1.ScoredRowStatus_SCORED_ROW_STATUS_OK, Score: score}
			if out.Problems[i] != nil {
				r.Status, r.Problem, r.Score = trainingv1.ScoredRowStatus_SCORED_ROW_STATUS_INVALID, out.Problems[i], 0
			} else if out.Probabilities != nil {
				p := out.Probabilities[i]
				r.Probability = &p
			}
			resp.Scores = append(resp.Scores, r)
		}
		if out.Problems[i] != nil || math.IsNaN(score) {
			continue
		}
		t, ok := dataset.Target(labels[i], classes)
		if !ok {
			continue
		}
		y = append(y, t)
		scores = append(scores, score)
		if out.Probabilities != nil {
			probs = append(probs, out.Probabilities[i])
		}
	}
	resp.RowsScored -= resp.RowsInvalid
	resp.RowsLabelled = int64(len(y))
	if len(y) > 0 {
		threshold, bins, rocPoints := spec.Evaluation(req.GetOptions())
		if classify {
			resp.Metrics, resp.Curves = evaluate.Binary(y, scores, probs, evaluate.Options{Threshold: threshold, Bins: bins, MaxROCPoints: rocPoints})
		} else if resp.Metrics, err = evaluate.Regression(y, scores); err != nil {
			return nil, statuses.Status(ctx, s.logger, "Evaluate", err)
		}
	}
	return resp, nil
}

// evaluationRows returns the rows of d that req evaluates: its partition (unspecified: the
// test rows when d has a test split, else all) through its train filter, refused when they
// are more than maxInlineRows and req asks for their scores.
func evaluationRows(d *dataset.Dataset, req *trainingv1.EvaluateRequest) ([]int, error) {
	part := req.GetPartition()
	if part == trainingv1.DataPartition_DATA_PARTITION_UNSPECIFIED {
		part = trainingv1.DataPartition_DATA_PARTITION_ALL
		if d.HasTest() {
			part = trainingv1.DataPartition_DATA_PARTITION_TEST
		}
	}
	rows := d.Rows(part, req.GetData().GetTrainFilter())
	if len(rows) > maxInlineRows && !req.GetOmitScores() {
		return nil, fault.Invalid("omit_scores", "%d rows would be scored: set omit_scores to get metrics only", len(rows))
	}
	return rows, nil
}
