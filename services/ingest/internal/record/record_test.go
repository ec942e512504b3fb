package record

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

func TestLooksLike(t *testing.T) {
	tests := []struct {
		id           string
		email, phone bool
	}{
		{"00001", false, false},
		{"1234567890", false, false},
		{"CRM-000123", false, false},
		{"6f1c2b7e-2a44-4d5e-9f3b-1f2d3c4b5a69", false, false},
		{"user@tenant", false, false},
		{"ana@example.com", true, false},
		{" Ana.Silva+promo@mail.example.pt ", true, false},
		{"+351 912 345 678", false, true},
		{"+14155552671", false, true},
		{"(555) 123-4567", false, true},
		{"555-123-4567", false, true},
		{"06 12 34 56 78", false, true},
		{"12-34", false, false},
		{"2024-spring", false, false},
	}
	for _, tt := range tests {
		if got := LooksLikeEmail(tt.id); got != tt.email {
			t.Errorf("LooksLikeEmail(%q) = %v, want %v", tt.id, got, tt.email)
		}
		if got := LooksLikePhone(tt.id); got != tt.phone {
			t.Errorf("LooksLikePhone(%q) = %v, want %v", tt.id, got, tt.phone)
		}
	}
}

func TestEventTime(t *testing.T) {
	recv := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	ts := func(s string) *timestamppb.Timestamp {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return timestamppb.New(tm)
	}
	tests := []struct {
		name           string
		original, sent *timestamppb.Timestamp
		want           string
	}{
		{"no client times", nil, nil, "2024-05-01T12:00:00Z"},
		{"original only", ts("2024-05-01T11:00:00Z"), nil, "2024-05-01T11:00:00Z"},
		{"client clock 1h fast, sent 5 min after the event", ts("2024-05-01T12:55:00Z"), ts("2024-05-01T13:00:00Z"), "2024-05-01T11:55:00Z"},
		{"sent only is ignored", nil, ts("2024-05-01T13:00:00Z"), "2024-05-01T12:00:00Z"},
	}
	for _, tt := range tests {
		if got := EventTime(recv, tt.original, tt.sent).Format(time.RFC3339); got != tt.want {
			t.Errorf("%s: EventTime = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func newBuilder(t *testing.T, opts ...Option) *Builder {
	t.Helper()
	p, err := eventlog.NewPseudonymiser([]byte("test key test key test key test key"), "ktest")
	if err != nil {
		t.Fatal(err)
	}
	return New(p, opts...)
}

func str(s string) *commonv1.Value {
	return &commonv1.Value{Kind: &commonv1.Value_StringValue{StringValue: s}}
}

func TestEventProblems(t *testing.T) {
	b := newBuilder(t, WithMaxItemBytes(1024))
	good := func() *ingestv1.Event {
		return &ingestv1.Event{MessageId: "m1", UserId: "c1", Name: "Order Completed", Value: proto.Float64(10), Currency: "EUR"}
	}
	tests := []struct {
		name   string
		change func(*ingestv1.Event)
		want   []string // field:reason
	}{
		{"good", func(*ingestv1.Event) {}, nil},
		{"no message id", func(e *ingestv1.Event) { e.MessageId = "" }, []string{"events[0].message_id:MISSING"}},
		{"no ids", func(e *ingestv1.Event) { e.UserId = "" }, []string{"events[0].user_id:MISSING"}},
		{"email id", func(e *ingestv1.Event) { e.UserId = "ana@example.com" }, []string{"events[0].user_id:LOOKS_LIKE_EMAIL"}},
		{"phone anonymous id", func(e *ingestv1.Event) { e.AnonymousId = "+351 912 345 678" }, []string{"events[0].anonymous_id:LOOKS_LIKE_PHONE"}},
		{"no name", func(e *ingestv1.Event) { e.Name = "" }, []string{"events[0].name:MISSING"}},
		{"bad currency", func(e *ingestv1.Event) { e.Currency = "euro" }, []string{"events[0].currency:INVALID_CURRENCY"}},
		{"quantity as text", func(e *ingestv1.Event) { e.Properties = map[string]*commonv1.Value{"quantity": str("two")} }, []string{"events[0].properties.quantity:WRONG_TYPE"}},
		{"bad timestamp", func(e *ingestv1.Event) { e.SentAt = &timestamppb.Timestamp{Nanos: 2e9} }, []string{"events[0].sent_at:INVALID_TIMESTAMP"}},
		{"too large", func(e *ingestv1.Event) {
			e.Properties = map[string]*commonv1.Value{"x": str(strings.Repeat("x", 2000))}
		}, []string{"events[0]:TOO_LARGE"}},
	}
	for _, tt := range tests {
		ev := good()
		tt.change(ev)
		_, probs := b.Event(ev, time.Now(), "events[0]")
		var got []string
		for _, p := range probs {
			got = append(got, p.GetField()+":"+p.GetReason())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: problems %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestPseudonymisation(t *testing.T) {
	b := newBuilder(t, WithPersonalFields([]string{"email", "properties.coupon", "context.user_agent"}))
	ev := &ingestv1.Event{
		MessageId: "m1", UserId: "c1", Name: "Signed Up",
		Properties: map[string]*commonv1.Value{"Email": str("Ana@Example.com"), "coupon": str("SPRING"), "plan": str("pro")},
		Context:    &ingestv1.EventContext{Ip: "192.0.2.7", UserAgent: "Mozilla/5.0", Channel: "web"},
	}
	orig := proto.Clone(ev)
	rec, probs := b.Event(ev, time.Now(), "")
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	st := rec.Event
	p := b.Pseudonymiser()
	if got := st.GetProperties()["Email"].GetStringValue(); got != p.Pseudonymise("ana@example.com") {
		t.Errorf("Email stored as %q", got)
	}
	if st.GetProperties()["plan"].GetStringValue() != "pro" || st.GetContext().GetChannel() != "web" {
		t.Error("a field that is not personal was changed")
	}
	if st.GetContext().GetIp() != p.Pseudonymise("192.0.2.7") || st.GetContext().GetUserAgent() != p.Pseudonymise("Mozilla/5.0") {
		t.Error("context fields were not pseudonymised")
	}
	want := []string{"context.ip", "context.user_agent", "properties.Email", "properties.coupon"}
	if !slices.Equal(st.GetPseudonymisedFields(), want) {
		t.Errorf("pseudonymised fields %v, want %v", st.GetPseudonymisedFields(), want)
	}
	if !proto.Equal(ev, orig) {
		t.Error("the request's event was modified")
	}
	// A replayed record keeps the pseudonyms it already holds.
	again, _ := b.Event(&ingestv1.Event{MessageId: "m1", UserId: "c1", Name: "Signed Up", Properties: st.GetProperties(), Context: st.GetContext()}, time.Now(), "", st.GetPseudonymisedFields()...)
	if !proto.Equal(again.Event.GetProperties()["Email"], st.GetProperties()["Email"]) || again.Event.GetContext().GetIp() != st.GetContext().GetIp() {
		t.Error("replaying pseudonymised a pseudonym again")
	}
	// Dead letters pseudonymise ids shaped like personal data.
	dead, paths := b.DeadEvent(&ingestv1.Event{UserId: "ana@example.com", Properties: map[string]*commonv1.Value{"email": str("x@y.z")}}, time.Now())
	if dead.GetUserId() == "ana@example.com" || !slices.Equal(paths, []string{"properties.email", "user_id"}) {
		t.Errorf("dead letter user id %q, paths %v", dead.GetUserId(), paths)
	}
}

func TestCopyContextCoversEveryField(t *testing.T) {
	c := &ingestv1.EventContext{}
	fields := c.ProtoReflect().Descriptor().Fields()
	m := c.ProtoReflect()
	for i := range fields.Len() {
		f := fields.Get(i)
		if f.Message() != nil {
			m.Set(f, m.NewField(f))
		} else {
			m.Set(f, protoreflectString("x"))
		}
	}
	if got := copyContext(c); !proto.Equal(got, c) {
		t.Errorf("copyContext drops fields: %v, want %v", got, c)
	}
}

func protoreflectString(s string) protoreflect.Value { return protoreflect.ValueOfString(s) }
