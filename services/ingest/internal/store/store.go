// Package store is ingest's access to the event log on NATS JetStream (the
// layout of pkg/eventlog): it publishes records and dead letters
// asynchronously and awaits their acks, reads and pages dead letters, keeps
// replay marks and import progress, and purges and audits erasures. Every
// failure to reach JetStream is reported as ErrUnavailable, never as a
// silent success.
package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/service"
)

// ErrUnavailable is wrapped by every error that comes from JetStream being
// unreachable, slow or refusing a write: the caller may retry.
var ErrUnavailable = errors.New("event log unavailable")

// ErrNotFound is wrapped when a dead letter or record does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is wrapped when a compare-and-set write lost to another
// writer.
var ErrConflict = errors.New("concurrent update")

// Defaults of JetStreamOptions.
const (
	// DefaultPublishTimeout bounds how long a publish waits for its acks.
	DefaultPublishTimeout = 5 * time.Second
	// DefaultMaxPending is the most asynchronous publishes awaiting acks.
	DefaultMaxPending = 16384
)

// JetStreamOptions returns the settings of the JetStream connection a store needs: publishes
// that fail at once while NATS is unreachable, so that a caller gets UNAVAILABLE rather than a
// late write it was told had failed; publishTimeout bounding every publish and JetStream call;
// DefaultMaxPending publishes in flight.
func JetStreamOptions(publishTimeout time.Duration) service.JetStreamOptions {
	return service.JetStreamOptions{MaxPending: DefaultMaxPending, Timeout: publishTimeout, NoReconnectBuffer: true}
}

// Store reads and writes the event log. It is safe for concurrent use.
type Store struct {
	js             jetstream.JetStream
	events         jetstream.Stream
	deadLetters    jetstream.Stream
	imports        jetstream.KeyValue
	replays        jetstream.KeyValue
	erasures       *eventlog.ErasureList
	publishTimeout time.Duration
	propagator     propagation.TextMapPropagator
}

// Option configures a Store.
type Option func(*config)

type config struct {
	layout     []eventlog.Option
	propagator propagation.TextMapPropagator
}

// WithLayout passes options to eventlog.Ensure (replicas, de-duplication
// window, dead-letter age).
func WithLayout(opts ...eventlog.Option) Option {
	return func(c *config) { c.layout = append(c.layout, opts...) }
}

// WithPropagator sets how trace context is written into message headers;
// the default writes W3C trace context and baggage (DESIGN §5).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.propagator = p }
}

// New ensures the event log's layout through js, opens its streams and
// buckets, and loads the erasure list. js is opened with JetStreamOptions:
// its timeout also bounds how long publishing waits for the acks (and for
// the connection) before it reports ErrUnavailable, as does a call's own
// deadline. Close releases what it started.
func New(ctx context.Context, js jetstream.JetStream, opts ...Option) (*Store, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.propagator == nil {
		c.propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	if err := eventlog.Ensure(ctx, js, c.layout...); err != nil {
		return nil, unavailable(err)
	}
	s := &Store{js: js, publishTimeout: js.Options().DefaultTimeout, propagator: c.propagator}
	var err error
	if s.events, err = js.Stream(ctx, eventlog.EventsStream); err != nil {
		return nil, unavailable(fmt.Errorf("opening stream %s: %w", eventlog.EventsStream, err))
	}
	if s.deadLetters, err = js.Stream(ctx, eventlog.DeadLettersStream); err != nil {
		return nil, unavailable(fmt.Errorf("opening stream %s: %w", eventlog.DeadLettersStream, err))
	}
	if s.imports, err = js.KeyValue(ctx, eventlog.ImportsBucket); err != nil {
		return nil, unavailable(fmt.Errorf("opening bucket %s: %w", eventlog.ImportsBucket, err))
	}
	if s.replays, err = js.KeyValue(ctx, eventlog.ReplaysBucket); err != nil {
		return nil, unavailable(fmt.Errorf("opening bucket %s: %w", eventlog.ReplaysBucket, err))
	}
	if s.erasures, err = eventlog.WatchErasures(ctx, js); err != nil {
		return nil, unavailable(err)
	}
	return s, nil
}

// Close stops the erasure-list watch. The connection stays open: it
// belongs to the caller.
func (s *Store) Close() {
	s.erasures.Stop()
}

// JetStream returns the store's JetStream handle.
func (s *Store) JetStream() jetstream.JetStream { return s.js }

// Erasures returns the erasure list.
func (s *Store) Erasures() *eventlog.ErasureList { return s.erasures }

// unavailable marks err as ErrUnavailable, unless it says something more
// precise already.
func unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Message is one message to publish.
type Message struct {
	// Subject is where it goes; it selects the stream.
	Subject string
	// MsgID is the de-duplication id; empty means none.
	MsgID string
	// Type, if set, goes into the eventlog.HeaderType header.
	Type eventlog.Type
	// Data is the encoded record.
	Data []byte
}

// Ack is JetStream's answer to one published message.
type Ack struct {
	// Seq is the message's sequence in its stream (the first copy's, for a
	// duplicate).
	Seq uint64
	// Duplicate is true when the message id had been stored before, within
	// the de-duplication window: nothing new was stored.
	Duplicate bool
}

// typeHeaders are the values of the type header, shared by every message
// (headers are only read once built).
var typeHeaders = map[eventlog.Type][]string{
	eventlog.TypeTrack:    {string(eventlog.TypeTrack)},
	eventlog.TypeIdentify: {string(eventlog.TypeIdentify)},
	eventlog.TypeConsent:  {string(eventlog.TypeConsent)},
	eventlog.TypeErasure:  {string(eventlog.TypeErasure)},
}

// Pending is a batch of asynchronous publishes awaiting acks.
type Pending struct {
	s       *Store
	futures []jetstream.PubAckFuture
	err     error
}

// Publish sends msgs asynchronously, in order, with the trace context of
// ctx in their headers. Wait collects the acks.
func (s *Store) Publish(ctx context.Context, msgs []Message) *Pending {
	p := &Pending{s: s, futures: make([]jetstream.PubAckFuture, 0, len(msgs))}
	if len(msgs) == 0 {
		return p
	}
	if st := s.js.Conn().Status(); st != nats.CONNECTED {
		p.err = fmt.Errorf("%w: NATS connection is %s", ErrUnavailable, strings.ToLower(st.String()))
		return p
	}
	trace := http.Header{}
	s.propagator.Inject(ctx, propagation.HeaderCarrier(trace))
	for _, m := range msgs {
		h := make(nats.Header, 2+len(trace))
		for k, v := range trace {
			h[k] = v
		}
		if m.MsgID != "" {
			h[eventlog.HeaderMsgID] = []string{m.MsgID}
		}
		if m.Type != "" {
			h[eventlog.HeaderType] = typeHeaders[m.Type]
		}
		f, err := s.js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Header: h, Data: m.Data}, jetstream.WithStallWait(s.publishTimeout))
		if err != nil {
			p.err = fmt.Errorf("%w: publishing to %s: %w", ErrUnavailable, m.Subject, err)
			return p
		}
		p.futures = append(p.futures, f)
	}
	return p
}

// Len returns how many messages the batch holds.
func (p *Pending) Len() int { return len(p.futures) }

// Wait returns the acks of every message, in order, once all have arrived.
// It gives up with ErrUnavailable after the store's publish timeout, before
// ctx's deadline (keeping a tenth of the time left for the answer), or on
// the first failed publish; with ctx's error when ctx is cancelled.
func (p *Pending) Wait(ctx context.Context) ([]Ack, error) {
	if p.err != nil {
		return nil, p.err
	}
	timeout := p.s.publishTimeout
	if d, ok := ctx.Deadline(); ok {
		if left := time.Until(d) * 9 / 10; left < timeout {
			timeout = left
		}
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	acks := make([]Ack, len(p.futures))
	for i, f := range p.futures {
		select {
		case a := <-f.Ok():
			acks[i] = Ack{Seq: a.Sequence, Duplicate: a.Duplicate}
		case err := <-f.Err():
			return nil, fmt.Errorf("%w: storing to %s: %w", ErrUnavailable, f.Msg().Subject, err)
		case <-timer.C:
			return nil, fmt.Errorf("%w: no ack from JetStream within %s", ErrUnavailable, timeout.Round(time.Millisecond))
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w: waiting for JetStream's acks: %w", ErrUnavailable, ctx.Err())
			}
			return nil, ctx.Err()
		}
	}
	return acks, nil
}

// PublishSync publishes one message and waits for its ack.
func (s *Store) PublishSync(ctx context.Context, m Message) (Ack, error) {
	acks, err := s.Publish(ctx, []Message{m}).Wait(ctx)
	if err != nil {
		return Ack{}, err
	}
	return acks[0], nil
}

// Purge removes every message on subject from stream and returns how many.
func (s *Store) Purge(ctx context.Context, stream, subject string) (int64, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.publishTimeout)
		defer cancel()
	}
	n, err := eventlog.Purge(ctx, s.js, stream, subject)
	if err != nil {
		return 0, unavailable(err)
	}
	return int64(n), nil
}

// EventsStream returns the events stream.
func (s *Store) EventsStream() jetstream.Stream { return s.events }

// DeadLetterID is the id of the dead letter stored at seq.
func DeadLetterID(seq uint64) string { return "dl-" + strconv.FormatUint(seq, 10) }

// ParseDeadLetterID returns the sequence of a dead letter id.
func ParseDeadLetterID(id string) (uint64, bool) {
	s, ok := strings.CutPrefix(id, "dl-")
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(s, 10, 64)
	return seq, err == nil && seq > 0
}
