package cli

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"

	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
)

var audienceCommand = Command{
	Name:    "audience",
	Summary: "Score every known customer with a model and export the campaign audience (CSV): the top N or those above a score, leaving out customers who objected or were erased.",
	Usage:   "MODEL[@VERSION|@ALIAS] [--top N | --top-fraction F | --min-score S] [--out FILE.csv]",
	Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
		top := fs.Int64("top", 0, "only the N best-scored customers")
		topFraction := fs.Float64("top-fraction", 0, "only this fraction of the scored customers, best first (0.1 is the top decile); needs a first pass to count them")
		minScore := fs.Float64("min-score", 0, "only customers whose score is at least this (set to use it)")
		out := fs.String("out", "", "CSV file to write (entity_id,score,probability,model_version); default: none, a summary only")
		if err := parse(env, fs, args, 1, 1); err != nil {
			return err
		}
		ref, err := parseModelRef(fs.Arg(0))
		if err != nil {
			return err
		}
		if *topFraction < 0 || *topFraction > 1 {
			return usagef("--top-fraction %v: want a fraction between 0 and 1", *topFraction)
		}
		conn, err := env.dial(ctx, "serving")
		if err != nil {
			return err
		}
		defer conn.Close()
		client := servingv1.NewPredictionServiceClient(conn)
		req := &servingv1.ScoreAudienceRequest{Model: ref, TopN: *top}
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "min-score" {
				req.MinScore = minScore
			}
		})
		if *topFraction > 0 {
			// Count the scorable audience first, then keep its best fraction.
			sum, err := scoreAudience(ctx, client, &servingv1.ScoreAudienceRequest{Model: ref, MinScore: req.MinScore}, nil)
			if err != nil {
				return err
			}
			req.TopN = max(1, int64(float64(sum.GetScored())**topFraction+0.5))
		}
		var w *csv.Writer
		if *out != "" {
			f, err := os.Create(*out)
			if err != nil {
				return err
			}
			defer f.Close()
			w = csv.NewWriter(f)
			_ = w.Write([]string{"entity_id", "score", "probability", "model_version"})
		}
		sum, err := scoreAudience(ctx, client, req, w)
		if err != nil {
			return err
		}
		if w != nil {
			w.Flush()
			if err := w.Error(); err != nil {
				return fmt.Errorf("writing %s: %w", *out, err)
			}
		}
		if env.output == "json" {
			return env.printJSON(sum)
		}
		fmt.Fprintf(env.Stdout, "%s: %d customers scored, %d left out (objected or erased), %d in the audience",
			sum.GetModelName(), sum.GetScored(), sum.GetSuppressed(), sum.GetReturned())
		if *out != "" {
			fmt.Fprintf(env.Stdout, ", written to %s", *out)
		}
		fmt.Fprintln(env.Stdout)
		return nil
	},
}

// scoreAudience streams an audience, writing its rows to w when set, and
// returns the summary.
func scoreAudience(ctx context.Context, client servingv1.PredictionServiceClient, req *servingv1.ScoreAudienceRequest, w *csv.Writer) (*servingv1.AudienceSummary, error) {
	stream, err := client.ScoreAudience(ctx, req)
	if err != nil {
		return nil, err
	}
	var sum *servingv1.AudienceSummary
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if s := resp.GetSummary(); s != nil {
			sum = s
		}
		if w == nil {
			continue
		}
		for _, r := range resp.GetBatch().GetRows() {
			prob := ""
			if r.Probability != nil {
				prob = strconv.FormatFloat(r.GetProbability(), 'f', 6, 64)
			}
			if err := w.Write([]string{r.GetEntityId(), strconv.FormatFloat(r.GetScore(), 'f', 6, 64), prob, strconv.FormatInt(r.GetModelVersion(), 10)}); err != nil {
				return nil, err
			}
		}
	}
	if sum == nil {
		return nil, errors.New("the audience stream ended without its summary")
	}
	return sum, nil
}
