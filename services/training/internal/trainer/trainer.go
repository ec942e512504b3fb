// Package trainer runs one training job: it loads the training set from the feature service
// (after an optional feature selection), cross-validates the candidates with
// pkg/ml/selection, refits the winner on every training row, evaluates it on the test rows
// through the same artifact scorer serving uses, and registers it.
package trainer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/pkg/registry"
	"github.com/bullseye-ml/bullseye/services/training/internal/dataset"
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
	if spec.IsRecommendation(r.spec.GetTask()) {
		return r.runRecommender(ctx)
	}
	if r.spec.GetTask() == modelv1.TaskKind_TASK_KIND_CUSTOMER_LIFETIME_VALUE {
		return r.runCLV(ctx)
	}
	return r.runTabular(ctx)
}

// choice is what a job's selection stage decided: the ranked leaderboard, the winner (its
// index among the candidates) and the winner's artifact, fitted on every training row.
// Without cross-validation the selection tested the winner already.
type choice struct {
	leaderboard []*modelv1.LeaderboardEntry
	winner      int
	artifact    *modelv1.ModelArtifact
	tested      bool
	testMetrics []*commonv1.Metric
	cvMetrics   []*commonv1.Metric
	curves      *modelv1.ClassificationCurves // a classifier's, once tested
	factors     *recommend.Factors            // a recommender's
	eval        *recommend.Evaluation         // a recommender's, once tested
}

// settleMetrics takes the winner's cross-validation metrics (none without cross-validation)
// and gives the artifact its metrics: the test metrics, or without them the cross-validation
// metrics.
func (c *choice) settleMetrics(noCV bool) {
	if !noCV {
		c.cvMetrics = c.leaderboard[0].GetMetrics()
	}
	c.artifact.Metrics = c.testMetrics
	if len(c.testMetrics) == 0 {
		c.artifact.Metrics = c.cvMetrics
	}
}

// cvPercent is the job's percent once done of the total fits of the cross-validation stage
// have finished.
func cvPercent(done, total int) float64 {
	lo, hi := band[trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING][0], band[trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING][1]
	return lo + (hi-lo)*float64(done)/float64(total)
}

// reportNoCV says that, without cross-validation, the candidates were fitted once on the
// training rows (or pairs: unit) and that the test ones chose the winner.
func (r *run) reportNoCV(candidates, train, test int, unit string) {
	r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING, "NO_CROSS_VALIDATION",
		"no cross-validation (folds 0): %d candidates fitted once on %d training %s and scored on %d test %s", candidates, train, unit, test, unit)
	if candidates > 1 {
		r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING, trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING, "TEST_ROWS_CHOSE_WINNER",
			"the test %s chose the winner among %d candidates: its test metrics are optimistic", unit, candidates)
	}
}

// registering moves the job to registration, unless ctx is done.
func (r *run) registering(ctx context.Context) error {
	r.stage(trainingv1.JobStage_JOB_STAGE_REGISTERING)
	return ctx.Err()
}

// warnFinalFit says when the winner's final fit stopped at its iteration cap.
func (r *run) warnFinalFit(converged bool, iterations int) {
	if !converged {
		r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING, trainingv1.JobStage_JOB_STAGE_REFITTING,
			"SOLVER_NOT_CONVERGED", "the final fit's solver did not reach its tolerance within its iteration cap (%d iterations)", iterations)
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
