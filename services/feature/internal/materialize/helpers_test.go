package materialize

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bullseye-ml/bullseye/pkg/embedded/embeddedtest"
	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/eventlog/eventlogtest"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/feature/internal/profile"
	"github.com/bullseye-ml/bullseye/services/feature/internal/state"
)

// env is one test's etcd, NATS with the event log layout, and profile bucket.
type env struct {
	t     *testing.T
	cli   *clientv3.Client
	js    jetstream.JetStream
	store *state.Store
	pub   *eventlogtest.Publisher
	ctx   context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, cli: embeddedtest.Etcd(t)}
	e.js, _ = embeddedtest.JetStream(t)
	if err := eventlog.Ensure(ctx, e.js); err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(ctx, e.js, state.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	e.store = store
	e.pub = eventlogtest.NewPublisher(e.js)
	return e
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// materializer returns the Materializer of instance, quiet unless opts give a logger.
func (e *env) materializer(instance string, opts ...Option) *Materializer {
	e.t.Helper()
	m, err := New(e.ctx, e.cli, e.js, e.store, instance, append([]Option{WithLogger(quiet())}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// run runs m until the returned function (also a cleanup) stops it.
func (e *env) run(m *Materializer) (stop func()) {
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("Run: %v", err)
		}
	}
	e.t.Cleanup(stop)
	return stop
}

// publish publishes records and returns the last one's sequence.
func (e *env) publish(records ...*ingestv1.StoredEvent) uint64 {
	e.t.Helper()
	for _, r := range records {
		if err := e.pub.Publish(r); err != nil {
			e.t.Fatal(err)
		}
	}
	seq, err := e.pub.Flush(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return seq
}

// caughtUp waits until every record up to seq is applied.
func (e *env) caughtUp(seq uint64) {
	e.t.Helper()
	if err := NewProgress(e.js).Wait(e.ctx, seq); err != nil {
		e.t.Fatal(err)
	}
}

// profile reads a customer's stored profile; nil when there is none.
func (e *env) profile(id string) *profile.Profile {
	e.t.Helper()
	key, err := state.KeyOf(eventlog.UserKey(id))
	if err != nil {
		e.t.Fatal(err)
	}
	data, _, err := e.store.FetchEncoded(e.ctx, key)
	if err != nil {
		e.t.Fatal(err)
	}
	if data == nil {
		return nil
	}
	p, err := profile.Decode(data, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

var t0 = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)

var msgs int

func nextID() string {
	msgs++
	return fmt.Sprintf("msg-%d", msgs)
}

func track(id, name string, at time.Time) *ingestv1.StoredEvent {
	return &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_TRACK, MessageId: nextID(), UserId: id, Name: name, EventTime: profile.Timestamp(at.UnixNano())}
}

func identify(id string, at time.Time, traits map[string]*commonv1.Value) *ingestv1.StoredEvent {
	return &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_IDENTIFY, MessageId: nextID(), UserId: id, Traits: traits, EventTime: profile.Timestamp(at.UnixNano())}
}

func consent(id string, at time.Time, s commonv1.ConsentState) *ingestv1.StoredEvent {
	return &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_CONSENT, MessageId: nextID(), UserId: id, ConsentState: s, EventTime: profile.Timestamp(at.UnixNano())}
}

func erasure(id, erasureID, hash string) *ingestv1.StoredEvent {
	return &ingestv1.StoredEvent{Type: ingestv1.EventType_EVENT_TYPE_ERASURE, MessageId: nextID(), UserId: id, ErasureId: erasureID, SubjectHash: hash}
}

// names returns the names of a profile's events, in its order.
func names(p *profile.Profile) []string {
	if p == nil {
		return nil
	}
	out := make([]string, len(p.Events))
	for i, e := range p.Events {
		out[i] = e.Name
	}
	return out
}
