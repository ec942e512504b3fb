package trainer

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/artifact"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/pkg/ml/selection"
	"github.com/bullseye-ml/bullseye/services/training/internal/dataset"
	"github.com/bullseye-ml/bullseye/services/training/internal/spec"
)

// exported is what loadInteractions read: the interactions and, with a split by event name,
// the rows of the test events.
type exported struct {
	all      *recommend.Interactions
	testRows []int
}

// loadInteractions exports the interactions (and the test events' of a split by event
// name), waiting for an unavailable feature service for a while as load does.
func (r *run) loadInteractions(ctx context.Context) (exported, error) {
	return loadRetrying(ctx, r, func(progress func(int64)) (exported, error) {
		is := r.spec.GetData().GetInteractions()
		all, testRows, err := dataset.LoadInteractionsSpec(ctx, r.t.features, is, spec.TestExport(is), progress)
		return exported{all, testRows}, err
	})
}

// recommender is a recommendation job: the state its stages share, each filled in by the
// stage named.
type recommender struct {
	*run
	task     modelv1.TaskKind
	explicit bool

	// loadData
	all, train, test *recommend.Interactions

	// buildCandidates
	metricName string
	metric     metrics.Metric
	ks         []int
	reported   []string
	cands      []spec.Candidate
	recs       []recommend.Candidate
}

// runRecommender runs a recommendation job: export the interactions, prune and split them,
// build the candidates, choose the winner (cross-validate them over the training pairs and
// refit the winner, or fit and test each once), evaluate it on the test pairs through the
// artifact and register it.
func (r *run) runRecommender(ctx context.Context) (*Outcome, error) {
	j := &recommender{run: r, task: r.spec.GetTask()}
	j.explicit = j.task == modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT
	if err := j.loadData(ctx); err != nil {
		return nil, err
	}
	if err := j.buildCandidates(); err != nil {
		return nil, err
	}
	var c *choice
	var err error
	if spec.NoCV(j.spec) {
		c, err = j.fitAndTest(ctx)
	} else if c, err = j.crossValidate(ctx); err == nil {
		err = j.refit(ctx, c)
	}
	if err != nil {
		return nil, err
	}
	j.warnFinalFit(c.factors.Converged, c.factors.Iterations)
	if err := j.evaluate(c); err != nil {
		return nil, err
	}
	return j.registerVersion(ctx, c)
}

// loadData exports the interactions and splits them into training and test pairs.
func (j *recommender) loadData(ctx context.Context) error {
	s := j.spec
	j.stage(trainingv1.JobStage_JOB_STAGE_LOADING_DATA)
	ex, err := j.loadInteractions(ctx)
	if err != nil {
		return err
	}
	j.all = ex.all
	if j.train, j.test, err = dataset.SplitInteractions(j.all, s.GetData().GetInteractions(), spec.Seed(s), ex.testRows); err != nil {
		return Failure(ReasonInvalidData, "splitting the interactions: %v", err)
	}
	folds := spec.Folds(s)
	if j.train.Len() < 2*folds {
		return Failure(ReasonInvalidData, "%d training interactions (of %d exported, after the minimum counts and the split) are too few for %d folds",
			j.train.Len(), j.all.Len(), folds)
	}
	j.rep.Update(func(p *trainingv1.JobProgress) {
		p.RowsLoaded = int64(j.all.Len())
		p.Percent = band[trainingv1.JobStage_JOB_STAGE_LOADING_DATA][1]
	})
	if dropped := j.all.Len() - j.train.Len() - j.test.Len(); dropped > 0 {
		j.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, trainingv1.JobStage_JOB_STAGE_LOADING_DATA,
			"INTERACTIONS_PRUNED", "%d of %d interactions were dropped by the minimum user and item counts", dropped, j.all.Len())
	}
	return nil
}

// buildCandidates resolves the selection metric, the metrics reported and the candidates.
func (j *recommender) buildCandidates() error {
	s := j.spec
	j.metricName, j.metric = spec.Metric(s)
	j.ks = spec.RankingK(s)
	j.reported = spec.RecMetrics(j.task, j.ks)
	j.cands, _ = spec.Expand(s, "spec")
	j.recs = make([]recommend.Candidate, len(j.cands))
	for i, c := range j.cands {
		var err error
		if j.recs[i], err = spec.RecCandidate(c, s); err != nil {
			return Failure(ReasonInvalidSpec, "candidate %d: %v", c.Index, err)
		}
	}
	return nil
}

// fit fits candidate i on every training pair, as an artifact.
func (j *recommender) fit(ctx context.Context, i int) (*modelv1.ModelArtifact, *recommend.Factors, error) {
	start := time.Now()
	est, err := j.recs[i].Family.New(j.recs[i].Params)
	if err != nil {
		return nil, nil, Failure(ReasonRefitFailed, "candidate %d (%v): %v", i+1, j.cands[i].Family, err)
	}
	f, err := est.Fit(ctx, j.train)
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	if err != nil {
		return nil, nil, Failure(ReasonRefitFailed, "fitting candidate %d (%v): %v", i+1, j.cands[i].Family, err)
	}
	fitTime := time.Since(start)
	if j.explicit && f.Rank > 0 {
		// Ratings are clipped to the range seen in training.
		f.MinRating, f.MaxRating = slices.Min(j.train.Values), slices.Max(j.train.Values)
	}
	a, err := artifact.EncodeFactors(j.cands[i].Family, j.task, f)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the model: %w", err)
	}
	a.Solver.FitTime = durationpb.New(fitTime)
	a.Hyperparameters = j.cands[i].Params
	return a, f, nil
}

// testOn evaluates an artifact on the test pairs, through the artifact's scorer.
func (j *recommender) testOn(a *modelv1.ModelArtifact) ([]*commonv1.Metric, *recommend.Evaluation, error) {
	sc, err := artifact.NewScorer(a)
	if err != nil {
		return nil, nil, fmt.Errorf("loading the model for evaluation: %w", err)
	}
	rec, err := recommend.NewScorer(sc.(artifact.Recommender).Factors())
	if err != nil {
		return nil, nil, fmt.Errorf("loading the model for evaluation: %w", err)
	}
	ev, err := recommend.Evaluate(rec, j.test, recommend.EvalOptions{K: j.ks, Ratings: j.explicit})
	if err != nil {
		return nil, nil, Failure(ReasonInvalidData, "evaluating on the test interactions: %v", err)
	}
	var ms []*commonv1.Metric
	for _, name := range j.reported {
		if v, ok := ev.Metrics[name]; ok && !math.IsNaN(v) {
			ms = append(ms, &commonv1.Metric{Name: name, Value: v})
		}
	}
	return ms, ev, nil
}

// entry builds candidate i's leaderboard entry from its folds.
func (j *recommender) entry(i int, folds []*selection.Progress) *modelv1.LeaderboardEntry {
	c := j.cands[i]
	return foldsEntry(&modelv1.LeaderboardEntry{CandidateIndex: int32(c.Index), Family: c.Family, Label: c.Label, Hyperparameters: c.Params},
		folds, j.reported, j.metricName)
}

// startSelection moves the job to cross-validation and returns a fold result slot per
// candidate and fold.
func (j *recommender) startSelection(folds int) [][]*selection.Progress {
	j.stage(trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING)
	j.rep.Update(func(p *trainingv1.JobProgress) { p.FoldCount, p.CandidateCount = int32(folds), int32(len(j.cands)) })
	results := make([][]*selection.Progress, len(j.cands))
	for i := range results {
		results[i] = make([]*selection.Progress, folds)
	}
	return results
}

// fitAndTest chooses without cross-validation (folds 0): each candidate is fitted once on the
// training pairs and scored on the test pairs, which rank them.
func (j *recommender) fitAndTest(ctx context.Context) (*choice, error) {
	results := j.startSelection(spec.Folds(j.spec))
	if j.test.Len() == 0 {
		return nil, Failure(ReasonInvalidData, "cross_validation.folds 0 scores each candidate on the test interactions, and the split left none")
	}
	arts := make([]*modelv1.ModelArtifact, len(j.cands))
	facts := make([]*recommend.Factors, len(j.cands))
	tests := make([][]*commonv1.Metric, len(j.cands))
	evs := make([]*recommend.Evaluation, len(j.cands))
	entries := make([]*modelv1.LeaderboardEntry, len(j.cands))
	for i := range j.cands {
		start := time.Now()
		a, f, err := j.fit(ctx, i)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		p := selection.Progress{Candidate: i, Done: i + 1, Total: len(j.cands), TrainRows: j.train.Len(), TestRows: j.test.Len(), Err: err, Score: math.NaN()}
		if err == nil {
			tests[i], evs[i], err = j.testOn(a)
			p.Err = err
		}
		p.FitTime = time.Since(start)
		if err == nil {
			arts[i], facts[i] = a, f
			p.Converged, p.Iterations, p.Metrics = f.Converged, f.Iterations, evs[i].Metrics
			if v, ok := evs[i].Metrics[j.metricName]; ok {
				p.Score = v
			}
		}
		results[i][0] = &p
		entries[i] = j.entry(i, results[i])
		j.rep.Update(func(jp *trainingv1.JobProgress) {
			jp.Fold, jp.CandidateIndex, jp.CandidatesDone = 1, int32(i+1), int32(i+1)
			jp.Percent = cvPercent(i+1, len(j.cands))
			jp.CurrentMetrics = entries[i].GetMetrics()
		})
	}
	c := &choice{leaderboard: j.recBoard(entries), tested: true}
	var err error
	if c.winner, err = leader(c.leaderboard, j.metricName); err != nil {
		return nil, err
	}
	c.artifact, c.factors, c.testMetrics, c.eval = arts[c.winner], facts[c.winner], tests[c.winner], evs[c.winner]
	j.reportNoCV(len(j.cands), j.train.Len(), j.test.Len(), "pairs")
	return c, nil
}

// crossValidate ranks the candidates by cross-validation over the training pairs.
func (j *recommender) crossValidate(ctx context.Context) (*choice, error) {
	s := j.spec
	folds := spec.Folds(s)
	results := j.startSelection(folds)
	search := &recommend.Search{
		Candidates:  j.recs,
		Splitter:    selection.KFold{K: folds, Shuffle: true, Seed: spec.Seed(s)},
		Metric:      j.metricName,
		Eval:        recommend.EvalOptions{K: j.ks, Ratings: j.explicit},
		Parallelism: int(s.GetResources().GetParallelism()),
		NoRefit:     true,
		Progress: func(p selection.Progress) {
			results[p.Candidate][p.Fold] = &p
			e := j.entry(p.Candidate, results[p.Candidate])
			j.rep.Update(func(jp *trainingv1.JobProgress) {
				jp.Fold, jp.CandidateIndex = int32(p.Fold+1), int32(p.Candidate+1)
				jp.Percent = cvPercent(p.Done, p.Total)
				jp.CurrentMetrics = e.GetMetrics()
			})
		},
	}
	res, err := search.Run(ctx, j.train)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if res == nil && err != nil {
		return nil, fmt.Errorf("cross-validation: %w", err)
	}
	var entries []*modelv1.LeaderboardEntry
	for _, row := range res.Leaderboard {
		e := j.entry(row.Candidate, results[row.Candidate])
		if row.Err != "" && e.Error == nil {
			e.Error = &commonv1.Problem{Reason: "CANDIDATE_FAILED", Description: row.Err}
		}
		entries = append(entries, e)
	}
	c := &choice{leaderboard: j.recBoard(entries)}
	if c.winner, err = leader(c.leaderboard, j.metricName); err != nil {
		return nil, err
	}
	return c, nil
}

// refit fits the cross-validation's winner on every training pair.
func (j *recommender) refit(ctx context.Context, c *choice) error {
	j.stage(trainingv1.JobStage_JOB_STAGE_REFITTING)
	a, f, err := j.fit(ctx, c.winner)
	if err != nil {
		return err
	}
	c.artifact, c.factors = a, f
	return nil
}

// evaluate scores the winner on the test pairs, through the artifact's scorer, unless the
// selection did, and settles the model's metrics.
func (j *recommender) evaluate(c *choice) error {
	j.stage(trainingv1.JobStage_JOB_STAGE_EVALUATING)
	if j.test.Len() > 0 {
		if !c.tested {
			var err error
			if c.testMetrics, c.eval, err = j.testOn(c.artifact); err != nil {
				return err
			}
		}
		if ev := c.eval; ev.Fallback > 0 || ev.Known < ev.Rows {
			j.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, trainingv1.JobStage_JOB_STAGE_EVALUATING, "UNKNOWN_TEST_PAIRS",
				"%d of %d test pairs have a user or item without factors; %d of %d test users got the popularity fallback",
				ev.Rows-ev.Known, ev.Rows, ev.Fallback, ev.Users)
		}
	} else {
		j.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, trainingv1.JobStage_JOB_STAGE_EVALUATING,
			"NO_TEST_SPLIT", "the interactions have no test split: the model's metrics are its cross-validation metrics")
	}
	c.settleMetrics(spec.NoCV(j.spec))
	return nil
}

// registerVersion registers the winner with its lineage.
func (j *recommender) registerVersion(ctx context.Context, c *choice) (*Outcome, error) {
	if err := j.registering(ctx); err != nil {
		return nil, err
	}
	s, a, f, winner := j.spec, c.artifact, c.factors, j.cands[c.winner]
	data, err := lineageData(s)
	if err != nil {
		return nil, err
	}
	a.Lineage = &modelv1.Lineage{
		JobId:       j.job.GetJobId(),
		Data:        data,
		TrainRows:   int64(j.train.Len()),
		TestRows:    int64(j.test.Len()),
		Users:       int64(len(f.UserIDs)),
		Items:       int64(max(len(f.ItemIDs), len(f.Popularity.ItemIDs))),
		CodeVersion: j.t.codeVersion,
		Seed:        spec.Seed(s),
	}
	if len(j.all.Times) > 0 {
		a.Lineage.DataStartTime = timestamppb.New(time.Unix(slices.Min(j.all.Times), 0))
		a.Lineage.DataEndTime = timestamppb.New(time.Unix(slices.Max(j.all.Times), 0))
	}
	mv := &modelv1.ModelVersion{
		ModelName:          s.GetModelName(),
		Family:             winner.Family,
		Task:               j.task,
		Hyperparameters:    winner.Params,
		TestMetrics:        c.testMetrics,
		CvMetrics:          c.cvMetrics,
		SelectionMetric:    j.metricName,
		SelectionDirection: spec.Direction(s),
		Leaderboard:        cloneEntries(c.leaderboard),
		Lineage:            a.Lineage,
		Description:        s.GetDescription(),
		Labels:             s.GetLabels(),
		Converged:          f.Converged,
		Outputs:            a.GetOutputs(),
	}
	return j.register(ctx, mv, a)
}

// recBoard ranks a recommender leaderboard (rankEntries), logs its failed candidates and those
// without a value of the selection metric, and reports it in the job's progress.
func (j *recommender) recBoard(entries []*modelv1.LeaderboardEntry) []*modelv1.LeaderboardEntry {
	rankEntries(entries, j.metricName, j.metric)
	for _, e := range entries {
		switch {
		case e.Error != nil:
			j.rep.Message(&trainingv1.JobMessage{Time: timestamppb.Now(), Severity: trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_ERROR,
				Code: "CANDIDATE_FAILED", Text: fmt.Sprintf("candidate %d (%v) failed: %s", e.GetCandidateIndex(), e.GetFamily(), e.GetError().GetDescription()),
				Stage: trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING, CandidateIndex: e.GetCandidateIndex()})
		case !hasScore(e, j.metricName):
			j.rep.Message(&trainingv1.JobMessage{Time: timestamppb.Now(), Severity: trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO,
				Code: "NO_RATING_METRICS", Text: fmt.Sprintf("candidate %d (%v) predicts no ratings: it has no %s and ranks after the candidates that do; its ranking metrics are on the leaderboard",
					e.GetCandidateIndex(), e.GetFamily(), j.metricName),
				Stage: trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING, CandidateIndex: e.GetCandidateIndex()})
		}
	}
	j.rep.Update(func(p *trainingv1.JobProgress) {
		p.Leaderboard = entries
		p.CandidatesDone = int32(len(entries))
	})
	return entries
}
