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

// runRecommender runs a recommendation job: export the interactions, prune and split them,
// cross-validate the candidates over the training pairs, refit the winner, evaluate it on
// the test pairs through the artifact and register it.
func (r *run) runRecommender(ctx context.Context) (*Outcome, error) {
	s := r.spec
	task := s.GetTask()
	explicit := task == modelv1.TaskKind_TASK_KIND_RECOMMENDATION_EXPLICIT
	is := s.GetData().GetInteractions()

	r.stage(trainingv1.JobStage_JOB_STAGE_LOADING_DATA)
	ex, err := r.loadInteractions(ctx)
	if err != nil {
		return nil, err
	}
	all := ex.all
	train, test, err := dataset.SplitInteractions(all, is, spec.Seed(s), ex.testRows)
	if err != nil {
		return nil, Failure(ReasonInvalidData, "splitting the interactions: %v", err)
	}
	folds := spec.Folds(s)
	if train.Len() < 2*folds {
		return nil, Failure(ReasonInvalidData, "%d training interactions (of %d exported, after the minimum counts and the split) are too few for %d folds",
			train.Len(), all.Len(), folds)
	}
	r.rep.Update(func(p *trainingv1.JobProgress) {
		p.RowsLoaded = int64(all.Len())
		p.Percent = band[trainingv1.JobStage_JOB_STAGE_LOADING_DATA][1]
	})
	if dropped := all.Len() - train.Len() - test.Len(); dropped > 0 {
		r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, trainingv1.JobStage_JOB_STAGE_LOADING_DATA,
			"INTERACTIONS_PRUNED", "%d of %d interactions were dropped by the minimum user and item counts", dropped, all.Len())
	}

	// Candidates.
	metricName, _ := spec.Metric(s)
	ks := spec.RankingK(s)
	reported := spec.RecMetrics(task, ks)
	cands, _ := spec.Expand(s, "spec")
	recs := make([]recommend.Candidate, len(cands))
	for i, c := range cands {
		if recs[i], err = spec.RecCandidate(c, s); err != nil {
			return nil, Failure(ReasonInvalidSpec, "candidate %d: %v", c.Index, err)
		}
	}

	// fit fits candidate i on every training pair, as an artifact.
	fit := func(i int) (*modelv1.ModelArtifact, *recommend.Factors, error) {
		start := time.Now()
		est, err := recs[i].Family.New(recs[i].Params)
		if err != nil {
			return nil, nil, Failure(ReasonRefitFailed, "candidate %d (%v): %v", i+1, cands[i].Family, err)
		}
		f, err := est.Fit(ctx, train)
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if err != nil {
			return nil, nil, Failure(ReasonRefitFailed, "fitting candidate %d (%v): %v", i+1, cands[i].Family, err)
		}
		fitTime := time.Since(start)
		if explicit && f.Rank > 0 {
			// Ratings are clipped to the range seen in training.
			f.MinRating, f.MaxRating = slices.Min(train.Values), slices.Max(train.Values)
		}
		a, err := artifact.EncodeFactors(cands[i].Family, task, f)
		if err != nil {
			return nil, nil, fmt.Errorf("encoding the model: %w", err)
		}
		a.Solver.FitTime = durationpb.New(fitTime)
		a.Hyperparameters = cands[i].Params
		return a, f, nil
	}
	// testOn evaluates an artifact on the test pairs, through the artifact's scorer.
	testOn := func(a *modelv1.ModelArtifact) ([]*commonv1.Metric, *recommend.Evaluation, error) {
		sc, err := artifact.NewScorer(a)
		if err != nil {
			return nil, nil, fmt.Errorf("loading the model for evaluation: %w", err)
		}
		rec, err := recommend.NewScorer(sc.(artifact.Recommender).Factors())
		if err != nil {
			return nil, nil, fmt.Errorf("loading the model for evaluation: %w", err)
		}
		ev, err := recommend.Evaluate(rec, test, recommend.EvalOptions{K: ks, Ratings: explicit})
		if err != nil {
			return nil, nil, Failure(ReasonInvalidData, "evaluating on the test interactions: %v", err)
		}
		var ms []*commonv1.Metric
		for _, name := range reported {
			if v, ok := ev.Metrics[name]; ok && !math.IsNaN(v) {
				ms = append(ms, &commonv1.Metric{Name: name, Value: v})
			}
		}
		return ms, ev, nil
	}

	results := make([][]*selection.Progress, len(cands))
	for i := range results {
		results[i] = make([]*selection.Progress, folds)
	}
	entry := func(i int) *modelv1.LeaderboardEntry {
		return recEntry(cands[i], results[i], metricName, reported)
	}
	var (
		leaderboard []*modelv1.LeaderboardEntry
		wi          int
		a           *modelv1.ModelArtifact
		f           *recommend.Factors
		testMetrics []*commonv1.Metric
		ev          *recommend.Evaluation
		tested      bool
	)
	r.stage(trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING)
	r.rep.Update(func(p *trainingv1.JobProgress) { p.FoldCount, p.CandidateCount = int32(folds), int32(len(cands)) })
	if spec.NoCV(s) {
		// Fit and test: each candidate once on the training pairs, scored on the test pairs.
		if test.Len() == 0 {
			return nil, Failure(ReasonInvalidData, "cross_validation.folds 0 scores each candidate on the test interactions, and the split left none")
		}
		arts := make([]*modelv1.ModelArtifact, len(cands))
		facts := make([]*recommend.Factors, len(cands))
		tests := make([][]*commonv1.Metric, len(cands))
		evs := make([]*recommend.Evaluation, len(cands))
		rows := make([]selection.Row, len(cands))
		for i := range cands {
			start := time.Now()
			a, f, err := fit(i)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			p := selection.Progress{Candidate: i, Done: i + 1, Total: len(cands), TrainRows: train.Len(), TestRows: test.Len(), Err: err, Score: math.NaN()}
			if err == nil {
				tests[i], evs[i], err = testOn(a)
				p.Err = err
			}
			p.FitTime = time.Since(start)
			rows[i] = selection.Row{Candidate: i, Family: recs[i].Family.Name, Params: recs[i].Params, Mean: math.NaN()}
			if err == nil {
				arts[i], facts[i] = a, f
				p.Converged, p.Iterations, p.Metrics = f.Converged, f.Iterations, evs[i].Metrics
				if v, ok := evs[i].Metrics[metricName]; ok {
					p.Score = v
				}
				rows[i].Mean = p.Score
			} else {
				rows[i].Err = err.Error()
			}
			results[i][0] = &p
			e := entry(i)
			r.rep.Update(func(jp *trainingv1.JobProgress) {
				jp.Fold, jp.CandidateIndex, jp.CandidatesDone = 1, int32(i+1), int32(i+1)
				lo, hi := band[trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING][0], band[trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING][1]
				jp.Percent = lo + (hi-lo)*float64(i+1)/float64(len(cands))
				jp.CurrentMetrics = e.GetMetrics()
			})
		}
		_, m := spec.Metric(s)
		err := selection.Rank(rows, m.Better)
		leaderboard = r.recBoard(rows, entry)
		if err != nil {
			return nil, Failure(ReasonAllFailed, "every candidate failed; the first: %s", leaderboard[0].GetError().GetDescription())
		}
		wi = rows[0].Candidate
		a, f, testMetrics, ev, tested = arts[wi], facts[wi], tests[wi], evs[wi], true
		r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING, "NO_CROSS_VALIDATION",
			"no cross-validation (folds 0): %d candidates fitted once on %d training pairs and scored on %d test pairs", len(cands), train.Len(), test.Len())
		if len(cands) > 1 {
			r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING, trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING, "TEST_ROWS_CHOSE_WINNER",
				"the test pairs chose the winner among %d candidates: its test metrics are optimistic", len(cands))
		}
	} else {
		search := &recommend.Search{
			Candidates:  recs,
			Splitter:    selection.KFold{K: folds, Shuffle: true, Seed: spec.Seed(s)},
			Metric:      metricName,
			Eval:        recommend.EvalOptions{K: ks, Ratings: explicit},
			Parallelism: int(s.GetResources().GetParallelism()),
			NoRefit:     true,
			Progress: func(p selection.Progress) {
				results[p.Candidate][p.Fold] = &p
				e := entry(p.Candidate)
				r.rep.Update(func(jp *trainingv1.JobProgress) {
					jp.Fold, jp.CandidateIndex = int32(p.Fold+1), int32(p.Candidate+1)
					lo, hi := band[trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING][0], band[trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING][1]
					jp.Percent = lo + (hi-lo)*float64(p.Done)/float64(p.Total)
					jp.CurrentMetrics = e.GetMetrics()
				})
			},
		}
		res, err := search.Run(ctx, train)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if res == nil && err != nil {
			return nil, fmt.Errorf("cross-validation: %w", err)
		}
		leaderboard = r.recBoard(res.Leaderboard, entry)
		if err != nil {
			return nil, Failure(ReasonAllFailed, "every candidate failed; the first: %s", leaderboard[0].GetError().GetDescription())
		}
		wi = res.Best.Candidate

		// Refit on every training pair.
		r.stage(trainingv1.JobStage_JOB_STAGE_REFITTING)
		if a, f, err = fit(wi); err != nil {
			return nil, err
		}
	}
	winner := cands[wi]
	if !f.Converged {
		r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_WARNING, trainingv1.JobStage_JOB_STAGE_REFITTING,
			"SOLVER_NOT_CONVERGED", "the final fit's solver did not reach its tolerance within its iteration cap (%d iterations)", f.Iterations)
	}

	// Evaluation on the test pairs, through the artifact's scorer.
	r.stage(trainingv1.JobStage_JOB_STAGE_EVALUATING)
	if test.Len() > 0 {
		if !tested {
			var err error
			if testMetrics, ev, err = testOn(a); err != nil {
				return nil, err
			}
		}
		if ev.Fallback > 0 || ev.Known < ev.Rows {
			r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, trainingv1.JobStage_JOB_STAGE_EVALUATING, "UNKNOWN_TEST_PAIRS",
				"%d of %d test pairs have a user or item without factors; %d of %d test users got the popularity fallback",
				ev.Rows-ev.Known, ev.Rows, ev.Fallback, ev.Users)
		}
	} else {
		r.msg(trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO, trainingv1.JobStage_JOB_STAGE_EVALUATING,
			"NO_TEST_SPLIT", "the interactions have no test split: the model's metrics are its cross-validation metrics")
	}
	var winnerEntry *modelv1.LeaderboardEntry
	for _, e := range leaderboard {
		if int(e.GetCandidateIndex()) == winner.Index {
			winnerEntry = e
		}
	}
	cvMetrics := winnerEntry.GetMetrics()
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
	data, err := lineageData(s)
	if err != nil {
		return nil, err
	}
	lineage := &modelv1.Lineage{
		JobId:       r.job.GetJobId(),
		Data:        data,
		TrainRows:   int64(train.Len()),
		TestRows:    int64(test.Len()),
		Users:       int64(len(f.UserIDs)),
		Items:       int64(max(len(f.ItemIDs), len(f.Popularity.ItemIDs))),
		CodeVersion: r.t.codeVersion,
		Seed:        spec.Seed(s),
	}
	if len(all.Times) > 0 {
		lineage.DataStartTime = timestamppb.New(time.Unix(slices.Min(all.Times), 0))
		lineage.DataEndTime = timestamppb.New(time.Unix(slices.Max(all.Times), 0))
	}
	a.Lineage = lineage
	mv := &modelv1.ModelVersion{
		ModelName:          s.GetModelName(),
		Family:             winner.Family,
		Task:               task,
		Hyperparameters:    winner.Params,
		TestMetrics:        testMetrics,
		CvMetrics:          cvMetrics,
		SelectionMetric:    metricName,
		SelectionDirection: spec.Direction(s),
		Leaderboard:        cloneEntries(leaderboard),
		Lineage:            lineage,
		Description:        s.GetDescription(),
		Labels:             s.GetLabels(),
		Converged:          f.Converged,
	}
	return r.register(ctx, mv, a)
}

// recBoard turns a ranked recommender leaderboard into its entries, logging the failed
// candidates, and reports it in the job's progress.
func (r *run) recBoard(rows []selection.Row, entry func(int) *modelv1.LeaderboardEntry) []*modelv1.LeaderboardEntry {
	var leaderboard []*modelv1.LeaderboardEntry
	for _, row := range rows {
		e := entry(row.Candidate)
		e.Rank = int32(row.Rank)
		if row.Err != "" && e.Error == nil {
			e.Error = &commonv1.Problem{Reason: "CANDIDATE_FAILED", Description: row.Err}
		}
		leaderboard = append(leaderboard, e)
		switch {
		case e.Error != nil:
			r.rep.Message(&trainingv1.JobMessage{Time: timestamppb.Now(), Severity: trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_ERROR,
				Code: "CANDIDATE_FAILED", Text: fmt.Sprintf("candidate %d (%v) failed: %s", e.GetCandidateIndex(), e.GetFamily(), e.GetError().GetDescription()),
				Stage: trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING, CandidateIndex: e.GetCandidateIndex()})
		case math.IsNaN(row.Mean):
			r.rep.Message(&trainingv1.JobMessage{Time: timestamppb.Now(), Severity: trainingv1.JobMessageSeverity_JOB_MESSAGE_SEVERITY_INFO,
				Code: "NO_RATING_METRICS", Text: fmt.Sprintf("candidate %d (%v) predicts no ratings: it has no %s and ranks after the candidates that do; its ranking metrics are on the leaderboard",
					e.GetCandidateIndex(), e.GetFamily(), r.metricName()),
				Stage: trainingv1.JobStage_JOB_STAGE_CROSS_VALIDATING, CandidateIndex: e.GetCandidateIndex()})
		}
	}
	r.rep.Update(func(p *trainingv1.JobProgress) {
		p.Leaderboard = leaderboard
		p.CandidatesDone = int32(len(leaderboard))
	})
	return leaderboard
}

func (r *run) metricName() string {
	name, _ := spec.Metric(r.spec)
	return name
}

// recEntry builds a recommender candidate's leaderboard entry from its finished folds.
func recEntry(c spec.Candidate, folds []*selection.Progress, metric string, reported []string) *modelv1.LeaderboardEntry {
	e := &modelv1.LeaderboardEntry{CandidateIndex: int32(c.Index), Family: c.Family, Label: c.Label,
		Hyperparameters: c.Params, Converged: true}
	values := map[string][]float64{}
	var fit time.Duration
	n := 0
	for f, p := range folds {
		if p == nil {
			continue
		}
		n++
		fr := &modelv1.FoldResult{Fold: int32(f + 1), TrainRows: int64(p.TrainRows), ValidationRows: int64(p.TestRows),
			Converged: p.Converged, Iterations: int32(p.Iterations), FitTime: durationpb.New(p.FitTime)}
		for _, name := range reported {
			if v, ok := p.Metrics[name]; ok && !math.IsNaN(v) {
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
	for _, name := range reported {
		if vs := values[name]; len(vs) == n && n > 0 {
			mean, std := metrics.MeanStd(vs)
			e.Metrics = append(e.Metrics, &commonv1.Metric{Name: name, Value: mean, StdDev: std})
			if name == metric {
				e.Score, e.ScoreStdDev = mean, std
			}
		}
	}
	return e
}
