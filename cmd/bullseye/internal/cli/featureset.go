package cli

import (
	"context"
	"flag"
	"fmt"

	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
)

var featureSetCommand = Command{
	Name:    "featureset",
	Summary: "Apply a feature set from a YAML file (bullseye.feature.v1.FeatureSet) as a new version, or list feature sets.",
	Usage:   "apply FILE.yaml | list",
	Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
		if err := parse(env, fs, args, 1, 2); err != nil {
			return err
		}
		conn, err := env.dial(ctx, "feature")
		if err != nil {
			return err
		}
		defer conn.Close()
		client := featurev1.NewFeatureServiceClient(conn)
		cctx, cancel := env.call(ctx)
		defer cancel()
		switch fs.Arg(0) {
		case "apply":
			if fs.NArg() != 2 {
				return usagef("apply takes one YAML file")
			}
			set := &featurev1.FeatureSet{}
			if err := readYAML(fs.Arg(1), set); err != nil {
				return err
			}
			resp, err := client.ApplyFeatureSet(cctx, &featurev1.ApplyFeatureSetRequest{FeatureSet: set})
			if err != nil {
				return err
			}
			if env.output == "json" {
				return env.printJSON(resp)
			}
			verb := "applied"
			if resp.GetUnchanged() {
				verb = "unchanged, still"
			}
			got := resp.GetFeatureSet()
			fmt.Fprintf(env.Stdout, "feature set %s %s version %d (%d columns, backfill %s)\n",
				got.GetName(), verb, got.GetVersion(), len(got.GetColumns()), got.GetBackfill().GetState())
			return nil
		case "list":
			resp, err := client.ListFeatureSets(cctx, &featurev1.ListFeatureSetsRequest{})
			if err != nil {
				return err
			}
			if env.output == "json" {
				return env.printJSON(resp)
			}
			for _, s := range resp.GetFeatureSets() {
				fmt.Fprintf(env.Stdout, "%-24s version %-4d %3d columns  %s\n", s.GetName(), s.GetVersion(), len(s.GetColumns()), s.GetBackfill().GetState())
			}
			return nil
		}
		return usagef("unknown featureset action %q: want apply or list", fs.Arg(0))
	},
}
