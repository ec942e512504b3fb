package cli

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	modelv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/model/v1"
	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/pkg/values"
)

// repeated is a flag that may be given many times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(s string) error { *r = append(*r, s); return nil }

var predictCommand = Command{
	Name:    "predict",
	Summary: "Score customers with a model through serving's Predict: by user id (features from the feature service), inline features, or both (inline wins). Exits 1 when an instance was not scored (INVALID, NOT_FOUND, SUPPRESSED), unless --allow-unscored.",
	Usage:   "MODEL[@VERSION|@ALIAS] [--user ID]... [--set NAME=VALUE]... [--contributions] [--allow-unscored]",
	Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
		var users, sets repeated
		fs.Var(&users, "user", "a customer id to score (repeatable)")
		fs.Var(&sets, "set", "an inline raw feature NAME=VALUE for every instance (repeatable); numbers, true/false, else text; an empty VALUE sends null (missing: imputed where the model imputes it)")
		contributions := fs.Bool("contributions", false, "also return per-feature contributions (linear models)")
		allowUnscored := fs.Bool("allow-unscored", false, "exit 0 even when instances were not scored (they are printed with their status)")
		if err := parse(env, fs, args, 1, 1); err != nil {
			return err
		}
		ref, err := parseModelRef(fs.Arg(0))
		if err != nil {
			return err
		}
		features := map[string]*commonv1.Value{}
		for _, s := range sets {
			k, v, ok := strings.Cut(s, "=")
			if !ok || k == "" {
				return usagef("--set %q: want NAME=VALUE", s)
			}
			if v == "" {
				features[k] = &commonv1.Value{}
				continue
			}
			features[k] = parseValue(v)
		}
		req := &servingv1.PredictRequest{Model: ref, IncludeContributions: *contributions}
		if len(users) == 0 {
			if len(features) == 0 {
				return usagef("give --user ids, --set features, or both")
			}
			req.Instances = append(req.Instances, &servingv1.Instance{Features: features})
		}
		for _, u := range users {
			req.Instances = append(req.Instances, &servingv1.Instance{UserId: u, Features: features})
		}
		conn, err := env.dial(ctx, "serving")
		if err != nil {
			return err
		}
		defer conn.Close()
		cctx, cancel := env.call(ctx)
		defer cancel()
		resp, err := servingv1.NewPredictionServiceClient(conn).Predict(cctx, req)
		if err != nil {
			return err
		}
		if env.output == "json" {
			if err := env.printJSON(resp); err != nil {
				return err
			}
			return unscored(resp, *allowUnscored)
		}
		for i, p := range resp.GetPredictions() {
			who := req.Instances[i].GetUserId()
			if who == "" {
				who = "(inline)"
			}
			status := strings.TrimPrefix(p.GetStatus().String(), "PREDICTION_STATUS_")
			if status != "OK" {
				text := p.GetProblem().GetDescription()
				if f := p.GetProblem().GetField(); f != "" {
					text = f + ": " + text
				}
				fmt.Fprintf(env.Stdout, "%-16s %-10s %s\n", who, status, text)
				continue
			}
			line := fmt.Sprintf("%-16s score %.4f", who, p.GetScore())
			if p.Probability != nil {
				line += fmt.Sprintf("  probability %.4f", p.GetProbability())
			}
			if p.Value != nil {
				line += fmt.Sprintf("  value %.4f", p.GetValue())
			}
			if l := p.GetLabel(); l != nil {
				line += "  label " + values.String(l)
			}
			for _, name := range slices.Sorted(maps.Keys(p.GetOutputs())) {
				switch name {
				case "score", "probability", "value", "label":
					continue
				}
				if o := p.GetOutputs()[name]; o.GetKind() != nil {
					if x, ok := o.GetKind().(*modelv1.OutputValue_Number); ok {
						line += fmt.Sprintf("  %s %.4f", name, x.Number)
					}
				}
			}
			if in := p.GetImputedInputs(); len(in) > 0 {
				line += "  imputed " + strings.Join(in, ",")
			}
			fmt.Fprintf(env.Stdout, "%s  (%s v%d)\n", line, p.GetModelName(), p.GetModelVersion())
			for _, c := range p.GetExplanation().GetContributions() {
				fmt.Fprintf(env.Stdout, "    %-32s %+.4f\n", c.GetFeature(), c.GetContribution())
			}
		}
		return unscored(resp, *allowUnscored)
	},
}

// unscored is the error of a reply with instances that were not scored, counted by status,
// unless they are allowed: a script that scores customers learns that some got no score.
func unscored(resp *servingv1.PredictResponse, allow bool) error {
	counts := map[string]int{}
	var order []string
	n := 0
	for _, p := range resp.GetPredictions() {
		if p.GetStatus() == servingv1.PredictionStatus_PREDICTION_STATUS_OK {
			continue
		}
		st := strings.TrimPrefix(p.GetStatus().String(), "PREDICTION_STATUS_")
		if counts[st] == 0 {
			order = append(order, st)
		}
		counts[st]++
		n++
	}
	if n == 0 || allow {
		return nil
	}
	parts := make([]string, len(order))
	for i, st := range order {
		parts[i] = fmt.Sprintf("%d %s", counts[st], st)
	}
	return fmt.Errorf("%d of %d instances were not scored (%s); pass --allow-unscored to exit 0 all the same",
		n, len(resp.GetPredictions()), strings.Join(parts, ", "))
}

var recommendCommand = Command{
	Name:    "recommend",
	Summary: "Top-k items for customers with a recommender model; unknown customers get the most popular items, marked as such.",
	Usage:   "MODEL[@VERSION|@ALIAS] --user ID [--user ID]... [-k 10]",
	Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
		var users repeated
		fs.Var(&users, "user", "a customer id (repeatable)")
		k := fs.Int("k", 10, "how many items per customer")
		if err := parse(env, fs, args, 1, 1); err != nil {
			return err
		}
		if len(users) == 0 {
			return usagef("give at least one --user")
		}
		ref, err := parseModelRef(fs.Arg(0))
		if err != nil {
			return err
		}
		conn, err := env.dial(ctx, "serving")
		if err != nil {
			return err
		}
		defer conn.Close()
		cctx, cancel := env.call(ctx)
		defer cancel()
		resp, err := servingv1.NewPredictionServiceClient(conn).Recommend(cctx, &servingv1.RecommendRequest{Model: ref, UserIds: users, K: int32(*k)})
		if err != nil {
			return err
		}
		if env.output == "json" {
			return env.printJSON(resp)
		}
		for _, r := range resp.GetRecommendations() {
			note := ""
			if r.GetPopularityFallback() {
				note = " (unknown customer: most popular items)"
			}
			var items []string
			for _, it := range r.GetItems() {
				items = append(items, fmt.Sprintf("%s (%.3f)", it.GetItemId(), it.GetScore()))
			}
			fmt.Fprintf(env.Stdout, "%s%s: %s\n", r.GetUserId(), note, strings.Join(items, ", "))
		}
		return nil
	},
}

var forgetCommand = Command{
	Name:    "forget",
	Summary: "Erase a customer (right to be forgotten): their events, traits, dead letters and online state are purged before the call returns; prints the receipt.",
	Usage:   "USER_ID [--reason TEXT]",
	Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
		reason := fs.String("reason", "", "why, for the audit record (no personal data)")
		if err := parse(env, fs, args, 1, 1); err != nil {
			return err
		}
		conn, err := env.dial(ctx, "ingest")
		if err != nil {
			return err
		}
		defer conn.Close()
		cctx, cancel := env.call(ctx)
		defer cancel()
		resp, err := ingestv1.NewIngestServiceClient(conn).ForgetUser(cctx, &ingestv1.ForgetUserRequest{UserId: fs.Arg(0), Reason: *reason})
		if err != nil {
			return err
		}
		if env.output == "json" {
			return env.printJSON(resp)
		}
		r := resp.GetReceipt()
		fmt.Fprintf(env.Stdout, "erasure %s at %s (customer hash %s)\n", r.GetErasureId(), r.GetEraseTime().AsTime().Format("2006-01-02T15:04:05Z07:00"), r.GetSubjectHash())
		for _, p := range r.GetPurged() {
			fmt.Fprintf(env.Stdout, "  %-28s %d removed\n", strings.TrimPrefix(p.GetTarget().String(), "ERASURE_TARGET_"), p.GetCount())
		}
		if r.GetAlreadyErased() {
			fmt.Fprintln(env.Stdout, "the customer had been erased before")
		}
		return nil
	},
}

// parseValue reads a command-line value: a number, true/false, else text.
func parseValue(s string) *commonv1.Value {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return &commonv1.Value{Kind: &commonv1.Value_NumberValue{NumberValue: f}}
	}
	if b, err := strconv.ParseBool(s); err == nil && (s == "true" || s == "false") {
		return &commonv1.Value{Kind: &commonv1.Value_BoolValue{BoolValue: b}}
	}
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
}
