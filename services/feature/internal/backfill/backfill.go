// Package backfill moves feature set versions from PENDING through RUNNING
// to READY. Profiles hold every customer's whole history, so a new version
// needs no state of its own: it is backfilled once materialisation has
// applied every record that was on the stream when the version was created
// (BackfillStatus.events_total). Every replica runs a Tracker; status
// writes are compare-and-set, so they never fight.
package backfill

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/catalog"
)

// Progress says how far materialisation is; see materialize.Progress.
type Progress interface {
	// CaughtUp reports whether every record at or before seq is applied,
	// and in how many partitions.
	CaughtUp(ctx context.Context, seq uint64) (bool, int, error)
}

// DefaultInterval is how often a Tracker looks at pending versions.
const DefaultInterval = 200 * time.Millisecond

// Track advances pending versions until ctx ends.
func Track(ctx context.Context, cat *catalog.Catalog, prog Progress, interval time.Duration, logger *slog.Logger) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, p := range cat.Pending() {
			if err := step(ctx, cat, prog, p); err != nil && ctx.Err() == nil {
				logger.Warn("advancing a backfill", slog.String("feature_set", p.Name), slog.Int64("version", p.Version), slog.Any("error", err))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func step(ctx context.Context, cat *catalog.Catalog, prog Progress, p catalog.Pending) error {
	total := p.Status.GetEventsTotal()
	done, parts, err := prog.CaughtUp(ctx, uint64(total))
	if err != nil {
		return err
	}
	st := proto.Clone(p.Status).(*featurev1.BackfillStatus)
	switch {
	case done:
		st.State = featurev1.BackfillState_BACKFILL_STATE_READY
		st.EventsProcessed = total
		st.EndTime = timestamppb.Now()
	case st.State == featurev1.BackfillState_BACKFILL_STATE_PENDING:
		st.State = featurev1.BackfillState_BACKFILL_STATE_RUNNING
		st.EventsProcessed = total * int64(parts) / eventlog.Partitions
	default:
		processed := total * int64(parts) / eventlog.Partitions
		if processed == st.EventsProcessed {
			return nil
		}
		st.EventsProcessed = processed
	}
	_, err = cat.UpdateBackfill(ctx, p.Name, p.Version, st, p.Revision)
	return err
}
