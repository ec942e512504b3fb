package serving

import (
	"context"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	servingv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/serving/v1"
	"github.com/bullseye-ml/bullseye/services/serving/internal/testenv"
)

// TestFullQueueAndExpiredDeadline: with a batch in flight (its feature lookup held) and the
// queue at max_queue, a request fails at once with RESOURCE_EXHAUSTED; a request whose
// deadline passes while it waits is never looked up nor computed.
func TestFullQueueAndExpiredDeadline(t *testing.T) {
	b := sharedBank(t)
	const model = "bank-queue"
	b.register(t, model, testenv.Routing{Live: map[int64]uint32{1: 1}}, b.v1)
	in := startServing(t, b.env, func(c *Config) {
		c.ModelBatching = map[string]Batching{model: {MaxBatchSize: 1, MaxQueue: 2, MaxConcurrentBatches: 1}}
	})
	id := func(k int) string { return b.data.Rows[b.data.Test[k]].GetEntity().GetId() }
	predict := func(ctx context.Context, user string) error {
		resp, err := in.client.Predict(ctx, &servingv1.PredictRequest{Model: ref(model), Instances: byUser(user)})
		if err == nil && resp.GetPredictions()[0].GetStatus() != servingv1.PredictionStatus_PREDICTION_STATUS_OK {
			t.Errorf("customer %s: %v", user, resp.GetPredictions()[0])
		}
		return err
	}
	async := func(ctx context.Context, user string) <-chan error {
		ch := make(chan error, 1)
		go func() { ch <- predict(ctx, user) }()
		return ch
	}
	queued := func() float64 {
		return in.metric(t, "bullseye_serving_queued_tasks", map[string]string{"model": model})
	}
	waitQueued := func(n float64) {
		deadline := time.Now().Add(10 * time.Second)
		for queued() != n {
			if time.Now().After(deadline) {
				t.Fatalf("queued tasks %v, want %v", queued(), n)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}

	t.Run("full queue", func(t *testing.T) {
		started, release := in.hook.holdLookups()
		defer release()
		a := async(ctxT(t, 20*time.Second), id(0))
		waitStarted(t, started, a) // a's batch is in its lookup, holding the model's one batch slot
		bq, cq := async(ctxT(t, 20*time.Second), id(1)), async(ctxT(t, 20*time.Second), id(2))
		waitQueued(2)
		start := time.Now()
		err := predict(ctxT(t, 20*time.Second), id(3))
		took := time.Since(start)
		st := status.Convert(err)
		if st.Code() != codes.ResourceExhausted {
			t.Fatalf("with a full queue: %v, want RESOURCE_EXHAUSTED", err)
		}
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() != "QUEUE_FULL" {
				t.Errorf("reason %q", info.GetReason())
			}
		}
		t.Logf("refused in %v", took)
		if took > 100*time.Millisecond {
			t.Errorf("the refusal took %v: not at once", took)
		}
		if got := in.metric(t, "bullseye_serving_rejected_total", map[string]string{"model": model}); got != 1 {
			t.Errorf("rejected = %v, want 1", got)
		}
		release()
		for _, ch := range []<-chan error{a, bq, cq} {
			if err := <-ch; err != nil {
				t.Errorf("a queued request failed: %v", err)
			}
		}
	})

	t.Run("expired deadline", func(t *testing.T) {
		rows := func() float64 {
			return in.histogramSum(t, "bullseye_serving_batch_size", map[string]string{"model": model})
		}
		rowsBefore := rows()
		started, release := in.hook.holdLookups()
		defer release()
		a := async(ctxT(t, 20*time.Second), id(4))
		waitStarted(t, started, a)
		late := id(5)
		short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := predict(short, late)
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("a request whose deadline passed in the queue: %v, want DEADLINE_EXCEEDED", err)
		}
		release()
		if err := <-a; err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		// The server sees the deadline pass, or the client's cancellation when its own deadline
		// passes first: dropped either way.
		for in.metric(t, "bullseye_serving_expired_total", map[string]string{"model": model}) < 1 {
			if time.Now().After(deadline) {
				t.Fatal("the expired request was never dropped")
			}
			time.Sleep(5 * time.Millisecond)
		}
		waitQueued(0)
		if in.hook.looked(late) {
			t.Errorf("the expired request's customer was looked up")
		}
		if got := rows() - rowsBefore; got != 1 {
			t.Errorf("%v rows computed, want 1 (the expired request's row must not be)", got)
		}
	})
}

// waitStarted waits until a held lookup has started, failing if the request ends first.
func waitStarted(t *testing.T, started <-chan struct{}, req <-chan error) {
	t.Helper()
	select {
	case <-started:
	case err := <-req:
		t.Fatalf("the request ended before its lookup: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no lookup started")
	}
}
