package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/bullseye-ml/bullseye/cmd/bullseye/internal/yamlpb"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/values"
)

var evaluateCommand = Command{
	Name: "evaluate",
	Summary: "Score a registered model version on a test set with training's Evaluate and print its metrics. The test set is a YAML file: " +
		"a DataSpec (trainingSet or interactions, with its split), a training spec (its data), a feature service TrainingSetSpec, or an " +
		"ExportInteractionsRequest.",
	Usage: "MODEL[@VERSION|@ALIAS] --test FILE.yaml [--partition test|train|all] [--k 10]... [--threshold 0.5] [--scores]",
	Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
		test := fs.String("test", "", "YAML file of the rows to score (required): a DataSpec, a training spec, a TrainingSetSpec or an ExportInteractionsRequest")
		partition := fs.String("partition", "", `which part of a split data set to score: "test", "train" or "all" (default: the test part when there is a split, else every row)`)
		var ks repeated
		fs.Var(&ks, "k", "a ranking cut-off for recommenders (repeatable; default 10)")
		threshold := fs.Float64("threshold", 0, "the classification threshold of accuracy, precision, recall and f1 (default 0.5)")
		scores := fs.Bool("scores", false, "also print every scored row (at most 100,000)")
		if err := parse(env, fs, args, 1, 1); err != nil {
			return err
		}
		ref, err := parseModelRef(fs.Arg(0))
		if err != nil {
			return err
		}
		if *test == "" {
			return usagef("--test FILE.yaml is required")
		}
		data, err := readTestSet(*test)
		if err != nil {
			return err
		}
		req := &trainingv1.EvaluateRequest{Model: ref, Data: data, OmitScores: !*scores,
			Options: &trainingv1.EvaluationOptions{Threshold: *threshold}}
		switch *partition {
		case "":
		case "test":
			req.Partition = trainingv1.DataPartition_DATA_PARTITION_TEST
		case "train":
			req.Partition = trainingv1.DataPartition_DATA_PARTITION_TRAIN
		case "all":
			req.Partition = trainingv1.DataPartition_DATA_PARTITION_ALL
		default:
			return usagef(`--partition %q: want "test", "train" or "all"`, *partition)
		}
		for _, k := range ks {
			n, err := strconv.Atoi(k)
			if err != nil || n < 1 {
				return usagef("--k %q: want a positive whole number", k)
			}
			req.Options.RankingK = append(req.Options.RankingK, int32(n))
		}
		conn, err := env.dial(ctx, "training")
		if err != nil {
			return err
		}
		defer conn.Close()
		cctx, cancel := env.call(ctx)
		defer cancel()
		resp, err := trainingv1.NewTrainingServiceClient(conn).Evaluate(cctx, req)
		if err != nil {
			return err
		}
		if env.output == "json" {
			if err := env.printJSON(resp); err != nil {
				return err
			}
		} else {
			printEvaluation(env, resp)
		}
		if resp.GetRowsLabelled() == 0 {
			return errors.New("no scored row had a label: there are no metrics")
		}
		return nil
	},
}

// printEvaluation writes an Evaluate reply for people: the counts, the metrics, and the
// scored rows when the reply has them.
func printEvaluation(env *Env, resp *trainingv1.EvaluateResponse) {
	fmt.Fprintf(env.Stdout, "%s version %d: %d rows scored, %d labelled, %d invalid", resp.GetModelName(), resp.GetModelVersion(),
		resp.GetRowsScored(), resp.GetRowsLabelled(), resp.GetRowsInvalid())
	if resp.GetRowsCold() > 0 {
		fmt.Fprintf(env.Stdout, ", %d cold pairs predicted from the biases", resp.GetRowsCold())
	}
	fmt.Fprintln(env.Stdout)
	width := 0
	for _, m := range resp.GetMetrics() {
		width = max(width, len(m.GetName()))
	}
	for _, m := range resp.GetMetrics() {
		fmt.Fprintf(env.Stdout, "  %-*s %.4f\n", width, m.GetName(), m.GetValue())
	}
	for _, r := range resp.GetScores() {
		who := r.GetEntityId()
		if r.GetItemId() != "" {
			who += " " + r.GetItemId()
		}
		status := strings.TrimPrefix(r.GetStatus().String(), "SCORED_ROW_STATUS_")
		if status != "OK" {
			fmt.Fprintf(env.Stdout, "%6d %-24s %s %s\n", r.GetIndex(), who, status, r.GetProblem().GetDescription())
			continue
		}
		line := fmt.Sprintf("%6d %-24s score %.4f", r.GetIndex(), who, r.GetScore())
		if r.Probability != nil {
			line += fmt.Sprintf("  probability %.4f", r.GetProbability())
		}
		if r.GetLabel() != nil {
			line += "  label " + values.String(r.GetLabel())
		}
		fmt.Fprintln(env.Stdout, line)
	}
}

// readTestSet reads the rows to evaluate on from a YAML (or JSON) file, the first of these
// it parses as: a DataSpec, a TrainingSpec (its data), a feature service TrainingSetSpec, or
// an ExportInteractionsRequest (every exported pair scored). A file that is none of them is
// reported with the DataSpec's error.
func readTestSet(path string) (*trainingv1.DataSpec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fits := func(m proto.Message) bool { return yamlpb.Unmarshal(path, raw, m) == nil }
	d := &trainingv1.DataSpec{}
	derr := yamlpb.Unmarshal(path, raw, d)
	if derr == nil && d.GetSource() != nil {
		return d, nil
	}
	if s := (&trainingv1.TrainingSpec{}); fits(s) && s.GetData().GetSource() != nil {
		return s.GetData(), nil
	}
	if ts := (&featurev1.TrainingSetSpec{}); fits(ts) && ts.GetFeatureSet() != nil {
		return &trainingv1.DataSpec{Source: &trainingv1.DataSpec_TrainingSet{TrainingSet: ts}}, nil
	}
	if ex := (&featurev1.ExportInteractionsRequest{}); fits(ex) && ex.GetMode() != nil {
		return &trainingv1.DataSpec{Source: &trainingv1.DataSpec_Interactions{Interactions: &trainingv1.InteractionsSpec{Export: ex}}}, nil
	}
	if derr != nil {
		return nil, fmt.Errorf("not a DataSpec, training spec, TrainingSetSpec or ExportInteractionsRequest: %w", derr)
	}
	return nil, fmt.Errorf("%s: give trainingSet or interactions (a DataSpec), or a training spec, TrainingSetSpec or ExportInteractionsRequest", path)
}
