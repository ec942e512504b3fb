package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/report"
)

var trainCommand = Command{
	Name:    "train",
	Summary: "Start a training job from a YAML spec (bullseye.training.v1.TrainingSpec) and watch it: a progress bar and a live leaderboard.",
	Usage:   "[--request-id ID] [--no-watch] SPEC.yaml",
	Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
		requestID := fs.String("request-id", "", "idempotency key: the same id returns the same job (default: a new id)")
		noWatch := fs.Bool("no-watch", false, "print the job id and return at once")
		if err := parse(env, fs, args, 1, 1); err != nil {
			return err
		}
		spec := &trainingv1.TrainingSpec{}
		if err := readYAML(fs.Arg(0), spec); err != nil {
			return err
		}
		if *requestID == "" {
			*requestID = uuid.NewString()
		}
		conn, err := env.dial(ctx, "training")
		if err != nil {
			return err
		}
		defer conn.Close()
		client := trainingv1.NewTrainingServiceClient(conn)
		cctx, cancel := env.call(ctx)
		resp, err := client.StartTraining(cctx, &trainingv1.StartTrainingRequest{RequestId: *requestID, Spec: spec})
		cancel()
		if err != nil {
			return err
		}
		job := resp.GetJob()
		if *noWatch {
			if env.output == "json" {
				return env.printJSON(resp)
			}
			fmt.Fprintf(env.Stdout, "job %s %s\n", job.GetJobId(), job.GetState())
			return nil
		}
		if env.output != "json" {
			fmt.Fprintf(env.Stderr, "job %s started (request id %s)\n", job.GetJobId(), *requestID)
		}
		return watchJob(ctx, env, client, job.GetJobId())
	},
}

var watchCommand = Command{
	Name:    "watch",
	Summary: "Watch a training job: a progress bar and a live leaderboard until it ends.",
	Usage:   "JOB_ID",
	Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
		if err := parse(env, fs, args, 1, 1); err != nil {
			return err
		}
		conn, err := env.dial(ctx, "training")
		if err != nil {
			return err
		}
		defer conn.Close()
		return watchJob(ctx, env, trainingv1.NewTrainingServiceClient(conn), fs.Arg(0))
	},
}

func watchJob(ctx context.Context, env *Env, client trainingv1.TrainingServiceClient, jobID string) error {
	stream, err := client.WatchJob(ctx, &trainingv1.WatchJobRequest{JobId: jobID})
	if err != nil {
		return err
	}
	var last *trainingv1.JobProgress
	shownBoard := ""
	live := isTerminal(env.Stderr)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		p := resp.GetProgress()
		last = p
		if env.output == "json" {
			if err := env.printJSON(p); err != nil {
				return err
			}
			continue
		}
		if terminal(p.GetState()) {
			break
		}
		if !live {
			// Not a terminal (a log, a pipe): one line per stage.
			if line := progressLine(p); p.GetStage().String() != shownBoard {
				fmt.Fprintln(env.Stderr, line)
				shownBoard = p.GetStage().String()
			}
			continue
		}
		if board := leaderboard(p.GetLeaderboard()); board != shownBoard && board != "" {
			fmt.Fprintf(env.Stderr, "\r\033[K%s", board)
			shownBoard = board
		}
		fmt.Fprintf(env.Stderr, "\r\033[K%s", progressLine(p))
	}
	if env.output == "json" || last == nil {
		return nil
	}
	if live {
		fmt.Fprintln(env.Stderr)
	}
	for _, m := range last.GetMessages() {
		fmt.Fprintf(env.Stdout, "%s %s: %s\n", m.GetSeverity(), m.GetCode(), m.GetText())
	}
	fmt.Fprint(env.Stdout, leaderboard(last.GetLeaderboard()))
	fmt.Fprintf(env.Stdout, "job %s %s\n", last.GetJobId(), last.GetState())
	if last.GetState() != trainingv1.JobState_JOB_STATE_SUCCEEDED {
		return fmt.Errorf("job %s ended %s", last.GetJobId(), last.GetState())
	}
	return nil
}

func terminal(s trainingv1.JobState) bool {
	switch s {
	case trainingv1.JobState_JOB_STATE_SUCCEEDED, trainingv1.JobState_JOB_STATE_FAILED, trainingv1.JobState_JOB_STATE_CANCELLED:
		return true
	}
	return false
}

func progressLine(p *trainingv1.JobProgress) string {
	const width = 30
	frac := min(max(p.GetPercent()/100, 0), 1)
	filled := int(frac * width)
	stage := strings.TrimPrefix(p.GetStage().String(), "JOB_STAGE_")
	if p.GetStage() == trainingv1.JobStage_JOB_STAGE_UNSPECIFIED {
		stage = strings.TrimPrefix(p.GetState().String(), "JOB_STATE_")
	}
	s := fmt.Sprintf("[%s%s] %3.0f%% %s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), frac*100, strings.ToLower(stage))
	if p.GetCandidateCount() > 0 {
		s += fmt.Sprintf("  candidate %d/%d", p.GetCandidatesDone(), p.GetCandidateCount())
	}
	if p.GetFoldCount() > 0 {
		s += fmt.Sprintf("  fold %d/%d", p.GetFold(), p.GetFoldCount())
	}
	return s
}

// leaderboard renders the ranked candidates, best first.
func leaderboard(entries []*modelv1.LeaderboardEntry) string {
	if len(entries) == 0 {
		return ""
	}
	sorted := append([]*modelv1.LeaderboardEntry(nil), entries...)
	sort.SliceStable(sorted, func(i, j int) bool { return rankOf(sorted[i]) < rankOf(sorted[j]) })
	// Names are whole (never cut): they differ wherever hyperparameters do.
	names := report.CandidateNames(entries)
	width := len("candidate")
	for _, n := range names {
		width = max(width, utf8.RuneCountInString(n))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-4s %-*s %s\n", "rank", width, "candidate", "score (mean ± sd over folds)")
	for _, e := range sorted {
		note := ""
		if e.GetError() != nil {
			note = "  failed: " + e.GetError().GetDescription()
		} else if !e.GetConverged() {
			note = "  (not converged)"
		}
		fmt.Fprintf(&b, "%-4d %-*s %.4f ± %.4f%s\n", e.GetRank(), width, names[e.GetCandidateIndex()], e.GetScore(), e.GetScoreStdDev(), note)
	}
	return b.String()
}

// isTerminal reports whether w is a terminal, where progress redraws in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func rankOf(e *modelv1.LeaderboardEntry) int32 {
	if e.GetRank() == 0 {
		return 1 << 30
	}
	return e.GetRank()
}
