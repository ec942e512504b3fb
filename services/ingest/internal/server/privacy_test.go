package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
)

// spanText renders everything a span records.
func spanText(s trace.ReadOnlySpan) string {
	var b strings.Builder
	fmt.Fprintln(&b, s.Name(), s.Status().Description)
	for _, a := range s.Attributes() {
		fmt.Fprintln(&b, a.Key, a.Value.String())
	}
	for _, ev := range s.Events() {
		fmt.Fprintln(&b, ev.Name)
		for _, a := range ev.Attributes {
			fmt.Fprintln(&b, a.Key, a.Value.String())
		}
	}
	for _, l := range s.Links() {
		for _, a := range l.Attributes {
			fmt.Fprintln(&b, a.Key, a.Value.String())
		}
	}
	return b.String()
}

// TestNoRawPersonalValue sends personal values through every door, in
// accepted and rejected items, and searches the streams, the buckets, the
// logs and the spans for them.
func TestNoRawPersonalValue(t *testing.T) {
	e := newEnv(t)
	const (
		email   = "ana.silva@example.com"
		email2  = "ANA.Silva@Example.com"
		phone   = "+351 912 345 678"
		name    = "Ana Maria Silva"
		ip      = "203.0.113.77"
		address = "Rua Augusta 100, Lisboa"
	)
	raw := []string{email, strings.ToLower(email2), email2, phone, name, ip, address}
	personal := map[string]*commonv1.Value{"email": strv(email), "name": strv(name), "phone": strv(phone), "address": strv(address)}
	ctx := e.ctx(30 * time.Second)
	tr, err := e.client.Track(ctx, &ingestv1.TrackRequest{Events: []*ingestv1.Event{
		{MessageId: "p1", UserId: "c-1", Name: "Signed Up", Properties: personal, Context: &ingestv1.EventContext{Ip: ip}},
		{MessageId: "p2", UserId: "c-1", Properties: personal, Context: &ingestv1.EventContext{Ip: ip}},                                                  // no name
		{MessageId: "p3", UserId: email2, Name: "Signed Up"},                                                                                             // an email as id
		{MessageId: "p4", AnonymousId: phone, Name: "Called"},                                                                                            // a phone as id
		{MessageId: "p5", UserId: "c-2", Name: "Order Completed", Properties: map[string]*commonv1.Value{"quantity": strv("two"), "email": strv(email)}}, // wrong type
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c := tr.GetCounts(); c.GetAccepted() != 1 || c.GetRejected() != 4 {
		t.Fatalf("Track counts %v", c)
	}
	if _, err := e.client.Identify(ctx, &ingestv1.IdentifyRequest{Updates: []*ingestv1.TraitUpdate{
		{MessageId: "i1", UserId: "c-1", Traits: personal, Context: &ingestv1.EventContext{Ip: ip}},
		{MessageId: "i2", UserId: "c-1", Traits: map[string]*commonv1.Value{"email": strv(email), "": strv("x")}},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.SetConsent(ctx, &ingestv1.SetConsentRequest{Changes: []*ingestv1.ConsentChange{{MessageId: "k1", UserId: phone, State: commonv1.ConsentState_CONSENT_STATE_OBJECTED}}}); err != nil {
		t.Fatal(err)
	}
	csv := fmt.Sprintf("id,email,phone,name,age\nc-3,%s,%s,%s,41\nc-4,%s,%s,%s,forty\n%s,x,y,z,1\n", email, phone, name, email2, phone, name, email)
	m := &ingestv1.ImportMapping{
		Format:          ingestv1.FileFormat_FILE_FORMAT_CSV,
		Csv:             &ingestv1.CsvOptions{HeaderRow: true},
		Entity:          &ingestv1.ImportMapping_UserIdColumn{UserIdColumn: "id"},
		Time:            &ingestv1.ImportMapping_FixedTime{FixedTime: timestamppb.Now()},
		TraitColumns:    []*ingestv1.ColumnMapping{{Column: "age", Type: commonv1.ValueType_VALUE_TYPE_INT}},
		UnmappedColumns: ingestv1.UnmappedColumns_UNMAPPED_COLUMNS_TRAITS,
	}
	last, err := importFile(ctx, e.client, "people.csv", []byte(csv), m, importOpts{})
	if err != nil || last.GetRowsAccepted() != 1 || last.GetRowsRejected() != 2 {
		t.Fatalf("import: %v, %v", last, err)
	}
	// Replay a dead letter unchanged (its pseudonyms stay pseudonyms) and
	// list them all.
	fixed := &ingestv1.Event{UserId: "c-1", Name: "Signed Up", Properties: personal, Context: &ingestv1.EventContext{Ip: ip}}
	if _, err := e.client.ReplayDeadLetters(ctx, &ingestv1.ReplayDeadLettersRequest{Replays: []*ingestv1.DeadLetterReplay{
		{DeadLetterId: tr.GetResults()[1].GetDeadLetterId(), Correction: &ingestv1.DeadLetterReplay_Event{Event: fixed}},
		{DeadLetterId: tr.GetResults()[2].GetDeadLetterId()},
	}}); err != nil {
		t.Fatal(err)
	}
	list, err := e.client.ListDeadLetters(ctx, &ingestv1.ListDeadLettersRequest{IncludeReplayed: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetDeadLetters()) != 8 {
		t.Errorf("%d dead letters, want 8", len(list.GetDeadLetters()))
	}
	for _, dl := range list.GetDeadLetters() {
		if s := containsAny(dl.String(), raw...); s != "" {
			t.Errorf("dead letter %s holds %q", dl.GetId(), s)
		}
	}

	pseudonyms := 0
	for _, msg := range e.everything() {
		if s := msg.holds(raw...); s != "" {
			t.Errorf("%s message %d on %s holds %q", msg.stream, msg.seq, msg.subject, s)
		}
		if msg.holds(e.p.Pseudonymise(email)) != "" {
			pseudonyms++
		}
	}
	if pseudonyms < 5 {
		t.Errorf("the email's pseudonym is in %d messages, want it in every record and dead letter that had it", pseudonyms)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "items rejected") {
		t.Errorf("the logs do not hold the rejections (is the capture working?):\n%s", logs)
	}
	if s := containsAny(logs, raw...); s != "" {
		t.Errorf("the logs hold %q:\n%s", s, logs)
	}
	spans := e.spans.Ended()
	if len(spans) < 10 {
		t.Errorf("only %d spans recorded", len(spans))
	}
	for _, sp := range spans {
		if s := containsAny(spanText(sp), raw...); s != "" {
			t.Errorf("span %q holds %q", sp.Name(), s)
		}
	}
}
