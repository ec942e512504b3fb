// Package materialize applies the events stream to customers' profiles in
// the state bucket. The stream's partitions are divided among the feature
// replicas through etcd leases (one owner per partition, moving when a
// replica dies); the owner of a partition runs a durable JetStream consumer
// on it, applies each batch of records to the profiles with compare-and-set
// writes, and acknowledges the batch only once every write is stored, so a
// crash at any point loses nothing, and a record delivered again is ignored
// by the profile's last applied sequence. Erasure records follow the
// eventlog protocol. Progress reports how far materialisation is, for
// readiness, backfills and training sets.
package materialize

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
)

// ErrBehind is returned when materialisation did not reach a stream
// position in time.
var ErrBehind = errors.New("materialisation is behind the events stream")

// ConsumerName returns the durable consumer name of partition p.
func ConsumerName(p int) string { return fmt.Sprintf("bullseye-feature-p%02d", p) }

// Progress reads how far materialisation is from the consumers' state on
// the server; any replica can ask, owner or not.
type Progress struct {
	js jetstream.JetStream
}

// NewProgress returns a Progress over js.
func NewProgress(js jetstream.JetStream) *Progress { return &Progress{js: js} }

// LastSeq returns the events stream's last sequence (0 when empty).
func (p *Progress) LastSeq(ctx context.Context) (uint64, error) {
	s, err := p.js.Stream(ctx, eventlog.EventsStream)
	if err != nil {
		return 0, fmt.Errorf("opening stream %s: %w", eventlog.EventsStream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the state of stream %s: %w", eventlog.EventsStream, err)
	}
	return info.State.LastSeq, nil
}

// CaughtUp reports whether every record stored at or before seq has been
// applied, and how many partitions have got there.
func (p *Progress) CaughtUp(ctx context.Context, seq uint64) (bool, int, error) {
	if seq == 0 {
		return true, eventlog.Partitions, nil
	}
	s, err := p.js.Stream(ctx, eventlog.EventsStream)
	if err != nil {
		return false, 0, fmt.Errorf("opening stream %s: %w", eventlog.EventsStream, err)
	}
	done := 0
	for part := 0; part < eventlog.Partitions; part++ {
		c, err := s.Consumer(ctx, ConsumerName(part))
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue
		}
		if err != nil {
			return false, done, fmt.Errorf("reading consumer %s: %w", ConsumerName(part), err)
		}
		info, err := c.Info(ctx)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue
		}
		if err != nil {
			return false, done, fmt.Errorf("reading consumer %s: %w", ConsumerName(part), err)
		}
		if info.AckFloor.Stream >= seq || (info.NumPending == 0 && info.NumAckPending == 0) {
			done++
		}
	}
	return done == eventlog.Partitions, done, nil
}

// Wait waits until every record stored at or before seq has been applied,
// polling, or fails with ErrBehind once ctx ends.
func (p *Progress) Wait(ctx context.Context, seq uint64) error {
	delay := 20 * time.Millisecond
	for {
		ok, _, err := p.CaughtUp(ctx, seq)
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w (stream sequence %d): %w", ErrBehind, seq, err)
			}
			return fmt.Errorf("%w (stream sequence %d)", ErrBehind, seq)
		case <-time.After(delay):
		}
		delay = min(2*delay, 250*time.Millisecond)
	}
}
