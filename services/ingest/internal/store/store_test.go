package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/bullseye-ml/bullseye/pkg/embedded"
	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	"github.com/bullseye-ml/bullseye/pkg/service"
)

// open starts NATS and opens a store on it, as ingest connects, its publishes bounded by
// DefaultPublishTimeout.
func open(t *testing.T) (*Store, *embedded.NATS) {
	t.Helper()
	return openTimeout(t, DefaultPublishTimeout)
}

// openTimeout is open with publishes bounded by timeout.
func openTimeout(t *testing.T, timeout time.Duration) (*Store, *embedded.NATS) {
	t.Helper()
	srv, err := embedded.StartNATS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, js, err := service.ConnectJetStream(srv.URL(), "store-test", nil, JetStreamOptions(timeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := New(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, srv
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func trackSubject(t *testing.T, id string) string {
	t.Helper()
	subj, err := eventlog.EventSubject(eventlog.UserKey(id), eventlog.TypeTrack)
	if err != nil {
		t.Fatal(err)
	}
	return subj
}

// TestPublishAcksInOrderAndDeduplicates: Wait gives each message's sequence in order; a
// message id stored before is a duplicate with the first copy's sequence; the id, type and
// the caller's trace context travel in the headers; nothing to publish is no error.
func TestPublishAcksInOrderAndDeduplicates(t *testing.T) {
	s, _ := open(t)
	ctx := testContext(t)
	subj := trackSubject(t, "a")
	acks, err := s.Publish(ctx, []Message{
		{Subject: subj, MsgID: "m1", Type: eventlog.TypeTrack, Data: []byte("one")},
		{Subject: subj, MsgID: "m2", Type: eventlog.TypeTrack, Data: []byte("two")},
		{Subject: subj, Data: []byte("no id")},
	}).Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(acks) != 3 || acks[0].Seq != 1 || acks[1].Seq != 2 || acks[2].Seq != 3 || acks[0].Duplicate {
		t.Fatalf("acks %+v, want sequences 1, 2, 3, none a duplicate", acks)
	}
	traceID, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	spanID, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	traced := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled}))
	dup, err := s.PublishSync(traced, Message{Subject: subj, MsgID: "m2", Type: eventlog.TypeTrack, Data: []byte("two again")})
	if err != nil || !dup.Duplicate || dup.Seq != 2 {
		t.Errorf("publishing m2 again: %+v, %v; want a duplicate of sequence 2", dup, err)
	}
	fresh, err := s.PublishSync(traced, Message{Subject: subj, MsgID: "m3", Type: eventlog.TypeTrack, Data: []byte("three")})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.EventsStream().GetMsg(ctx, fresh.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get(eventlog.HeaderMsgID) != "m3" || msg.Header.Get(eventlog.HeaderType) != string(eventlog.TypeTrack) ||
		msg.Header.Get("Traceparent") != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
		t.Errorf("headers %v, want the message id, type and trace context", msg.Header)
	}
	p := s.Publish(ctx, nil)
	if acks, err := p.Wait(ctx); p.Len() != 0 || len(acks) != 0 || err != nil {
		t.Errorf("publishing nothing: %d pending, %v, %v", p.Len(), acks, err)
	}
}

// TestPublishFailuresAreUnavailable: a message no stream takes, and any publish while the
// connection is down, fail with ErrUnavailable, not a silent success.
func TestPublishFailuresAreUnavailable(t *testing.T) {
	s, srv := openTimeout(t, 2*time.Second)
	ctx := testContext(t)
	if _, err := s.PublishSync(ctx, Message{Subject: "nowhere.at.all", Data: []byte("x")}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("a subject no stream takes: %v, want ErrUnavailable", err)
	}
	srv.Shutdown()
	for s.JetStream().Conn().Status() == nats.CONNECTED {
		if ctx.Err() != nil {
			t.Fatal("the connection did not notice the server had gone")
		}
		time.Sleep(10 * time.Millisecond)
	}
	p := s.Publish(ctx, []Message{{Subject: trackSubject(t, "a"), Data: []byte("x")}})
	if _, err := p.Wait(ctx); !errors.Is(err, ErrUnavailable) || p.Len() != 0 {
		t.Errorf("while disconnected: %v with %d pending, want ErrUnavailable and nothing sent", err, p.Len())
	}
}

// TestUnavailableMarksOnlyWhatIsNot: the marking keeps nil, cancellations and errors marked
// already as they are.
func TestUnavailableMarksOnlyWhatIsNot(t *testing.T) {
	if unavailable(nil) != nil {
		t.Error("nil was marked")
	}
	if err := unavailable(context.Canceled); err != context.Canceled {
		t.Errorf("a cancellation became %v", err)
	}
	marked := unavailable(errors.New("down"))
	if !errors.Is(marked, ErrUnavailable) || unavailable(marked) != marked {
		t.Errorf("marking %v twice changed it", marked)
	}
	if err := unavailable(fmt.Errorf("reading: %w", context.DeadlineExceeded)); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a deadline: %v, want ErrUnavailable wrapping it", err)
	}
}

// TestImportProgressIsCompareAndSet: a new import is not found; creating it twice, or
// updating it from a stale revision, is ErrConflict; the current revision updates it.
func TestImportProgressIsCompareAndSet(t *testing.T) {
	s, _ := open(t)
	ctx := testContext(t)
	if _, _, found, err := s.GetImport(ctx, "file-1"); found || err != nil {
		t.Fatalf("a new import: found %v, %v", found, err)
	}
	rev, err := s.PutImport(ctx, "file-1", []byte("row 10"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutImport(ctx, "file-1", []byte("row 20"), 0); !errors.Is(err, ErrConflict) {
		t.Errorf("creating it again: %v, want ErrConflict", err)
	}
	next, err := s.PutImport(ctx, "file-1", []byte("row 30"), rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutImport(ctx, "file-1", []byte("row 40"), rev); !errors.Is(err, ErrConflict) {
		t.Errorf("updating from a stale revision: %v, want ErrConflict", err)
	}
	value, got, found, err := s.GetImport(ctx, "file-1")
	if err != nil || !found || got != next || string(value) != "row 30" {
		t.Errorf("GetImport = %q at %d (found %v, %v), want row 30 at %d", value, got, found, err, next)
	}
}

// TestPurgeCountsWhatItRemoved: Purge removes one subject's messages (wildcards allowed) and
// says how many.
func TestPurgeCountsWhatItRemoved(t *testing.T) {
	s, _ := open(t)
	ctx := testContext(t)
	var msgs []Message
	for _, id := range []string{"a", "a", "a", "b"} {
		msgs = append(msgs, Message{Subject: trackSubject(t, id), Data: []byte(id)})
	}
	if _, err := s.Publish(ctx, msgs).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	base, err := eventlog.EventSubjectBase(eventlog.UserKey("a"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.Purge(context.Background(), eventlog.EventsStream, base+".>"); n != 3 || err != nil {
		t.Errorf("Purge = %d, %v; want a's 3", n, err)
	}
	if n, err := s.Purge(ctx, eventlog.EventsStream, base+".>"); n != 0 || err != nil {
		t.Errorf("Purge again = %d, %v; want 0", n, err)
	}
	if _, err := s.Purge(ctx, "NO_SUCH_STREAM", ">"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("purging a missing stream: %v, want ErrUnavailable", err)
	}
}

// TestDeadLetterIDs: ids are "dl-" and a positive sequence.
func TestDeadLetterIDs(t *testing.T) {
	if seq, ok := ParseDeadLetterID(DeadLetterID(42)); !ok || seq != 42 {
		t.Errorf("round trip of 42: %d, %v", seq, ok)
	}
	for _, id := range []string{"", "dl-", "dl-0", "dl--1", "dl-x", "42", "DL-42", "dl-18446744073709551616", "dl-4 "} {
		if seq, ok := ParseDeadLetterID(id); ok {
			t.Errorf("ParseDeadLetterID(%q) = %d, want no id", id, seq)
		}
	}
}

// TestDeadLetterSubject: an item without a usable key goes to the unidentified subject.
func TestDeadLetterSubject(t *testing.T) {
	want, _ := eventlog.DeadLetterSubject(eventlog.UserKey("a"))
	if got := DeadLetterSubject(eventlog.UserKey("a"), true); got != want {
		t.Errorf("a's subject %q, want %q", got, want)
	}
	for _, c := range []struct {
		key eventlog.Key
		ok  bool
	}{{eventlog.UserKey("a"), false}, {eventlog.UserKey(""), true}} {
		if got := DeadLetterSubject(c.key, c.ok); got != eventlog.UnidentifiedDeadLetters {
			t.Errorf("DeadLetterSubject(%+v, %v) = %q, want the unidentified subject", c.key, c.ok, got)
		}
	}
}
