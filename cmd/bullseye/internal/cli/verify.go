package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
)

var verifyCommand = Command{
	Name: "verify",
	Summary: "Reconcile the events stream with the materialised feature state: per event name (and trait updates, consent changes) " +
		"the records the stream holds against those the profiles hold or dropped by retention, and every customer that differs. " +
		"Exits 1 when anything differs.",
	Usage: "",
	Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
		maxEntities := fs.Int("max-entities", 20, "most differing customers listed")
		if err := parse(env, fs, args, 0, 0); err != nil {
			return err
		}
		conn, err := env.dial(ctx, "feature")
		if err != nil {
			return err
		}
		defer conn.Close()
		cctx, cancel := env.call(ctx)
		defer cancel()
		resp, err := featurev1.NewFeatureServiceClient(conn).VerifyMaterialization(cctx, &featurev1.VerifyMaterializationRequest{MaxEntities: int32(*maxEntities)})
		if err != nil {
			return err
		}
		if env.output == "json" {
			if err := env.printJSON(resp); err != nil {
				return err
			}
		} else {
			printVerification(env, resp)
		}
		if resp.GetDifferences() != 0 {
			return errors.New("the materialised state differs from the events stream")
		}
		return nil
	},
}

func printVerification(env *Env, resp *featurev1.VerifyMaterializationResponse) {
	w := env.Stdout
	fmt.Fprintf(w, "stream sequence %d, %d profiles (%d past retention)\n", resp.GetStreamSequence(), resp.GetProfiles(), resp.GetProfilesPastRetention())
	fmt.Fprintf(w, "%-32s %10s %12s %10s %10s  %s\n", "records", "stream", "materialised", "retention", "difference", "feature sets")
	for _, rc := range resp.GetRecords() {
		fmt.Fprintf(w, "%-32s %10d %12d %10d %10d  %s\n", rc.GetName(), rc.GetStream(), rc.GetMaterialised(), rc.GetDroppedByRetention(), rc.GetDifference(), strings.Join(rc.GetFeatureSets(), ","))
	}
	if resp.GetDifferences() == 0 {
		fmt.Fprintln(w, "0 differences: the profiles hold every record of the stream")
		return
	}
	fmt.Fprintf(w, "%d differences over %d (customer, record) pairs:\n", resp.GetDifferences(), resp.GetEntitiesDiffering())
	for _, d := range resp.GetEntities() {
		c := d.GetCount()
		fmt.Fprintf(w, "  %s %s: %q stream %d, materialised %d, retention %d, difference %d\n",
			d.GetEntity().GetEntityType(), d.GetEntity().GetId(), c.GetName(), c.GetStream(), c.GetMaterialised(), c.GetDroppedByRetention(), c.GetDifference())
	}
}
