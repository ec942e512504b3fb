package server_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/fault/hostile"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

const ingestPrefix = "/bullseye.ingest.v1.IngestService/"

// rejectsItem checks a batch reply whose item i is rejected, a problem
// naming field with reason, and whose text repeats no long value.
func rejectsItem(i int, field, reason string) func(t *testing.T, reply proto.Message) {
	return func(t *testing.T, reply proto.Message) {
		t.Helper()
		var results []*ingestv1.EventResult
		switch r := reply.(type) {
		case *ingestv1.TrackResponse:
			results = r.GetResults()
		case *ingestv1.IdentifyResponse:
			results = r.GetResults()
		case *ingestv1.SetConsentResponse:
			results = r.GetResults()
		case *ingestv1.ReplayDeadLettersResponse:
			for _, x := range r.GetResults() {
				results = append(results, x.GetResult())
			}
		}
		if len(results) <= i {
			t.Fatalf("%d results, want item %d", len(results), i)
		}
		r := results[i]
		found := false
		for _, p := range r.GetProblems() {
			found = found || (p.GetField() == field && p.GetReason() == reason)
		}
		if r.GetStatus() != ingestv1.EventStatus_EVENT_STATUS_REJECTED || !found {
			t.Errorf("item %d: %s %v, want REJECTED with %s:%s", i, r.GetStatus(), problemKeys(r.GetProblems()), field, reason)
		}
		if n := proto.Size(reply); n > 8<<10 {
			t.Errorf("the reply is %d bytes: a bad value is repeated whole", n)
		}
	}
}

// TestHostileInputs sends a table of bad inputs to every RPC of the ingest
// service over the wire, as a hostile client may, each answered with the
// right code and field (a bad item of a batch on its own, with OK), and
// proves after each method's cases that the service still takes events.
func TestHostileInputs(t *testing.T) {
	e := newEnv(t)
	inv := codes.InvalidArgument
	one := func(m proto.Message) []proto.Message { return []proto.Message{m} }
	ev := func(mut func(*ingestv1.Event)) *ingestv1.TrackRequest {
		x := &ingestv1.Event{MessageId: "h-1", UserId: "c-1", Name: "Page Viewed"}
		mut(x)
		return &ingestv1.TrackRequest{Events: []*ingestv1.Event{{MessageId: "h-0", UserId: "c-0", Name: "Page Viewed"}, x}}
	}
	up := func(mut func(*ingestv1.TraitUpdate)) *ingestv1.IdentifyRequest {
		x := &ingestv1.TraitUpdate{MessageId: "u-1", UserId: "c-1", Traits: map[string]*commonv1.Value{"plan": strv("pro")}}
		mut(x)
		return &ingestv1.IdentifyRequest{Updates: []*ingestv1.TraitUpdate{x}}
	}
	start := func(mut func(*ingestv1.ImportMapping)) *ingestv1.ImportRequest {
		m := planMapping()
		mut(m)
		return &ingestv1.ImportRequest{Kind: &ingestv1.ImportRequest_Start{Start: &ingestv1.ImportStart{Sha256: strings.Repeat("ab", 32), SizeBytes: 10, Mapping: m}}}
	}
	many := make([]*ingestv1.Event, 10000)
	for i := range many {
		many[i] = &ingestv1.Event{MessageId: "x", UserId: "c", Name: "n"}
	}
	track := &ingestv1.TrackResponse{}
	identify := &ingestv1.IdentifyResponse{}
	consent := &ingestv1.SetConsentResponse{}
	table := hostile.Table{
		ingestPrefix + "Track": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "10,000 events", Requests: one(&ingestv1.TrackRequest{Events: many}), Code: inv, Field: "events"},
			{Name: "1 MiB name", Requests: one(ev(func(x *ingestv1.Event) { x.Name = hostile.MB1 })), Reply: track, Check: rejectsItem(1, "events[1]", "TOO_LARGE")},
			{Name: "10 kB name", Requests: one(ev(func(x *ingestv1.Event) { x.Name = hostile.KB10 })), Reply: track, Check: rejectsItem(1, "events[1].name", "TOO_LONG")},
			{Name: "name with a line break", Requests: one(ev(func(x *ingestv1.Event) { x.Name = "Page\nViewed" })), Reply: track, Check: rejectsItem(1, "events[1].name", "INVALID")},
			{Name: "invalid UTF-8 name", Requests: one(ev(func(x *ingestv1.Event) { x.Name = hostile.InvalidUTF8 })), Reply: track, Check: rejectsItem(1, "events[1].name", "INVALID_UTF8")},
			{Name: "10 kB user_id", Requests: one(ev(func(x *ingestv1.Event) { x.UserId = hostile.KB10 })), Reply: track, Check: rejectsItem(1, "events[1].user_id", "TOO_LONG")},
			{Name: "user_id with a tab", Requests: one(ev(func(x *ingestv1.Event) { x.UserId = "c\t1" })), Reply: track, Check: rejectsItem(1, "events[1].user_id", "INVALID")},
			{Name: "10 kB item_id", Requests: one(ev(func(x *ingestv1.Event) { x.ItemId = hostile.KB10 })), Reply: track, Check: rejectsItem(1, "events[1].item_id", "TOO_LONG")},
			{Name: "10 kB message_id", Requests: one(ev(func(x *ingestv1.Event) { x.MessageId = hostile.KB10 })), Reply: track, Check: rejectsItem(1, "events[1].message_id", "TOO_LONG")},
			{Name: "10 kB property name", Requests: one(ev(func(x *ingestv1.Event) { x.Properties = map[string]*commonv1.Value{hostile.KB10: strv("x")} })), Reply: track, Check: rejectsItem(1, "events[1].properties", "TOO_LONG")},
			{Name: "NaN value", Requests: one(ev(func(x *ingestv1.Event) { x.Value = proto.Float64(nan()) })), Reply: track, Check: rejectsItem(1, "events[1].value", "NOT_FINITE")},
			{Name: "bad time", Requests: one(ev(func(x *ingestv1.Event) { x.OriginalTimestamp = &timestamppb.Timestamp{Seconds: 1 << 60} })), Reply: track, Check: rejectsItem(1, "events[1].original_timestamp", "INVALID_TIMESTAMP")},
		},
		ingestPrefix + "Identify": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "invalid UTF-8 trait", Requests: one(up(func(x *ingestv1.TraitUpdate) { x.Traits["plan"] = strv(hostile.InvalidUTF8) })), Reply: identify, Check: rejectsItem(0, "updates[0].traits.plan", "INVALID_UTF8")},
			{Name: "10 kB anonymous_id", Requests: one(up(func(x *ingestv1.TraitUpdate) { x.UserId, x.AnonymousId = "", hostile.KB10 })), Reply: identify, Check: rejectsItem(0, "updates[0].anonymous_id", "TOO_LONG")},
			{Name: "no traits", Requests: one(up(func(x *ingestv1.TraitUpdate) { x.Traits = nil })), Reply: identify, Check: rejectsItem(0, "updates[0].traits", "MISSING")},
		},
		ingestPrefix + "SetConsent": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "bad state", Requests: one(&ingestv1.SetConsentRequest{Changes: []*ingestv1.ConsentChange{{MessageId: "k", UserId: "c", State: 99}}}), Reply: consent, Check: rejectsItem(0, "changes[0].state", "INVALID_STATE")},
			{Name: "invalid UTF-8 source", Requests: one(&ingestv1.SetConsentRequest{Changes: []*ingestv1.ConsentChange{{MessageId: "k", UserId: "c", State: commonv1.ConsentState_CONSENT_STATE_GRANTED, Source: hostile.InvalidUTF8}}}), Reply: consent, Check: rejectsItem(0, "changes[0].source", "INVALID_UTF8")},
		},
		ingestPrefix + "ListDeadLetters": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "bogus page token", Requests: one(&ingestv1.ListDeadLettersRequest{PageToken: "bogus"}), Code: inv, Field: "page_token"},
			{Name: "1 MiB page token", Requests: one(&ingestv1.ListDeadLettersRequest{PageToken: hostile.MB1}), Code: inv, Field: "page_token"},
			{Name: "1 MiB user_id", Requests: one(&ingestv1.ListDeadLettersRequest{UserId: hostile.MB1}), Code: inv, Field: "user_id"},
			{Name: "10 kB import_id", Requests: one(&ingestv1.ListDeadLettersRequest{ImportId: hostile.KB10}), Code: inv, Field: "import_id"},
			{Name: "invalid UTF-8 reason", Requests: one(&ingestv1.ListDeadLettersRequest{Reasons: []string{hostile.InvalidUTF8}}), Code: inv, Field: "reasons[0]"},
			{Name: "negative page size", Requests: one(&ingestv1.ListDeadLettersRequest{PageSize: -1}), Code: inv, Field: "page_size"},
			{Name: "bad source", Requests: one(&ingestv1.ListDeadLettersRequest{Source: 99}), Code: inv, Field: "source"},
			{Name: "bad time", Requests: one(&ingestv1.ListDeadLettersRequest{StartTime: &timestamppb.Timestamp{Nanos: -1}}), Code: inv, Field: "start_time"},
		},
		ingestPrefix + "ReplayDeadLetters": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "1 MiB id", Requests: one(&ingestv1.ReplayDeadLettersRequest{Replays: []*ingestv1.DeadLetterReplay{{DeadLetterId: hostile.MB1}}}), Reply: &ingestv1.ReplayDeadLettersResponse{}, Check: rejectsItem(0, "replays[0].dead_letter_id", "INVALID")},
			{Name: "invalid UTF-8 id", Requests: one(&ingestv1.ReplayDeadLettersRequest{Replays: []*ingestv1.DeadLetterReplay{{DeadLetterId: hostile.InvalidUTF8}}}), Reply: &ingestv1.ReplayDeadLettersResponse{}, Check: rejectsItem(0, "replays[0].dead_letter_id", "INVALID")},
			{Name: "unknown id", Requests: one(&ingestv1.ReplayDeadLettersRequest{Replays: []*ingestv1.DeadLetterReplay{{DeadLetterId: "dl-99999999"}}}), Reply: &ingestv1.ReplayDeadLettersResponse{}, Check: rejectsItem(0, "replays[0].dead_letter_id", "NOT_FOUND")},
		},
		ingestPrefix + "ForgetUser": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "empty", Requests: one(&ingestv1.ForgetUserRequest{}), Code: inv, Field: "user_id"},
			{Name: "1 MiB user_id", Requests: one(&ingestv1.ForgetUserRequest{UserId: hostile.MB1}), Code: inv, Field: "user_id"},
			{Name: "invalid UTF-8 user_id", Requests: one(&ingestv1.ForgetUserRequest{UserId: hostile.InvalidUTF8}), Code: inv, Field: "user_id"},
			{Name: "user_id with a NUL", Requests: one(&ingestv1.ForgetUserRequest{UserId: "c\x001"}), Code: inv, Field: "user_id"},
			{Name: "10 kB anonymous id", Requests: one(&ingestv1.ForgetUserRequest{UserId: "c-1", AnonymousIds: []string{hostile.KB10}}), Code: inv, Field: "anonymous_ids[0]"},
			{Name: "invalid UTF-8 reason", Requests: one(&ingestv1.ForgetUserRequest{UserId: "c-1", Reason: hostile.InvalidUTF8}), Code: inv, Field: "reason"},
		},
		ingestPrefix + "Import": {
			{Name: "malformed", Raw: hostile.Malformed, Code: inv},
			{Name: "no start", Requests: one(&ingestv1.ImportRequest{Kind: &ingestv1.ImportRequest_Chunk{Chunk: &ingestv1.ImportChunk{Data: []byte("x")}}}), Code: inv, Field: "start"},
			{Name: "1 MiB event name", Requests: one(start(func(m *ingestv1.ImportMapping) {
				m.OutcomeEvents = []*ingestv1.OutcomeEventMapping{{EventName: &ingestv1.OutcomeEventMapping_Name{Name: hostile.MB1}}}
			})), Code: inv, Field: "start.mapping.outcome_events[0].name"},
			{Name: "10 kB event name", Requests: one(start(func(m *ingestv1.ImportMapping) {
				m.OutcomeEvents = []*ingestv1.OutcomeEventMapping{{EventName: &ingestv1.OutcomeEventMapping_Name{Name: hostile.KB10}}}
			})), Code: inv, Field: "start.mapping.outcome_events[0].name"},
			{Name: "invalid UTF-8 column", Requests: one(start(func(m *ingestv1.ImportMapping) { m.TraitColumns[0].Column = hostile.InvalidUTF8 })), Code: inv, Field: "start.mapping.trait_columns[0].column"},
			{Name: "10 kB trait name", Requests: one(start(func(m *ingestv1.ImportMapping) { m.TraitColumns[0].Name = hostile.KB10 })), Code: inv, Field: "start.mapping.trait_columns[0].name"},
			{Name: "bad digest", Requests: one(&ingestv1.ImportRequest{Kind: &ingestv1.ImportRequest_Start{Start: &ingestv1.ImportStart{Sha256: "x", Mapping: planMapping()}}}), Code: inv, Field: "start.sha256"},
		},
	}
	hostile.Cover(t, table, &ingestv1.IngestService_ServiceDesc)
	canary := func(t *testing.T) {
		t.Helper()
		resp, err := e.client.Track(e.ctx(10*time.Second), &ingestv1.TrackRequest{Events: []*ingestv1.Event{{MessageId: "canary-" + time.Now().Format(time.RFC3339Nano), UserId: "c-canary", Name: "Canary"}}})
		if err != nil || resp.GetCounts().GetAccepted() != 1 {
			t.Fatalf("canary: %v %v", resp, err)
		}
	}
	hostile.Run(t, e.conn, hostile.Streams(&ingestv1.IngestService_ServiceDesc), table, canary)
	// No log line repeats a long value whole.
	if logs := e.logs.String(); strings.Contains(logs, hostile.KB10[:1000]) || strings.Contains(logs, hostile.MB1[:1000]) {
		t.Error("the logs repeat a long bad value")
	}
}

func nan() float64 { return math.NaN() }
