package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/report"
)

var reportCommand = Command{
	Name:    "report",
	Summary: "Write an HTML report of a model version: metrics, leaderboard, ROC, gains, lift and calibration plots (predicted vs actual for regressions; the cumulative repeat-purchase curve and the holdout purchases by calibration frequency for lifetime value models).",
	Usage:   "MODEL[@VERSION|@ALIAS] [--out DIR]",
	Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
		out := fs.String("out", "reports", "folder the report is written to")
		unit := fs.String("unit", "", "unit of a regression's target for the axes, e.g. USD")
		if err := parse(env, fs, args, 1, 1); err != nil {
			return err
		}
		ref, err := parseModelRef(fs.Arg(0))
		if err != nil {
			return err
		}
		conn, err := env.dial(ctx, "training")
		if err != nil {
			return err
		}
		defer conn.Close()
		client := trainingv1.NewTrainingServiceClient(conn)
		cctx, cancel := env.call(ctx)
		defer cancel()
		if ref.GetSelector() == nil {
			if latest, ok, err := latestUnpromoted(cctx, client, ref.GetName()); err != nil {
				return err
			} else if ok {
				ref.Selector = &commonv1.ModelRef_Version{Version: latest}
			}
		}
		got, err := client.GetModel(cctx, &trainingv1.GetModelRequest{Model: ref})
		if err != nil {
			return err
		}
		mv := got.GetModelVersion()
		var opts []report.Option
		if data := report.TrainingData(mv); mv.GetTask() == modelv1.TaskKind_TASK_KIND_REGRESSION && data != nil {
			// Predicted against actual needs the test rows' scores.
			ev, err := client.Evaluate(cctx, &trainingv1.EvaluateRequest{
				Model:     &commonv1.ModelRef{Name: mv.GetModelName(), Selector: &commonv1.ModelRef_Version{Version: mv.GetVersion()}},
				Data:      data,
				Partition: trainingv1.DataPartition_DATA_PARTITION_TEST,
			})
			if err != nil {
				return fmt.Errorf("scoring the test rows for the report: %w", err)
			}
			opts = append(opts, report.WithEvaluation(ev))
			if *unit != "" {
				opts = append(opts, report.WithTarget(data.GetTrainingSet().GetLabel().GetName(), *unit))
			}
		}
		if data := report.TrainingData(mv); mv.GetTask() == modelv1.TaskKind_TASK_KIND_CUSTOMER_LIFETIME_VALUE && data.GetTrainingSet() != nil {
			c, err := repeatCurve(cctx, env, mv, data.GetTrainingSet())
			if err != nil {
				return fmt.Errorf("the cumulative repeat-purchase curve: %w", err)
			}
			if c != nil {
				opts = append(opts, report.WithRepeatCurve(c))
			}
		}
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		path := filepath.Join(*out, fmt.Sprintf("%s-v%d.html", mv.GetModelName(), mv.GetVersion()))
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := report.Write(f, mv, opts...); err != nil {
			f.Close()
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		abs, _ := filepath.Abs(path)
		if env.output == "json" {
			_, err := fmt.Fprintf(env.Stdout, "{\"report\":%q}\n", abs)
			return err
		}
		fmt.Fprintf(env.Stdout, "report for %s version %d: %s\n", mv.GetModelName(), mv.GetVersion(), abs)
		return nil
	},
}
