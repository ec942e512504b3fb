package eventlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReadStream passes every message of stream on subject (a filter), in
// stream order, to fn, from the first until none is pending, or until
// the first message past the stream sequence until (0: no bound). It reads
// with an ephemeral consumer of its own, which it deletes.
//
// A fetch the client gives up on while the server still delivers leaves
// messages delivered but never received; ReadStream sees the gap in the
// delivery sequence and reads on from the first message it missed, so fn
// may see a message twice but never misses one.
func ReadStream(ctx context.Context, stream jetstream.Stream, subject string, until uint64, fn func(jetstream.Msg) error) error {
	start := uint64(0)
	for {
		next, done, err := readFrom(ctx, stream, subject, start, until, fn)
		if err != nil || done {
			return err
		}
		start = next
	}
}

// readFrom is one consumer's part of ReadStream: done, or next, the stream
// sequence to read on from after a missed delivery.
func readFrom(ctx context.Context, stream jetstream.Stream, subject string, start, until uint64, fn func(jetstream.Msg) error) (next uint64, done bool, err error) {
	name := stream.CachedInfo().Config.Name
	cfg := jetstream.ConsumerConfig{
		FilterSubject:     subject,
		AckPolicy:         jetstream.AckNonePolicy,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
	}
	if start > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	c, err := stream.CreateConsumer(ctx, cfg)
	if err != nil {
		return 0, false, fmt.Errorf("reading stream %s: %w", name, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = stream.DeleteConsumer(dctx, c.CachedInfo().Name)
	}()
	if c.CachedInfo().NumPending == 0 {
		return 0, true, nil
	}
	delivery := uint64(1)
	next = start
	for {
		if err := ctx.Err(); err != nil {
			return 0, false, fmt.Errorf("reading stream %s: %w", name, err)
		}
		// No wait: what is to be read is stored already, and a fetch that
		// waits for a full batch would hold the last one back.
		batch, err := c.FetchNoWait(256)
		if err != nil {
			return 0, false, fmt.Errorf("reading stream %s: %w", name, err)
		}
		got, stop, gap, err := readBatch(batch, &delivery, &next, until, fn)
		if err != nil {
			return 0, false, err
		}
		switch {
		case stop:
			return 0, true, nil
		case gap:
			return next, false, nil
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			return 0, false, fmt.Errorf("reading stream %s: %w", name, err)
		}
		if got == 0 {
			info, err := c.Info(ctx)
			if err != nil {
				return 0, false, fmt.Errorf("reading stream %s: %w", name, err)
			}
			if info.Delivered.Consumer >= delivery {
				return next, false, nil
			}
			if info.NumPending == 0 {
				return 0, true, nil
			}
		}
	}
}

// readBatch passes one fetch's messages to fn, checking their delivery
// sequence. Messages left in the batch when it returns are dropped with
// the consumer.
func readBatch(batch jetstream.MessageBatch, delivery, next *uint64, until uint64, fn func(jetstream.Msg) error) (got int, stop, gap bool, err error) {
	for msg := range batch.Messages() {
		got++
		md, err := msg.Metadata()
		if err != nil {
			return got, false, false, fmt.Errorf("reading a message's metadata: %w", err)
		}
		if md.Sequence.Consumer != *delivery {
			return got, false, true, nil
		}
		*delivery++
		if until > 0 && md.Sequence.Stream > until {
			return got, true, false, nil
		}
		*next = md.Sequence.Stream + 1
		if err := fn(msg); err != nil {
			return got, false, false, err
		}
		if md.NumPending == 0 || (until > 0 && md.Sequence.Stream == until) {
			return got, true, false, nil
		}
	}
	return got, false, false, nil
}
