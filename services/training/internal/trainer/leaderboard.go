package trainer

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/metrics"
	"github.com/bullseye-ml/bullseye/pkg/ml/selection"
	"github.com/bullseye-ml/bullseye/services/training/internal/spec"
)

// foldsEntry completes a candidate's leaderboard entry e (which names the candidate) from its
// folds, nil for those not finished: each finished fold's result with the reported metrics
// (API names) it has a value of, every metric's mean and standard deviation over the folds,
// and the selection metric's as the score.
//
// One rule decides what a fold's missing or NaN metric means, for every task:
//   - A NaN is no value: a fold metric that is NaN is left out of the fold's result, and a
//     metric has a mean only when every finished fold has a value of it.
//   - The selection metric NaN on a fold, or missing on some finished folds but not all, fails
//     the candidate (a fit that diverged, a fold it could not be scored on): it ranks last,
//     says why, and cannot win; left as a NaN score it would tie with every candidate and
//     could rank first.
//   - The selection metric missing on every fold means the family does not give it
//     (popularity predicts no ratings, so has no rmse): the candidate has no score, keeps its
//     other metrics on the leaderboard and ranks after every candidate with a score
//     (rankEntries).
func foldsEntry(e *modelv1.LeaderboardEntry, folds []*selection.Progress, reported []string, metric string) *modelv1.LeaderboardEntry {
	e.Converged = true
	fail := func(format string, args ...any) {
		if e.Error == nil {
			e.Error = &commonv1.Problem{Reason: "CANDIDATE_FAILED", Description: fmt.Sprintf(format, args...)}
		}
	}
	values := map[string][]float64{}
	var fit time.Duration
	n, scored := 0, 0
	for f, p := range folds {
		if p == nil {
			continue
		}
		n++
		fr := &modelv1.FoldResult{Fold: int32(f + 1), TrainRows: int64(p.TrainRows), ValidationRows: int64(p.TestRows),
			Converged: p.Converged, Iterations: int32(p.Iterations), FitTime: durationpb.New(p.FitTime)}
		for _, name := range reported {
			v, ok := p.Metrics[spec.MetricsName(name)]
			switch {
			case ok && math.IsNaN(v):
				if name == metric {
					fail("fold %d: the selection metric %s is not a number", f+1, metric)
				}
			case ok:
				fr.Metrics = append(fr.Metrics, &commonv1.Metric{Name: name, Value: v})
				values[name] = append(values[name], v)
			}
		}
		if _, ok := p.Metrics[spec.MetricsName(metric)]; ok {
			scored++
		}
		e.Folds = append(e.Folds, fr)
		e.Converged = e.Converged && p.Converged
		fit += p.FitTime
		if p.Err != nil {
			fail("fold %d: %v", f+1, p.Err)
		}
	}
	if scored > 0 && scored < n {
		fail("the selection metric %s could not be computed on every fold", metric)
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

// hasScore reports whether an entry has a value of the selection metric.
func hasScore(e *modelv1.LeaderboardEntry, metric string) bool {
	return slices.ContainsFunc(e.GetMetrics(), func(m *commonv1.Metric) bool { return m.GetName() == metric })
}

// rankEntries orders a leaderboard and numbers its ranks: the candidates with a score first,
// best first by def, then those without one, then the failed, each in candidate order among
// equals (selection.Rank orders a search's rows the same way).
func rankEntries(entries []*modelv1.LeaderboardEntry, metric string, def metrics.Metric) {
	class := func(e *modelv1.LeaderboardEntry) int {
		switch {
		case e.GetError() != nil:
			return 2
		case !hasScore(e, metric):
			return 1
		}
		return 0
	}
	slices.SortStableFunc(entries, func(x, y *modelv1.LeaderboardEntry) int {
		cx, cy := class(x), class(y)
		switch {
		case cx != cy:
			return cmp.Compare(cx, cy)
		case cx == 0 && def.Better(x.GetScore(), y.GetScore()):
			return -1
		case cx == 0 && def.Better(y.GetScore(), x.GetScore()):
			return 1
		}
		return cmp.Compare(x.GetCandidateIndex(), y.GetCandidateIndex())
	})
	for i, e := range entries {
		e.Rank = int32(i + 1)
	}
}

// leader returns the index among the candidates of a ranked leaderboard's winner, or the
// job's failure when none can win: every candidate failed, or none has a score.
func leader(leaderboard []*modelv1.LeaderboardEntry, metric string) (int, error) {
	first := leaderboard[0]
	switch {
	case first.GetError() != nil:
		return 0, Failure(ReasonAllFailed, "every candidate failed; the first: %s", first.GetError().GetDescription())
	case !hasScore(first, metric):
		return 0, Failure(ReasonAllFailed, "no candidate has a value of the selection metric %s", metric)
	}
	return int(first.GetCandidateIndex()) - 1, nil
}

// board builds the leaderboard of a classification or regression search as folds finish.
type board struct {
	mu       sync.Mutex
	cands    []spec.Candidate
	built    []spec.Built
	reported []string
	metric   string
	def      metrics.Metric
	results  [][]*selection.Progress
	finished map[int]*modelv1.LeaderboardEntry
	ranked   []*modelv1.LeaderboardEntry
}

func newBoard(cands []spec.Candidate, built []spec.Built, folds int, metric string, def metrics.Metric, task modelv1.TaskKind) *board {
	b := &board{cands: cands, built: built, reported: spec.TaskMetrics(task), metric: metric, def: def,
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
	if !slices.Contains(b.results[p.Candidate], nil) {
		b.finished[p.Candidate] = e
		b.ranked = b.ranked[:0:0]
		for _, f := range b.finished {
			b.ranked = append(b.ranked, proto.Clone(f).(*modelv1.LeaderboardEntry))
		}
		rankEntries(b.ranked, b.metric, b.def)
	}
	return b.ranked, e.GetMetrics()
}

// final returns the whole leaderboard, ranked, with the failures res's rows report.
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
	rankEntries(out, b.metric, b.def)
	return out
}

// entry builds candidate i's entry from its finished folds.
func (b *board) entry(i int) *modelv1.LeaderboardEntry {
	c, bt := b.cands[i], b.built[i]
	return foldsEntry(&modelv1.LeaderboardEntry{
		CandidateIndex:  int32(c.Index),
		Family:          bt.Family,
		Label:           c.Label,
		Hyperparameters: c.Params,
		KernelFallback:  bt.Fallback,
	}, b.results[i], b.reported, b.metric)
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
