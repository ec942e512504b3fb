// Package eventlogtest helps tests put records on the events stream
// exactly as ingest stores them, without running ingest.
package eventlogtest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

// maxInFlight is how many publishes a Publisher leaves unacknowledged
// before it waits for their acks (well under JetStream's pending limit).
const maxInFlight = 4096

// Publisher publishes StoredEvent records as ingest does: on the subject of
// the record's customer (or visitor) and type, with its message id and
// type headers. It is safe for concurrent use.
type Publisher struct {
	js      jetstream.JetStream
	mu      sync.Mutex
	futures []jetstream.PubAckFuture
}

// NewPublisher returns a publisher on js.
func NewPublisher(js jetstream.JetStream) *Publisher { return &Publisher{js: js} }

// Publish sends a record asynchronously; Flush waits for the acks.
func (p *Publisher) Publish(ev *ingestv1.StoredEvent) error {
	key := eventlog.UserKey(ev.GetUserId())
	if ev.GetUserId() == "" {
		key = eventlog.AnonymousKey(ev.GetAnonymousId())
	}
	var t eventlog.Type
	switch ev.GetType() {
	case ingestv1.EventType_EVENT_TYPE_TRACK:
		t = eventlog.TypeTrack
	case ingestv1.EventType_EVENT_TYPE_IDENTIFY:
		t = eventlog.TypeIdentify
	case ingestv1.EventType_EVENT_TYPE_CONSENT:
		t = eventlog.TypeConsent
	case ingestv1.EventType_EVENT_TYPE_ERASURE:
		t = eventlog.TypeErasure
	default:
		return fmt.Errorf("record type %v", ev.GetType())
	}
	subj, err := eventlog.EventSubject(key, t)
	if err != nil {
		return err
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: subj, Data: data, Header: nats.Header{}}
	if ev.GetMessageId() != "" {
		msg.Header.Set(eventlog.HeaderMsgID, ev.GetMessageId())
	}
	msg.Header.Set(eventlog.HeaderType, string(t))
	f, err := p.js.PublishMsgAsync(msg)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.futures = append(p.futures, f)
	n := len(p.futures)
	p.mu.Unlock()
	if n >= maxInFlight {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := p.Flush(ctx)
		return err
	}
	return nil
}

// Flush waits for every publish's ack and returns the last sequence
// acknowledged since the previous Flush.
func (p *Publisher) Flush(ctx context.Context) (uint64, error) {
	p.mu.Lock()
	fs := p.futures
	p.futures = nil
	p.mu.Unlock()
	var last uint64
	for _, f := range fs {
		select {
		case a := <-f.Ok():
			last = max(last, a.Sequence)
		case err := <-f.Err():
			return 0, err
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return last, nil
}
