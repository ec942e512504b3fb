package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
)

func TestRetry(t *testing.T) {
	errBad := errors.New("stream name already in use with a different configuration")
	cases := []struct {
		name      string
		errs      []error // op's results, one per call; nil ends
		wantCalls int
		wantErr   error
	}{
		{"succeeds at once", []error{nil}, 1, nil},
		{"times out then succeeds", []error{context.DeadlineExceeded, fmt.Errorf("creating: %w", nats.ErrTimeout), nil}, 3, nil},
		{"other errors are returned at once", []error{errBad}, 1, errBad},
		{"no responders is not retried", []error{nats.ErrNoResponders}, 1, nats.ErrNoResponders},
		{"gives up after Attempts", []error{nats.ErrTimeout, nats.ErrTimeout, nats.ErrTimeout, nats.ErrTimeout, nil}, eventlog.Attempts, nats.ErrTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := eventlog.Retry(context.Background(), func(context.Context) error {
				calls++
				return tc.errs[calls-1]
			})
			if calls != tc.wantCalls || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Errorf("%d calls, error %v; want %d calls, error %v", calls, err, tc.wantCalls, tc.wantErr)
			}
		})
	}
}

func TestRetryStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	start := time.Now()
	err := eventlog.Retry(ctx, func(context.Context) error {
		calls++
		cancel()
		return nats.ErrTimeout
	})
	if calls != 1 || !errors.Is(err, nats.ErrTimeout) || time.Since(start) > time.Second {
		t.Errorf("after cancel: %d calls, %v, %v; want 1 call and its error, at once", calls, err, time.Since(start))
	}
	// A deadline of ctx's own is the caller's bound, not a slow server.
	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	<-ctx.Done()
	calls = 0
	_ = eventlog.Retry(ctx, func(ctx context.Context) error { calls++; return ctx.Err() })
	if calls != 1 {
		t.Errorf("ctx past its deadline: %d calls, want 1", calls)
	}
}
