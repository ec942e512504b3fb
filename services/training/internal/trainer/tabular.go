package trainer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"gonum.org/v1/gonum/mat"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	"github.com/bullseye-ml/bullseye/pkg/fault"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml"
	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
	"github.com/bullseye-ml/bullseye/pkg/ml/preprocess"
	"github.com/bullseye-ml/bullseye/pkg/ml/selection"
	"github.com/bullseye-ml/bullseye/services/training/internal/dataset"
	"github.com/bullseye-ml/bullseye/services/training/internal/evaluate"
	"github.com/bullseye-ml/bullseye/services/training/internal/spec"
)

// tabular is a classification or regression job: the state its stages share, each filled in
// by the stage named.
type tabular struct {
	*run
	task     modelv1.TaskKind
	classify bool

	// loadData
	d        *dataset.Dataset
	selected []string // by the feature selection; nil without one

	// labelRows
	trainRows, testRows []int
	yTrain, yTest       []float64
	classes             *dataset.Classes
	positives           int
	trainTable          *ml.Table

	// buildCandidates
	prep            preprocess.Spec
	metricName      string
	metric          metrics.Metric
	cands           []spec.Candidate
	built           []spec.Built
	search          []selection.Candidate
	threshold       float64
	bins, rocPoints int

	// The preprocessing fitted on every training row by the first fit that needs it, and
	// the rows it gave: as the spec says, and native (for families that split categories).
	designs [2]design
}

type design struct {
	pipe *preprocess.Pipeline
	x    *mat.Dense
}

// runTabular runs a classification or regression job: load the training set, label its rows,
// build the candidates, choose the winner (cross-validate them and refit the winner, or fit
// and test each once), evaluate it on the test rows through the artifact and register it.
func (r *run) runTabular(ctx context.Context) (*Outcome, error) {
	t := &tabular{run: r, task: r.spec.GetTask()}
	t.classify = t.task == modelv1.TaskKind_TASK_KIND_BINARY_CLASSIFICATION
	if err := t.loadData(ctx); err != nil {
		return nil, err
	}
	if err := t.labelRows(); err != nil {
		return nil, err
	}
	t.buildCandidates()
	var c *choice
	var err error
	if spec.NoCV(t.spec) {
		c, err = t.fitAndTest(ctx)
	} else if c, err = t.crossValidate(ctx); err == nil {
		err = t.refit(ctx, c)
	}
	if err != nil {
		return nil, err
	}
	t.warnFinalFit(c.artifact.GetSolver().GetConverged(), int(c.artifact.GetSolver().GetIterations()))
	if err := t.evaluate(ctx, c); err != nil {
		return nil, err
	}
	return t.registerVersion(ctx, c)
}

// loadData reads the training set, keeps the features the feature selection chooses (when
// asked), splits the rows by import (when asked) and drops the excluded columns.
func (t *tabular) loadData(ctx context.Context) error {
	s := t.spec
	t.stage(trainingv1.JobStage_JOB_STAGE_LOADING_DATA)
	d, err := t.load(ctx, s.GetData().GetTrainingSet())
	if err != nil {
		return err
	}
	if is := s.GetData().GetImportSplit(); is != nil {
		if err := d.SplitByImport(is); err != nil {
			return Failure(ReasonInvalidData, "data.import_split: %v", err)
		}
	}
	if d.WrongType > 0 {
		t.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING, trainingv1.JobStage_JOB_STAGE_LOADING_DATA,
			"VALUES_OF_WRONG_TYPE", "%d feature values did not have their column's type and were treated as missing", d.WrongType)
	}
	if s.GetFeatureSelection().GetEnabled() {
		t.stage(trainingv1.JobStage_JOB_STAGE_SELECTING_FEATURES)
		if t.selected, err = t.selectFeatures(ctx, d); err != nil {
			return err
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
		t.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING, trainingv1.JobStage_JOB_STAGE_LOADING_DATA,
			"EXCLUDED_COLUMN_UNKNOWN", "excluded columns %q are not in the training set", unknown)
	}
	d.Keep(func(name string) bool { return !slices.Contains(excluded, name) })
	if len(d.Table.Columns) == 0 {
		return Failure(ReasonInvalidData, "no feature columns are left to train on")
	}
	t.d = d
	return nil
}

// labelRows picks the training and test rows with a usable label and their targets (for a
// classifier, after choosing the positive class), and checks that they are enough for the
// folds.
func (t *tabular) labelRows() error {
	s, d := t.spec, t.d
	trainRows := d.Rows(trainingv1.DataPartition_DATA_PARTITION_TRAIN, s.GetData().GetTrainFilter())
	testRows := d.Rows(trainingv1.DataPartition_DATA_PARTITION_TEST, nil)
	if t.classify {
		var err error
		if t.classes, err = dataset.BinaryClasses(d.Labels, trainRows); err != nil {
			return Failure(ReasonInvalidData, "the training rows' labels: %v", err)
		}
		if t.classes.Guessed {
			t.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING, trainingv1.JobStage_JOB_STAGE_LOADING_DATA,
				"POSITIVE_CLASS_GUESSED", "the label's positive class was taken to be %q (the last in name order); give a TraitLabel.positive_values to choose it",
				t.classes.Positive.GetStringValue())
		}
	}
	targets := func(rows []int) ([]int, []float64) {
		var keep []int
		var y []float64
		for _, i := range rows {
			if v, ok := dataset.Target(d.Labels[i], t.classes); ok {
				keep = append(keep, i)
				y = append(y, v)
			}
		}
		return keep, y
	}
	before := len(trainRows) + len(testRows)
	t.trainRows, t.yTrain = targets(trainRows)
	t.testRows, t.yTest = targets(testRows)
	if dropped := before - len(t.trainRows) - len(t.testRows); dropped > 0 {
		t.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING, trainingv1.JobStage_JOB_STAGE_LOADING_DATA,
			"ROWS_WITHOUT_LABEL", "%d rows without a usable label were left out", dropped)
	}
	folds := spec.Folds(s)
	if len(t.trainRows) < 2*folds {
		return Failure(ReasonInvalidData, "%d labelled training rows are too few for %d folds", len(t.trainRows), folds)
	}
	if t.classify {
		for _, v := range t.yTrain {
			if v != 0 {
				t.positives++
			}
		}
		if negatives := len(t.yTrain) - t.positives; t.positives < folds || negatives < folds {
			return Failure(ReasonInvalidData, "the training rows have %d positive and %d negative labels; each class needs at least one row per fold (%d)",
				t.positives, negatives, folds)
		}
	}
	t.trainTable = d.Table.Subset(t.trainRows)
	t.rep.Update(func(p *trainingv1.JobProgress) {
		p.RowsLoaded = int64(d.Len())
		p.Percent = band[trainingv1.JobStage_JOB_STAGE_LOADING_DATA][1]
	})
	return nil
}

// buildCandidates resolves the preprocessing, the selection metric, the candidates with
// their estimators and the evaluation options.
func (t *tabular) buildCandidates() {
	s := t.spec
	var cols []spec.Column
	for _, c := range t.d.Columns() {
		cols = append(cols, spec.Column{Name: c.GetName(), Type: c.GetType()})
	}
	var notes []string
	t.prep, notes = spec.Preprocessing(s.GetPreprocessing(), cols)
	for _, n := range notes {
		t.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING, trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING, "PREPROCESSING_OPTION_IGNORED", "%s", n)
	}
	t.metricName, t.metric = spec.Metric(s)
	t.cands, _ = spec.Expand(s, "spec")
	t.built = make([]spec.Built, len(t.cands))
	t.search = make([]selection.Candidate, len(t.cands))
	for i, c := range t.cands {
		t.built[i] = spec.Build(c, s, len(t.trainRows), t.metric.NeedsProbability)
		b := t.built[i]
		if b.Note != "" {
			code := "KERNEL_SVM_NYSTROM_FALLBACK"
			if b.Fallback == modelv1.KernelFallback_KERNEL_FALLBACK_SUBSAMPLE {
				code = "KERNEL_SVM_SUBSAMPLED"
			}
			t.rep.Message(&trainingv1.JobMessage{Time: timestamppb.Now(), Severity: trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING,
				Code: code, Text: fmt.Sprintf("candidate %d: %s", c.Index, b.Note), Stage: trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING, CandidateIndex: int32(c.Index)})
		}
		t.search[i] = selection.Candidate{Family: selection.Family{Name: familyName(b.Family), New: func(selection.Params) (ml.Estimator, error) {
			if b.Err != nil {
				return nil, b.Err
			}
			return b.CV, nil
		}, Native: b.Native}}
	}
	t.threshold, t.bins, t.rocPoints = spec.Evaluation(s.GetEvaluation())
}

// fit fits candidate i on every training row, preprocessing included, as an artifact.
func (t *tabular) fit(ctx context.Context, i int) (*modelv1.ModelArtifact, time.Duration, error) {
	start := time.Now()
	b := t.built[i]
	if b.Err != nil {
		return nil, 0, b.Err
	}
	d, err := t.design(b.Native)
	if err != nil {
		return nil, 0, err
	}
	est := b.Refit
	if ce, ok := est.(ml.CategoricalEstimator); ok {
		est = ce.WithCategorical(d.pipe.Categorical())
	}
	model, err := est.Fit(ctx, d.x, t.yTrain)
	if ctx.Err() != nil {
		return nil, 0, ctx.Err()
	}
	if err != nil {
		return nil, 0, Failure(ReasonRefitFailed, "fitting candidate %d (%v): %v", i+1, b.Family, err)
	}
	fitTime := time.Since(start)
	a, err := artifact.Encode(&artifact.Fitted{Family: b.Family, Task: t.task, Inputs: t.d.Columns(), Pipeline: d.pipe, Model: model})
	if err != nil {
		return nil, 0, fmt.Errorf("encoding the model: %w", err)
	}
	if a.Solver == nil {
		a.Solver = &modelv1.SolverReport{Converged: true}
	}
	a.Solver.FitTime = durationpb.New(fitTime)
	a.Hyperparameters = t.cands[i].Params
	if t.classify {
		a.Classification = &modelv1.ClassificationOutput{PositiveLabel: t.classes.Positive, NegativeLabel: t.classes.Negative, Threshold: t.threshold}
	}
	return a, fitTime, nil
}

// design returns the preprocessing fitted on every training row, native or as the spec
// says, fitting it the first time.
func (t *tabular) design(native bool) (*design, error) {
	k := 0
	prep := t.prep
	if native {
		k, prep = 1, prep.Native()
	}
	d := &t.designs[k]
	if d.pipe == nil {
		pipe, x, err := preprocess.FitTransform(t.trainTable, prep)
		if err != nil {
			return nil, Failure(ReasonRefitFailed, "fitting the preprocessing on the training rows: %v", err)
		}
		d.pipe, d.x = pipe, x
	}
	return d, nil
}

// test scores an artifact on the test rows, through the artifact's scorer.
func (t *tabular) test(ctx context.Context, a *modelv1.ModelArtifact) ([]*commonv1.Metric, *modelv1.ClassificationCurves, error) {
	scorer, err := artifact.NewScorer(a)
	if err != nil {
		return nil, nil, fmt.Errorf("loading the model for evaluation: %w", err)
	}
	var out artifact.Result
	if err := scorer.Score(ctx, &artifact.Batch{Table: t.d.Table.Subset(t.testRows)}, &out); err != nil {
		return nil, nil, fmt.Errorf("scoring the test rows: %w", err)
	}
	if t.classify {
		ms, curves := evaluate.Binary(t.yTest, out.Scores, out.Probabilities, evaluate.Options{Threshold: t.threshold, Bins: t.bins, MaxROCPoints: t.rocPoints})
		return ms, curves, nil
	}
	ms, err := evaluate.Regression(t.yTest, out.Scores)
	if err != nil {
		return nil, nil, fmt.Errorf("evaluating: %w", err)
	}
	return ms, nil, nil
}

// fitAndTest chooses without cross-validation (folds 0): each candidate is fitted once on the
// training rows and scored on the test rows, which rank them.
func (t *tabular) fitAndTest(ctx context.Context) (*choice, error) {
	if len(t.testRows) == 0 {
		return nil, Failure(ReasonInvalidData, "cross_validation.folds 0 scores each candidate on the test rows, and the training set has no labelled test rows")
	}
	t.stage(trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING)
	t.rep.Update(func(p *trainingv1.JobProgress) { p.FoldCount, p.CandidateCount = 1, int32(len(t.cands)) })
	board := newBoard(t.cands, t.built, 1, t.metricName, t.metric, t.task)
	arts := make([]*modelv1.ModelArtifact, len(t.cands))
	tests := make([][]*commonv1.Metric, len(t.cands))
	curvesOf := make([]*modelv1.ClassificationCurves, len(t.cands))
	for i := range t.cands {
		a, fitTime, err := t.fit(ctx, i)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		p := selection.Progress{Candidate: i, Done: i + 1, Total: len(t.cands), TrainRows: len(t.trainRows), TestRows: len(t.testRows),
			FitTime: fitTime, Err: err, Score: math.NaN()}
		if err == nil {
			tests[i], curvesOf[i], err = t.test(ctx, a)
			p.Err = err
		}
		if err == nil {
			arts[i] = a
			p.Converged, p.Iterations = a.GetSolver().GetConverged(), int(a.GetSolver().GetIterations())
			p.Metrics = map[string]float64{}
			for _, m := range tests[i] {
				p.Metrics[spec.MetricsName(m.GetName())] = m.GetValue()
			}
			if v, ok := p.Metrics[t.metricName]; ok {
				p.Score = v
			}
		}
		entries, current := board.add(p)
		t.rep.Update(func(jp *trainingv1.JobProgress) {
			jp.Fold, jp.CandidateIndex, jp.CandidatesDone = 1, int32(i+1), int32(len(entries))
			jp.Percent = cvPercent(i+1, len(t.cands))
			jp.CurrentMetrics = current
			jp.Leaderboard = entries
		})
	}
	c := &choice{leaderboard: board.final(nil), tested: true}
	t.reportBoard(c.leaderboard)
	var err error
	if c.winner, err = leader(c.leaderboard, t.metricName); err != nil {
		return nil, err
	}
	c.artifact, c.testMetrics, c.curves = arts[c.winner], tests[c.winner], curvesOf[c.winner]
	t.reportNoCV(len(t.cands), len(t.trainRows), len(t.testRows), "rows")
	return c, nil
}

// crossValidate ranks the candidates by cross-validation over the training rows.
func (t *tabular) crossValidate(ctx context.Context) (*choice, error) {
	s := t.spec
	folds := spec.Folds(s)
	groups := make([]string, len(t.trainRows))
	times := make([]float64, len(t.trainRows))
	for k, i := range t.trainRows {
		groups[k] = t.d.Entities[i]
		times[k] = float64(t.d.Cutoffs[i].Unix())
	}
	splitter, _ := spec.Splitter(s, t.yTrain, groups, times)
	t.stage(trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING)
	t.rep.Update(func(p *trainingv1.JobProgress) {
		p.FoldCount, p.CandidateCount = int32(folds), int32(len(t.cands))
	})
	board := newBoard(t.cands, t.built, folds, t.metricName, t.metric, t.task)
	extra := make([]string, 0, len(spec.TaskMetrics(t.task)))
	for _, m := range spec.TaskMetrics(t.task) {
		extra = append(extra, spec.MetricsName(m))
	}
	sr := &selection.Search{
		Candidates:  t.search,
		Preprocess:  t.prep,
		Splitter:    splitter,
		Metric:      t.metricName,
		Parallelism: int(s.GetResources().GetParallelism()),
		NoRefit:     true,
		Extra:       extra,
		Progress: func(p selection.Progress) {
			entries, current := board.add(p)
			t.rep.Update(func(jp *trainingv1.JobProgress) {
				jp.Fold, jp.CandidateIndex = int32(p.Fold+1), int32(p.Candidate+1)
				jp.CandidatesDone = int32(len(entries))
				jp.Percent = cvPercent(p.Done, p.Total)
				jp.CurrentMetrics = current
				jp.Leaderboard = entries
			})
		},
	}
	res, err := sr.Run(ctx, t.trainTable, t.yTrain)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if res == nil && err != nil {
		return nil, fmt.Errorf("cross-validation: %w", err)
	}
	c := &choice{leaderboard: board.final(res)}
	t.reportBoard(c.leaderboard)
	if c.winner, err = leader(c.leaderboard, t.metricName); err != nil {
		return nil, err
	}
	return c, nil
}

// refit fits the cross-validation's winner on every training row.
func (t *tabular) refit(ctx context.Context, c *choice) error {
	t.stage(trainingv1.JobStage_JOB_STAGE_REFITTING)
	a, _, err := t.fit(ctx, c.winner)
	if err != nil {
		var coded *fault.Coded
		if errors.As(err, &coded) || ctx.Err() != nil {
			return err
		}
		return Failure(ReasonRefitFailed, "refitting candidate %d (%v): %v", c.winner+1, t.built[c.winner].Family, err)
	}
	c.artifact = a
	return nil
}

// evaluate scores the winner on the test rows, through the artifact's scorer, unless the
// selection did, and settles the model's metrics.
func (t *tabular) evaluate(ctx context.Context, c *choice) error {
	t.stage(trainingv1.JobStage_JOB_STAGE_EVALUATING)
	switch {
	case len(t.testRows) > 0 && !c.tested:
		var err error
		if c.testMetrics, c.curves, err = t.test(ctx, c.artifact); err != nil {
			return err
		}
	case len(t.testRows) == 0:
		t.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, trainingv1.JobStage_JOB_STAGE_EVALUATING,
			"NO_TEST_SPLIT", "the training set has no test rows: the model's metrics are its cross-validation metrics")
	}
	c.settleMetrics(spec.NoCV(t.spec))
	return nil
}

// registerVersion registers the winner with its lineage.
func (t *tabular) registerVersion(ctx context.Context, c *choice) (*Outcome, error) {
	if err := t.registering(ctx); err != nil {
		return nil, err
	}
	s, a, wb := t.spec, c.artifact, t.built[c.winner]
	var err error
	if a.Lineage, err = t.lineage(t.d, len(t.trainRows), len(t.testRows), t.positives, t.selected); err != nil {
		return nil, err
	}
	mv := &modelv1.ModelVersion{
		ModelName:          s.GetModelName(),
		Family:             wb.Family,
		Task:               t.task,
		Hyperparameters:    t.cands[c.winner].Params,
		TestMetrics:        c.testMetrics,
		CvMetrics:          c.cvMetrics,
		SelectionMetric:    t.metricName,
		SelectionDirection: spec.Direction(s),
		Leaderboard:        cloneEntries(c.leaderboard),
		TestCurves:         c.curves,
		Lineage:            a.Lineage,
		Inputs:             a.GetInputs(),
		Description:        s.GetDescription(),
		Labels:             s.GetLabels(),
		KernelFallback:     wb.Fallback,
		Converged:          a.GetSolver().GetConverged(),
		Outputs:            a.GetOutputs(),
	}
	return t.register(ctx, mv, a)
}
