package server_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

func strv(s string) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
}
func intv(n int64) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_IntValue{IntValue: n}}
}

// problemKeys renders problems as "field:REASON".
func problemKeys(ps []*commonv1.Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.GetField()+":"+p.GetReason())
	}
	return out
}

func TestTrackMixedBatch(t *testing.T) {
	e := newEnv(t)
	original := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	events := []*ingestv1.Event{
		{MessageId: "m-1", UserId: "c-1", Name: "Order Completed", Value: proto.Float64(25.5), Currency: "EUR",
			Properties: map[string]*commonv1.Value{"quantity": intv(2)}, ItemId: "sku-1",
			OriginalTimestamp: timestamppb.New(original), SentAt: timestamppb.New(original.Add(5 * time.Minute))},
		{MessageId: "m-2", UserId: "c.2 *>", Name: "Product Viewed", ItemId: "sku-9"},
		{MessageId: "m-1", UserId: "c-1", Name: "Order Completed"},
		{MessageId: "m-3", UserId: "c-3", Name: "Big", Properties: map[string]*commonv1.Value{"blob": strv(strings.Repeat("x", 40<<10))}},
		{MessageId: "m-4", UserId: "ana@example.com"},
		{UserId: "c-5", Name: "No Id"},
		{MessageId: "m-6", UserId: "c-6", Name: "Order Completed", Properties: map[string]*commonv1.Value{"quantity": strv("two")}},
		{MessageId: "m-7", AnonymousId: "cookie.*>", Name: "Page Viewed"},
		{MessageId: "m-8", UserId: "+351 912 345 678", Name: "Called"},
	}
	want := []struct {
		status   ingestv1.EventStatus
		problems []string
	}{
		{ingestv1.EventStatus_EVENT_STATUS_ACCEPTED, nil},
		{ingestv1.EventStatus_EVENT_STATUS_ACCEPTED, nil},
		{ingestv1.EventStatus_EVENT_STATUS_DUPLICATE, nil},
		{ingestv1.EventStatus_EVENT_STATUS_REJECTED, []string{"events[3]:TOO_LARGE"}},
		{ingestv1.EventStatus_EVENT_STATUS_REJECTED, []string{"events[4].user_id:LOOKS_LIKE_EMAIL", "events[4].name:MISSING"}},
		{ingestv1.EventStatus_EVENT_STATUS_REJECTED, []string{"events[5].message_id:MISSING"}},
		{ingestv1.EventStatus_EVENT_STATUS_REJECTED, []string{"events[6].properties.quantity:WRONG_TYPE"}},
		{ingestv1.EventStatus_EVENT_STATUS_ACCEPTED, nil},
		{ingestv1.EventStatus_EVENT_STATUS_REJECTED, []string{"events[8].user_id:LOOKS_LIKE_PHONE"}},
	}
	check := func(call int, resp *ingestv1.TrackResponse, retry bool) []string {
		t.Helper()
		if len(resp.GetResults()) != len(events) {
			t.Fatalf("call %d: %d results for %d events", call, len(resp.GetResults()), len(events))
		}
		var dls []string
		for i, r := range resp.GetResults() {
			w := want[i]
			if retry && w.status == ingestv1.EventStatus_EVENT_STATUS_ACCEPTED {
				w.status = ingestv1.EventStatus_EVENT_STATUS_DUPLICATE
			}
			if r.GetStatus() != w.status || !slices.Equal(problemKeys(r.GetProblems()), w.problems) {
				t.Errorf("call %d, event %d: %s %v, want %s %v", call, i, r.GetStatus(), problemKeys(r.GetProblems()), w.status, w.problems)
			}
			if r.GetMessageId() != events[i].GetMessageId() {
				t.Errorf("call %d, event %d: message id %q, want %q", call, i, r.GetMessageId(), events[i].GetMessageId())
			}
			if (r.GetStatus() == ingestv1.EventStatus_EVENT_STATUS_REJECTED) != (r.GetDeadLetterId() != "") {
				t.Errorf("call %d, event %d: status %s with dead letter id %q", call, i, r.GetStatus(), r.GetDeadLetterId())
			}
			if r.GetDeadLetterId() != "" {
				dls = append(dls, r.GetDeadLetterId())
			}
		}
		return dls
	}
	resp, err := e.client.Track(e.ctx(10*time.Second), &ingestv1.TrackRequest{Events: events})
	if err != nil {
		t.Fatal(err)
	}
	firstDLs := check(1, resp, false)
	if c := resp.GetCounts(); c.GetAccepted() != 3 || c.GetDuplicates() != 1 || c.GetRejected() != 5 {
		t.Errorf("counts %v, want 3 accepted, 1 duplicate, 5 rejected", c)
	}
	// A retry of the whole batch stores nothing new, not even dead letters.
	resp, err = e.client.Track(e.ctx(10*time.Second), &ingestv1.TrackRequest{Events: events})
	if err != nil {
		t.Fatal(err)
	}
	if dls := check(2, resp, true); !slices.Equal(dls, firstDLs) {
		t.Errorf("retry: dead letter ids %v, want the first call's %v", dls, firstDLs)
	}

	stored := e.messages(eventlog.EventsStream)
	if len(stored) != 3 {
		t.Fatalf("events stream holds %d messages, want exactly the 3 good events", len(stored))
	}
	if n := e.count(eventlog.DeadLettersStream); n != 5 {
		t.Errorf("dead-letter stream holds %d messages, want 5", n)
	}
	byID := map[string]*ingestv1.StoredEvent{}
	for _, m := range stored {
		var ev ingestv1.StoredEvent
		if err := proto.Unmarshal(m.data, &ev); err != nil {
			t.Fatal(err)
		}
		info, err := eventlog.ParseEventSubject(m.subject)
		if err != nil {
			t.Fatal(err)
		}
		wantKey := eventlog.UserKey(ev.GetUserId())
		if ev.GetUserId() == "" {
			wantKey = eventlog.AnonymousKey(ev.GetAnonymousId())
		}
		if info.Key != wantKey || info.Type != eventlog.TypeTrack || m.header.Get(eventlog.HeaderMsgID) != ev.GetMessageId() {
			t.Errorf("message %q on subject %q (%+v) with msg id %q", ev.GetMessageId(), m.subject, info, m.header.Get(eventlog.HeaderMsgID))
		}
		if m.header.Get("Traceparent") == "" {
			t.Errorf("message %q carries no trace context", ev.GetMessageId())
		}
		byID[ev.GetMessageId()] = &ev
	}
	m1 := byID["m-1"]
	if m1 == nil {
		t.Fatal("m-1 not stored")
	}
	if got, want := m1.GetEventTime().AsTime(), m1.GetReceivedAt().AsTime().Add(-5*time.Minute); !got.Equal(want) {
		t.Errorf("m-1 event time %s, want received − (sent − original) = %s", got, want)
	}
	if m1.GetValue() != 25.5 || m1.GetCurrency() != "EUR" || m1.GetProperties()["quantity"].GetIntValue() != 2 || m1.GetSource() != ingestv1.EventSource_EVENT_SOURCE_TRACK {
		t.Errorf("m-1 stored as %v", m1)
	}
}

func TestTrackBatchLimit(t *testing.T) {
	e := newEnv(t)
	events := make([]*ingestv1.Event, 501)
	for i := range events {
		events[i] = &ingestv1.Event{MessageId: fmt.Sprint(i), UserId: "c", Name: "x"}
	}
	_, err := e.client.Track(e.ctx(10*time.Second), &ingestv1.TrackRequest{Events: events})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("Track with 501 events: %v, want INVALID_ARGUMENT", err)
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if !slices.Equal(fields, []string{"events"}) {
		t.Errorf("field violations %v, want [events]", fields)
	}
}

func TestIdentifyAndConsent(t *testing.T) {
	e := newEnv(t)
	id, err := e.client.Identify(e.ctx(10*time.Second), &ingestv1.IdentifyRequest{Updates: []*ingestv1.TraitUpdate{
		{MessageId: "t-1", UserId: "c-1", Traits: map[string]*commonv1.Value{"plan": strv("pro"), "age": intv(41), "old": {}}},
		{MessageId: "t-2", UserId: "c-1"},
		{MessageId: "t-3", AnonymousId: "dev-9", Traits: map[string]*commonv1.Value{"": strv("x")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, r := range id.GetResults() {
		got = append(got, r.GetStatus().String()+" "+strings.Join(problemKeys(r.GetProblems()), ","))
	}
	want := []string{"EVENT_STATUS_ACCEPTED ", "EVENT_STATUS_REJECTED updates[1].traits:MISSING", "EVENT_STATUS_REJECTED updates[2].traits:EMPTY_KEY"}
	if !slices.Equal(got, want) {
		t.Errorf("Identify: %q, want %q", got, want)
	}
	cs, err := e.client.SetConsent(e.ctx(10*time.Second), &ingestv1.SetConsentRequest{Changes: []*ingestv1.ConsentChange{
		{MessageId: "k-1", UserId: "c-1", State: commonv1.ConsentState_CONSENT_STATE_OBJECTED, Source: "unsubscribe_link"},
		{MessageId: "k-2", UserId: "c-1", State: commonv1.ConsentState_CONSENT_STATE_ERASED},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r := cs.GetResults(); r[0].GetStatus() != ingestv1.EventStatus_EVENT_STATUS_ACCEPTED || !slices.Equal(problemKeys(r[1].GetProblems()), []string{"changes[1].state:INVALID_STATE"}) {
		t.Errorf("SetConsent: %v", r)
	}
	types := map[string]string{}
	for _, m := range e.messages(eventlog.EventsStream) {
		var ev ingestv1.StoredEvent
		if err := proto.Unmarshal(m.data, &ev); err != nil {
			t.Fatal(err)
		}
		types[ev.GetMessageId()] = ev.GetType().String() + " " + m.header.Get(eventlog.HeaderType)
		if ev.GetMessageId() == "t-1" && (!proto.Equal(ev.GetTraits()["old"], &commonv1.Value{}) || ev.GetTraits()["age"].GetIntValue() != 41) {
			t.Errorf("t-1 traits stored as %v", ev.GetTraits())
		}
	}
	wantTypes := map[string]string{"t-1": "EVENT_TYPE_IDENTIFY identify", "k-1": "EVENT_TYPE_CONSENT consent"}
	if fmt.Sprint(types) != fmt.Sprint(wantTypes) {
		t.Errorf("stored %v, want %v", types, wantTypes)
	}
}

// TestTrackWhileNATSIsDown stops NATS while a client tracks batches: calls
// answer UNAVAILABLE quickly (no hang, no false ACCEPTED), and once NATS
// is back on the same port, the client's retries store every event exactly
// once.
func TestTrackWhileNATSIsDown(t *testing.T) {
	e := newEnv(t, withPublishTimeout(time.Second))
	const batches, perBatch = 30, 50
	var (
		mu          sync.Mutex
		unavailable int
		slowest     time.Duration
		reported    = map[string]ingestv1.EventStatus{}
	)
	progress := make(chan int, batches)
	done := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(40 * time.Second)
		for b := range batches {
			events := make([]*ingestv1.Event, perBatch)
			for i := range events {
				events[i] = &ingestv1.Event{MessageId: fmt.Sprintf("b%d-e%d", b, i), UserId: fmt.Sprintf("c-%d", i%7), Name: "Product Viewed"}
			}
			for {
				if time.Now().After(deadline) {
					done <- errors.New("the retries did not succeed within 40s")
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				start := time.Now()
				resp, err := e.client.Track(ctx, &ingestv1.TrackRequest{Events: events})
				took := time.Since(start)
				cancel()
				mu.Lock()
				slowest = max(slowest, took)
				if err != nil {
					if status.Code(err) != codes.Unavailable {
						mu.Unlock()
						done <- fmt.Errorf("batch %d: %v, want UNAVAILABLE", b, err)
						return
					}
					unavailable++
					mu.Unlock()
					time.Sleep(50 * time.Millisecond)
					continue
				}
				for _, r := range resp.GetResults() {
					if prev, ok := reported[r.GetMessageId()]; ok && prev == ingestv1.EventStatus_EVENT_STATUS_ACCEPTED && r.GetStatus() == ingestv1.EventStatus_EVENT_STATUS_ACCEPTED {
						mu.Unlock()
						done <- fmt.Errorf("%s accepted twice", r.GetMessageId())
						return
					}
					reported[r.GetMessageId()] = r.GetStatus()
				}
				mu.Unlock()
				break
			}
			progress <- b
		}
		done <- nil
	}()
	for b := range progress {
		if b == 5 {
			break
		}
	}
	port := e.port
	e.stopNATS()
	time.Sleep(1500 * time.Millisecond)
	e.startNATS(port)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if unavailable == 0 {
		t.Error("no call was answered UNAVAILABLE while NATS was down")
	}
	if slowest > 3*time.Second {
		t.Errorf("the slowest call took %s, past its 3s deadline", slowest)
	}
	t.Logf("%d calls answered UNAVAILABLE; slowest call %s", unavailable, slowest.Round(time.Millisecond))
	seen := map[string]int{}
	for _, m := range e.messages(eventlog.EventsStream) {
		seen[m.header.Get(eventlog.HeaderMsgID)]++
	}
	if len(seen) != batches*perBatch {
		t.Errorf("%d distinct events stored, want %d", len(seen), batches*perBatch)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	for id, st := range reported {
		if st != ingestv1.EventStatus_EVENT_STATUS_ACCEPTED && st != ingestv1.EventStatus_EVENT_STATUS_DUPLICATE {
			t.Errorf("event %s answered %s", id, st)
		}
		if seen[id] != 1 {
			t.Errorf("event %s was answered %s but is not stored", id, st)
		}
	}
}

// TestTrackWhenJetStreamStopsAnswering cuts the network between ingest and
// NATS without closing the connection: calls answer UNAVAILABLE within the
// publish timeout, or before their own deadline when it is shorter, and
// retries after the network heals store every event once.
func TestTrackWhenJetStreamStopsAnswering(t *testing.T) {
	e := newEnv(t, withProxy(), withPublishTimeout(1500*time.Millisecond))
	batch := func(name string) []*ingestv1.Event {
		evs := make([]*ingestv1.Event, 100)
		for i := range evs {
			evs[i] = &ingestv1.Event{MessageId: fmt.Sprintf("%s-%d", name, i), UserId: fmt.Sprintf("c-%d", i%9), Name: "Product Viewed"}
		}
		return evs
	}
	a, b, c := batch("a"), batch("b"), batch("c")
	if _, err := e.client.Track(e.ctx(5*time.Second), &ingestv1.TrackRequest{Events: a}); err != nil {
		t.Fatal(err)
	}
	e.proxy.pause()
	tests := []struct {
		events          []*ingestv1.Event
		deadline        time.Duration
		atLeast, atMost time.Duration
	}{
		{b, 10 * time.Second, 1400 * time.Millisecond, 3 * time.Second},              // bounded by the publish timeout
		{c, 1000 * time.Millisecond, 700 * time.Millisecond, 990 * time.Millisecond}, // bounded by the call's deadline
	}
	for i, tt := range tests {
		start := time.Now()
		_, err := e.client.Track(e.ctx(tt.deadline), &ingestv1.TrackRequest{Events: tt.events})
		took := time.Since(start)
		if status.Code(err) != codes.Unavailable || took < tt.atLeast || took > tt.atMost {
			t.Errorf("call %d: %v after %s, want UNAVAILABLE after %s to %s", i, err, took.Round(time.Millisecond), tt.atLeast, tt.atMost)
		}
	}
	e.proxy.resume()
	for _, evs := range [][]*ingestv1.Event{b, c} {
		var resp *ingestv1.TrackResponse
		var err error
		for try := 0; try < 50; try++ {
			if resp, err = e.client.Track(e.ctx(5*time.Second), &ingestv1.TrackRequest{Events: evs}); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("retry after the network healed: %v", err)
		}
		if c := resp.GetCounts(); c.GetAccepted()+c.GetDuplicates() != int64(len(evs)) {
			t.Errorf("retry counts %v", c)
		}
	}
	seen := map[string]int{}
	for _, m := range e.messages(eventlog.EventsStream) {
		seen[m.header.Get(eventlog.HeaderMsgID)]++
	}
	if len(seen) != 300 {
		t.Errorf("%d distinct events stored, want 300", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
}
