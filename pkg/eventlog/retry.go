package eventlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Attempts is how many times Retry runs an operation whose JetStream
// requests go unanswered.
const Attempts = 4

// Retry runs op until it succeeds, fails for a reason other than a
// JetStream request that timed out, has run Attempts times, or ctx ends.
//
// A machine so loaded that an API call misses JetStream's default timeout
// (5 s when ctx has no deadline) answers it late or not at all; setting up
// a stream, bucket or object store once more is then the right thing to do,
// and each set-up call of the layout is idempotent. A server that answers
// "no responders" or "JetStream not enabled" is misconfigured, not slow, so
// those errors are returned at once. Waits between attempts grow from
// 100 ms.
func Retry(ctx context.Context, op func(context.Context) error) error {
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil || !TimedOut(ctx, err) {
			return err
		}
		if attempt == Attempts {
			return fmt.Errorf("%d attempts: %w", attempt, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

// TimedOut reports whether err says a JetStream request got no answer in
// time while ctx is still live: a timeout of the request's own, not the end
// of ctx.
func TimedOut(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}
