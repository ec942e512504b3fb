package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/clv"
	"github.com/bullseye-ml/bullseye/services/training/internal/dataset"
	"github.com/bullseye-ml/bullseye/services/training/internal/evaluate"
)

// evaluateCLV evaluates a customer lifetime value model on a training set whose outcome label
// counts each customer's purchases in the holdout period after the cutoff: its expected
// purchases over that period (the label's horizon) against the actual ones. Each scored row's
// score is the customer's expected holdout purchases; customers without a purchase before the
// cutoff are not scored.
func (s *Server) evaluateCLV(ctx context.Context, req *trainingv1.EvaluateRequest, mv *modelv1.ModelVersion, sc artifact.CLVScorer) (*trainingv1.EvaluateResponse, error) {
	ts := req.GetData().GetTrainingSet()
	if ts == nil {
		return nil, fault.Invalid("data.training_set", "%s is a customer lifetime value model: evaluate it on a training set whose outcome label counts the purchases in the holdout period after the cutoff", mv.GetModelName())
	}
	o := ts.GetLabel().GetOutcome()
	switch o.GetAggregation() {
	case featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_COUNT, featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_DISTINCT_DAYS:
	default:
		return nil, fault.Invalid("data.training_set.label", "a customer lifetime value model is evaluated on the purchases in the holdout period: an outcome label with OUTCOME_AGGREGATION_DISTINCT_DAYS or COUNT")
	}
	if req.GetData().GetImportSplit() != nil {
		return nil, fault.Invalid("data.import_split", "a customer lifetime value model is evaluated on the holdout period after the cutoff, not on imports")
	}
	d, err := dataset.Load(ctx, s.features, ts, nil)
	if errors.Is(err, fault.ErrInvalid) {
		err = fault.Invalid("data.training_set", "%v", err)
	}
	if err != nil {
		return nil, err
	}
	rows, err := evaluationRows(d, req)
	if err != nil {
		return nil, err
	}
	m := sc.Model()
	b, err := d.Customers(m, rows)
	if err != nil {
		return nil, &fault.Coded{Kind: fault.ErrFailedPrecondition, Reason: "DATA_DOES_NOT_FIT_MODEL",
			Message: fmt.Sprintf("the rows do not fit %s version %d: %v", mv.GetModelName(), mv.GetVersion(), err)}
	}
	resp := &trainingv1.EvaluateResponse{ModelName: mv.GetModelName(), ModelVersion: mv.GetVersion(), RowsScored: int64(len(b.Customers))}
	var customers []clv.Customer
	var actual []float64
	var labelled []int
	for k, c := range b.Customers {
		if y, ok := dataset.Target(d.Labels[b.Rows[k]], nil); ok {
			customers = append(customers, c)
			actual = append(actual, y)
			labelled = append(labelled, k)
		}
	}
	units := o.GetHorizon().AsDuration().Hours() / 24 / m.TimeUnitDays
	expected := make([]float64, len(b.Customers))
	for k, c := range b.Customers {
		expected[k] = m.BGNBD.ExpectedPurchases(c, units)
	}
	if len(customers) > 0 {
		if resp.Metrics, _, err = evaluate.CLVHoldout(m.BGNBD.BGNBDParams, customers, actual, units); err != nil {
			return nil, err
		}
	}
	resp.RowsLabelled = int64(len(labelled))
	if !req.GetOmitScores() {
		for k, i := range b.Rows {
			resp.Scores = append(resp.Scores, &trainingv1.ScoredRow{Index: int64(k), EntityId: d.Entities[i], Label: d.Labels[i],
				Status: trainingv1.ScoredRowStatus_SCORED_ROW_STATUS_OK, Score: expected[k]})
		}
	}
	return resp, nil
}
