package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/clv"
	"github.com/bullseye-ml/bullseye/pkg/report"
)

// maxCurveCutoffs bounds the cutoffs of a repeat-purchase curve (the feature service's limit
// of a rolling cutoff).
const maxCurveCutoffs = 1000

// repeatCurve builds a customer lifetime value version's cumulative repeat-purchase curve
// from the feature service, one point per time unit of the model from the cohort's first
// purchase day to the end of the holdout period. The cohort is the customers with a
// purchase before the version's cutoff (its training set's); their actual cumulative repeat
// purchases at a time are the sum of their BTYD frequencies at that cutoff, and the expected
// ones the sum of BG/NBD's E[X(t)] over the time t each has been a customer. It returns nil
// for a version without a fixed cutoff.
func repeatCurve(ctx context.Context, env *Env, mv *modelv1.ModelVersion, ts *featurev1.TrainingSetSpec) (*report.RepeatCurve, error) {
	p := mv.GetClvParameters()
	cutoff := ts.GetCutoff().GetFixedTime()
	horizon := ts.GetLabel().GetOutcome().GetHorizon()
	unitDays := p.GetTimeUnitDays()
	if p == nil || cutoff == nil || horizon == nil || !(unitDays > 0) {
		return nil, nil
	}
	conn, err := env.dial(ctx, "feature")
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	client := featurev1.NewFeatureServiceClient(conn)
	freq, age := p.GetInputs().GetFrequency(), p.GetInputs().GetAgeDays()

	// The cohort at the cutoff: each customer's age in days.
	spec := proto.Clone(ts).(*featurev1.TrainingSetSpec)
	spec.FeatureNames, spec.Split = []string{freq, age}, nil
	ages := map[string]float64{}
	err = readRows(ctx, client, spec, func(entity string, vals []float64) {
		if !math.IsNaN(vals[1]) && vals[1] > 0 {
			ages[entity] = vals[1]
		}
	})
	if err != nil {
		return nil, err
	}
	if len(ages) == 0 {
		return nil, nil
	}
	oldest := 0.0
	byAge := map[float64]int{}
	for _, a := range ages {
		oldest = math.Max(oldest, a)
		byAge[a]++
	}
	// Times from the cohort's start (the oldest customer's first purchase day), in days.
	start := cutoff.AsTime().Add(-time.Duration(oldest * 24 * float64(time.Hour)))
	end := cutoff.AsTime().Add(horizon.AsDuration())
	step := time.Duration(unitDays * 24 * float64(time.Hour))
	n := int(end.Sub(start) / step)
	if n < 2 {
		return nil, nil
	}
	n = min(n, maxCurveCutoffs)
	rolling := proto.Clone(ts).(*featurev1.TrainingSetSpec)
	rolling.FeatureNames, rolling.Split = []string{freq}, nil
	rolling.Cutoff = &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_Rolling{Rolling: &featurev1.RollingCutoff{
		StartTime: timestamppb.New(start.Add(step)), EndTime: timestamppb.New(start.Add(time.Duration(n) * step)), Step: durationpb.New(step)}}}
	actual := make([]float64, n)
	err = readRowsAt(ctx, client, rolling, func(entity string, at time.Time, vals []float64) {
		if _, ok := ages[entity]; !ok || math.IsNaN(vals[0]) {
			return
		}
		if k := int(math.Round(at.Sub(start).Hours()/24/unitDays)) - 1; k >= 0 && k < n {
			actual[k] += vals[0]
		}
	})
	if err != nil {
		return nil, err
	}
	bg := clv.BGNBDParams{R: p.GetBgNbd().GetR(), Alpha: p.GetBgNbd().GetAlpha(), A: p.GetBgNbd().GetA(), B: p.GetBgNbd().GetB()}
	c := &report.RepeatCurve{Unit: unitName(unitDays), Customers: len(ages), Calibration: oldest / unitDays}
	for k := range n {
		t := float64(k+1) * unitDays // days since the start
		var e float64
		for a, count := range byAge {
			if since := t - (oldest - a); since > 0 {
				e += float64(count) * bg.ExpectedRepeatPurchases(since/unitDays)
			}
		}
		c.Times = append(c.Times, float64(k+1))
		c.Actual = append(c.Actual, actual[k])
		c.Expected = append(c.Expected, e)
	}
	return c, nil
}

func unitName(days float64) string {
	switch days {
	case 7:
		return "weeks"
	case 1:
		return "days"
	}
	return fmt.Sprintf("units of %g days", days)
}

// readRows streams a training set and calls row with each row's entity and its features as
// numbers (NaN for missing).
func readRows(ctx context.Context, client featurev1.FeatureServiceClient, spec *featurev1.TrainingSetSpec, row func(entity string, vals []float64)) error {
	return readRowsAt(ctx, client, spec, func(entity string, _ time.Time, vals []float64) { row(entity, vals) })
}

func readRowsAt(ctx context.Context, client featurev1.FeatureServiceClient, spec *featurev1.TrainingSetSpec, row func(entity string, at time.Time, vals []float64)) error {
	stream, err := client.BuildTrainingSet(ctx, &featurev1.BuildTrainingSetRequest{Spec: spec, RowsPerMessage: 5000})
	if err != nil {
		return fmt.Errorf("building the training set of the repeat-purchase curve: %w", err)
	}
	var vals []float64
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the training set of the repeat-purchase curve: %w", err)
		}
		for _, r := range msg.GetRows() {
			vals = vals[:0]
			for _, v := range r.GetFeatures() {
				x := math.NaN()
				switch k := v.GetKind().(type) {
				case *commonv1.Value_NumberValue:
					x = k.NumberValue
				case *commonv1.Value_IntValue:
					x = float64(k.IntValue)
				}
				vals = append(vals, x)
			}
			row(r.GetEntity().GetId(), r.GetCutoffTime().AsTime(), vals)
		}
	}
}
