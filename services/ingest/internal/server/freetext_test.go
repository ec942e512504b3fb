package server_test

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bullseye-ml/bullseye/pkg/eventlog"
	commonv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/common/v1"
	ingestv1 "github.com/bullseye-ml/bullseye/pkg/gen/bullseye/ingest/v1"
	"github.com/bullseye-ml/bullseye/services/ingest/internal/record"
)

const (
	noteText  = "call me at +44 20 7946 0958 or jo@example.com"
	noteEmail = "jo@example.com"
	notePhone = "+44 20 7946 0958"
)

// noteEvents is a batch whose middle event leaves a note with an e-mail
// address and a phone number in it.
func noteEvents() []*ingestv1.Event {
	return []*ingestv1.Event{
		{MessageId: "n-1", UserId: "c-1", Name: "Page Viewed"},
		{MessageId: "n-2", UserId: "c-2", Name: "Note Left", Properties: map[string]*commonv1.Value{"note": strv(noteText), "topic": strv("billing")}},
		{MessageId: "n-3", UserId: "c-3", Name: "Page Viewed"},
	}
}

// TestTrackFreeTextPseudonymised: the address and the number inside the
// note are stored as their pseudonyms, the rest of the text as sent, and
// nothing on any stream holds them in clear.
func TestTrackFreeTextPseudonymised(t *testing.T) {
	e := newEnv(t)
	resp, err := e.client.Track(e.ctx(10*time.Second), &ingestv1.TrackRequest{Events: noteEvents()})
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.GetCounts(); c.GetAccepted() != 3 {
		t.Fatalf("counts %v, want 3 accepted", c)
	}
	n := e.decodeStored()["n-2"]
	want := "call me at " + e.p.Pseudonymise(notePhone) + " or " + e.p.Pseudonymise(noteEmail)
	if got := n.GetProperties()["note"].GetStringValue(); got != want {
		t.Errorf("note stored as %q, want %q", got, want)
	}
	if n.GetProperties()["topic"].GetStringValue() != "billing" || !slices.Contains(n.GetPseudonymisedFields(), "properties.note") {
		t.Errorf("stored %v", n)
	}
	for _, m := range e.everything() {
		if s := m.holds(noteEmail, "7946 0958"); s != "" {
			t.Errorf("%s message %d holds %q", m.stream, m.seq, s)
		}
	}
}

// TestTrackFreeTextRejected: configured to reject, the event with the note
// alone is rejected, naming the field; its neighbours are stored and its
// dead letter holds the note pseudonymised.
func TestTrackFreeTextRejected(t *testing.T) {
	e := newEnv(t, withFreeText(record.FreeTextReject))
	resp, err := e.client.Track(e.ctx(10*time.Second), &ingestv1.TrackRequest{Events: noteEvents()})
	if err != nil {
		t.Fatal(err)
	}
	got := resultKeys(resp.GetResults())
	want := []string{"ACCEPTED ", "REJECTED events[1].properties.note:CONTAINS_EMAIL,events[1].properties.note:CONTAINS_PHONE", "ACCEPTED "}
	if !slices.Equal(got, want) {
		t.Errorf("results %q, want %q", got, want)
	}
	if n := len(e.decodeStored()); n != 2 {
		t.Errorf("%d events stored, want 2", n)
	}
	for _, m := range e.everything() {
		if s := m.holds(noteEmail, "7946 0958"); s != "" {
			t.Errorf("%s message %d holds %q", m.stream, m.seq, s)
		}
	}
	if n := e.count(eventlog.DeadLettersStream); n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
}

// TestImportFreeTextPseudonymised imports a CSV whose note column holds an
// address and a number: they are stored as their pseudonyms.
func TestImportFreeTextPseudonymised(t *testing.T) {
	e := newEnv(t)
	m := &ingestv1.ImportMapping{
		Format: ingestv1.FileFormat_FILE_FORMAT_CSV,
		Csv:    &ingestv1.CsvOptions{HeaderRow: true},
		Entity: &ingestv1.ImportMapping_UserIdColumn{UserIdColumn: "id"},
		Time:   &ingestv1.ImportMapping_FixedTime{FixedTime: timestamppb.New(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))},
		OutcomeEvents: []*ingestv1.OutcomeEventMapping{{
			EventName:       &ingestv1.OutcomeEventMapping_Name{Name: "Note Left"},
			PropertyColumns: []*ingestv1.ColumnMapping{{Column: "note"}},
		}},
	}
	csv := "id,note\nc-1,nothing to say\nc-2,\"" + noteText + "\"\n"
	last, err := importFile(e.ctx(20*time.Second), e.client, "notes.csv", []byte(csv), m, importOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if last.GetRowsAccepted() != 2 {
		t.Fatalf("%d rows accepted, want 2", last.GetRowsAccepted())
	}
	want := "call me at " + e.p.Pseudonymise(notePhone) + " or " + e.p.Pseudonymise(noteEmail)
	var notes []string
	for _, ev := range e.decodeStored() {
		notes = append(notes, ev.GetProperties()["note"].GetStringValue())
	}
	slices.Sort(notes)
	if !slices.Equal(notes, []string{want, "nothing to say"}) {
		t.Errorf("notes stored %q, want %q", notes, []string{want, "nothing to say"})
	}
	for _, msg := range e.everything() {
		if s := msg.holds(noteEmail, "7946 0958"); s != "" {
			t.Errorf("%s message %d holds %q", msg.stream, msg.seq, s)
		}
	}
}
