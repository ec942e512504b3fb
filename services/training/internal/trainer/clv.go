package trainer

import (
	"context"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/clv"
	"github.com/bullseye-ml/bullseye/services/training/internal/dataset"
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
	cols, err := clvColumns(d, hp.Inputs)
	if err != nil {
		return nil, err
	}
	train := d.Rows(trainingv1.DataPartition_DATA_PARTITION_TRAIN, s.GetData().GetTrainFilter())
	test := d.Rows(trainingv1.DataPartition_DATA_PARTITION_TEST, nil)
	model := &artifact.CLVModel{Inputs: hp.Inputs, TimeUnitDays: hp.UnitDays, Horizon: hp.Horizon}
	customers, trainRows, err := clvCustomers(d, cols, train, model)
	if err != nil {
		return nil, err
	}
	if skipped := len(train) - len(trainRows); skipped > 0 {
		r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, trainingv1.JobStage_JOB_STAGE_LOADING_DATA, "CUSTOMERS_WITHOUT_PURCHASES",
			"%d training customers had no purchase before the cutoff and were left out", skipped)
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
	evalRows := test
	if len(evalRows) == 0 {
		evalRows = trainRows
	}
	ms, evaluated, err := clvHoldout(d, cols, evalRows, model, spec.HoldoutDays(s))
	if err != nil {
		return nil, err
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
		"holdout purchases of %s (%d customers, %.4g days): %s", which, evaluated, spec.HoldoutDays(s), metricsText(ms))
	a.Metrics = ms

	if err := r.registering(ctx); err != nil {
		return nil, err
	}
	if a.Lineage, err = r.lineage(d, len(trainRows), len(test), 0, nil); err != nil {
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
	}
	return r.register(ctx, mv, a)
}

// clvColumns returns the positions in d's table of the model's four inputs, in the order
// frequency, recency, age, monetary.
func clvColumns(d *dataset.Dataset, in artifact.CLVInputs) ([4][]float64, error) {
	var out [4][]float64
	for k, name := range [4]string{in.Frequency, in.RecencyDays, in.AgeDays, in.Monetary} {
		c, ok := d.Table.Column(name)
		if !ok || c.Numeric == nil {
			return out, Failure(ReasonInvalidData, "the training set has no numeric column %q: a CLV model reads the columns of the feature set's RFM_STYLE_BTYD group (hyperparameter rfm_prefix names its prefix)", name)
		}
		out[k] = c.Numeric
	}
	return out, nil
}

// clvCustomers converts the given rows into the model's customers, leaving out those without
// a purchase (null BTYD values). A customer with a value no model can take is an error naming
// the customer and the column.
func clvCustomers(d *dataset.Dataset, cols [4][]float64, rows []int, m *artifact.CLVModel) ([]clv.Customer, []int, error) {
	var out []clv.Customer
	var kept []int
	for _, i := range rows {
		f, rec, age, mon := cols[0][i], cols[1][i], cols[2][i], cols[3][i]
		if math.IsNaN(f) && math.IsNaN(rec) && math.IsNaN(age) && math.IsNaN(mon) {
			continue
		}
		for k, name := range [4]string{m.Inputs.Frequency, m.Inputs.RecencyDays, m.Inputs.AgeDays, m.Inputs.Monetary} {
			if math.IsNaN(cols[k][i]) {
				return nil, nil, Failure(ReasonInvalidData, "customer %q: feature %q is missing", d.Entities[i], name)
			}
		}
		if err := m.Inputs.Check(f, rec, age, mon); err != nil {
			return nil, nil, Failure(ReasonInvalidData, "customer %q: %v", d.Entities[i], err)
		}
		out = append(out, m.Customer(d.Entities[i], f, rec, age, mon))
		kept = append(kept, i)
	}
	return out, kept, nil
}

// clvHoldout compares the expected purchases of the given customers over the holdout period
// of holdoutDays with their labels, the actual ones: per customer the MAE and RMSE, and the
// totals. Customers without a purchase before the cutoff, or without a label, are left out.
func clvHoldout(d *dataset.Dataset, cols [4][]float64, rows []int, m *artifact.CLVModel, holdoutDays float64) ([]*commonv1.Metric, int, error) {
	customers, kept, err := clvCustomers(d, cols, rows, m)
	if err != nil {
		return nil, 0, err
	}
	t := holdoutDays / m.TimeUnitDays
	var n int
	var abs, sq, actual, predicted float64
	for k, c := range customers {
		y, ok := dataset.Target(d.Labels[kept[k]], nil)
		if !ok {
			continue
		}
		e := m.BGNBD.ExpectedPurchases(c, t)
		n++
		abs += math.Abs(e - y)
		sq += (e - y) * (e - y)
		actual += y
		predicted += e
	}
	if n == 0 {
		return nil, 0, Failure(ReasonInvalidData, "no customer has both a purchase before the cutoff and a holdout label to evaluate the model on")
	}
	return []*commonv1.Metric{
		{Name: "mae", Value: abs / float64(n)},
		{Name: "rmse", Value: math.Sqrt(sq / float64(n))},
		{Name: "holdout_purchases_actual", Value: actual},
		{Name: "holdout_purchases_predicted", Value: predicted},
	}, n, nil
}

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
