// Package trainer runs one training job: it loads the training set from the feature service
// (after an optional feature selection), cross-validates the candidates with
// pkg/ml/selection, refits the winner on every training row, evaluates it on the test rows
// through the same artifact scorer serving uses, and registers it.
package trainer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"gonum.org/v1/gonum/mat"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
	"github.com/bullseye-ml/bullseye/pkg/ml/selection"
	"github.com/bullseye-ml/bullseye/pkg/registry"
	"github.com/bullseye-ml/bullseye/services/training/internal/dataset"
	"github.com/bullseye-ml/bullseye/services/training/internal/evaluate"
	"github.com/bullseye-ml/bullseye/services/training/internal/fault"
	"github.com/bullseye-ml/bullseye/services/training/internal/spec"
)

// Stable reasons of job failures (Job.error.reason).
const (
	ReasonInvalidSpec     = "INVALID_SPEC"
	ReasonInvalidData     = "INVALID_DATA"
	ReasonAllFailed       = "ALL_CANDIDATES_FAILED"
	ReasonRefitFailed     = "REFIT_FAILED"
	ReasonRegistryFailed  = "REGISTRATION_FAILED"
	ReasonTimeout         = "TIMEOUT"
	ReasonInternal        = "INTERNAL"
	maxVersionRecordBytes = 1 << 20
)

// Reporter receives a job's progress. Its methods are called from one goroutine at a time.
type Reporter interface {
	// Stage moves the job to a new stage.
	Stage(stage trainingv1.JobStage)
	// Update changes the job's progress.
	Update(func(p *trainingv1.JobProgress))
	// Message logs a message for people.
	Message(m *trainingv1.JobMessage)
}

// Outcome is what a successful job produced.
type Outcome struct {
	// Version is the registered version.
	Version *modelv1.ModelVersion
	// Metrics are the winner's test metrics, or its cross-validation metrics without a
	// test split.
	Metrics []*commonv1.Metric
}

// Trainer runs training jobs.
type Trainer struct {
	features    featurev1.FeatureServiceClient
	registry    *registry.Registry
	logger      *slog.Logger
	codeVersion string
}

// Option configures a Trainer.
type Option func(*Trainer)

// WithLogger sets the logger; the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(t *Trainer) { t.logger = l } }

// WithCodeVersion sets the code version recorded in lineage; the default is read from the
// binary's build information.
func WithCodeVersion(v string) Option { return func(t *Trainer) { t.codeVersion = v } }

// New returns a Trainer reading data from the feature service and registering in reg.
func New(features featurev1.FeatureServiceClient, reg *registry.Registry, opts ...Option) *Trainer {
	t := &Trainer{features: features, registry: reg, logger: slog.Default(), codeVersion: CodeVersion()}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Features returns the feature service client the trainer reads data with.
func (t *Trainer) Features() featurev1.FeatureServiceClient { return t.features }

// CodeVersion returns the training service's code version: its module version and, when the
// binary was built with it, the VCS revision.
func CodeVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := "bullseye-training " + bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v += " " + s.Value
		}
	}
	return v
}

// Failure returns an error of a failed job with a stable reason.
func Failure(reason, format string, args ...any) error {
	return &fault.Coded{Kind: fault.ErrFailedPrecondition, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// run is the state of one job run.
type run struct {
	t    *Trainer
	job  *trainingv1.Job
	spec *trainingv1.TrainingSpec
	rep  Reporter
}

func (r *run) msg(sev trainingv1.JobMessageSeverity, stage trainingv1.JobStage, code, format string, args ...any) {
	r.rep.Message(&trainingv1.JobMessage{Time: timestamppb.Now(), Severity: sev, Code: code, Text: fmt.Sprintf(format, args...), Stage: stage})
}

// percent bands of the stages.
var band = map[trainingv1.JobStage][2]float64{
	trainingv1.JobStage_JOB_STAGE_LOADING_DATA:       {0, 10},
	trainingv1.JobStage_JOB_STAGE_SELECTING_FEATURES: {10, 15},
	trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING:   {15, 85},
	trainingv1.JobStage_JOB_STAGE_REFITTING:          {85, 92},
	trainingv1.JobStage_JOB_STAGE_EVALUATING:         {92, 96},
	trainingv1.JobStage_JOB_STAGE_REGISTERING:        {96, 100},
	trainingv1.JobStage_JOB_STAGE_UNSPECIFIED:        {0, 0},
}

func (r *run) stage(s trainingv1.JobStage) {
	r.rep.Stage(s)
	r.rep.Update(func(p *trainingv1.JobProgress) {
		p.Percent = max(p.Percent, band[s][0])
		if s != trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING {
			p.Fold, p.CandidateIndex, p.CurrentMetrics = 0, 0, nil
		}
	})
}

// Run runs a job to its end: the registered version, or an error. It returns ctx's error
// promptly when ctx is cancelled.
func (t *Trainer) Run(ctx context.Context, job *trainingv1.Job, rep Reporter) (*Outcome, error) {
	s := job.GetSpec()
	if v := spec.Validate(s, "spec"); len(v) > 0 {
		return nil, Failure(ReasonInvalidSpec, "the job's spec is invalid: %v", v)
	}
	r := &run{t: t, job: job, spec: s, rep: rep}
	return r.run(ctx)
}

func (r *run) run(ctx context.Context) (*Outcome, error) {
	s := r.spec
	if spec.IsRecommendation(s.GetTask()) {
		return r.runRecommender(ctx)
	}
	ts := s.GetData().GetTrainingSet()
	task := s.GetTask()
	classify := task == modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION

	// Data.
	r.stage(trainingv1.JobStage_JOB_STAGE_LOADING_DATA)
	d, err := r.load(ctx, ts)
	if err != nil {
		return nil, err
	}
	if is := s.GetData().GetImportSplit(); is != nil {
		if err := d.SplitByImport(is); err != nil {
			return nil, Failure(ReasonInvalidData, "data.import_split: %v", err)
		}
	}
	if d.WrongType > 0 {
		r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING, trainingv1.JobStage_JOB_STAGE_LOADING_DATA,
			"VALUES_OF_WRONG_TYPE", "%d feature values did not have their column's type and were treated as missing", d.WrongType)
	}
	var selected []string
	if s.GetFeatureSelection().GetEnabled() {
		r.stage(trainingv1.JobStage_JOB_STAGE_SELECTING_FEATURES)
		if selected, err = r.selectFeatures(ctx, d); err != nil {
			return nil, err
		}
	}
	excluded := spec.Excluded(s.GetPreprocessing())
	var unknown []string
	for _, name := range excluded {
		if _, ok := d.Table.Column(name); !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING, trainingv1.JobStage_JOB_STAGE_LOADING_DATA,
			"EXCLUDED_COLUMN_UNKNOWN", "excluded columns %q are not in the training set", unknown)
	}
	d.Keep(func(name string) bool { return !slices.Contains(excluded, name) })
	if len(d.Table.Columns) == 0 {
		return nil, Failure(ReasonInvalidData, "no feature columns are left to train on")
	}

	// Labels and rows.
	trainRows := d.Rows(trainingv1.DataPartition_DATA_PARTITION_TRAIN, s.GetData().GetTrainFilter())
	testRows := d.Rows(trainingv1.DataPartition_DATA_PARTITION_TEST, nil)
	var classes *dataset.Classes
	if classify {
		if classes, err = dataset.BinaryClasses(d.Labels, trainRows); err != nil {
			return nil, Failure(ReasonInvalidData, "the training rows' labels: %v", err)
		}
		if classes.Guessed {
			r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING, trainingv1.JobStage_JOB_STAGE_LOADING_DATA,
				"POSITIVE_CLASS_GUESSED", "the label's positive class was taken to be %q (the last in name order); give a TraitLabel.positive_values to choose it",
				classes.Positive.GetStringValue())
		}
	}
	targets := func(rows []int) ([]int, []float64) {
		var keep []int
		var y []float64
		for _, i := range rows {
			if v, ok := dataset.Target(d.Labels[i], classes); ok {
				keep = append(keep, i)
				y = append(y, v)
			}
		}
		return keep, y
	}
	before := len(trainRows) + len(testRows)
	trainRows, yTrain := targets(trainRows)
	testRows, yTest := targets(testRows)
	if dropped := before - len(trainRows) - len(testRows); dropped > 0 {
		r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING, trainingv1.JobStage_JOB_STAGE_LOADING_DATA,
			"ROWS_WITHOUT_LABEL", "%d rows without a usable label were left out", dropped)
	}
	folds := spec.Folds(s)
	if len(trainRows) < 2*folds {
		return nil, Failure(ReasonInvalidData, "%d labelled training rows are too few for %d folds", len(trainRows), folds)
	}
	var positives int
	if classify {
		for _, v := range yTrain {
			if v != 0 {
				positives++
			}
		}
		if positives < folds || len(yTrain)-positives < folds {
			return nil, Failure(ReasonInvalidData, "the training rows have %d positive and %d negative labels; each class needs at least one row per fold (%d)",
				positives, len(yTrain)-positives, folds)
		}
	}
	trainTable := d.Table.Subset(trainRows)
	r.rep.Update(func(p *trainingv1.JobProgress) {
		p.RowsLoaded = int64(d.Len())
		p.Percent = band[trainingv1.JobStage_JOB_STAGE_LOADING_DATA][1]
	})

	// Preprocessing and candidates.
	var cols []spec.Column
	for _, c := range d.Columns() {
		cols = append(cols, spec.Column{Name: c.GetName(), Type: c.GetType()})
	}
	prep, notes := spec.Preprocessing(s.GetPreprocessing(), cols)
	for _, n := range notes {
		r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING, trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING, "PREPROCESSING_OPTION_IGNORED", "%s", n)
	}
	metricName, metric := spec.Metric(s)
	cands, _ := spec.Expand(s, "spec")
	built := make([]spec.Built, len(cands))
	search := make([]selection.Candidate, len(cands))
	for i, c := range cands {
		built[i] = spec.Build(c, s, len(trainRows), metric.NeedsProbability)
		b := built[i]
		if b.Note != "" {
			code := "KERNEL_SVM_NYSTROM_FALLBACK"
			if b.Fallback == modelv1.KernelFallback_KERNEL_FALLBACK_SUBSAMPLE {
				code = "KERNEL_SVM_SUBSAMPLED"
			}
			r.rep.Message(&trainingv1.JobMessage{Time: timestamppb.Now(), Severity: trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING,
				Code: code, Text: fmt.Sprintf("candidate %d: %s", c.Index, b.Note), Stage: trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING, CandidateIndex: int32(c.Index)})
		}
		search[i] = selection.Candidate{Family: selection.Family{Name: familyName(b.Family), New: func(selection.Params) (ml.Estimator, error) {
			if b.Err != nil {
				return nil, b.Err
			}
			return b.CV, nil
		}}}
	}
	threshold, bins, rocPoints := spec.Evaluation(s.GetEvaluation())

	// fit fits candidate i on every training row, preprocessing included, as an artifact.
	var pipe *preprocess.Pipeline
	var x *mat.Dense
	fit := func(i int) (*modelv1.ModelArtifact, time.Duration, error) {
		start := time.Now()
		if pipe == nil {
			if pipe, x, err = preprocess.FitTransform(trainTable, prep); err != nil {
				pipe = nil
				return nil, 0, Failure(ReasonRefitFailed, "fitting the preprocessing on the training rows: %v", err)
			}
		}
		b := built[i]
		if b.Err != nil {
			return nil, 0, b.Err
		}
		model, err := b.Refit.Fit(ctx, x, yTrain)
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		if err != nil {
			return nil, 0, Failure(ReasonRefitFailed, "fitting candidate %d (%v): %v", i+1, b.Family, err)
		}
		fitTime := time.Since(start)
		a, err := artifact.Encode(&artifact.Fitted{Family: b.Family, Task: task, Inputs: d.Columns(), Pipeline: pipe, Model: model})
		if err != nil {
			return nil, 0, fmt.Errorf("encoding the model: %w", err)
		}
		if a.Solver == nil {
			a.Solver = &modelv1.SolverReport{Converged: true}
		}
		a.Solver.FitTime = durationpb.New(fitTime)
		a.Hyperparameters = cands[i].Params
		if classify {
			a.Classification = &modelv1.ClassificationOutput{PositiveLabel: classes.Positive, NegativeLabel: classes.Negative, Threshold: threshold}
		}
		return a, fitTime, nil
	}
	// test scores an artifact on the test rows, through the artifact's scorer.
	test := func(a *modelv1.ModelArtifact) ([]*commonv1.Metric, *modelv1.ClassificationCurves, error) {
		scorer, err := artifact.NewScorer(a)
		if err != nil {
			return nil, nil, fmt.Errorf("loading the model for evaluation: %w", err)
		}
		var out artifact.Result
		if err := scorer.Score(ctx, &artifact.Batch{Table: d.Table.Subset(testRows)}, &out); err != nil {
			return nil, nil, fmt.Errorf("scoring the test rows: %w", err)
		}
		if classify {
			ms, curves := evaluate.Binary(yTest, out.Scores, out.Probabilities, evaluate.Options{Threshold: threshold, Bins: bins, MaxROCPoints: rocPoints})
			return ms, curves, nil
		}
		ms, err := evaluate.Regression(yTest, out.Scores)
		if err != nil {
			return nil, nil, fmt.Errorf("evaluating: %w", err)
		}
		return ms, nil, nil
	}

	var (
		leaderboard []*modelv1.LeaderboardEntry
		wi          int
		a           *modelv1.ModelArtifact
		testMetrics []*commonv1.Metric
		curves      *modelv1.ClassificationCurves
		tested      bool
	)
	if spec.NoCV(s) {
		// Fit and test: each candidate once on the training rows, scored on the test rows.
		if len(testRows) == 0 {
			return nil, Failure(ReasonInvalidData, "cross_validation.folds 0 scores each candidate on the test rows, and the training set has no labelled test rows")
		}
		r.stage(trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING)
		r.rep.Update(func(p *trainingv1.JobProgress) { p.FoldCount, p.CandidateCount = 1, int32(len(cands)) })
		board := newBoard(cands, built, 1, metricName, metric, task)
		arts := make([]*modelv1.ModelArtifact, len(cands))
		tests := make([][]*commonv1.Metric, len(cands))
		curvesOf := make([]*modelv1.ClassificationCurves, len(cands))
		for i := range cands {
			a, fitTime, err := fit(i)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			p := selection.Progress{Candidate: i, Done: i + 1, Total: len(cands), TrainRows: len(trainRows), TestRows: len(testRows),
				FitTime: fitTime, Err: err, Score: math.NaN()}
			if err == nil {
				tests[i], curvesOf[i], err = test(a)
				p.Err = err
			}
			if err == nil {
				arts[i] = a
				p.Converged, p.Iterations = a.GetSolver().GetConverged(), int(a.GetSolver().GetIterations())
				p.Metrics = map[string]float64{}
				for _, m := range tests[i] {
					key := m.GetName()
					if key == "pr_auc" {
						key = "average_precision"
					}
					p.Metrics[key] = m.GetValue()
				}
				if v, ok := p.Metrics[metricName]; ok {
					p.Score = v
				}
			}
			entries, current := board.add(p)
			r.rep.Update(func(jp *trainingv1.JobProgress) {
				jp.Fold, jp.CandidateIndex, jp.CandidatesDone = 1, int32(i+1), int32(len(entries))
				lo, hi := band[trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING][0], band[trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING][1]
				jp.Percent = lo + (hi-lo)*float64(i+1)/float64(len(cands))
				jp.CurrentMetrics = current
				jp.Leaderboard = entries
			})
		}
		leaderboard = board.final(nil)
		r.reportBoard(leaderboard)
		if leaderboard[0].GetError() != nil {
			return nil, Failure(ReasonAllFailed, "every candidate failed; the first: %s", leaderboard[0].GetError().GetDescription())
		}
		wi = int(leaderboard[0].GetCandidateIndex()) - 1
		a, testMetrics, curves, tested = arts[wi], tests[wi], curvesOf[wi], true
		r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING, "NO_CROSS_VALIDATION",
			"no cross-validation (folds 0): %d candidates fitted once on %d training rows and scored on %d test rows", len(cands), len(trainRows), len(testRows))
		if len(cands) > 1 {
			r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING, trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING, "TEST_ROWS_CHOSE_WINNER",
				"the test rows chose the winner among %d candidates: its test metrics are optimistic", len(cands))
		}
	} else {
		groups := make([]string, len(trainRows))
		times := make([]float64, len(trainRows))
		for k, i := range trainRows {
			groups[k] = d.Entities[i]
			times[k] = float64(d.Cutoffs[i].Unix())
		}
		splitter, _ := spec.Splitter(s, yTrain, groups, times)

		// Cross-validation.
		r.stage(trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING)
		r.rep.Update(func(p *trainingv1.JobProgress) {
			p.FoldCount, p.CandidateCount = int32(folds), int32(len(cands))
		})
		board := newBoard(cands, built, folds, metricName, metric, task)
		extra := make([]string, 0)
		for _, m := range spec.TaskMetrics(task) {
			if m == "pr_auc" {
				m = "average_precision"
			}
			extra = append(extra, m)
		}
		sr := &selection.Search{
			Candidates:  search,
			Preprocess:  prep,
			Splitter:    splitter,
			Metric:      metricName,
			Parallelism: int(s.GetResources().GetParallelism()),
			NoRefit:     true,
			Extra:       extra,
			Progress: func(p selection.Progress) {
				entries, current := board.add(p)
				r.rep.Update(func(jp *trainingv1.JobProgress) {
					jp.Fold, jp.CandidateIndex = int32(p.Fold+1), int32(p.Candidate+1)
					jp.CandidatesDone = int32(len(entries))
					lo, hi := band[trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING][0], band[trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING][1]
					jp.Percent = lo + (hi-lo)*float64(p.Done)/float64(p.Total)
					jp.CurrentMetrics = current
					jp.Leaderboard = entries
				})
			},
		}
		res, err := sr.Run(ctx, trainTable, yTrain)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if res == nil && err != nil {
			return nil, fmt.Errorf("cross-validation: %w", err)
		}
		leaderboard = board.final(res)
		r.reportBoard(leaderboard)
		if err != nil {
			return nil, Failure(ReasonAllFailed, "every candidate failed; the first: %s", leaderboard[0].GetError().GetDescription())
		}
		wi = int(leaderboard[0].GetCandidateIndex()) - 1

		// Refit.
		r.stage(trainingv1.JobStage_JOB_STAGE_REFITTING)
		if a, _, err = fit(wi); err != nil {
			var c *fault.Coded
			if errors.As(err, &c) || ctx.Err() != nil {
				return nil, err
			}
			return nil, Failure(ReasonRefitFailed, "refitting candidate %d (%v): %v", wi+1, built[wi].Family, err)
		}
	}
	winner := leaderboard[0]
	wb := built[wi]
	if !a.GetSolver().GetConverged() {
		r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING, trainingv1.JobStage_JOB_STAGE_REFITTING,
			"SOLVER_NOT_CONVERGED", "the final fit's solver did not reach its tolerance within its iteration cap (%d iterations)", a.GetSolver().GetIterations())
	}

	// Evaluation on the test rows, through the artifact's scorer.
	r.stage(trainingv1.JobStage_JOB_STAGE_EVALUATING)
	if len(testRows) > 0 && !tested {
		if testMetrics, curves, err = test(a); err != nil {
			return nil, err
		}
	} else if len(testRows) == 0 {
		r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, trainingv1.JobStage_JOB_STAGE_EVALUATING,
			"NO_TEST_SPLIT", "the training set has no test rows: the model's metrics are its cross-validation metrics")
	}
	cvMetrics := winner.GetMetrics()
	if spec.NoCV(s) {
		cvMetrics = nil
	}
	a.Metrics = testMetrics
	if len(testMetrics) == 0 {
		a.Metrics = cvMetrics
	}

	// Registration.
	r.stage(trainingv1.JobStage_JOB_STAGE_REGISTERING)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lineage, err := r.lineage(d, len(trainRows), len(testRows), positives, selected)
	if err != nil {
		return nil, err
	}
	a.Lineage = lineage
	mv := &modelv1.ModelVersion{
		ModelName:          s.GetModelName(),
		Family:             wb.Family,
		Task:               task,
		Hyperparameters:    cands[wi].Params,
		TestMetrics:        testMetrics,
		CvMetrics:          cvMetrics,
		SelectionMetric:    metricName,
		SelectionDirection: spec.Direction(s),
		Leaderboard:        cloneEntries(leaderboard),
		TestCurves:         curves,
		Lineage:            lineage,
		Inputs:             a.GetInputs(),
		Description:        s.GetDescription(),
		Labels:             s.GetLabels(),
		KernelFallback:     wb.Fallback,
		Converged:          a.GetSolver().GetConverged(),
	}
	return r.register(ctx, mv, a)
}

// reportBoard logs the leaderboard's failed candidates and those whose solver did not reach
// its tolerance.
func (r *run) reportBoard(leaderboard []*modelv1.LeaderboardEntry) {
	for _, e := range leaderboard {
		switch {
		case e.GetError() != nil:
			r.rep.Message(&trainingv1.JobMessage{Time: timestamppb.Now(), Severity: trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_ERROR,
				Code: "CANDIDATE_FAILED", Text: fmt.Sprintf("candidate %d (%v) failed: %s", e.GetCandidateIndex(), e.GetFamily(), e.GetError().GetDescription()),
				Stage: trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING, CandidateIndex: e.GetCandidateIndex()})
		case !e.GetConverged():
			r.rep.Message(&trainingv1.JobMessage{Time: timestamppb.Now(), Severity: trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING,
				Code: "SOLVER_NOT_CONVERGED", Text: fmt.Sprintf("candidate %d (%v): the solver did not reach its tolerance within its iteration cap on some fold", e.GetCandidateIndex(), e.GetFamily()),
				Stage: trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING, CandidateIndex: e.GetCandidateIndex()})
		}
	}
}

// register records the fit, registers the version with its artifact, reports it and ends the
// job's progress. A version an earlier attempt of the job registered is found, not added
// again.
func (r *run) register(ctx context.Context, mv *modelv1.ModelVersion, a *modelv1.ModelArtifact) (*Outcome, error) {
	FitRecord(mv)
	v, created, err := r.t.registry.Register(ctx, mv, a)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, registry.ErrConflict) {
			return nil, Failure("TASK_MISMATCH", "model %q holds versions of another task", mv.GetModelName())
		}
		return nil, &fault.Coded{Kind: fault.ErrUnavailable, Reason: ReasonRegistryFailed, Message: "registering the model failed", Cause: err}
	}
	verb := "registered"
	if !created {
		verb = "found already registered (by an earlier attempt of this job)"
	}
	r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, trainingv1.JobStage_JOB_STAGE_REGISTERING, "MODEL_REGISTERED",
		"%s %s version %d: %v", verb, v.GetModelName(), v.GetVersion(), mv.GetFamily())
	r.rep.Update(func(p *trainingv1.JobProgress) { p.Percent = 100 })
	return &Outcome{Version: v, Metrics: a.GetMetrics()}, nil
}

// loadAttempts bounds the attempts at reading the training set while the feature service
// is unavailable, waiting 1, 2, 4, 8 and 16 seconds between them.
const loadAttempts = 6

// load reads the training set, waiting for an unavailable feature service for a while.
func (r *run) load(ctx context.Context, ts *featurev1.TrainingSetSpec) (*dataset.Dataset, error) {
	return loadRetrying(ctx, r, func(progress func(int64)) (*dataset.Dataset, error) {
		return dataset.Load(ctx, r.t.features, ts, progress)
	})
}

// loadRetrying runs read, which reports rows loaded to progress, up to loadAttempts times
// while the feature service is unavailable, saying so in the job's messages.
func loadRetrying[T any](ctx context.Context, r *run, read func(progress func(int64)) (T, error)) (T, error) {
	wait := time.Second
	for attempt := 1; ; attempt++ {
		d, err := read(func(n int64) {
			r.rep.Update(func(p *trainingv1.JobProgress) { p.RowsLoaded = n })
		})
		if err == nil || !errors.Is(err, fault.ErrUnavailable) || attempt == loadAttempts {
			return d, err
		}
		r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING, trainingv1.JobStage_JOB_STAGE_LOADING_DATA,
			"FEATURE_SERVICE_UNAVAILABLE", "the feature service is unavailable (attempt %d of %d); trying again in %v", attempt, loadAttempts, wait)
		select {
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// cloneEntries deep-copies leaderboard entries, which the job's progress shares.
func cloneEntries(es []*modelv1.LeaderboardEntry) []*modelv1.LeaderboardEntry {
	out := make([]*modelv1.LeaderboardEntry, len(es))
	for i, e := range es {
		out[i] = proto.Clone(e).(*modelv1.LeaderboardEntry)
	}
	return out
}

// FitRecord trims a version's leaderboard until its record fits in an etcd value: first the
// per-fold results, then the entries beyond the first 100.
func FitRecord(mv *modelv1.ModelVersion) {
	if proto.Size(mv) <= maxVersionRecordBytes {
		return
	}
	for _, e := range mv.GetLeaderboard() {
		e.Folds = nil
	}
	if proto.Size(mv) > maxVersionRecordBytes && len(mv.Leaderboard) > 100 {
		mv.Leaderboard = mv.Leaderboard[:100]
	}
}

func (r *run) lineage(d *dataset.Dataset, train, test, positives int, selected []string) (*modelv1.Lineage, error) {
	data, err := lineageData(r.spec)
	if err != nil {
		return nil, err
	}
	l := &modelv1.Lineage{
		JobId:             r.job.GetJobId(),
		FeatureSet:        d.Header.GetFeatureSet().GetName(),
		FeatureSetVersion: d.Header.GetFeatureSet().GetVersion(),
		Data:              data,
		TrainRows:         int64(train),
		TestRows:          int64(test),
		PositiveRows:      int64(positives),
		SelectedFeatures:  selected,
		CodeVersion:       r.t.codeVersion,
		Seed:              spec.Seed(r.spec),
		TrainingSetId:     d.Header.GetTrainingSetId(),
		StreamSequence:    d.Header.GetStreamSequence(),
		DataStartTime:     d.Summary.GetMinCutoffTime(),
		DataEndTime:       d.Summary.GetMaxCutoffTime(),
	}
	if l.FeatureSet == "" {
		l.FeatureSet = r.spec.GetData().GetTrainingSet().GetFeatureSet().GetName()
	}
	if l.DataStartTime == nil && len(d.Cutoffs) > 0 {
		lo, hi := d.Cutoffs[0], d.Cutoffs[0]
		for _, c := range d.Cutoffs {
			if c.Before(lo) {
				lo = c
			}
			if c.After(hi) {
				hi = c
			}
		}
		l.DataStartTime, l.DataEndTime = timestamppb.New(lo), timestamppb.New(hi)
	}
	return l, nil
}

// lineageData is a spec's data spec as a lineage carries it.
func lineageData(s *trainingv1.TrainingSpec) (*anypb.Any, error) {
	data, err := anypb.New(s.GetData())
	if err != nil {
		return nil, fmt.Errorf("recording the data spec in the lineage: %w", err)
	}
	return data, nil
}

// selectFeatures asks the feature service to rank the features and keeps the best, returning
// the kept names in column order.
func (r *run) selectFeatures(ctx context.Context, d *dataset.Dataset) ([]string, error) {
	fs := r.spec.GetFeatureSelection()
	resp, err := r.t.features.SelectFeatures(ctx, &featurev1.SelectFeaturesRequest{
		Spec:           r.spec.GetData().GetTrainingSet(),
		MaxRows:        fs.GetMaxRows(),
		MinVariance:    fs.GetMinVariance(),
		MaxCorrelation: fs.GetMaxCorrelation(),
	})
	if err != nil {
		return nil, dataset.FeatureError("selecting features", err)
	}
	drop := map[string]string{}
	if !fs.GetKeepSuggestedDrops() {
		for _, s := range resp.GetSuggestedDrops() {
			drop[s.GetName()] = s.GetReason().String()
		}
	}
	keep := map[string]bool{}
	n := 0
	for _, f := range resp.GetFeatures() {
		if _, dropped := drop[f.GetName()]; dropped {
			continue
		}
		if fs.GetMaxFeatures() > 0 && n >= int(fs.GetMaxFeatures()) {
			break
		}
		keep[f.GetName()] = true
		n++
	}
	for _, name := range fs.GetAlwaysKeep() {
		keep[name] = true
	}
	d.Keep(func(name string) bool { return keep[name] })
	var kept []string
	for _, c := range d.Table.Columns {
		kept = append(kept, c.Name)
	}
	if len(kept) == 0 {
		return nil, Failure(ReasonInvalidData, "feature selection kept no feature")
	}
	r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, trainingv1.JobStage_JOB_STAGE_SELECTING_FEATURES, "FEATURES_SELECTED",
		"feature selection kept %d of %d features: %s", len(kept), len(resp.GetFeatures()), strings.Join(kept, ", "))
	return kept, nil
}

func familyName(f modelv1.ModelFamily) string {
	return strings.ToLower(strings.TrimPrefix(f.String(), "MODEL_FAMILY_"))
}

// board builds the leaderboard as folds finish.
type board struct {
	mu       sync.Mutex
	cands    []spec.Candidate
	built    []spec.Built
	folds    int
	metric   string
	def      metrics.Metric
	task     modelv1.TaskKind
	results  [][]*selection.Progress
	finished map[int]*modelv1.LeaderboardEntry
	ranked   []*modelv1.LeaderboardEntry
}

func newBoard(cands []spec.Candidate, built []spec.Built, folds int, metric string, def metrics.Metric, task modelv1.TaskKind) *board {
	b := &board{cands: cands, built: built, folds: folds, metric: metric, def: def, task: task,
		results: make([][]*selection.Progress, len(cands)), finished: map[int]*modelv1.LeaderboardEntry{}}
	for i := range b.results {
		b.results[i] = make([]*selection.Progress, folds)
	}
	return b
}

// add records one fold's result and returns the finished candidates, ranked, and the
// current candidate's metrics over its finished folds. The ranked entries are rebuilt only
// when a candidate finishes, and never changed afterwards: callers may keep them.
func (b *board) add(p selection.Progress) ([]*modelv1.LeaderboardEntry, []*commonv1.Metric) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.results[p.Candidate][p.Fold] = &p
	e := b.entry(p.Candidate)
	done := 0
	for _, r := range b.results[p.Candidate] {
		if r != nil {
			done++
		}
	}
	if done == b.folds {
		b.finished[p.Candidate] = e
		b.ranked = b.ranked[:0:0]
		for _, f := range b.finished {
			b.ranked = append(b.ranked, proto.Clone(f).(*modelv1.LeaderboardEntry))
		}
		b.rank(b.ranked)
	}
	return b.ranked, e.GetMetrics()
}

// final returns the whole leaderboard, ranked.
func (b *board) final(res *selection.Result) []*modelv1.LeaderboardEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*modelv1.LeaderboardEntry
	for i := range b.cands {
		e := b.entry(i)
		if res != nil {
			for _, row := range res.Leaderboard {
				if row.Candidate == i && row.Err != "" && e.Error == nil {
					e.Error = &commonv1.Problem{Reason: "CANDIDATE_FAILED", Description: row.Err}
				}
			}
		}
		out = append(out, e)
	}
	b.rank(out)
	return out
}

func (b *board) rank(entries []*modelv1.LeaderboardEntry) {
	slices.SortStableFunc(entries, func(x, y *modelv1.LeaderboardEntry) int {
		xf, yf := x.GetError() != nil, y.GetError() != nil
		switch {
		case xf != yf:
			if !xf {
				return -1
			}
			return 1
		case !xf && b.def.Better(x.GetScore(), y.GetScore()):
			return -1
		case !xf && b.def.Better(y.GetScore(), x.GetScore()):
			return 1
		}
		return cmp.Compare(x.GetCandidateIndex(), y.GetCandidateIndex())
	})
	for i, e := range entries {
		e.Rank = int32(i + 1)
	}
}

// entry builds candidate i's entry from its finished folds.
func (b *board) entry(i int) *modelv1.LeaderboardEntry {
	c, bt := b.cands[i], b.built[i]
	e := &modelv1.LeaderboardEntry{
		CandidateIndex:  int32(c.Index),
		Family:          bt.Family,
		Label:           c.Label,
		Hyperparameters: c.Params,
		KernelFallback:  bt.Fallback,
		Converged:       true,
	}
	values := map[string][]float64{}
	var fit time.Duration
	n := 0
	for f, p := range b.results[i] {
		if p == nil {
			continue
		}
		n++
		fr := &modelv1.FoldResult{Fold: int32(f + 1), TrainRows: int64(p.TrainRows), ValidationRows: int64(p.TestRows),
			Converged: p.Converged, Iterations: int32(p.Iterations), FitTime: durationpb.New(p.FitTime)}
		for _, name := range spec.TaskMetrics(b.task) {
			key := name
			if name == "pr_auc" {
				key = "average_precision"
			}
			if v, ok := p.Metrics[key]; ok {
				fr.Metrics = append(fr.Metrics, &commonv1.Metric{Name: name, Value: v})
				values[name] = append(values[name], v)
			}
		}
		e.Folds = append(e.Folds, fr)
		e.Converged = e.Converged && p.Converged
		fit += p.FitTime
		if p.Err != nil && e.Error == nil {
			e.Error = &commonv1.Problem{Reason: "CANDIDATE_FAILED", Description: fmt.Sprintf("fold %d: %v", f+1, p.Err)}
		}
	}
	if n > 0 {
		e.MeanFitTime = durationpb.New(fit / time.Duration(n))
	}
	for _, name := range spec.TaskMetrics(b.task) {
		if vs := values[name]; len(vs) == n && n > 0 {
			mean, std := metrics.MeanStd(vs)
			e.Metrics = append(e.Metrics, &commonv1.Metric{Name: name, Value: mean, StdDev: std})
			if name == b.metric {
				e.Score, e.ScoreStdDev = mean, std
			}
		}
	}
	if e.Error == nil && n > 0 && len(values[b.metric]) < n {
		e.Error = &commonv1.Problem{Reason: "CANDIDATE_FAILED", Description: fmt.Sprintf("the selection metric %s could not be computed", b.metric)}
	}
	return e
}

// ErrorProblem turns a job's error into the Problem of Job.error.
func ErrorProblem(err error) *commonv1.Problem {
	var c *fault.Coded
	if errors.As(err, &c) {
		return &commonv1.Problem{Reason: c.Reason, Description: c.Message}
	}
	var v fault.Violations
	if errors.As(err, &v) {
		return &commonv1.Problem{Reason: ReasonInvalidSpec, Description: v.Error()}
	}
	return &commonv1.Problem{Reason: ReasonInternal, Description: "internal error: " + err.Error()}
}
