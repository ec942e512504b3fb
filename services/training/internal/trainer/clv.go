package trainer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/clv"
	"github.com/bullseye-ml/bullseye/services/training/internal/dataset"
	"github.com/bullseye-ml/bullseye/services/training/internal/evaluate"
	"github.com/bullseye-ml/bullseye/services/training/internal/spec"
)

// runCLV runs a customer lifetime value job: load the training set (the customers' BTYD
// summaries at the cutoff, labelled with their purchases in the holdout period after it),
// fit BG/NBD on the training customers and Gamma-Gamma on those with repeat purchases of
// positive mean value, evaluate the expected against the actual holdout purchases (of the
// test customers when the training set is split, else of the customers fitted), and register
// the version with its parameters. A customer whose values no model can take fails the job,
// naming the customer and the column; nothing is registered.
func (r *run) runCLV(ctx context.Context) (*Outcome, error) {
	s := r.spec
	cands, _ := spec.Expand(s, "spec")
	cand := cands[0]
	hp := spec.CLVCandidate(cand)

	r.stage(trainingv1.JobStage_JOB_STAGE_LOADING_DATA)
	d, err := r.load(ctx, s.GetData().GetTrainingSet())
	if err != nil {
		return nil, err
	}
	train := d.Rows(trainingv1.DataPartition_DATA_PARTITION_TRAIN, s.GetData().GetTrainFilter())
	test := d.Rows(trainingv1.DataPartition_DATA_PARTITION_TEST, nil)
	model := &artifact.CLVModel{Inputs: hp.Inputs, TimeUnitDays: hp.UnitDays, Horizon: hp.Horizon}
	fitted, err := d.Customers(model, train)
	if err != nil {
		return nil, Failure(ReasonInvalidData, "%v", err)
	}
	customers := fitted.Customers
	if fitted.Skipped > 0 {
		r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, trainingv1.JobStage_JOB_STAGE_LOADING_DATA, "CUSTOMERS_WITHOUT_PURCHASES",
			"%d training customers had no purchase before the cutoff and were left out", fitted.Skipped)
	}
	if len(customers) == 0 {
		return nil, Failure(ReasonInvalidData, "no training customer has a purchase before the cutoff")
	}
	r.rep.Update(func(p *trainingv1.JobProgress) {
		p.RowsLoaded = int64(d.Len())
		p.Percent = band[trainingv1.JobStage_JOB_STAGE_LOADING_DATA][1]
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	r.stage(trainingv1.JobStage_JOB_STAGE_REFITTING)
	start := time.Now()
	if model.BGNBD, err = clv.FitBGNBD(customers); err != nil {
		return nil, Failure(ReasonRefitFailed, "fitting BG/NBD to %d customers: %v", len(customers), err)
	}
	if hp.GammaGamma {
		if model.GammaGamma, err = clv.FitGammaGamma(customers); err != nil {
			return nil, Failure(ReasonRefitFailed, "fitting Gamma-Gamma to the customers with repeat purchases: %v", err)
		}
	}
	fitTime := time.Since(start)
	r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, trainingv1.JobStage_JOB_STAGE_REFITTING, "CLV_FITTED",
		"BG/NBD on %d customers: r %.4g, alpha %.4g, a %.4g, b %.4g, log-likelihood %.2f%s (%v)", model.BGNBD.Customers,
		model.BGNBD.R, model.BGNBD.Alpha, model.BGNBD.A, model.BGNBD.B, model.BGNBD.LogLik, gammaGammaText(model.GammaGamma), fitTime.Round(time.Millisecond))
	a, err := artifact.EncodeCLV(model)
	if err != nil {
		return nil, fmt.Errorf("encoding the model: %w", err)
	}
	a.Solver.FitTime = durationpb.New(fitTime)
	a.Hyperparameters = cand.Params

	r.stage(trainingv1.JobStage_JOB_STAGE_EVALUATING)
	evaluated := fitted
	if len(test) > 0 {
		if evaluated, err = d.Customers(model, test); err != nil {
			return nil, Failure(ReasonInvalidData, "%v", err)
		}
	}
	ms, byFrequency, n, err := CLVHoldout(d, evaluated, model, spec.HoldoutDays(s))
	if err != nil {
		return nil, Failure(ReasonInvalidData, "%v", err)
	}
	ms = append(ms, &commonv1.Metric{Name: "bg_nbd_log_likelihood", Value: model.BGNBD.LogLik})
	if model.GammaGamma != nil {
		ms = append(ms, &commonv1.Metric{Name: "gamma_gamma_log_likelihood", Value: model.GammaGamma.LogLik})
	}
	which := "the customers fitted"
	if len(test) > 0 {
		which = "the test customers"
	}
	r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, trainingv1.JobStage_JOB_STAGE_EVALUATING, "CLV_HOLDOUT",
		"holdout purchases of %s (%d customers, %.4g days): %s", which, n, spec.HoldoutDays(s), metricsText(ms))
	a.Metrics = ms

	if err := r.registering(ctx); err != nil {
		return nil, err
	}
	if a.Lineage, err = r.lineage(d, len(customers), len(test), 0, nil); err != nil {
		return nil, err
	}
	mv := &modelv1.ModelVersion{
		ModelName:          s.GetModelName(),
		Family:             cand.Family,
		Task:               modelv1.TaskKind_TASK_KIND_CUSTOMER_LIFETIME_VALUE,
		Hyperparameters:    cand.Params,
		TestMetrics:        ms,
		SelectionMetric:    "mae",
		SelectionDirection: modelv1.MetricDirection_METRIC_DIRECTION_MINIMIZE,
		Lineage:            a.Lineage,
		Inputs:             a.GetInputs(),
		Description:        s.GetDescription(),
		Labels:             s.GetLabels(),
		Converged:          true,
		Outputs:            a.GetOutputs(),
		ClvParameters:      proto.Clone(a.GetClv()).(*modelv1.ClvParameters),
		ClvEvaluation:      byFrequency,
	}
	return r.register(ctx, mv, a)
}

// CLVHoldout evaluates a CLV model on the holdout purchases of customers b, their rows' labels
// in d, over a holdout period of holdoutDays (evaluate.CLVHoldout); customers without a label
// are left out. It returns the metrics, the evaluation by calibration frequency and the
// customers evaluated.
func CLVHoldout(d *dataset.Dataset, b *dataset.BTYD, m *artifact.CLVModel, holdoutDays float64) ([]*commonv1.Metric, *modelv1.ClvEvaluation, int, error) {
	var customers []clv.Customer
	var actual []float64
	for k, c := range b.Customers {
		if y, ok := dataset.Target(d.Labels[b.Rows[k]], nil); ok {
			customers = append(customers, c)
			actual = append(actual, y)
		}
	}
	if len(customers) == 0 {
		return nil, nil, 0, errors.New("no customer has both a purchase before the cutoff and a holdout label to evaluate the model on")
	}
	t := holdoutDays / m.TimeUnitDays
	ms, expected, err := evaluate.CLVHoldout(m.BGNBD.BGNBDParams, customers, actual, t)
	if err != nil {
		return nil, nil, 0, err
	}
	ev := &modelv1.ClvEvaluation{HoldoutUnits: t, FrequencyBins: evaluate.CLVFrequencyBins(customers, actual, expected, clvFrequencyBins)}
	return ms, ev, len(customers), nil
}

// clvFrequencyBins is the last calibration frequency of the evaluation by frequency: its bin
// holds that frequency and more, as Fader and Hardie's 7+.
const clvFrequencyBins = 7

func gammaGammaText(g *clv.GammaGamma) string {
	if g == nil {
		return ""
	}
	return fmt.Sprintf("; Gamma-Gamma on %d customers: p %.4g, q %.4g, gamma %.4g, log-likelihood %.2f", g.Customers, g.P, g.Q, g.Gamma, g.LogLik)
}

func metricsText(ms []*commonv1.Metric) string {
	out := ""
	for i, m := range ms {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%s %.4g", m.GetName(), m.GetValue())
	}
	return out
}
