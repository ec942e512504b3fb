package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"

	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
	"github.com/bullseye-ml/bullseye/services/training/internal/fault"
)

// LoadInteractions streams the feature service's ExportInteractions into interactions, one
// row per (user, item) pair with its value and the Unix time of its last event. progress,
// when not nil, is called with the rows read so far.
func LoadInteractions(ctx context.Context, fs featurev1.FeatureServiceClient, req *featurev1.ExportInteractionsRequest, progress func(int64)) (*recommend.Interactions, error) {
	stream, err := fs.ExportInteractions(ctx, req)
	if err != nil {
		return nil, FeatureError("exporting interactions", err)
	}
	var rows []recommend.Interaction
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, FeatureError("exporting interactions", err)
		}
		for _, x := range msg.GetInteractions() {
			rows = append(rows, recommend.Interaction{User: x.GetUserId(), Item: x.GetItemId(), Value: x.GetValue(), Time: x.GetTime().GetSeconds()})
		}
		if progress != nil {
			progress(int64(len(rows)))
		}
	}
	d, err := recommend.NewInteractions(rows)
	if err != nil {
		return nil, &fault.Coded{Kind: fault.ErrFailedPrecondition, Reason: "INVALID_DATA", Message: fmt.Sprintf("the exported interactions: %v", err)}
	}
	return d, nil
}

// SplitInteractions applies an InteractionsSpec's minimum counts and split to d: the training
// and test interactions (test empty without a split). seed is the split's seed when the
// random split gives none.
func SplitInteractions(d *recommend.Interactions, is *trainingv1.InteractionsSpec, seed uint64) (train, test *recommend.Interactions, err error) {
	d = d.Prune(int(is.GetMinUserInteractions()), int(is.GetMinItemInteractions()))
	switch m := is.GetSplit().GetMethod().(type) {
	case nil:
		return d, d.Subset(nil), nil
	case *trainingv1.InteractionSplit_Random:
		s := m.Random.GetSeed()
		if s == 0 {
			s = seed
		}
		return d.SplitRandom(m.Random.GetTestFraction(), s)
	case *trainingv1.InteractionSplit_TestStartTime:
		return d.SplitByTime(m.TestStartTime.GetSeconds())
	case *trainingv1.InteractionSplit_LastPerUser:
		return d.SplitLastPerUser(int(m.LastPerUser.GetN()))
	}
	return nil, nil, fmt.Errorf("unknown interaction split %T", is.GetSplit().GetMethod())
}
