package report_test

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
)

// The fixtures are shaped like the demo's models: a Bank Marketing response classifier
// (about 11% positives, AUC near 0.8) and a CDNOW spend regression (most customers spend
// nothing in the horizon; spenders' amounts are log-normal). Their metrics and curves are
// computed with pkg/ml/metrics from a synthetic scored sample, as the training service
// computes them.

var registered = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

func sigmoid(v float64) float64 { return 1 / (1 + math.Exp(-v)) }

func num(v float64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: v}}
}
func str(s string) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
}
func boolean(b bool) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: b}}
}

func metric(name string, v float64) *commonv1.Metric { return &commonv1.Metric{Name: name, Value: v} }

// must returns v, panicking (which fails the test) on an error from a fixture's
// computation.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// scoredSample returns labels and predicted probabilities of a slightly over-confident
// classifier.
func scoredSample(n int, seed uint64) (y, p []float64) {
	r := rand.New(rand.NewPCG(seed, 42))
	for range n {
		z, w := r.NormFloat64(), r.NormFloat64()
		label := 0.0
		if r.Float64() < sigmoid(-2.55+1.35*z+0.7*w) {
			label = 1
		}
		y = append(y, label)
		p = append(p, sigmoid(-2.45+1.5*z+0.25*r.NormFloat64()))
	}
	return y, p
}

// rocCurve is the ROC curve as the training service computes it, thinned to maxPoints.
func rocCurve(y, s []float64, maxPoints int) []*modelv1.RocPoint {
	var out []*modelv1.RocPoint
	for _, pt := range must(metrics.ROC(y, s, maxPoints)) {
		out = append(out, &modelv1.RocPoint{Threshold: pt.Threshold, FalsePositiveRate: pt.FalsePositiveRate, TruePositiveRate: pt.TruePositiveRate})
	}
	return out
}

// binaryEvaluation returns the metrics and curves of a scored sample.
func binaryEvaluation(t testing.TB, y, p []float64) ([]*commonv1.Metric, *modelv1.ClassificationCurves) {
	t.Helper()
	c := must(metrics.At(y, p, 0.5))
	ms := []*commonv1.Metric{
		metric("roc_auc", must(metrics.ROCAUC(y, p))),
		metric("pr_auc", must(metrics.AveragePrecision(y, p))),
		metric("log_loss", must(metrics.LogLoss(y, p))),
		metric("brier", must(metrics.Brier(y, p))),
		metric("accuracy", c.Accuracy()),
		metric("precision", c.Precision()),
		metric("recall", c.Recall()),
		metric("f1", c.F1()),
	}
	curves := &modelv1.ClassificationCurves{Roc: rocCurve(y, p, 200)}
	curves.Lift = must(metricsGains(y, p, 10))
	for _, b := range must(metrics.Calibration(y, p, 10)) {
		curves.Calibration = append(curves.Calibration, &modelv1.CalibrationBin{
			LowerBound: b.Lo, UpperBound: b.Hi, Rows: int64(b.Rows), MeanPredicted: b.MeanPredicted, ObservedRate: b.Observed,
		})
	}
	return ms, curves
}

// cv turns point metrics into cross-validation means with a standard deviation.
func cv(ms []*commonv1.Metric, shift, sd float64) []*commonv1.Metric {
	out := make([]*commonv1.Metric, len(ms))
	for i, m := range ms {
		out[i] = &commonv1.Metric{Name: m.GetName(), Value: m.GetValue() + shift, StdDev: sd * (1 + float64(i)/10)}
	}
	return out
}

// entry returns a leaderboard entry with five folds around score.
func entry(rank, idx int32, fam modelv1.ModelFamily, label, metricName string, score, sd float64, fit time.Duration, params map[string]*commonv1.Value) *modelv1.LeaderboardEntry {
	e := &modelv1.LeaderboardEntry{
		Rank: rank, CandidateIndex: idx, Family: fam, Label: label, Hyperparameters: params,
		Score: score, ScoreStdDev: sd, Converged: true, MeanFitTime: durationpb.New(fit),
		Metrics: []*commonv1.Metric{{Name: metricName, Value: score, StdDev: sd}},
	}
	for f := range int32(5) {
		e.Folds = append(e.Folds, &modelv1.FoldResult{
			Fold: f + 1, Metrics: []*commonv1.Metric{metric(metricName, score+sd*(float64(f)-2)/1.6)},
			TrainRows: 26360, ValidationRows: 6590, Converged: true, Iterations: 12 + 3*f,
			FitTime: durationpb.New(fit + time.Duration(f)*fit/20),
		})
	}
	return e
}

func classifierVersion(t testing.TB) *modelv1.ModelVersion {
	y, p := scoredSample(8238, 7)
	test, curves := binaryEvaluation(t, y, p)
	auc := test[0].GetValue()
	hp := map[string]*commonv1.Value{"c": num(1), "penalty": str("l2"), "class_weight": str("none"), "fit_intercept": boolean(true)}
	svm := entry(3, 4, modelv1.ModelFamily_MODEL_FAMILY_LINEAR_SVM, "linear-svm", "roc_auc", auc-0.0105, 0.0091, 1840*time.Millisecond,
		map[string]*commonv1.Value{"c": num(10), "loss": str("squared_hinge")})
	svm.Converged = false
	svm.Folds[2].Converged = false
	nys := entry(4, 5, modelv1.ModelFamily_MODEL_FAMILY_NYSTROM_SVM, "rbf-svm", "roc_auc", auc-0.0311, 0.0124, 74*time.Second,
		map[string]*commonv1.Value{"c": num(1), "kernel": str("rbf"), "gamma": str("scale"), "components": num(1000)})
	nys.KernelFallback = modelv1.KernelFallback_KERNEL_FALLBACK_NYSTROM
	failed := &modelv1.LeaderboardEntry{
		Rank: 5, CandidateIndex: 6, Family: modelv1.ModelFamily_MODEL_FAMILY_KERNEL_SVM, Label: "poly-svm",
		Hyperparameters: map[string]*commonv1.Value{"kernel": str("poly"), "degree": num(5)},
		Error:           &commonv1.Problem{Reason: "TIMEOUT", Description: "the candidate exceeded its time budget of 2m0s"},
	}
	return &modelv1.ModelVersion{
		ModelName: "bank-response", Version: 3,
		Family:          modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION,
		Task:            modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION,
		Hyperparameters: hp,
		TestMetrics:     test,
		CvMetrics:       cv(test, 0.004, 0.006),
		SelectionMetric: "roc_auc", SelectionDirection: modelv1.MetricDirection_METRIC_DIRECTION_MAXIMIZE,
		Leaderboard: []*modelv1.LeaderboardEntry{
			entry(1, 1, modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION, "logreg-l2", "roc_auc", auc+0.004, 0.006, 412*time.Millisecond, hp),
			entry(2, 2, modelv1.ModelFamily_MODEL_FAMILY_LOGISTIC_REGRESSION, "", "roc_auc", auc+0.0012, 0.0066, 1270*time.Millisecond,
				map[string]*commonv1.Value{"c": num(0.1), "penalty": str("l1")}),
			svm, nys, failed,
		},
		TestCurves: curves,
		Lineage: &modelv1.Lineage{
			JobId: "job-01JP8Y2K6W3", FeatureSet: "bank-marketing", FeatureSetVersion: 2,
			Data: must(anypb.New(&trainingv1.DataSpec{Source: &trainingv1.DataSpec_TrainingSet{TrainingSet: &featurev1.TrainingSetSpec{
				FeatureSet: &featurev1.FeatureSetRef{Name: "bank-marketing", Version: 2},
				Label: &featurev1.LabelSpec{Name: "subscribed", Source: &featurev1.LabelSpec_Trait{Trait: &featurev1.TraitLabel{
					Trait: "y", PositiveValues: []*commonv1.Value{str("yes")},
				}}},
				Cutoff: &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_FixedTime{FixedTime: timestamppb.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))}},
				Split:  &featurev1.SplitSpec{Method: &featurev1.SplitSpec_RowNumber{RowNumber: &featurev1.RowNumberSplit{Modulus: 5, TestRemainders: []int64{4}}}},
			}}})),
			TrainRows: 32950, TestRows: 8238, PositiveRows: 3712,
			CodeVersion: "v0.4.0", Seed: 42, TrainingSetId: "ts-4f1c9a", StreamSequence: 41188,
		},
		Artifact: &modelv1.ArtifactRef{
			Uri: "nats-object://bullseye-models/bank-response/3", SizeBytes: 18734,
			Sha256: "9f2c1e7a5b3d4c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcde",
		},
		Inputs: []*modelv1.InputColumn{
			{Name: "age", Type: commonv1.ValueType_VALUE_TYPE_INT},
			{Name: "job", Type: commonv1.ValueType_VALUE_TYPE_STRING},
			{Name: "balance", Type: commonv1.ValueType_VALUE_TYPE_NUMBER},
			{Name: "housing", Type: commonv1.ValueType_VALUE_TYPE_BOOL},
		},
		CreateTime:  timestamppb.New(registered),
		Description: "Term-deposit response, Bank Marketing (duration excluded).",
		Labels:      map[string]string{"campaign": "spring-2025"},
		Converged:   true,
	}
}

// spendSample returns predicted and actual spend of a CDNOW-like regression, plus the
// rows as Evaluate returns them (with an invalid row and an unlabelled row mixed in).
func spendSample(n int, seed uint64) (pred, act []float64, rows []*trainingv1.ScoredRow) {
	r := rand.New(rand.NewPCG(seed, 99))
	for i := range n {
		f := r.NormFloat64()
		buy := sigmoid(1.3*f - 0.6)
		amount := math.Exp(3.4 + 0.45*f + 0.8*r.NormFloat64())
		a := 0.0
		if r.Float64() < buy {
			a = math.Round(amount*100) / 100
		}
		pr := buy*math.Exp(3.4+0.45*f+0.32) + 6*r.NormFloat64()
		pred, act = append(pred, pr), append(act, a)
		rows = append(rows, &trainingv1.ScoredRow{Index: int64(i), Status: trainingv1.ScoredRowStatus_SCORED_ROW_STATUS_OK, Score: pr, Label: num(a)})
	}
	rows = append(rows,
		&trainingv1.ScoredRow{Index: int64(n), Status: trainingv1.ScoredRowStatus_SCORED_ROW_STATUS_INVALID,
			Problem: &commonv1.Problem{Field: "features.recency", Reason: "WRONG_TYPE"}},
		&trainingv1.ScoredRow{Index: int64(n + 1), Status: trainingv1.ScoredRowStatus_SCORED_ROW_STATUS_OK, Score: 12.5})
	return pred, act, rows
}

func regressionVersion(t testing.TB) (*modelv1.ModelVersion, *trainingv1.EvaluateResponse) {
	pred, act, rows := spendSample(5917, 3)
	test := []*commonv1.Metric{
		metric("rmse", must(metrics.RMSE(act, pred))),
		metric("mae", must(metrics.MAE(act, pred))),
		metric("r2", must(metrics.R2(act, pred))),
	}
	rmse := test[0].GetValue()
	mv := &modelv1.ModelVersion{
		ModelName: "cdnow-spend", Version: 1,
		Family:          modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION,
		Task:            modelv1.TaskKind_TASK_KIND_REGRESSION,
		Hyperparameters: map[string]*commonv1.Value{"alpha": num(1), "solver": str("qr"), "fit_intercept": boolean(true)},
		TestMetrics:     test,
		CvMetrics: []*commonv1.Metric{
			{Name: "rmse", Value: rmse + 0.8, StdDev: 1.9},
			{Name: "mae", Value: test[1].GetValue() + 0.5, StdDev: 1.1},
			{Name: "r2", Value: test[2].GetValue() - 0.011, StdDev: 0.018},
		},
		SelectionMetric: "rmse",
		Leaderboard: []*modelv1.LeaderboardEntry{
			entry(1, 2, modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION, "ridge", "rmse", rmse+0.8, 1.9, 38*time.Millisecond,
				map[string]*commonv1.Value{"alpha": num(1)}),
			entry(2, 1, modelv1.ModelFamily_MODEL_FAMILY_LINEAR_REGRESSION, "ols", "rmse", rmse+1.1, 2.0, 35*time.Millisecond,
				map[string]*commonv1.Value{"alpha": num(0)}),
			entry(3, 3, modelv1.ModelFamily_MODEL_FAMILY_LASSO, "lasso", "rmse", rmse+2.4, 2.2, 612*time.Microsecond,
				map[string]*commonv1.Value{"alpha": num(0.5)}),
		},
		Lineage: &modelv1.Lineage{
			JobId: "job-01JP8Z0QX1", FeatureSet: "cdnow-rfm", FeatureSetVersion: 1,
			Data: must(anypb.New(&trainingv1.DataSpec{Source: &trainingv1.DataSpec_TrainingSet{TrainingSet: &featurev1.TrainingSetSpec{
				FeatureSet: &featurev1.FeatureSetRef{Name: "cdnow-rfm", Version: 1},
				Label: &featurev1.LabelSpec{Name: "spend_39w", Source: &featurev1.LabelSpec_Outcome{Outcome: &featurev1.OutcomeLabel{
					Filter:      &featurev1.EventFilter{Names: []string{"Order Completed"}},
					Horizon:     durationpb.New(39 * 7 * 24 * time.Hour),
					Aggregation: featurev1.OutcomeAggregation_OUTCOME_AGGREGATION_SUM,
				}}},
				Cutoff: &featurev1.CutoffSpec{Cutoff: &featurev1.CutoffSpec_FixedTime{FixedTime: timestamppb.New(time.Date(1997, 10, 1, 0, 0, 0, 0, time.UTC))}},
				Split:  &featurev1.SplitSpec{Method: &featurev1.SplitSpec_EntityHash{EntityHash: &featurev1.EntityHashSplit{TestFraction: 0.25, Seed: 7}}},
			}}})),
			DataStartTime: timestamppb.New(time.Date(1997, 1, 1, 0, 0, 0, 0, time.UTC)),
			DataEndTime:   timestamppb.New(time.Date(1998, 6, 30, 0, 0, 0, 0, time.UTC)),
			TrainRows:     17653, TestRows: 5917, CodeVersion: "v0.4.0", Seed: 42,
		},
		CreateTime: timestamppb.New(registered),
		Converged:  true,
	}
	ev := &trainingv1.EvaluateResponse{
		ModelName: "cdnow-spend", ModelVersion: 1, Scores: rows, Metrics: test,
		RowsScored: int64(len(rows) - 1), RowsLabelled: int64(len(pred)), RowsInvalid: 1,
	}
	return mv, ev
}

func recommenderVersion() *modelv1.ModelVersion {
	return &modelv1.ModelVersion{
		ModelName: "product-recs", Version: 2,
		Family:          modelv1.ModelFamily_MODEL_FAMILY_IMPLICIT_ALS,
		Task:            modelv1.TaskKind_TASK_KIND_RECOMMENDATION_IMPLICIT,
		Hyperparameters: map[string]*commonv1.Value{"rank": num(32), "alpha": num(40)},
		TestMetrics:     []*commonv1.Metric{metric("ndcg_at_10", 0.18412), metric("precision_at_10", 0.0741), metric("catalogue_coverage", 0.4120)},
		SelectionMetric: "ndcg_at_10",
		Leaderboard: []*modelv1.LeaderboardEntry{
			entry(1, 1, modelv1.ModelFamily_MODEL_FAMILY_IMPLICIT_ALS, "", "ndcg_at_10", 0.181, 0.004, 2*time.Second, nil),
			entry(2, 2, modelv1.ModelFamily_MODEL_FAMILY_POPULARITY, "", "ndcg_at_10", 0.092, 0.003, 4*time.Millisecond, nil),
		},
		Lineage: &modelv1.Lineage{
			JobId: "job-rec", Users: 5000, Items: 800, TrainRows: 90000, TestRows: 10000,
			Data: must(anypb.New(&trainingv1.DataSpec{Source: &trainingv1.DataSpec_Interactions{Interactions: &trainingv1.InteractionsSpec{
				Export: &featurev1.ExportInteractionsRequest{Mode: &featurev1.ExportInteractionsRequest_Implicit{Implicit: &featurev1.ImplicitFeedback{
					EventWeights: map[string]float64{"Product Viewed": 1, "Order Completed": 5},
				}}},
				Split: &trainingv1.InteractionSplit{Method: &trainingv1.InteractionSplit_LastPerUser{LastPerUser: &trainingv1.LastPerUserSplit{N: 2}}},
			}}})),
		},
		Converged: true,
	}
}

// metricsGains returns the lift table of a scored sample over n bins.
func metricsGains(y, p []float64, n int) ([]*modelv1.LiftBin, error) {
	g, err := metrics.Gains(y, p, n)
	if err != nil {
		return nil, err
	}
	var out []*modelv1.LiftBin
	for _, r := range g {
		out = append(out, &modelv1.LiftBin{
			Bin: int32(r.Group), Rows: int64(r.Rows), Positives: int64(r.Positives), ResponseRate: r.Rate,
			Lift: r.Lift, CumulativeGain: r.CumulativeGain, CumulativeLift: r.CumulativeLift,
			MinProbability: r.MinScore, MaxProbability: r.MaxScore,
		})
	}
	return out, nil
}
