package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/bullseye-ml/bullseye/pkg/fault"
	featurev1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/feature/v1"
	trainingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/training/v1"
	"github.com/bullseye-ml/bullseye/pkg/ml/recommend"
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

// LoadInteractionsSpec reads the interactions of an InteractionsSpec: its export and, with a
// split by event name, the export of the test events (spec.TestExport). testRows lists the
// rows of the test events (nil without such a split); a pair in both exports is kept once, as
// a test row. progress, when not nil, is called with the rows read so far.
func LoadInteractionsSpec(ctx context.Context, fs featurev1.FeatureServiceClient, is *trainingv1.InteractionsSpec, testExport *featurev1.ExportInteractionsRequest,
	progress func(int64)) (d *recommend.Interactions, testRows []int, err error) {
	train, err := LoadInteractions(ctx, fs, is.GetExport(), progress)
	if err != nil || testExport == nil {
		return train, nil, err
	}
	read := int64(train.Len())
	test, err := LoadInteractions(ctx, fs, testExport, func(n int64) {
		if progress != nil {
			progress(read + n)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	type pair struct{ user, item string }
	inTest := make(map[pair]bool, test.Len())
	for r := range test.Len() {
		inTest[pair{test.UserIDs[test.Users[r]], test.ItemIDs[test.Items[r]]}] = true
	}
	rows := make([]recommend.Interaction, 0, train.Len()+test.Len())
	add := func(x *recommend.Interactions, r int) {
		var t int64
		if x.Times != nil {
			t = x.Times[r]
		}
		rows = append(rows, recommend.Interaction{User: x.UserIDs[x.Users[r]], Item: x.ItemIDs[x.Items[r]], Value: x.Values[r], Time: t})
	}
	for r := range train.Len() {
		if !inTest[pair{train.UserIDs[train.Users[r]], train.ItemIDs[train.Items[r]]}] {
			add(train, r)
		}
	}
	for r := range test.Len() {
		testRows = append(testRows, len(rows))
		add(test, r)
	}
	if d, err = recommend.NewInteractions(rows); err != nil {
		return nil, nil, &fault.Coded{Kind: fault.ErrFailedPrecondition, Reason: "INVALID_DATA", Message: fmt.Sprintf("the exported interactions: %v", err)}
	}
	return d, testRows, nil
}

// SplitInteractions applies an InteractionsSpec's minimum counts and split to d: the training
// and test interactions (test empty without a split). seed is the split's seed when the
// random split gives none; testRows are the rows of the test events of a split by event name
// (LoadInteractionsSpec), whose minimum counts apply to the training interactions only.
func SplitInteractions(d *recommend.Interactions, is *trainingv1.InteractionsSpec, seed uint64, testRows []int) (train, test *recommend.Interactions, err error) {
	minUser, minItem := int(is.GetMinUserInteractions()), int(is.GetMinItemInteractions())
	if _, ok := is.GetSplit().GetMethod().(*trainingv1.InteractionSplit_EventNames); ok {
		isTest := make([]bool, d.Len())
		for _, r := range testRows {
			isTest[r] = true
		}
		var trainRows []int
		for r := range isTest {
			if !isTest[r] {
				trainRows = append(trainRows, r)
			}
		}
		return d.Subset(trainRows).Prune(minUser, minItem), d.Subset(testRows), nil
	}
	d = d.Prune(minUser, minItem)
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
